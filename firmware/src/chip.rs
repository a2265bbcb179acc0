//! The ESP32-family chips the bundle and the flasher know, and build target names.
//!
//! A build target names a chip and optionally its PSRAM variant (`esp32s3r8`, `esp32s2r2`): the
//! variant selects a folder of the image, the chip selects the protocol and image checks.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A supported ESP32-family chip.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Chip {
    /// ESP32 (Xtensa LX6).
    Esp32,
    /// ESP32-S2 (Xtensa LX7, single core).
    Esp32s2,
    /// ESP32-S3 (Xtensa LX7, dual core).
    Esp32s3,
    /// ESP32-C2 / ESP8684 (RISC-V).
    Esp32c2,
    /// ESP32-C3 (RISC-V).
    Esp32c3,
    /// ESP32-C5 (RISC-V, dual band).
    Esp32c5,
    /// ESP32-C6 (RISC-V).
    Esp32c6,
    /// ESP32-C61 (RISC-V).
    Esp32c61,
    /// ESP32-H2 (RISC-V).
    Esp32h2,
    /// ESP32-P4 (RISC-V, dual core).
    Esp32p4,
}

impl Chip {
    /// Every supported chip, in the order used for listings.
    pub const ALL: [Chip; 10] = [
        Chip::Esp32,
        Chip::Esp32s2,
        Chip::Esp32s3,
        Chip::Esp32c2,
        Chip::Esp32c3,
        Chip::Esp32c5,
        Chip::Esp32c6,
        Chip::Esp32c61,
        Chip::Esp32h2,
        Chip::Esp32p4,
    ];

    /// The lower-case name ESP-IDF and esptool use (`esp32s3`).
    pub fn name(self) -> &'static str {
        match self {
            Chip::Esp32 => "esp32",
            Chip::Esp32s2 => "esp32s2",
            Chip::Esp32s3 => "esp32s3",
            Chip::Esp32c2 => "esp32c2",
            Chip::Esp32c3 => "esp32c3",
            Chip::Esp32c5 => "esp32c5",
            Chip::Esp32c6 => "esp32c6",
            Chip::Esp32c61 => "esp32c61",
            Chip::Esp32h2 => "esp32h2",
            Chip::Esp32p4 => "esp32p4",
        }
    }

    /// The chip id carried in bytes 12..14 of an image's extended header (esptool's
    /// `IMAGE_CHIP_ID`).
    pub fn image_chip_id(self) -> u16 {
        match self {
            Chip::Esp32 => 0,
            Chip::Esp32s2 => 2,
            Chip::Esp32s3 => 9,
            Chip::Esp32c2 => 12,
            Chip::Esp32c3 => 5,
            Chip::Esp32c5 => 23,
            Chip::Esp32c6 => 13,
            Chip::Esp32c61 => 20,
            Chip::Esp32h2 => 16,
            Chip::Esp32p4 => 18,
        }
    }

    /// The chip whose images carry `id`, if it is a supported one.
    pub fn from_image_chip_id(id: u16) -> Option<Chip> {
        Chip::ALL.into_iter().find(|c| c.image_chip_id() == id)
    }

    /// Where the ROM looks for the second-stage bootloader (esptool's
    /// `BOOTLOADER_FLASH_OFFSET`).
    pub fn bootloader_offset(self) -> u32 {
        match self {
            Chip::Esp32 | Chip::Esp32s2 => 0x1000,
            Chip::Esp32c5 | Chip::Esp32p4 => 0x2000,
            Chip::Esp32s3
            | Chip::Esp32c2
            | Chip::Esp32c3
            | Chip::Esp32c6
            | Chip::Esp32c61
            | Chip::Esp32h2 => 0x0,
        }
    }
}

impl fmt::Display for Chip {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A chip name that is not one of the supported chips.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown chip '{0}': use one of esp32, esp32s2, esp32s3, esp32c2, esp32c3, esp32c5, \
     esp32c6, esp32c61, esp32h2, esp32p4 (optionally with a PSRAM suffix such as r2 or r8)"
)]
pub struct UnknownChip(pub String);

impl FromStr for Chip {
    type Err = UnknownChip;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let lower = s.trim().to_ascii_lowercase().replace(['-', '_'], "");
        Chip::ALL
            .into_iter()
            .find(|c| c.name() == lower)
            .ok_or_else(|| UnknownChip(s.to_string()))
    }
}

/// A build target name: a chip plus an optional PSRAM suffix (`esp32s3r8`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TargetName {
    name: String,
    chip: Chip,
}

impl TargetName {
    /// The full name as written (`esp32s3r8`), which is also the folder name in the bundle.
    pub fn as_str(&self) -> &str {
        &self.name
    }

    /// The chip the target runs on (`esp32s3` for `esp32s3r8`).
    pub fn chip(&self) -> Chip {
        self.chip
    }
}

impl fmt::Display for TargetName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

impl FromStr for TargetName {
    type Err = UnknownChip;

    /// Accepts a chip name with an optional `r<digits>` PSRAM suffix.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let name = s.trim().to_ascii_lowercase();
        if let Ok(chip) = name.parse::<Chip>() {
            return Ok(TargetName { name, chip });
        }
        let base = name
            .rfind('r')
            .filter(|&i| i + 1 < name.len() && name[i + 1..].bytes().all(|b| b.is_ascii_digit()))
            .map(|i| &name[..i]);
        match base.and_then(|b| b.parse::<Chip>().ok()) {
            Some(chip) => Ok(TargetName { name, chip }),
            None => Err(UnknownChip(s.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_names_carry_psram_suffixes() {
        let t: TargetName = "esp32s3r8".parse().unwrap();
        assert_eq!((t.as_str(), t.chip()), ("esp32s3r8", Chip::Esp32s3));
        let t: TargetName = "ESP32S2R2".parse().unwrap();
        assert_eq!((t.as_str(), t.chip()), ("esp32s2r2", Chip::Esp32s2));
        let t: TargetName = "esp32".parse().unwrap();
        assert_eq!(t.chip(), Chip::Esp32);
        assert!("esp32s3r".parse::<TargetName>().is_err());
        assert!("esp8266".parse::<TargetName>().is_err());
        assert!("esp32h4".parse::<TargetName>().is_err());
        let t: TargetName = "esp32p4".parse().unwrap();
        assert_eq!(t.chip(), Chip::Esp32p4);
        let t: TargetName = "esp32c61".parse().unwrap();
        assert_eq!(t.chip(), Chip::Esp32c61);
    }

    #[test]
    fn chip_ids_round_trip() {
        for chip in Chip::ALL {
            assert_eq!(Chip::from_image_chip_id(chip.image_chip_id()), Some(chip));
            assert_eq!(chip.name().parse::<Chip>(), Ok(chip));
        }
    }
}
