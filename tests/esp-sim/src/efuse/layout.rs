//! Where each simulated chip keeps its eFuses: the controller's registers, the blocks with their
//! protection bits, the BLOCK0 bits each WR_DIS bit guards and the fields the ROM acts on.
//!
//! The figures are those of the chips' technical reference manuals ("eFuse Controller") as
//! espefuse describes them (`espefuse/efuse/<chip>/mem_definition.py`, `efuse_defs/<chip>.yaml`).

use crate::chip::Chip;

/// How a block's data is protected against bit errors, and how the controller is driven.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Family {
    /// ESP32-C3, -S3, -C6: one set of program registers (PGM_DATA0..7, PGM_CHECK_VALUE0..2),
    /// the block number in CMD, Reed-Solomon (44, 32) on every block but BLOCK0.
    ReedSolomon,
    /// ESP32: write registers per block (BLKn_WDATA0..7), one program command burns them all;
    /// 3/4 coding on BLOCK1..3 when CODING_SCHEME is 1.
    Esp32,
}

/// One eFuse block.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BlockDef {
    /// espefuse's name.
    pub name: &'static str,
    /// Offset of its first read register from the controller's base.
    pub rd: u32,
    /// Offset of its first write register (ESP32; the others share PGM_DATA0).
    pub wr: u32,
    /// Words the read registers show.
    pub words: usize,
    /// The WR_DIS bit that write-protects the whole block.
    pub wr_dis: Option<u32>,
    /// The RD_DIS bit that makes the block read as zeros.
    pub rd_dis: Option<u32>,
}

/// A field of BLOCK0: `len` bits from bit `pos` of word `word`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Field {
    pub word: usize,
    pub pos: u32,
    pub len: u32,
}

const fn f(word: usize, pos: u32, len: u32) -> Field {
    Field { word, pos, len }
}

impl Field {
    /// The field's bits within its word.
    pub fn mask(self) -> u32 {
        (((1u64 << self.len) - 1) << self.pos) as u32
    }

    /// The field's value in BLOCK0 `words`.
    pub fn get(self, words: &[u32]) -> u32 {
        (words.get(self.word).copied().unwrap_or(0) & self.mask()) >> self.pos
    }
}

/// Everything the simulator needs to know about one chip's eFuse controller.
#[derive(Debug)]
pub(crate) struct Layout {
    pub family: Family,
    /// DR_REG_EFUSE_BASE.
    pub base: u32,
    pub blocks: &'static [BlockDef],
    /// BLOCK0 bits guarded by a WR_DIS bit: (WR_DIS bit, word, mask).
    pub block0_wr_dis: &'static [(u32, usize, u32)],
    /// BLOCK0 bits that RD_DIS bit 3 hides (ESP32): (word, mask).
    pub block0_rd_dis: &'static [(usize, u32)],
    /// Offsets of CONF, CMD and the read-only status registers.
    pub conf: u32,
    pub cmd: u32,
    /// Offsets of the error registers (RD_RS_ERR0/1 or DEC_STATUS).
    pub errors: &'static [u32],
    /// RD_RS_ERR fail bits sit one block further than their error counts (ESP32-C3 erratum).
    pub fail_bit_shifted: bool,
    pub fields: Fields,
}

/// The BLOCK0 fields the simulated ROM reads.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Fields {
    pub rd_dis: Field,
    /// SPI_BOOT_CRYPT_CNT (FLASH_CRYPT_CNT on the ESP32).
    pub crypt_cnt: Field,
    /// SECURE_BOOT_EN (ABS_DONE_1 on the ESP32).
    pub secure_boot: Field,
    /// ENABLE_SECURITY_DOWNLOAD; none on the ESP32.
    pub security_download: Option<Field>,
    /// KEY_PURPOSE_0; the others follow, 4 bits each.
    pub key_purpose0: Option<Field>,
    /// SECURE_BOOT_KEY_REVOKE0..2, one bit each from here.
    pub revoke0: Option<Field>,
    pub aggressive_revoke: Option<Field>,
    /// DIS_PAD_JTAG (JTAG_DISABLE on the ESP32).
    pub dis_pad_jtag: Field,
    pub dis_usb_jtag: Option<Field>,
    pub dis_download_icache: Option<Field>,
    pub dis_download_dcache: Option<Field>,
    /// ESP32: FLASH_CRYPT_CONFIG, the key tweak of its flash encryption.
    pub flash_crypt_config: Option<Field>,
    /// ESP32: CODING_SCHEME (1 = 3/4).
    pub coding_scheme: Option<Field>,
}

