//! The flashing plan: which bytes go where, worked out from the firmware bundle and the
//! arguments without touching the board.
//!
//! A bundle with `manifest.json` is checked file by file against its SHA-256 sums. A bundle made
//! by the original esptool-based image has no manifest: then the same plan is derived from each
//! target's `sdkconfig`, partition table and file names, without an integrity check.

mod build;
mod erase;
mod load;

pub use erase::{Erase, EraseRequest};

use std::fmt::Write as _;
use std::path::PathBuf;

use esp_idf_part::PartitionTable;
use firmware::chip::{Chip, TargetName};
use firmware::esp_image::ImageInfo;
use firmware::flash_size::FlashSize;
use firmware::manifest::{self, MANIFEST_FILE};
use firmware::override_table::OverrideMode;
use firmware::revision::{self, ChipRevision, RevisionViolation};
use md5::{Digest, Md5};

use crate::error::PlanError;

/// What the plan is asked to do.
#[derive(Debug, Clone)]
pub struct Request {
    /// The bundle root (`/firmware`).
    pub firmware_dir: PathBuf,
    /// The `--chip` target.
    pub target: TargetName,
    /// The `--flash_size` value.
    pub flash_size: FlashSize,
    /// The `--override_pt` mode, if any.
    pub override_pt: Option<OverrideMode>,
}

/// Where a region's bytes come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A bundle file, written as it is (path relative to the bundle).
    File(String),
    /// A bundle file whose image header was rewritten (what changed).
    Patched(String, String),
    /// Made by the flasher (what it is).
    Generated(String),
    /// A data image of the build: its name, and the bundle file written as it is.
    Data(String, String),
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::File(path) => f.write_str(path),
            Source::Patched(path, what) => write!(f, "{path} (header patched: {what})"),
            Source::Generated(what) => write!(f, "generated: {what}"),
            Source::Data(name, path) => write!(f, "data '{name}': {path}"),
        }
    }
}

/// One contiguous piece of flash to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Region {
    /// Flash offset.
    pub offset: u32,
    /// The bytes, padded with 0xFF to a multiple of 4 as esptool does.
    pub bytes: Vec<u8>,
    /// Short name (`bootloader`, `partition-table`, `otadata`, `app`, `model`, `data`).
    pub label: &'static str,
    /// Where the bytes come from.
    pub source: Source,
}

impl Region {
    /// One past the last byte.
    pub fn end(&self) -> u64 {
        u64::from(self.offset) + self.bytes.len() as u64
    }

    /// Lower-case hex MD5 of the bytes, as the ROM loader reports it.
    pub fn md5_hex(&self) -> String {
        manifest::hex(&Md5::digest(&self.bytes))
    }
}

/// Whether the bundle's files were checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Integrity {
    /// Every file matched its SHA-256 in `manifest.json`.
    Verified {
        /// How many files were checked.
        files: usize,
    },
    /// No manifest: nothing to check against.
    Unchecked,
}

/// What will be written, and the table it follows.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The target folder used (`esp32s3r8`).
    pub target: String,
    /// The chip of the target.
    pub chip: Chip,
    /// The flash size the plan fills.
    pub flash_size: FlashSize,
    /// Offset of the partition table.
    pub table_offset: u32,
    /// The partition table written, from the bundle or generated.
    pub table: PartitionTable,
    /// Regions in offset order, not overlapping, all inside the flash.
    pub regions: Vec<Region>,
    /// Whether the bundle was checked.
    pub integrity: Integrity,
    /// Things the user should know (unverified bundle, files left out, ...).
    pub notes: Vec<String>,
    /// The headers of the bootloader and the app (bundle path, header), for the checks that
    /// need the board: the chip revisions they accept.
    pub images: Vec<(String, ImageInfo)>,
    /// What is erased before the regions are written, in offset order (see
    /// [`Plan::with_erases`]).
    pub erases: Vec<Erase>,
}

impl Plan {
    /// The whole flash as the plan leaves it on an erased chip: 0xFF outside the regions (an
    /// erased part reads 0xFF too, unless a region is written over it).
    pub fn merged(&self) -> Vec<u8> {
        let mut flash = vec![0xFF; self.flash_size.bytes() as usize];
        for r in &self.regions {
            let at = r.offset as usize;
            flash[at..at + r.bytes.len()].copy_from_slice(&r.bytes);
        }
        flash
    }

    /// Checks that every image accepts a board of chip revision `board`; names the first
    /// image that does not.
    pub fn check_revision(&self, board: ChipRevision) -> Result<(), (String, RevisionViolation)> {
        for (file, info) in &self.images {
            revision::check_revision(info, board).map_err(|v| (file.clone(), v))?;
        }
        Ok(())
    }

    /// A human-readable description, for `--dry-run`.
    pub fn describe(&self) -> String {
        let mut s = String::new();
        let integrity = match self.integrity {
            Integrity::Verified { files } => {
                format!("{files} files verified against manifest.json")
            }
            Integrity::Unchecked => "not verified (no manifest.json)".to_string(),
        };
        let _ = writeln!(
            s,
            "target {} ({}), flash {}, bundle {integrity}",
            self.target, self.chip, self.flash_size
        );
        let _ = writeln!(s, "partition table at {:#x}:", self.table_offset);
        for p in self.table.partitions() {
            let _ = writeln!(
                s,
                "  {:<16} {:<5} {:<8} {:#09x} {:#09x}",
                p.name(),
                p.ty().to_string(),
                p.subtype().to_string(),
                p.offset(),
                p.size()
            );
        }
        self.describe_erases(&mut s);
        let _ = writeln!(s, "regions:");
        for r in &self.regions {
            let _ = writeln!(
                s,
                "  {:#09x} {:<16} {:>9} bytes  md5 {}  {}",
                r.offset,
                r.label,
                r.bytes.len(),
                r.md5_hex(),
                r.source
            );
        }
        for note in &self.notes {
            let _ = writeln!(s, "note: {note}");
        }
        s
    }
}

/// One board's own bytes on top of the shared plan: an NVS image for one data/nvs partition.
#[derive(Debug, Clone)]
pub struct BoardData {
    /// The partition's label in the table written.
    pub partition: String,
    /// The image, as long as the partition.
    pub bytes: Vec<u8>,
    /// What it is (`NVS row SN-0001`), shown as `generated: ...`.
    pub what: String,
}

impl Plan {
    /// The data/nvs partition `label` of the table this plan writes.
    pub fn nvs_partition(&self, label: &str) -> Result<&esp_idf_part::Partition, PlanError> {
        build::nvs_partition(&self.table, label)
    }

    /// This plan with one board's data added as the region `nvs`: a per-board step that
    /// copies the shared regions as they are (nothing is read or checked again but the new
    /// region's place).
    pub fn for_board(&self, data: BoardData) -> Result<Plan, PlanError> {
        build::with_board_data(self, data)
    }
}

/// Works out the plan for `req`.
pub fn make(req: &Request) -> Result<Plan, PlanError> {
    let root = req.firmware_dir.as_path();
    let loaded = if root.join(MANIFEST_FILE).is_file() {
        load::from_manifest(root, &req.target)?
    } else {
        load::from_legacy_folders(root, &req.target)?
    };
    build::build(req, loaded)
}
