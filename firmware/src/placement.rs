//! The rules every flash layout obeys, written once for imagegen (which checks a build against
//! the flash it is configured for) and the flasher (which checks its plan against
//! `--flash_size`): images built for the chip, the partition table's own sector free and the
//! table inside the flash, each file inside its partition, nothing past the end of the flash and
//! nothing overlapping.
//!
//! Each check returns a typed violation; each tool words it in its own terms.

use esp_idf_part::{Partition, PartitionTable};

use crate::chip::Chip;
use crate::esp_image::{self, ImageError, ImageInfo};
use crate::partition;

/// The flash the partition table occupies, from its offset: one sector.
pub const TABLE_SECTOR: u64 = 0x1000;

/// Why an image cannot go where it is meant to.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImageViolation {
    /// The bytes are not an ESP image.
    #[error("not a valid image ({0})")]
    Invalid(ImageError),
    /// The image is built for another chip.
    #[error("built for {built}, not {expected}")]
    WrongChip {
        /// The chip the image names (or its raw id).
        built: String,
        /// The chip asked for.
        expected: Chip,
    },
}

/// The bootloader is not where the chip's ROM loads it from.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("placed at {at:#x}, but the {chip} ROM loads the bootloader from {expected:#x}")]
pub struct BootloaderOffset {
    /// Where the build puts it.
    pub at: u32,
    /// Where the ROM looks.
    pub expected: u32,
    /// The chip.
    pub chip: Chip,
}

/// Why a partition table does not fit its place.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TableViolation {
    /// A partition starts inside the partition table's sector.
    #[error(
        "partition {partition} at {offset:#x} lies inside the partition table sector \
         ({table_offset:#x}..{:#x})", u64::from(*table_offset) + TABLE_SECTOR
    )]
    InTableSector {
        /// The partition's name.
        partition: String,
        /// Its offset.
        offset: u32,
        /// The table's offset.
        table_offset: u32,
    },
    /// The partitions reach past the end of the flash.
    #[error("the partition table ends at {end:#x}, beyond the {flash:#x}-byte flash")]
    BeyondFlash {
        /// One past the last partition's last byte.
        end: u64,
        /// The flash size in bytes.
        flash: u64,
    },
}

/// A file is larger than the partition it goes into.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{len} bytes do not fit partition {partition} ({size} bytes at {offset:#x})")]
pub struct TooLarge {
    /// The file's length.
    pub len: u64,
    /// The partition's name.
    pub partition: String,
    /// The partition's size.
    pub size: u32,
    /// The partition's offset.
    pub offset: u32,
}

/// A data file (a model pack, a file-system or NVS image) does not lie inside one partition.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DataViolation {
    /// No partition holds the file's first byte.
    #[error("no partition holds offset {offset:#x}")]
    NoPartition {
        /// Where the file goes.
        offset: u32,
    },
    /// The file starts inside a partition but runs past its end.
    #[error(transparent)]
    TooLarge(#[from] TooLarge),
}

/// Why pieces of flash cannot all be written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExtentViolation {
    /// A piece reaches past the end of the flash.
    #[error("the {what} ends at {end:#x}, beyond the {flash:#x}-byte flash")]
    BeyondFlash {
        /// What the piece is.
        what: String,
        /// One past its last byte.
        end: u64,
        /// The flash size in bytes.
        flash: u64,
    },
    /// Two pieces share flash.
    #[error(
        "the {first} ({first_start:#x}..{first_end:#x}) overlaps the {second} at {second_start:#x}"
    )]
    Overlap {
        /// The lower piece.
        first: String,
        /// Its start.
        first_start: u64,
        /// One past its end.
        first_end: u64,
        /// The piece it runs into.
        second: String,
        /// That piece's start.
        second_start: u64,
    },
}

/// A named piece of flash: `start..end`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extent {
    /// What it holds (`bootloader`, `app`, a file name).
    pub what: String,
    /// First byte.
    pub start: u64,
    /// One past the last byte.
    pub end: u64,
}

impl Extent {
    /// The extent of `len` bytes at `offset`.
    pub fn new(what: impl Into<String>, offset: u32, len: u64) -> Extent {
        let start = u64::from(offset);
        Extent {
            what: what.into(),
            start,
            end: start + len,
        }
    }
}

/// Parses an image and checks that it is built for `chip`.
pub fn check_image(bytes: &[u8], chip: Chip) -> Result<ImageInfo, ImageViolation> {
    let info = esp_image::parse(bytes).map_err(ImageViolation::Invalid)?;
    match info.chip() {
        Some(built) if built == chip => Ok(info),
        built => Err(ImageViolation::WrongChip {
            built: built.map_or_else(|| format!("chip id {}", info.chip_id), |c| c.to_string()),
            expected: chip,
        }),
    }
}

/// Checks that the bootloader sits where `chip`'s ROM loads it from.
pub fn check_bootloader_offset(chip: Chip, at: u32) -> Result<(), BootloaderOffset> {
    let expected = chip.bootloader_offset();
    if at == expected {
        Ok(())
    } else {
        Err(BootloaderOffset { at, expected, chip })
    }
}

/// Checks that no partition starts inside the table's own sector and, when the flash size is
/// known, that every partition ends inside the flash.
pub fn check_table(
    table: &PartitionTable,
    table_offset: u32,
    flash: Option<u64>,
) -> Result<(), TableViolation> {
    let sector_end = u64::from(table_offset) + TABLE_SECTOR;
    if let Some(p) = table
        .partitions()
        .iter()
        .find(|p| u64::from(p.offset()) < sector_end)
    {
        return Err(TableViolation::InTableSector {
            partition: p.name(),
            offset: p.offset(),
            table_offset,
        });
    }
    let end = partition::table_end(table);
    match flash {
        Some(flash) if end > flash => Err(TableViolation::BeyondFlash { end, flash }),
        _ => Ok(()),
    }
}