/// The BLOCK0 protection of the ESP32-C3, -S3 and -C6 fields the three share.
const RS_FIELDS: Fields = Fields {
    rd_dis: f(1, 0, 7),
    crypt_cnt: f(2, 18, 3),
    secure_boot: f(3, 20, 1),
    security_download: Some(f(4, 5, 1)),
    key_purpose0: Some(f(2, 24, 4)),
    revoke0: Some(f(2, 21, 1)),
    aggressive_revoke: Some(f(3, 21, 1)),
    dis_pad_jtag: f(1, 19, 1),
    dis_usb_jtag: Some(f(1, 9, 1)),
    dis_download_icache: Some(f(1, 10, 1)),
    dis_download_dcache: None,
    flash_crypt_config: None,
    coding_scheme: None,
};

/// The blocks of the ESP32-C3, -S3 and -C6: BLOCK0, MAC_SPI_8M_0, BLOCK_SYS_DATA,
/// BLOCK_USR_DATA, BLOCK_KEY0..5, BLOCK_SYS_DATA2.
const RS_BLOCKS: &[BlockDef] = &[
    rs_block("BLOCK0", 0x02C, 6, None, None),
    rs_block("MAC_SPI_8M_0", 0x044, 6, Some(20), None),
    rs_block("BLOCK_SYS_DATA", 0x05C, 8, Some(21), None),
    rs_block("BLOCK_USR_DATA", 0x07C, 8, Some(22), None),
    rs_block("BLOCK_KEY0", 0x09C, 8, Some(23), Some(0)),
    rs_block("BLOCK_KEY1", 0x0BC, 8, Some(24), Some(1)),
    rs_block("BLOCK_KEY2", 0x0DC, 8, Some(25), Some(2)),
    rs_block("BLOCK_KEY3", 0x0FC, 8, Some(26), Some(3)),
    rs_block("BLOCK_KEY4", 0x11C, 8, Some(27), Some(4)),
    rs_block("BLOCK_KEY5", 0x13C, 8, Some(28), Some(5)),
    rs_block("BLOCK_SYS_DATA2", 0x15C, 8, Some(29), Some(6)),
];

const fn rs_block(
    name: &'static str,
    rd: u32,
    words: usize,
    wr_dis: Option<u32>,
    rd_dis: Option<u32>,
) -> BlockDef {
    BlockDef {
        name,
        rd,
        wr: 0,
        words,
        wr_dis,
        rd_dis,
    }
}

/// PGM_DATA0..7 then PGM_CHECK_VALUE0..2 from the base; CONF, CMD, RD_RS_ERR0/1.
pub(crate) const RS_PGM_WORDS: u32 = 11;
const RS_CONF: u32 = 0x1CC;
const RS_CMD: u32 = 0x1D4;
const RS_ERRORS: &[u32] = &[0x1C0, 0x1C4];

const ESP32C3: Layout = Layout {
    family: Family::ReedSolomon,
    base: 0x6000_8800,
    blocks: RS_BLOCKS,
    block0_wr_dis: &[
        (1, 1, 0x0000_0080),
        (2, 1, 0x0018_DF00),
        (3, 1, 0xE000_0000),
        (3, 2, 0x0003_0000),
        (4, 2, 0x001C_0000),
        (5, 2, 0x0020_0000),
        (6, 2, 0x0040_0000),
        (7, 2, 0x0080_0000),
        (8, 2, 0x0F00_0000),
        (9, 2, 0xF000_0000),
        (10, 3, 0x0000_000F),
        (11, 3, 0x0000_00F0),
        (12, 3, 0x0000_0F00),
        (13, 3, 0x0000_F000),
        (15, 3, 0x0010_0000),
        (16, 3, 0x0020_0000),
        (18, 3, 0xF000_0000),
        (18, 4, 0x3FFF_FFFF),
        (19, 4, 0x8000_0000),
        (19, 5, 0x0000_0003),
        (30, 1, 0x1FE0_0000),
        (31, 1, 0x0007_0000),
    ],
    block0_rd_dis: &[],
    conf: RS_CONF,
    cmd: RS_CMD,
    errors: RS_ERRORS,
    fail_bit_shifted: true,
    fields: RS_FIELDS,
};

