//! A board's eFuses for secure production: read as espefuse reads them (the controller's read
//! registers, through the loader's READ_REG) and burned as espefuse burns them (espflash's
//! `Chip::write_efuse`: timing set up, the programming registers cleared, the data with its
//! Reed-Solomon check words in PGM_DATA/CHECK_VALUE, CONF and CMD, wait, clear, reload, coding
//! errors checked, up to three tries).
//!
//! Only BLOCK0 (the system fuses, WR_DIS, RD_DIS, key purposes) and the key blocks are
//! touched: the six key blocks with a purpose each on the later chips, BLOCK1 (flash
//! encryption) and BLOCK2 (Secure Boot V2 digest) on the ESP32, whose controller is programmed
//! here as espefuse programs it (espflash 4.7's `write_efuse` takes every ESP32 burn for a
//! failure). The field positions are espflash's tables (`target::efuse::<chip>`); the write
//! protection bits are espefuse's (`efuse_defs/<chip>.yaml`).

use espflash::connection::Connection;
use espflash::target::Chip as EspChip;
use espflash::target::XtalFrequency;
use espflash::target::efuse::{EfuseField, esp32, esp32c3, esp32c6, esp32h2, esp32s2, esp32s3};

/// Words of BLOCK0 at most (the ESP32's; six on the later chips).
pub(super) const BLOCK0_MAX: usize = 7;
/// Words of a key block.
const KEY_WORDS: usize = 8;
/// Key slots at most (six key blocks; two on the ESP32).
pub(super) const KEY_BLOCKS: usize = 6;

/// WR_DIS bit that write-protects RD_DIS (every chip).
pub(super) const WR_DIS_RD_DIS: u32 = 0;

/// WR_DIS bit of KEY_PURPOSE_n.
pub(super) fn wr_dis_purpose(slot: usize) -> u32 {
    8 + slot as u32
}

/// WR_DIS bit of SECURE_BOOT_KEY_REVOKEn.
pub(super) fn wr_dis_revoke(digest: usize) -> u32 {
    5 + digest as u32
}

/// How a chip keeps its keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Family {
    /// Six key blocks, each with a KEY_PURPOSE (every chip after the ESP32).
    Purposes,
    /// The ESP32: BLOCK1 holds the flash encryption key, BLOCK2 the Secure Boot V2 digest.
    Esp32,
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
    /// How the chip keeps its keys.
    pub family: Family,
    /// Words of BLOCK0.
    pub block0_words: usize,
    /// The eFuse block of each key slot (BLOCK_KEY0..5 are blocks 4..9; the ESP32's BLOCK1
    /// and BLOCK2).
    pub key_blocks: Vec<u32>,
    /// The WR_DIS bit of key slot 0; the others follow.
    pub wr_dis_first_key: u32,
    /// KEY_PURPOSE_0..5 (none on the ESP32).
    pub purposes: Option<[EfuseField; KEY_BLOCKS]>,
    /// The crypt counter (SPI_BOOT_CRYPT_CNT, the ESP32's FLASH_CRYPT_CNT) and its name.
    pub crypt_cnt: Named,
    /// Its WR_DIS bit.
    pub wr_dis_crypt_cnt: u32,
    /// What turns Secure Boot V2 on (SECURE_BOOT_EN, the ESP32's ABS_DONE_1) and its name.
    pub secure_boot_en: Named,
    /// Its WR_DIS bit.
    pub wr_dis_secure_boot_en: u32,
    /// SECURE_BOOT_KEY_REVOKE0..2 (none on the ESP32).
    pub revoke: Option<[EfuseField; 3]>,
    /// RD_DIS (one bit per key slot, from slot 0).
    pub rd_dis: EfuseField,
    /// The ESP32's FLASH_CRYPT_CONFIG, burned with the key.
    pub flash_crypt_config: Option<EfuseField>,
    /// The ESP32's CODING_SCHEME (only NONE is burned here).
    pub coding_scheme: Option<EfuseField>,
    /// What ESP-IDF's release mode burns besides the crypt counter, with flash encryption.
    pub release_encryption: Vec<Named>,
    /// What ESP-IDF's release mode burns besides SECURE_BOOT_EN, with Secure Boot.
    pub release_secure_boot: Vec<Named>,
    /// ENABLE_SECURITY_DOWNLOAD, burned last in release mode (none on the ESP32).
    pub security_download: Option<EfuseField>,
}

