//! Secured boards: Secure Download Mode, Secure Boot and flash encryption.
//!
//! espflash detects Secure Download Mode when it connects (from the GET_SECURITY_INFO flags, or
//! on the ESP32 from a refused register read) and then writes through the ROM, uncompressed,
//! with no stub. In that mode the ROM refuses register reads, RAM uploads, MD5 and flash reads,
//! so the board is identified from its security info alone and the report says what could not
//! be checked. Secure Boot and flash encryption come from the security info flags in Secure
//! Download Mode, else from the eFuses. Before anything is written, a Secure Boot board is
//! refused images without a Secure Boot V2 signature, and a board with flash encryption on is
//! refused altogether (plaintext would not boot; espflash cannot encrypt).

use espflash::connection::SecurityInfo;
use espflash::target::Chip as EspChip;
use espflash::target::efuse::{
    self, EfuseField, esp32c2, esp32c3, esp32c5, esp32c6, esp32c61, esp32h2, esp32p4, esp32s2,
    esp32s3,
};

use crate::error::{DeviceError, SecurityError};
use crate::plan::{Plan, Region, Source};
use crate::report::DeviceReport;

use super::connect::FLAG_SECURE_BOOT_EN;
use super::failure::{Failure, describe};
use super::identify::Board;
use super::session::Session;

/// What a ROM in Secure Download Mode does not let the flasher read or check.
const UNCHECKED_IN_SECURE_DOWNLOAD: [&str; 5] =
    ["revision", "mac", "flash_id", "flash_size", "md5"];

/// KEY_PURPOSE values of the Secure Boot V2 key digests, SECURE_BOOT_DIGEST0..2 (espefuse
/// `efuse/<chip>/fields.py`).
const PURPOSE_SECURE_BOOT_DIGESTS: std::ops::RangeInclusive<u32> = 9..=11;

/// The regions that are images the ROM or the bootloader checks under Secure Boot.
const SIGNED_REGIONS: [&str; 2] = ["bootloader", "app"];

/// The board's security state, as far as it tells.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Security {
    /// Secure Boot (V2) is enabled; `None` when the board cannot tell.
    pub(super) secure_boot: Option<bool>,
    /// The flash encryption counter and its value; `None` when the board cannot tell.
    pub(super) crypt_cnt: Option<(&'static str, u32)>,
    /// The Secure Boot V2 public key digests the board trusts; empty when it cannot tell.
    pub(super) trusted: Vec<[u8; 32]>,
}

impl Security {
    /// From the security info the ROM answers.
    fn from_info(info: &SecurityInfo, counter: &'static str) -> Security {
        Security {
            secure_boot: Some(info.flags & FLAG_SECURE_BOOT_EN != 0),
            crypt_cnt: Some((counter, u32::from(info.flash_crypt_cnt))),
            trusted: Vec::new(),
        }
    }

    /// Whether flash encryption is on: the counter has an odd number of bits set.
    pub(super) fn flash_encryption(&self) -> Option<bool> {
        self.crypt_cnt.map(|(_, v)| v.count_ones() % 2 == 1)
    }
}