const ESP32S3: Layout = Layout {
    family: Family::ReedSolomon,
    base: 0x6000_7000,
    blocks: RS_BLOCKS,
    block0_wr_dis: &[
        (1, 1, 0x0000_0080),
        (2, 1, 0x0018_FF00),
        (2, 3, 0x03C0_0000),
        (3, 1, 0xE000_0000),
        (3, 2, 0x0003_FFFF),
        (4, 2, 0x001C_0000),
        (5, 2, 0x0020_0000),
        (6, 2, 0x0040_0000),
        (7, 2, 0x0080_0000),
        (8, 2, 0x0F00_0000),
        (9, 2, 0xF000_0000),
        (10, 3, 0x0000_000F),
        (11, 3, 0x0000_00F0),
        (12, 3, 0x0000_0F00),
        (13, 3, 0x0000_F000),
        (15, 3, 0x0010_0000),
        (16, 3, 0x0020_0000),
        (17, 3, 0x0C00_0000),
        (17, 4, 0x4000_0000),
        (18, 3, 0xF000_0000),
        (18, 4, 0x3FFF_FFFF),
        (19, 4, 0x8000_0000),
        (19, 5, 0x0000_0003),
        (30, 1, 0x1FE0_0000),
        (31, 1, 0x0007_0000),
    ],
    block0_rd_dis: &[],
    conf: RS_CONF,
    cmd: RS_CMD,
    errors: RS_ERRORS,
    fail_bit_shifted: false,
    fields: Fields {
        dis_usb_jtag: Some(f(3, 22, 1)),
        dis_download_dcache: Some(f(1, 11, 1)),
        ..RS_FIELDS
    },
};

const ESP32C6: Layout = Layout {
    family: Family::ReedSolomon,
    base: 0x600B_0800,
    blocks: RS_BLOCKS,
    block0_wr_dis: &[
        (1, 3, 0x0004_0000),
        (2, 1, 0x0018_DF80),
        (3, 2, 0x0003_0000),
        (4, 2, 0x001C_0000),
        (5, 2, 0x0020_0000),
        (6, 2, 0x0040_0000),
        (7, 2, 0x0080_0000),
        (8, 2, 0x0F00_0000),
        (9, 2, 0xF000_0000),
        (10, 3, 0x0000_000F),
        (11, 3, 0x0000_00F0),
        (12, 3, 0x0000_0F00),
        (13, 3, 0x0000_F000),
        (14, 3, 0x0003_0000),
        (15, 3, 0x0010_0000),
        (16, 3, 0x0020_0000),
        (17, 1, 0x0000_2000),
        (18, 3, 0xF000_0000),
        (18, 4, 0x3FFF_E0F7),
        (19, 4, 0x4000_0000),
        (19, 5, 0x0000_0003),
        (30, 1, 0x07E0_0000),
        (31, 1, 0x0007_0000),
    ],
    block0_rd_dis: &[],
    conf: RS_CONF,
    cmd: RS_CMD,
    errors: RS_ERRORS,
    fail_bit_shifted: false,
    fields: RS_FIELDS,
};

/// ESP32: BLOCK0 (7 words), BLOCK1 (flash encryption key), BLOCK2 (Secure Boot), BLOCK3.
const ESP32: Layout = Layout {
    family: Family::Esp32,
    base: 0x3FF5_A000,
    blocks: &[
        BlockDef {
            name: "BLOCK0",
            rd: 0x000,
            wr: 0x01C,
            words: 7,
            wr_dis: None,
            rd_dis: None,
        },
        BlockDef {
            name: "BLOCK1",
            rd: 0x038,
            wr: 0x098,
            words: 8,
            wr_dis: Some(7),
            rd_dis: Some(0),
        },
        BlockDef {
            name: "BLOCK2",
            rd: 0x058,
            wr: 0x0B8,
            words: 8,
            wr_dis: Some(8),
            rd_dis: Some(1),
        },
        BlockDef {
            name: "BLOCK3",
            rd: 0x078,
            wr: 0x0D8,
            words: 8,
            wr_dis: Some(9),
            rd_dis: Some(2),
        },
    ],
    block0_wr_dis: &[
        (0, 0, 0x000F_0000),
        (2, 0, 0x0FF0_0000),
        (3, 1, 0xFFFF_FFFF),
        (3, 2, 0x00FF_FFFF),
        (3, 3, 0x0000_000B),
        (3, 5, 0x00C0_0000),
        (4, 4, 0x0000_1FFF),
        (5, 4, 0x0001_C000),
        (6, 5, 0x000F_FFFF),
        (10, 3, 0x0000_4000),
        (10, 5, 0xF000_0000),
        (10, 6, 0x0000_0403),
        (12, 6, 0x0000_0010),
        (13, 6, 0x0000_0020),
        (14, 6, 0x0000_0040),
        (15, 6, 0x0000_0384),
    ],
    block0_rd_dis: &[(3, 1 << 14), (5, 0xF000_0000), (6, 0x0000_0403)],
    conf: 0x0FC,
    cmd: 0x104,
    errors: &[0x11C],
    fail_bit_shifted: false,
    fields: Fields {
        rd_dis: f(0, 16, 4),
        crypt_cnt: f(0, 20, 7),
        secure_boot: f(6, 5, 1),
        security_download: None,
        key_purpose0: None,
        revoke0: None,
        aggressive_revoke: None,
        dis_pad_jtag: f(6, 6, 1),
        dis_usb_jtag: None,
        dis_download_icache: None,
        dis_download_dcache: None,
        flash_crypt_config: Some(f(5, 28, 4)),
        coding_scheme: Some(f(6, 0, 2)),
    },
};

