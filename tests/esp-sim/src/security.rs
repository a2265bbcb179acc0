//! Secured boards: Secure Download Mode, Secure Boot and flash encryption,
//! as the ROM loader shows them.
//!
//! The flags follow the GET_SECURITY_INFO layout that esptool
//! (`loader.py`, `get_security_info`) and espflash (`connection/mod.rs`,
//! `SecurityInfo`) decode; the commands a ROM in Secure Download Mode
//! accepts are those of esptool's serial protocol documentation
//! ("Supported in Secure Download Mode").

use crate::ConfigError;
use crate::chip::{Chip, Revision};
use crate::protocol::Opcode;

/// GET_SECURITY_INFO flag: Secure Boot is enabled.
pub const FLAG_SECURE_BOOT_EN: u32 = 1 << 0;
/// GET_SECURITY_INFO flag: the ROM runs in Secure Download Mode.
pub const FLAG_SECURE_DOWNLOAD_ENABLE: u32 = 1 << 2;

/// The security features burnt into a board's eFuses.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Security {
    /// ENABLE_SECURITY_DOWNLOAD: the ROM loader accepts only a few commands.
    pub secure_download: bool,
    /// Secure Boot (V2) is enabled.
    pub secure_boot: bool,
    /// Flash encryption is enabled: the crypt counter has one bit set.
    pub flash_encryption: bool,
}

impl Security {
    /// The flags word of GET_SECURITY_INFO.
    pub fn flags(self) -> u32 {
        let mut flags = 0;
        if self.secure_boot {
            flags |= FLAG_SECURE_BOOT_EN;
        }
        if self.secure_download {
            flags |= FLAG_SECURE_DOWNLOAD_ENABLE;
        }
        flags
    }

    /// SPI_BOOT_CRYPT_CNT (FLASH_CRYPT_CNT on the ESP32): odd when flash
    /// encryption is on, as after the first boot that enabled it.
    pub fn flash_crypt_cnt(self) -> u8 {
        u8::from(self.flash_encryption)
    }

    /// Checks that `chip` at `revision` has these features.
    pub(crate) fn check(self, chip: Chip, revision: Revision) -> Result<(), ConfigError> {
        if self.secure_download && !chip.has_secure_download_mode() {
            return Err(ConfigError::NoSecureDownloadMode(chip));
        }
        // esp32.py: Secure Boot V2 (ABS_DONE_1) counts from revision v3.0.
        if self.secure_boot && chip == Chip::Esp32 && revision.major < 3 {
            return Err(ConfigError::SecureBootNeedsV3(revision));
        }
        Ok(())
    }
}

/// Whether a ROM in Secure Download Mode carries out `op`.
///
/// esptool's documentation lists SYNC, SPI_ATTACH, SPI_SET_PARAMS,
/// CHANGE_BAUDRATE, FLASH_BEGIN/DATA/END and GET_SECURITY_INFO; the
/// compressed writes, memory access, RAM uploads, MD5 and flash reads are
/// refused.
pub fn allowed_in_secure_download(op: Opcode) -> bool {
    matches!(
        op,
        Opcode::Sync
            | Opcode::SpiAttach
            | Opcode::SpiSetParams
            | Opcode::ChangeBaudrate
            | Opcode::FlashBegin
            | Opcode::FlashData
            | Opcode::FlashEnd
            | Opcode::GetSecurityInfo
    )
}

/// KEY_PURPOSE value of the first Secure Boot digest (SECURE_BOOT_DIGEST0;
/// DIGEST1 and 2 follow), espefuse `efuse/<chip>/fields.py`.
const PURPOSE_SECURE_BOOT_DIGEST0: u32 = 9;

