//! The PSRAM a board's eFuses record, read as esptool's targets read it
//! (`get_psram_cap` / `get_chip_features`), and the check of a PSRAM target (`esp32s3r8`)
//! against it.

use espflash::connection::Connection;
use espflash::target::Chip as EspChip;
use espflash::target::efuse;
use serde::Serialize;

use crate::error::DeviceError;
use firmware::chip::TargetName;

use super::failure::{self, Failure};
use super::session::Session;

impl Session<'_> {
    /// Refuses the board when `--chip` is a PSRAM variant (`esp32s3r8`) and the board's eFuses
    /// record other PSRAM, or none; says so when they do not record PSRAM at all.
    pub(super) fn check_psram(&mut self) -> Result<(), Failure> {
        if asked_mb(self.target).is_none() {
            return Ok(());
        }
        if self.flasher.secure_download_mode() {
            self.opts.console.say(&format!(
                "Secure Download Mode reads no eFuses: the PSRAM of --chip {} is not checked",
                self.target
            ));
            return Ok(());
        }
        let chip = self.flasher.chip();
        let found = read(chip, self.flasher.connection())
            .map_err(failure::line(self.port, "reading the PSRAM eFuses"))?;
        if !check(self.target, found).map_err(Failure::Fatal)? {
            self.opts.console.say(&format!(
                "the {chip}'s eFuses do not record PSRAM (external PSRAM cannot be seen): the \
                 PSRAM of --chip {} is not checked",
                self.target
            ));
        }
        Ok(())
    }
}

/// What the eFuses say about PSRAM.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "mb")]
pub enum PsramFuse {
    /// PSRAM of this many MB in the package.
    Embedded(u32),
    /// The eFuses record no PSRAM in the package.
    NoneEmbedded,
    /// The chip's eFuses do not record PSRAM (ESP32 outside the PICO-V3-02 package, chips
    /// without PSRAM variants): external PSRAM cannot be seen.
    NotRecorded,
}

impl std::fmt::Display for PsramFuse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PsramFuse::Embedded(mb) => write!(f, "{mb} MB embedded"),
            PsramFuse::NoneEmbedded => f.write_str("no embedded PSRAM"),
            PsramFuse::NotRecorded => f.write_str("not recorded in eFuses"),
        }
    }
}

/// ESP32 eFuse BLOCK0 word 3, holding the package version.
const ESP32_EFUSE_WORD3: u32 = 0x3FF5_A00C;
/// The ESP32 package with 2 MB of PSRAM inside (ESP32-PICO-V3-02).
const ESP32_PICO_V3_02: u32 = 6;

/// Reads the PSRAM fields of `chip`'s eFuses.
pub(super) fn read(chip: EspChip, conn: &mut Connection) -> Result<PsramFuse, espflash::Error> {
    Ok(match chip {
        EspChip::Esp32 => {
            let word3 = conn.read_reg(ESP32_EFUSE_WORD3)?;
            let package = ((word3 >> 9) & 0x07) | (((word3 >> 2) & 0x01) << 3);
            if package == ESP32_PICO_V3_02 {
                PsramFuse::Embedded(2)
            } else {
                PsramFuse::NotRecorded
            }
        }
        EspChip::Esp32s2 => match chip.read_efuse_le::<u32>(conn, efuse::esp32s2::PSRAM_VERSION)? {
            0 => PsramFuse::NoneEmbedded,
            1 => PsramFuse::Embedded(2),
            2 => PsramFuse::Embedded(4),
            _ => PsramFuse::NotRecorded,
        },
        EspChip::Esp32s3 => {
            let low = chip.read_efuse_le::<u32>(conn, efuse::esp32s3::PSRAM_CAP)?;
            let high = chip.read_efuse_le::<u32>(conn, efuse::esp32s3::PSRAM_CAP_3)?;
            match (high << 2) | low {
                0 => PsramFuse::NoneEmbedded,
                1 => PsramFuse::Embedded(8),
                2 => PsramFuse::Embedded(2),
                3 => PsramFuse::Embedded(16),
                4 => PsramFuse::Embedded(4),
                _ => PsramFuse::NotRecorded,
            }
        }
        _ => PsramFuse::NotRecorded,
    })
}

/// The PSRAM size in MB a target name asks for (`esp32s3r8`: 8), if it has a suffix.
pub fn asked_mb(target: &TargetName) -> Option<u32> {
    let suffix = target.as_str().strip_prefix(target.chip().name())?;
    suffix.strip_prefix('r')?.parse().ok()
}

/// Refuses a PSRAM target on a board whose eFuses record another PSRAM (or none); a board
/// whose eFuses do not record PSRAM passes, and `Ok(false)` says it was not checked.
pub(super) fn check(target: &TargetName, found: PsramFuse) -> Result<bool, DeviceError> {
    let Some(asked) = asked_mb(target) else {
        return Ok(true);
    };
    match found {
        PsramFuse::Embedded(mb) if mb == asked => Ok(true),
        PsramFuse::NotRecorded => Ok(false),
        found => Err(DeviceError::WrongPsram {
            target: target.to_string(),
            asked_mb: asked,
            found: found.to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn psram_targets_are_checked_where_the_efuses_say() {
        let t = |s: &str| s.parse::<TargetName>().unwrap();
        assert_eq!(asked_mb(&t("esp32s3r8")), Some(8));
        assert_eq!(asked_mb(&t("esp32s3")), None);
        assert!(check(&t("esp32s3"), PsramFuse::NoneEmbedded).unwrap());
        assert!(check(&t("esp32s3r8"), PsramFuse::Embedded(8)).unwrap());
        assert!(!check(&t("esp32r2"), PsramFuse::NotRecorded).unwrap());
        let e = check(&t("esp32s3r8"), PsramFuse::Embedded(2)).unwrap_err();
        assert!(e.to_string().contains("2 MB embedded"), "{e}");
        assert!(check(&t("esp32s2r2"), PsramFuse::NoneEmbedded).is_err());
    }
}