/// The eFuse layout of `chip`, where its controller is modelled.
pub(crate) fn layout(chip: Chip) -> Option<&'static Layout> {
    match chip {
        Chip::Esp32 => Some(&ESP32),
        Chip::Esp32c3 => Some(&ESP32C3),
        Chip::Esp32s3 => Some(&ESP32S3),
        Chip::Esp32c6 => Some(&ESP32C6),
        _ => None,
    }
}

/// Named BLOCK0 fields a board can be started with (`--efuse NAME=VALUE`), per family.
pub(crate) fn named_field(layout: &Layout, name: &str) -> Option<Field> {
    let fields = &layout.fields;
    let purpose = |n: u32| {
        fields.key_purpose0.map(|p0| {
            let bit = p0.word as u32 * 32 + p0.pos + 4 * n;
            f(bit as usize / 32, bit % 32, 4)
        })
    };
    let revoke = |n: u32| fields.revoke0.map(|r| f(r.word, r.pos + n, 1));
    let wr_dis_len = if layout.family == Family::Esp32 {
        16
    } else {
        32
    };
    match name {
        "WR_DIS" => Some(f(0, 0, wr_dis_len)),
        "RD_DIS" => Some(fields.rd_dis),
        "SPI_BOOT_CRYPT_CNT" | "FLASH_CRYPT_CNT" => Some(fields.crypt_cnt),
        "SECURE_BOOT_EN" | "ABS_DONE_1" => Some(fields.secure_boot),
        "ENABLE_SECURITY_DOWNLOAD" => fields.security_download,
        "SECURE_BOOT_AGGRESSIVE_REVOKE" => fields.aggressive_revoke,
        "DIS_PAD_JTAG" | "JTAG_DISABLE" => Some(fields.dis_pad_jtag),
        "DIS_USB_JTAG" => fields.dis_usb_jtag,
        "DIS_DOWNLOAD_ICACHE" => fields.dis_download_icache,
        "DIS_DOWNLOAD_DCACHE" => fields.dis_download_dcache,
        "FLASH_CRYPT_CONFIG" => fields.flash_crypt_config,
        "CODING_SCHEME" => fields.coding_scheme,
        // The release-mode fields at the same place on the C3, S3 and C6.
        "DIS_DOWNLOAD_MANUAL_ENCRYPT" if fields.security_download.is_some() => Some(f(1, 20, 1)),
        "DIS_DIRECT_BOOT" if fields.security_download.is_some() => Some(f(4, 1, 1)),
        "DIS_DOWNLOAD_MODE" if fields.security_download.is_some() => Some(f(4, 0, 1)),
        "DISABLE_DL_ENCRYPT" if layout.family == Family::Esp32 => Some(f(6, 7, 1)),
        "DISABLE_DL_DECRYPT" if layout.family == Family::Esp32 => Some(f(6, 8, 1)),
        "DISABLE_DL_CACHE" if layout.family == Family::Esp32 => Some(f(6, 9, 1)),
        "UART_DOWNLOAD_DIS" if layout.family == Family::Esp32 => Some(f(0, 27, 1)),
        _ => {
            let n = |prefix: &str| name.strip_prefix(prefix)?.parse::<u32>().ok();
            if let Some(k) = n("KEY_PURPOSE_").filter(|&k| k < 6) {
                purpose(k)
            } else if let Some(k) = n("SECURE_BOOT_KEY_REVOKE").filter(|&k| k < 3) {
                revoke(k)
            } else {
                None
            }
        }
    }
}

/// The block called `name` (espefuse's name or alias `BLOCKn`), by index.
pub(crate) fn named_block(layout: &Layout, name: &str) -> Option<usize> {
    if let Some(i) = layout.blocks.iter().position(|b| b.name == name) {
        return Some(i);
    }
    let n: usize = name.strip_prefix("BLOCK")?.parse().ok()?;
    (n < layout.blocks.len()).then_some(n)
}