/// Checks that `len` bytes fit `partition`.
pub fn check_fits(len: u64, partition: &Partition) -> Result<(), TooLarge> {
    if len <= u64::from(partition.size()) {
        return Ok(());
    }
    Err(TooLarge {
        len,
        partition: partition.name(),
        size: partition.size(),
        offset: partition.offset(),
    })
}

/// The partition a data file of `len` bytes at `offset` lands in: the one holding its first
/// byte, which must also hold its last.
pub fn check_data_lands(
    table: &PartitionTable,
    offset: u32,
    len: u64,
) -> Result<&Partition, DataViolation> {
    let part = table
        .partitions()
        .iter()
        .find(|p| {
            let start = u64::from(p.offset());
            (start..start + u64::from(p.size())).contains(&u64::from(offset))
        })
        .ok_or(DataViolation::NoPartition { offset })?;
    let room = u64::from(part.offset()) + u64::from(part.size()) - u64::from(offset);
    if len <= room {
        return Ok(part);
    }
    Err(DataViolation::TooLarge(TooLarge {
        len,
        partition: part.name(),
        size: room as u32,
        offset,
    }))
}

/// Sorts `extents` by start and checks that, when the flash size is known, each ends inside the
/// flash, and that none overlaps the next.
pub fn check_extents(extents: &mut [Extent], flash: Option<u64>) -> Result<(), ExtentViolation> {
    extents.sort_by_key(|e| e.start);
    if let Some(flash) = flash
        && let Some(e) = extents.iter().find(|e| e.end > flash)
    {
        return Err(ExtentViolation::BeyondFlash {
            what: e.what.clone(),
            end: e.end,
            flash,
        });
    }
    match extents.windows(2).find(|pair| pair[0].end > pair[1].start) {
        Some(pair) => Err(ExtentViolation::Overlap {
            first: pair[0].what.clone(),
            first_start: pair[0].start,
            first_end: pair[0].end,
            second: pair[1].what.clone(),
            second_start: pair[1].start,
        }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(csv: &str) -> PartitionTable {
        partition::parse_csv(csv).unwrap()
    }

    #[test]
    fn partitions_in_the_table_sector_are_refused() {
        let t = table("nvs,data,nvs,0x9000,0x5000\nfactory,app,factory,0x10000,0x100000\n");
        assert!(matches!(
            check_table(&t, 0x9000, None),
            Err(TableViolation::InTableSector { offset: 0x9000, .. })
        ));
        assert_eq!(check_table(&t, 0x8000, None), Ok(()));
    }

    #[test]
    fn tables_past_the_flash_are_refused_only_when_the_size_is_known() {
        let t = table("factory,app,factory,0x10000,0x200000\n");
        assert_eq!(
            check_table(&t, 0x8000, Some(0x200000)),
            Err(TableViolation::BeyondFlash {
                end: 0x210000,
                flash: 0x200000
            })
        );
        assert_eq!(check_table(&t, 0x8000, None), Ok(()));
        assert_eq!(check_table(&t, 0x8000, Some(0x400000)), Ok(()));
    }

    #[test]
    fn files_fit_their_partition_to_the_byte() {
        let t = table("factory,app,factory,0x10000,0x1000\n");
        let p = &t.partitions()[0];
        assert_eq!(check_fits(0x1000, p), Ok(()));
        assert!(matches!(
            check_fits(0x1001, p),
            Err(TooLarge { size: 0x1000, .. })
        ));
    }

    #[test]
    fn extents_are_sorted_then_checked_for_flash_end_and_overlap() {
        let mut e = vec![
            Extent::new("app", 0x10000, 0x100),
            Extent::new("bootloader", 0x0, 0x8001),
            Extent::new("partition table", 0x8000, 0xC00),
        ];
        assert_eq!(
            check_extents(&mut e, Some(0x400000)),
            Err(ExtentViolation::Overlap {
                first: "bootloader".into(),
                first_start: 0,
                first_end: 0x8001,
                second: "partition table".into(),
                second_start: 0x8000
            })
        );
        let mut e = vec![Extent::new("app", 0x10000, 0x1000)];
        assert!(matches!(
            check_extents(&mut e, Some(0x10800)),
            Err(ExtentViolation::BeyondFlash { end: 0x11000, .. })
        ));
    }

    #[test]
    fn data_files_land_inside_one_partition() {
        let t = table("factory,app,factory,0x10000,0x1000\nmodel,data,spiffs,0x20000,0x4000\n");
        assert_eq!(
            check_data_lands(&t, 0x20000, 0x4000).unwrap().name(),
            "model"
        );
        assert_eq!(
            check_data_lands(&t, 0x21000, 0x3000).unwrap().name(),
            "model"
        );
        assert!(matches!(
            check_data_lands(&t, 0x21000, 0x3001),
            Err(DataViolation::TooLarge(TooLarge { size: 0x3000, .. }))
        ));
        assert_eq!(
            check_data_lands(&t, 0x30000, 4),
            Err(DataViolation::NoPartition { offset: 0x30000 })
        );
    }

    #[test]
    fn the_bootloader_offset_is_the_chips() {
        assert_eq!(check_bootloader_offset(Chip::Esp32, 0x1000), Ok(()));
        assert!(check_bootloader_offset(Chip::Esp32s3, 0x1000).is_err());
    }
}