impl Session<'_> {
    /// What a board in Secure Download Mode is, from what espflash found at connect (the chip,
    /// by the security info's chip id): MAC, flash id and size, and revision stay unread.
    pub(super) fn identify_in_secure_download(&mut self, rate: u32) -> Board {
        let chip = self.flasher.chip();
        Board {
            chip,
            revision: None,
            report: DeviceReport {
                port: self.port.to_string(),
                chip: chip.to_string(),
                baud: rate,
                secure_download: true,
                unchecked: UNCHECKED_IN_SECURE_DOWNLOAD.map(String::from).to_vec(),
                ..DeviceReport::default()
            },
        }
    }

    /// Reads whether Secure Boot and flash encryption are on, into `board`'s record: from the
    /// security info in Secure Download Mode, else from the eFuses.
    pub(super) fn read_security(&mut self, board: &mut Board) -> Result<Security, Failure> {
        let Some((boot_field, crypt_field, counter)) = fields(board.chip) else {
            return Ok(record(board, Security::default()));
        };
        let security = if self.flasher.secure_download_mode() {
            // The ESP32's ROM has no security info: then nothing can be told.
            match self.flasher.security_info() {
                Ok(info) => Security::from_info(&info, counter),
                Err(_) => Security::default(),
            }
        } else {
            let boot = self.read_efuse(board.chip, boot_field)?;
            let crypt = self.read_efuse(board.chip, crypt_field)?;
            let trusted = if boot != 0 {
                self.trusted_digests(board.chip)?
            } else {
                Vec::new()
            };
            Security {
                secure_boot: Some(boot != 0),
                crypt_cnt: Some((counter, crypt)),
                trusted,
            }
        };
        Ok(record(board, security))
    }

    /// Refuses what `security` forbids, before anything is written: any write to a board
    /// with flash encryption on, and images without a signature on a Secure Boot board.
    pub(super) fn check_security(&self, security: &Security, plan: &Plan) -> Result<(), Failure> {
        if let (Some(true), Some((counter, value))) =
            (security.flash_encryption(), security.crypt_cnt)
        {
            return Err(refusal(SecurityError::FlashEncrypted { counter, value }));
        }
        if security.secure_boot == Some(true) {
            for region in plan
                .regions
                .iter()
                .filter(|r| SIGNED_REGIONS.contains(&r.label))
            {
                check_signature(region, &security.trusted).map_err(refusal)?;
            }
            self.opts.console.say(if security.trusted.is_empty() {
                "Secure Boot is enabled: the signed bootloader and app are written as built \
                 (the board's key digests cannot be read: the signing key is not checked)"
            } else {
                "Secure Boot is enabled: the bootloader and app, signed with a key the board \
                 trusts, are written as built"
            });
        }
        if self.flasher.secure_download_mode() {
            self.opts.console.say(
                "Secure Download Mode: writing through the ROM (no stub, uncompressed); \
                 the MAC, flash id, flash size and MD5s cannot be read, so they are not checked",
            );
        }
        Ok(())
    }

    /// The key digests in the key blocks whose purpose is SECURE_BOOT_DIGESTn.
    fn trusted_digests(&mut self, chip: EspChip) -> Result<Vec<[u8; 32]>, Failure> {
        let Some((purposes, blocks)) = key_fields(chip) else {
            return Ok(Vec::new());
        };
        let mut trusted = Vec::new();
        for (purpose, block) in purposes.into_iter().zip(blocks) {
            if PURPOSE_SECURE_BOOT_DIGESTS.contains(&self.read_efuse(chip, purpose)?) {
                let digest = chip
                    .read_efuse_le::<[u8; 32]>(self.flasher.connection(), block)
                    .map_err(|e| self.efuse_failure(&e))?;
                trusted.push(digest);
            }
        }
        Ok(trusted)
    }

    fn efuse_failure(&self, e: &espflash::Error) -> Failure {
        Failure::Connect(DeviceError::Line {
            port: self.port.to_string(),
            doing: "reading the security eFuses",
            reason: describe(e),
        })
    }

    /// One eFuse field of `chip`, read through the loader.
    fn read_efuse(&mut self, chip: EspChip, field: EfuseField) -> Result<u32, Failure> {
        let bits = field.bit_count;
        let value = chip
            .read_efuse_le::<u32>(self.flasher.connection(), field)
            .map_err(|e| self.efuse_failure(&e))?;
        let mask = 1u32.checked_shl(bits).map_or(u32::MAX, |m| m - 1);
        Ok(value & mask)
    }
}

/// Puts `security` into `board`'s record, and lists what it could not tell as unchecked.
fn record(board: &mut Board, security: Security) -> Security {
    let report = &mut board.report;
    report.secure_boot = security.secure_boot;
    report.flash_encryption = security.flash_encryption();
    if security.secure_boot.is_none() {
        report.unchecked.push("secure_boot".into());
    }
    if security.secure_boot == Some(true) && security.trusted.is_empty() {
        report.unchecked.push("secure_boot_key".into());
    }
    if security.crypt_cnt.is_none() {
        report.unchecked.push("flash_encryption".into());
    }
    security
}