impl Layout {
    /// The WR_DIS bit of key slot `slot`.
    pub(super) fn wr_dis_key_block(&self, slot: usize) -> u32 {
        self.wr_dis_first_key + slot as u32
    }

    /// The name espefuse gives key slot `slot`.
    pub(super) fn block_name(&self, slot: usize) -> String {
        match self.family {
            Family::Purposes => format!("BLOCK_KEY{slot}"),
            Family::Esp32 => format!("BLOCK{}", self.key_blocks[slot]),
        }
    }

    /// The number of key slots.
    pub(super) fn slots(&self) -> usize {
        self.key_blocks.len()
    }
}

macro_rules! named {
    ($m:ident, [$($f:ident),*]) => {
        vec![$((stringify!($f), $m::$f)),*]
    };
}

macro_rules! layout {
    ($m:ident, $enc:tt, $sb:tt) => {
        Layout {
            family: Family::Purposes,
            block0_words: 6,
            key_blocks: (4..10).collect(),
            wr_dis_first_key: 23,
            purposes: Some([
                $m::KEY_PURPOSE_0,
                $m::KEY_PURPOSE_1,
                $m::KEY_PURPOSE_2,
                $m::KEY_PURPOSE_3,
                $m::KEY_PURPOSE_4,
                $m::KEY_PURPOSE_5,
            ]),
            crypt_cnt: ("SPI_BOOT_CRYPT_CNT", $m::SPI_BOOT_CRYPT_CNT),
            wr_dis_crypt_cnt: 4,
            secure_boot_en: ("SECURE_BOOT_EN", $m::SECURE_BOOT_EN),
            wr_dis_secure_boot_en: 15,
            revoke: Some([
                $m::SECURE_BOOT_KEY_REVOKE0,
                $m::SECURE_BOOT_KEY_REVOKE1,
                $m::SECURE_BOOT_KEY_REVOKE2,
            ]),
            rd_dis: $m::RD_DIS,
            flash_crypt_config: None,
            coding_scheme: None,
            release_encryption: named!($m, $enc),
            release_secure_boot: named!($m, $sb),
            security_download: Some($m::ENABLE_SECURITY_DOWNLOAD),
        }
    };
}

/// The ESP32's layout (espefuse `efuse_defs/esp32.yaml`): FLASH_CRYPT_CNT has 7 bits and
/// WR_DIS bit 2, ABS_DONE_1 WR_DIS bit 13, BLOCK1 and BLOCK2 WR_DIS bits 7 and 8, RD_DIS bits
/// 0 and 1.
fn esp32_layout() -> Layout {
    Layout {
        family: Family::Esp32,
        block0_words: 7,
        key_blocks: vec![1, 2],
        wr_dis_first_key: 7,
        purposes: None,
        crypt_cnt: ("FLASH_CRYPT_CNT", esp32::FLASH_CRYPT_CNT),
        wr_dis_crypt_cnt: 2,
        secure_boot_en: ("ABS_DONE_1", esp32::ABS_DONE_1),
        wr_dis_secure_boot_en: 13,
        revoke: None,
        rd_dis: esp32::RD_DIS,
        flash_crypt_config: Some(esp32::FLASH_CRYPT_CONFIG),
        coding_scheme: Some(esp32::CODING_SCHEME),
        release_encryption: named!(
            esp32,
            [
                DISABLE_DL_ENCRYPT,
                DISABLE_DL_DECRYPT,
                DISABLE_DL_CACHE,
                JTAG_DISABLE
            ]
        ),
        release_secure_boot: named!(esp32, [JTAG_DISABLE, CONSOLE_DEBUG_DISABLE]),
        security_download: None,
    }
}

