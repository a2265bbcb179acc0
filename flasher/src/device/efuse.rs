//! A board's eFuses for secure production: read as espefuse reads them (the controller's read
//! registers, through the loader's READ_REG) and burned as espefuse burns them (espflash's
//! `Chip::write_efuse`: timing set up, the programming registers cleared, the data with its
//! Reed-Solomon check words in PGM_DATA/CHECK_VALUE, CONF and CMD, wait, clear, reload, coding
//! errors checked, up to three tries).
//!
//! Only BLOCK0 (the system fuses, WR_DIS, RD_DIS, key purposes) and the six key blocks are
//! touched. The field positions are espflash's tables (`target::efuse::<chip>`); the write
//! protection bits are espefuse's (`efuse_defs/<chip>.yaml`), the same on every chip here.

use espflash::connection::Connection;
use espflash::target::Chip as EspChip;
use espflash::target::efuse::{EfuseField, esp32c3, esp32c6, esp32h2, esp32s2, esp32s3};

/// Words of BLOCK0 on these chips.
pub(super) const BLOCK0_WORDS: usize = 6;
/// Words of a key block.
const KEY_WORDS: usize = 8;
/// The first key block (BLOCK_KEY0 is BLOCK4).
pub(super) const FIRST_KEY_BLOCK: u32 = 4;
/// Key blocks.
pub(super) const KEY_BLOCKS: usize = 6;

/// WR_DIS bit that write-protects RD_DIS.
pub(super) const WR_DIS_RD_DIS: u32 = 0;
/// WR_DIS bit of SPI_BOOT_CRYPT_CNT.
pub(super) const WR_DIS_CRYPT_CNT: u32 = 4;
/// WR_DIS bit of SECURE_BOOT_EN.
pub(super) const WR_DIS_SECURE_BOOT_EN: u32 = 15;

/// WR_DIS bit of KEY_PURPOSE_n.
pub(super) fn wr_dis_purpose(slot: usize) -> u32 {
    8 + slot as u32
}

/// WR_DIS bit of BLOCK_KEYn.
pub(super) fn wr_dis_key_block(slot: usize) -> u32 {
    23 + slot as u32
}

/// WR_DIS bit of SECURE_BOOT_KEY_REVOKEn.
pub(super) fn wr_dis_revoke(digest: usize) -> u32 {
    5 + digest as u32
}

/// Key purposes (espefuse `KEY_PURPOSES`).
pub(super) mod purpose {
    /// Free, or software data.
    pub const USER: u32 = 0;
    /// First half of an XTS-AES-256 key (ESP32-S2, -S3).
    pub const XTS_AES_256_KEY_1: u32 = 2;
    /// Second half of an XTS-AES-256 key.
    pub const XTS_AES_256_KEY_2: u32 = 3;
    /// An XTS-AES-128 key.
    pub const XTS_AES_128_KEY: u32 = 4;
    /// SECURE_BOOT_DIGEST0; DIGEST1 and 2 follow.
    pub const SECURE_BOOT_DIGEST0: u32 = 9;

    /// The name espefuse shows.
    pub fn name(value: u32) -> String {
        match value {
            0 => "USER".into(),
            1 => "RESERVED".into(),
            2 => "XTS_AES_256_KEY_1".into(),
            3 => "XTS_AES_256_KEY_2".into(),
            4 => "XTS_AES_128_KEY".into(),
            5 => "HMAC_DOWN_ALL".into(),
            6 => "HMAC_DOWN_JTAG".into(),
            7 => "HMAC_DOWN_DIGITAL_SIGNATURE".into(),
            8 => "HMAC_UP".into(),
            9..=11 => format!("SECURE_BOOT_DIGEST{}", value - 9),
            other => format!("purpose {other}"),
        }
    }
}