/// The eFuse fields that say whether Secure Boot V2 and flash encryption are on, and the
/// counter's name, per chip (espflash `target/efuse/<chip>.rs`; on the ESP32, Secure Boot V2 is
/// ABS_DONE_1).
fn fields(chip: EspChip) -> Option<(EfuseField, EfuseField, &'static str)> {
    const CNT: &str = "SPI_BOOT_CRYPT_CNT";
    Some(match chip {
        EspChip::Esp32 => (
            efuse::esp32::ABS_DONE_1,
            efuse::esp32::FLASH_CRYPT_CNT,
            "FLASH_CRYPT_CNT",
        ),
        EspChip::Esp32s2 => (esp32s2::SECURE_BOOT_EN, esp32s2::SPI_BOOT_CRYPT_CNT, CNT),
        EspChip::Esp32s3 => (esp32s3::SECURE_BOOT_EN, esp32s3::SPI_BOOT_CRYPT_CNT, CNT),
        EspChip::Esp32c2 => (esp32c2::SECURE_BOOT_EN, esp32c2::SPI_BOOT_CRYPT_CNT, CNT),
        EspChip::Esp32c3 => (esp32c3::SECURE_BOOT_EN, esp32c3::SPI_BOOT_CRYPT_CNT, CNT),
        EspChip::Esp32c5 => (esp32c5::SECURE_BOOT_EN, esp32c5::SPI_BOOT_CRYPT_CNT, CNT),
        EspChip::Esp32c6 => (esp32c6::SECURE_BOOT_EN, esp32c6::SPI_BOOT_CRYPT_CNT, CNT),
        EspChip::Esp32c61 => (esp32c61::SECURE_BOOT_EN, esp32c61::SPI_BOOT_CRYPT_CNT, CNT),
        EspChip::Esp32h2 => (esp32h2::SECURE_BOOT_EN, esp32h2::SPI_BOOT_CRYPT_CNT, CNT),
        EspChip::Esp32p4 => (esp32p4::SECURE_BOOT_EN, esp32p4::SPI_BOOT_CRYPT_CNT, CNT),
        _ => return None,
    })
}

/// The KEY_PURPOSE_0..5 and BLOCK_KEY0..5 fields of the chips whose key blocks carry a
/// purpose (espflash `target/efuse/<chip>.rs`).
fn key_fields(chip: EspChip) -> Option<([EfuseField; 6], [EfuseField; 6])> {
    macro_rules! keys {
        ($m:ident) => {
            (
                [
                    $m::KEY_PURPOSE_0,
                    $m::KEY_PURPOSE_1,
                    $m::KEY_PURPOSE_2,
                    $m::KEY_PURPOSE_3,
                    $m::KEY_PURPOSE_4,
                    $m::KEY_PURPOSE_5,
                ],
                [
                    $m::BLOCK_KEY0,
                    $m::BLOCK_KEY1,
                    $m::BLOCK_KEY2,
                    $m::BLOCK_KEY3,
                    $m::BLOCK_KEY4,
                    $m::BLOCK_KEY5,
                ],
            )
        };
    }
    Some(match chip {
        EspChip::Esp32s2 => keys!(esp32s2),
        EspChip::Esp32s3 => keys!(esp32s3),
        EspChip::Esp32c3 => keys!(esp32c3),
        EspChip::Esp32c6 => keys!(esp32c6),
        EspChip::Esp32h2 => keys!(esp32h2),
        _ => return None,
    })
}

/// Refuses a region whose image has no Secure Boot V2 signature, or, when the board's trusted
/// key digests are known, whose RSA signatures are all made with other keys (ECDSA-only
/// signatures are not compared; the ROM checks them at boot).
fn check_signature(region: &Region, trusted: &[[u8; 32]]) -> Result<(), SecurityError> {
    let signed = firmware::esp_image::parse(&region.bytes).is_ok_and(|info| info.signed);
    if !signed {
        return Err(SecurityError::Unsigned {
            label: region.label,
            file: file_of(region),
        });
    }
    let keys = firmware::esp_image::signature_key_digests(&region.bytes).unwrap_or_default();
    match keys.first() {
        Some(first) if !trusted.is_empty() && !keys.iter().any(|k| trusted.contains(k)) => {
            Err(SecurityError::UntrustedKey {
                label: region.label,
                file: file_of(region),
                digest: firmware::manifest::hex(first),
            })
        }
        _ => Ok(()),
    }
}

/// The bundle file a region comes from.
fn file_of(region: &Region) -> String {
    match &region.source {
        Source::File(path) | Source::Patched(path, _) | Source::Data(_, path) => path.clone(),
        Source::Generated(what) => what.clone(),
    }
}

fn refusal(e: SecurityError) -> Failure {
    Failure::Fatal(DeviceError::Secured(e))
}