/// The eFuse BLOCK0 read address of the chips whose key blocks carry a
/// purpose: KEY_PURPOSE_n is the 4-bit field at BLOCK0 bit 88 + 4n and
/// BLOCK_KEYn (BLOCK4 + n) is read at BLOCK0 + 0x70 + 0x20 n (espflash
/// `target/efuse/<chip>.rs`).
fn key_block0(chip: Chip) -> Option<u32> {
    match chip {
        Chip::Esp32s2 => Some(0x3F41_A02C),
        Chip::Esp32s3 => Some(0x6000_702C),
        Chip::Esp32c3 => Some(0x6000_882C),
        Chip::Esp32c6 | Chip::Esp32h2 => Some(0x600B_082C),
        _ => None,
    }
}

/// Checks that `chip` can hold `digests` (at most three, in key blocks).
pub(crate) fn check_digests(chip: Chip, digests: &[[u8; 32]]) -> Result<(), ConfigError> {
    let fits = digests.len() <= 3 && (digests.is_empty() || key_block0(chip).is_some());
    if fits {
        Ok(())
    } else {
        Err(ConfigError::SecureBootDigests {
            chip,
            count: digests.len(),
        })
    }
}

/// The register words of `digests` burnt into KEY0.., with their purposes.
pub(crate) fn digest_registers(chip: Chip, digests: &[[u8; 32]]) -> Vec<(u32, u32)> {
    let Some(block0) = key_block0(chip) else {
        return Vec::new();
    };
    let mut regs = Vec::new();
    for (n, digest) in digests.iter().enumerate() {
        let bit = 88 + 4 * n as u32;
        let purpose = (PURPOSE_SECURE_BOOT_DIGEST0 + n as u32) << (bit % 32);
        regs.push((block0 + bit / 32 * 4, purpose));
        let key = block0 + 0x70 + 0x20 * n as u32;
        for (i, word) in digest.chunks(4).enumerate() {
            let value = u32::from_le_bytes([word[0], word[1], word[2], word[3]]);
            regs.push((key + 4 * i as u32, value));
        }
    }
    regs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_and_counter() {
        let all = Security {
            secure_download: true,
            secure_boot: true,
            flash_encryption: true,
        };
        assert_eq!(all.flags(), 0b101);
        assert_eq!(all.flash_crypt_cnt().count_ones() % 2, 1);
        assert_eq!(Security::default().flags(), 0);
    }

    #[test]
    fn digests_sit_in_key_blocks_with_their_purposes() {
        let digests = [[0x11; 32], core::array::from_fn(|i| i as u8)];
        let regs = digest_registers(Chip::Esp32c3, &digests);
        // KEY_PURPOSE_0 = 9 at BLOCK0 bits 88..91, KEY_PURPOSE_1 = 10 at 92..95.
        assert!(regs.contains(&(0x6000_8834, 9 << 24)));
        assert!(regs.contains(&(0x6000_8834, 10 << 28)));
        // BLOCK_KEY0 at 0x6000_889C (espefuse: EFUSE_RD_KEY0_DATA0), BLOCK_KEY1 after it.
        assert!(regs.contains(&(0x6000_889C, 0x1111_1111)));
        assert!(regs.contains(&(0x6000_88BC, 0x0302_0100)));
        assert!(check_digests(Chip::Esp32, &digests).is_err());
        assert!(check_digests(Chip::Esp32s3, &[[0; 32]; 4]).is_err());
        assert!(check_digests(Chip::Esp32h2, &digests).is_ok());
    }

    #[test]
    fn esp32_limits() {
        let sdm = Security {
            secure_download: true,
            ..Security::default()
        };
        assert!(sdm.check(Chip::Esp32, Revision::new(3, 0)).is_err());
        assert!(sdm.check(Chip::Esp32s2, Revision::new(0, 0)).is_ok());
        let boot = Security {
            secure_boot: true,
            ..Security::default()
        };
        assert!(boot.check(Chip::Esp32, Revision::new(1, 0)).is_err());
        assert!(boot.check(Chip::Esp32, Revision::new(3, 1)).is_ok());
        assert!(!allowed_in_secure_download(Opcode::ReadReg));
        assert!(!allowed_in_secure_download(Opcode::FlashDeflData));
        assert!(allowed_in_secure_download(Opcode::FlashData));
    }
}