/// A named BLOCK0 field.
pub(super) type Named = (&'static str, EfuseField);

/// Where a chip keeps the fields secure production reads and burns.
pub(super) struct Layout {
    /// KEY_PURPOSE_0..5.
    pub purposes: [EfuseField; KEY_BLOCKS],
    /// SPI_BOOT_CRYPT_CNT.
    pub crypt_cnt: EfuseField,
    /// SECURE_BOOT_EN.
    pub secure_boot_en: EfuseField,
    /// SECURE_BOOT_KEY_REVOKE0..2.
    pub revoke: [EfuseField; 3],
    /// RD_DIS (one bit per key block, from BLOCK_KEY0).
    pub rd_dis: EfuseField,
    /// What ESP-IDF's release mode burns besides the crypt counter, with flash encryption.
    pub release_encryption: Vec<Named>,
    /// What ESP-IDF's release mode burns besides SECURE_BOOT_EN, with Secure Boot.
    pub release_secure_boot: Vec<Named>,
    /// ENABLE_SECURITY_DOWNLOAD: burned last in release mode.
    pub security_download: EfuseField,
}

macro_rules! named {
    ($m:ident, [$($f:ident),*]) => {
        vec![$((stringify!($f), $m::$f)),*]
    };
}

macro_rules! layout {
    ($m:ident, $enc:tt, $sb:tt) => {
        Layout {
            purposes: [
                $m::KEY_PURPOSE_0,
                $m::KEY_PURPOSE_1,
                $m::KEY_PURPOSE_2,
                $m::KEY_PURPOSE_3,
                $m::KEY_PURPOSE_4,
                $m::KEY_PURPOSE_5,
            ],
            crypt_cnt: $m::SPI_BOOT_CRYPT_CNT,
            secure_boot_en: $m::SECURE_BOOT_EN,
            revoke: [
                $m::SECURE_BOOT_KEY_REVOKE0,
                $m::SECURE_BOOT_KEY_REVOKE1,
                $m::SECURE_BOOT_KEY_REVOKE2,
            ],
            rd_dis: $m::RD_DIS,
            release_encryption: named!($m, $enc),
            release_secure_boot: named!($m, $sb),
            security_download: $m::ENABLE_SECURITY_DOWNLOAD,
        }
    };
}

/// The layout of `chip`, for the chips whose controller the flasher programs.
pub(super) fn layout(chip: EspChip) -> Option<Layout> {
    Some(match chip {
        EspChip::Esp32c3 => layout!(
            esp32c3,
            [
                DIS_DOWNLOAD_MANUAL_ENCRYPT,
                DIS_DOWNLOAD_ICACHE,
                DIS_PAD_JTAG,
                DIS_USB_JTAG,
                DIS_DIRECT_BOOT
            ],
            [DIS_PAD_JTAG, DIS_USB_JTAG, SOFT_DIS_JTAG, DIS_DIRECT_BOOT]
        ),
        EspChip::Esp32c6 => layout!(
            esp32c6,
            [
                DIS_DOWNLOAD_MANUAL_ENCRYPT,
                DIS_DOWNLOAD_ICACHE,
                DIS_PAD_JTAG,
                DIS_USB_JTAG,
                DIS_DIRECT_BOOT
            ],
            [DIS_PAD_JTAG, DIS_USB_JTAG, SOFT_DIS_JTAG, DIS_DIRECT_BOOT]
        ),
        EspChip::Esp32h2 => layout!(
            esp32h2,
            [
                DIS_DOWNLOAD_MANUAL_ENCRYPT,
                DIS_PAD_JTAG,
                DIS_USB_JTAG,
                DIS_DIRECT_BOOT
            ],
            [DIS_PAD_JTAG, DIS_USB_JTAG, SOFT_DIS_JTAG, DIS_DIRECT_BOOT]
        ),
        EspChip::Esp32s3 => layout!(
            esp32s3,
            [
                DIS_DOWNLOAD_MANUAL_ENCRYPT,
                DIS_DOWNLOAD_ICACHE,
                DIS_DOWNLOAD_DCACHE,
                DIS_PAD_JTAG,
                DIS_USB_JTAG,
                DIS_DIRECT_BOOT
            ],
            [DIS_PAD_JTAG, DIS_USB_JTAG, SOFT_DIS_JTAG, DIS_DIRECT_BOOT]
        ),
        EspChip::Esp32s2 => layout!(
            esp32s2,
            [
                DIS_DOWNLOAD_MANUAL_ENCRYPT,
                DIS_DOWNLOAD_ICACHE,
                DIS_DOWNLOAD_DCACHE,
                HARD_DIS_JTAG
            ],
            [HARD_DIS_JTAG, SOFT_DIS_JTAG, DIS_LEGACY_SPI_BOOT]
        ),
        _ => return None,
    })
}

/// What a board's BLOCK0 and key blocks read (a read-protected key block reads zeros).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Fuses {
    /// BLOCK0's words.
    pub block0: [u32; BLOCK0_WORDS],
    /// Each key block's words.
    pub keys: [[u32; KEY_WORDS]; KEY_BLOCKS],
}

impl Fuses {
    /// Reads BLOCK0 and the key blocks.
    pub(super) fn read(chip: EspChip, conn: &mut Connection) -> Result<Fuses, espflash::Error> {
        let mut block0 = [0u32; BLOCK0_WORDS];
        for (w, word) in block0.iter_mut().enumerate() {
            *word = chip.read_efuse_raw(conn, 0, w as u32)?;
        }
        let mut keys = [[0u32; KEY_WORDS]; KEY_BLOCKS];
        for (k, block) in keys.iter_mut().enumerate() {
            for (w, word) in block.iter_mut().enumerate() {
                *word = chip.read_efuse_raw(conn, FIRST_KEY_BLOCK + k as u32, w as u32)?;
            }
        }
        Ok(Fuses { block0, keys })
    }

    /// A BLOCK0 field of at most 32 bits.
    pub(super) fn get(&self, field: &EfuseField) -> u32 {
        get_bits(&self.block0, field.bit_start, field.bit_count)
    }

    /// Whether WR_DIS bit `bit` is set.
    pub(super) fn write_disabled(&self, bit: u32) -> bool {
        self.block0[0] & (1 << bit) != 0
    }

    /// Whether key block `slot` is read-protected.
    pub(super) fn read_disabled(&self, layout: &Layout, slot: usize) -> bool {
        self.get(&layout.rd_dis) & (1 << slot) != 0
    }