/// The layout of `chip`, for the chips whose controller the flasher programs.
pub(super) fn layout(chip: EspChip) -> Option<Layout> {
    Some(match chip {
        EspChip::Esp32 => esp32_layout(),
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
    /// BLOCK0's words (zero past the chip's).
    pub block0: [u32; BLOCK0_MAX],
    /// Each key slot's words.
    pub keys: [[u32; KEY_WORDS]; KEY_BLOCKS],
}

impl Fuses {
    /// Reads BLOCK0 and the key blocks.
    pub(super) fn read(
        chip: EspChip,
        layout: &Layout,
        conn: &mut Connection,
    ) -> Result<Fuses, espflash::Error> {
        let mut block0 = [0u32; BLOCK0_MAX];
        for (w, word) in block0.iter_mut().take(layout.block0_words).enumerate() {
            *word = chip.read_efuse_raw(conn, 0, w as u32)?;
        }
        let mut keys = [[0u32; KEY_WORDS]; KEY_BLOCKS];
        for (block, words) in layout.key_blocks.iter().zip(keys.iter_mut()) {
            for (w, word) in words.iter_mut().enumerate() {
                *word = chip.read_efuse_raw(conn, *block, w as u32)?;
            }
        }
        Ok(Fuses { block0, keys })
    }

    /// Key slot `slot`'s purpose (USER on the ESP32, which has none).
    pub(super) fn purpose(&self, layout: &Layout, slot: usize) -> u32 {
        layout
            .purposes
            .as_ref()
            .map_or(purpose::USER, |p| self.get(&p[slot]))
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

    /// Whether key slot `slot` is untouched: purpose USER, nothing burned, no protection.
    pub(super) fn key_free(&self, layout: &Layout, slot: usize) -> bool {
        self.unclaimed(layout, slot) && self.keys[slot].iter().all(|&w| w == 0)
    }

    /// Whether key slot `slot` has no purpose and no protection (its data may be burned in
    /// part).
    pub(super) fn unclaimed(&self, layout: &Layout, slot: usize) -> bool {
        let purpose_free = match layout.family {
            Family::Purposes => {
                self.purpose(layout, slot) == purpose::USER
                    && !self.write_disabled(wr_dis_purpose(slot))
            }
            Family::Esp32 => true,
        };
        purpose_free
            && !self.read_disabled(layout, slot)
            && !self.write_disabled(layout.wr_dis_key_block(slot))
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
    pub words: [u32; BLOCK0_MAX],
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
}

/// Burns `burn` into BLOCK0 (nothing when it is empty).
pub(super) fn burn_block0(
    chip: EspChip,
    layout: &Layout,
    conn: &mut Connection,
    burn: &Block0,
) -> Result<(), espflash::Error> {
    if burn.is_empty() {
        return Ok(());
    }
    let words = &burn.words[..layout.block0_words];
    match layout.family {
        Family::Purposes => chip.write_efuse(conn, 0, &le_bytes(words)),
        Family::Esp32 => esp32_program(chip, conn, 0, words),
    }
}

/// Burns 32 bytes into key slot `slot`.
pub(super) fn burn_key_block(
    chip: EspChip,
    layout: &Layout,
    conn: &mut Connection,
    slot: usize,
    data: &[u8; 32],
) -> Result<(), espflash::Error> {
    let block = layout.key_blocks[slot];
    match layout.family {
        Family::Purposes => chip.write_efuse(conn, block, data),
        Family::Esp32 => {
            let words: Vec<u32> = data
                .chunks_exact(4)
                .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect();
            esp32_program(chip, conn, block, &words)
        }
    }
}

fn le_bytes(words: &[u32]) -> Vec<u8> {
    words.iter().flat_map(|w| w.to_le_bytes()).collect()
}

/// The ESP32's eFuse controller registers (espefuse `efuse/esp32/mem_definition.py`).
mod esp32_regs {
    pub const BASE: u32 = 0x3FF5_A000;
    pub const CLK: u32 = BASE + 0x0F8;
    pub const CONF: u32 = BASE + 0x0FC;
    pub const CMD: u32 = BASE + 0x104;
    pub const DAC_CONF: u32 = BASE + 0x118;
    pub const CONF_WRITE: u32 = 0x5A5A;
    pub const CONF_READ: u32 = 0x5AA5;
    pub const CMD_WRITE: u32 = 0x2;
    pub const CMD_READ: u32 = 0x1;
    /// Where each block's words are written (BLK0_WDATA0, BLK1_WDATA0, BLK2_WDATA0, BLK3_WDATA0).
    pub const WDATA: [u32; 4] = [BASE + 0x01C, BASE + 0x098, BASE + 0x0B8, BASE + 0x0D8];
}

/// Programs `words` into the ESP32's `block` as espefuse does: the words into the block's
/// write registers, the clocks for the crystal, CONF and CMD to write, the registers cleared
/// again, then CONF and CMD to reload the read registers, waiting for the controller each time.
fn esp32_program(
    chip: EspChip,
    conn: &mut Connection,
    block: u32,
    words: &[u32],
) -> Result<(), espflash::Error> {
    use esp32_regs::*;
    let wdata = WDATA[block as usize];
    esp32_wait(conn)?;
    for (i, word) in words.iter().enumerate() {
        conn.write_reg(wdata + 4 * i as u32, *word, None)?;
    }
    let (sel0, sel1, div) = match chip.xtal_frequency(conn)? {
        XtalFrequency::_26Mhz => (250, 255, 52),
        XtalFrequency::_40Mhz => (160, 255, 80),
        other => {
            return Err(espflash::Error::UnsupportedXtalFrequency(format!(
                "only 26 MHz and 40 MHz are supported (xtal was {other})"
            )));
        }
    };
    update(conn, DAC_CONF, 0xFF, div)?;
    update(conn, CLK, 0x00FF, sel0)?;
    update(conn, CLK, 0xFF00, sel1)?;
    conn.write_reg(CONF, CONF_WRITE, None)?;
    conn.write_reg(CMD, CMD_WRITE, None)?;
    esp32_wait(conn)?;
    for i in 0..words.len() {
        conn.write_reg(wdata + 4 * i as u32, 0, None)?;
    }
    conn.write_reg(CONF, CONF_READ, None)?;
    conn.write_reg(CMD, CMD_READ, None)?;
    esp32_wait(conn)
}

/// `value` into the bits of `mask` of the register at `addr` (espefuse's `update_reg`).
fn update(conn: &mut Connection, addr: u32, mask: u32, value: u32) -> Result<(), espflash::Error> {
    let old = conn.read_reg(addr)?;
    let new = (old & !mask) | ((value << mask.trailing_zeros()) & mask);
    conn.write_reg(addr, new, None)
}

/// Waits until the ESP32's CMD register reads 0 (espefuse's 0.25 s).
fn esp32_wait(conn: &mut Connection) -> Result<(), espflash::Error> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_millis(250);
    loop {
        if conn.read_reg(esp32_regs::CMD)? == 0 {
            return Ok(());
        }
        if std::time::Instant::now() > deadline {
            return Err(espflash::Error::TimedOutWaitingForEfuseController);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_set_and_read_at_their_bits() {
        let layout = layout(EspChip::Esp32c3).unwrap();
        let mut burn = Block0::default();
        let purposes = layout.purposes.clone().unwrap();
        burn.set("KEY_PURPOSE_1", &purposes[1], purpose::XTS_AES_128_KEY);
        burn.set("SPI_BOOT_CRYPT_CNT", &layout.crypt_cnt.1, 0b111);
        burn.write_protect("KEY_PURPOSE_1", wr_dis_purpose(1));
        let fuses = Fuses {
            block0: burn.words,
            keys: [[0; KEY_WORDS]; KEY_BLOCKS],
        };
        assert_eq!(fuses.purpose(&layout, 1), 4);
        assert_eq!(fuses.purpose(&layout, 0), 0);
        assert_eq!(fuses.get(&layout.crypt_cnt.1), 7);
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
        let esp32 = layout(EspChip::Esp32).unwrap();
        assert_eq!(
            (esp32.block_name(0), esp32.wr_dis_key_block(1)),
            ("BLOCK1".into(), 8)
        );
        assert!(layout(EspChip::Esp32c2).is_none());
    }
}
