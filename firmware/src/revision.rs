//! The chip revisions an image accepts, as its extended header states them, checked against a
//! board's revision the way `esptool write-flash` checks them before writing
//! (`_get_image_incompatibility`) and ESP-IDF's bootloader checks them at boot
//! (`bootloader_common_check_chip_validity`).
//!
//! Headers written before ESP-IDF 5.0 carry only the legacy byte (`min_rev`: the major revision,
//! the minor one on the ESP32-C3) and leave `max_rev_full` at 0; later ones carry
//! `min_rev_full`/`max_rev_full` as `major * 100 + minor`, with `max_rev_full` 0xFFFF for
//! "no upper limit".

use std::fmt;

use crate::chip::Chip;
use crate::esp_image::ImageInfo;

/// `max_rev_full` when the image sets no upper limit.
pub const NO_MAX_REVISION: u16 = 0xFFFF;

/// A chip revision (`v0.2` is major 0, minor 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ChipRevision {
    /// Major (wafer) revision.
    pub major: u32,
    /// Minor revision.
    pub minor: u32,
}

impl ChipRevision {
    /// The revision as image headers encode it: `major * 100 + minor`.
    pub fn full(self) -> u32 {
        self.major * 100 + self.minor
    }
}

impl fmt::Display for ChipRevision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "v{}.{}", self.major, self.minor)
    }
}

fn full_to_string(full: u16) -> String {
    format!("v{}.{}", full / 100, full % 100)
}

/// The board's revision is outside what the image accepts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the image requires chip revision {requirement}, but the board is revision {board}")]
pub struct RevisionViolation {
    /// What the image accepts (`v0.3 or higher`, `in range v1.0 - v1.99`).
    pub requirement: String,
    /// The board's revision (`v0.2`, or the legacy number the old field compares).
    pub board: String,
}

/// Whether `info`'s revision fields accept a board of revision `board`, decided as esptool
/// does: the `*_rev_full` fields when the image has them, else the legacy `min_rev` byte.
pub fn check_revision(info: &ImageInfo, board: ChipRevision) -> Result<(), RevisionViolation> {
    let uses_full_fields = match info.max_rev_full {
        0 => false,
        NO_MAX_REVISION => !(info.min_rev_full == 0 && info.min_rev != 0),
        _ => true,
    };
    if uses_full_fields {
        return check_full(info.min_rev_full, info.max_rev_full, board);
    }
    let legacy = if info.chip() == Some(Chip::Esp32c3) {
        board.minor
    } else {
        board.major
    };
    if legacy >= u32::from(info.min_rev) {
        return Ok(());
    }
    Err(RevisionViolation {
        requirement: format!("{} or higher", info.min_rev),
        board: legacy.to_string(),
    })
}

fn check_full(min: u16, max: u16, board: ChipRevision) -> Result<(), RevisionViolation> {
    let rev = board.full();
    if (u32::from(min)..=u32::from(max)).contains(&rev) {
        return Ok(());
    }
    let requirement = if max == NO_MAX_REVISION {
        format!("{} or higher", full_to_string(min))
    } else if min == 0 {
        format!("{} or lower", full_to_string(max))
    } else {
        format!("in range {} - {}", full_to_string(min), full_to_string(max))
    };
    Err(RevisionViolation {
        requirement,
        board: board.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(chip: Chip, min_rev: u8, min_full: u16, max_full: u16) -> ImageInfo {
        ImageInfo {
            segment_count: 1,
            flash_mode: 2,
            flash_size_freq: 0x20,
            entry: 0,
            chip_id: chip.image_chip_id(),
            min_rev,
            min_rev_full: min_full,
            max_rev_full: max_full,
            hash_appended: true,
            data_len: 32,
            signed: false,
        }
    }

    const fn rev(major: u32, minor: u32) -> ChipRevision {
        ChipRevision { major, minor }
    }

    #[test]
    fn full_fields_bound_the_revision_both_ways() {
        let i = info(Chip::Esp32s3, 0, 1, 99);
        assert_eq!(check_revision(&i, rev(0, 1)), Ok(()));
        assert_eq!(check_revision(&i, rev(0, 99)), Ok(()));
        let e = check_revision(&i, rev(1, 0)).unwrap_err();
        assert_eq!(
            e.to_string(),
            "the image requires chip revision in range v0.1 - v0.99, but the board is revision v1.0"
        );
        assert!(check_revision(&i, rev(0, 0)).is_err());
    }

    #[test]
    fn no_maximum_means_any_later_revision() {
        let i = info(Chip::Esp32c6, 0, 3, NO_MAX_REVISION);
        assert_eq!(check_revision(&i, rev(9, 99)), Ok(()));
        let e = check_revision(&i, rev(0, 2)).unwrap_err();
        assert_eq!(e.requirement, "v0.3 or higher");
        let i = info(Chip::Esp32c6, 0, 0, 199);
        assert_eq!(
            check_revision(&i, rev(2, 0)).unwrap_err().requirement,
            "v1.99 or lower"
        );
    }

    #[test]
    fn images_without_full_fields_use_the_legacy_byte() {
        // ESP-IDF 4.x: max_rev_full 0, min_rev the major revision.
        let i = info(Chip::Esp32, 3, 0, 0);
        assert_eq!(check_revision(&i, rev(3, 0)), Ok(()));
        assert!(check_revision(&i, rev(1, 0)).is_err());
        assert_eq!(
            check_revision(&info(Chip::Esp32, 0, 0, 0), rev(0, 0)),
            Ok(())
        );
        // On the ESP32-C3 the legacy byte is the minor revision.
        let i = info(Chip::Esp32c3, 3, 0, 0);
        assert_eq!(check_revision(&i, rev(0, 3)), Ok(()));
        assert!(check_revision(&i, rev(1, 2)).is_err());
        // Default maximum but only the legacy minimum set: the legacy byte decides.
        let i = info(Chip::Esp32s3, 1, 0, NO_MAX_REVISION);
        assert!(check_revision(&i, rev(0, 9)).is_err());
        assert_eq!(check_revision(&i, rev(1, 0)), Ok(()));
    }
}