    /// Key block `slot`'s bytes as read (little-endian words).
    pub(super) fn key_bytes(&self, slot: usize) -> [u8; 32] {
        let mut out = [0u8; 32];
        for (chunk, word) in out.chunks_exact_mut(4).zip(self.keys[slot]) {
            chunk.copy_from_slice(&word.to_le_bytes());
        }
        out
    }

    /// Whether key block `slot` is untouched: purpose USER, nothing burned, no protection.
    pub(super) fn key_free(&self, layout: &Layout, slot: usize) -> bool {
        self.get(&layout.purposes[slot]) == purpose::USER
            && self.keys[slot].iter().all(|&w| w == 0)
            && !self.read_disabled(layout, slot)
            && !self.write_disabled(wr_dis_key_block(slot))
            && !self.write_disabled(wr_dis_purpose(slot))
    }
}

/// Bits `start..start + count` of `words` (count at most 32).
fn get_bits(words: &[u32], start: u32, count: u32) -> u32 {
    let mut value = 0u64;
    for i in 0..count {
        let bit = start + i;
        let set = words[(bit / 32) as usize] >> (bit % 32) & 1;
        value |= u64::from(set) << i;
    }
    value as u32
}

/// BLOCK0 bits to burn.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Block0 {
    /// The words to program: a 1 burns the bit, a 0 leaves it.
    pub words: [u32; BLOCK0_WORDS],
    /// What is burned, for the record and messages: field names and values.
    pub fields: Vec<(String, u32)>,
}

impl Block0 {
    /// Sets `field` to `value` (only bits that are 1 burn).
    pub(super) fn set(&mut self, name: impl Into<String>, field: &EfuseField, value: u32) {
        for i in 0..field.bit_count {
            if value >> i & 1 == 1 {
                let bit = field.bit_start + i;
                self.words[(bit / 32) as usize] |= 1 << (bit % 32);
            }
        }
        self.fields.push((name.into(), value));
    }

    /// Sets WR_DIS bit `bit`.
    pub(super) fn write_protect(&mut self, what: &str, bit: u32) {
        self.words[0] |= 1 << bit;
        self.fields.push((format!("WR_DIS[{bit}] ({what})"), 1));
    }

    /// Whether nothing is to burn.
    pub(super) fn is_empty(&self) -> bool {
        self.words.iter().all(|&w| w == 0)
    }

    /// Whether `fuses` has every bit of this burn set already.
    pub(super) fn done_in(&self, fuses: &Fuses) -> bool {
        self.words
            .iter()
            .zip(fuses.block0)
            .all(|(want, have)| want & have == *want)
    }

    /// The bytes `Chip::write_efuse` takes.
    fn bytes(&self) -> Vec<u8> {
        self.words.iter().flat_map(|w| w.to_le_bytes()).collect()
    }
}

/// Burns `burn` into BLOCK0 (nothing when it is empty).
pub(super) fn burn_block0(
    chip: EspChip,
    conn: &mut Connection,
    burn: &Block0,
) -> Result<(), espflash::Error> {
    if burn.is_empty() {
        return Ok(());
    }
    chip.write_efuse(conn, 0, &burn.bytes())
}

/// Burns 32 bytes into key block `slot`.
pub(super) fn burn_key_block(
    chip: EspChip,
    conn: &mut Connection,
    slot: usize,
    data: &[u8; 32],
) -> Result<(), espflash::Error> {
    chip.write_efuse(conn, FIRST_KEY_BLOCK + slot as u32, data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_set_and_read_at_their_bits() {
        let layout = layout(EspChip::Esp32c3).unwrap();
        let mut burn = Block0::default();
        burn.set(
            "KEY_PURPOSE_1",
            &layout.purposes[1],
            purpose::XTS_AES_128_KEY,
        );
        burn.set("SPI_BOOT_CRYPT_CNT", &layout.crypt_cnt, 0b111);
        burn.write_protect("KEY_PURPOSE_1", wr_dis_purpose(1));
        let fuses = Fuses {
            block0: burn.words,
            keys: [[0; KEY_WORDS]; KEY_BLOCKS],
        };
        assert_eq!(fuses.get(&layout.purposes[1]), 4);
        assert_eq!(fuses.get(&layout.purposes[0]), 0);
        assert_eq!(fuses.get(&layout.crypt_cnt), 7);
        assert!(fuses.write_disabled(9));
        assert!(burn.done_in(&fuses));
        assert!(!fuses.key_free(&layout, 1));
        assert!(fuses.key_free(&layout, 0));
        // SPI_BOOT_CRYPT_CNT is bits 82..85: word 2, bits 18..21.
        assert_eq!(burn.words[2] & (0b111 << 18), 0b111 << 18);
    }

    #[test]
    fn every_programmed_chip_has_a_layout() {
        for chip in [
            EspChip::Esp32s2,
            EspChip::Esp32s3,
            EspChip::Esp32c3,
            EspChip::Esp32c6,
            EspChip::Esp32h2,
        ] {
            assert!(layout(chip).is_some(), "{chip}");
        }
        assert!(layout(EspChip::Esp32).is_none());
    }
}
