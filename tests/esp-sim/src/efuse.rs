//! The eFuse controller of the simulated chip, as the ROM loader exposes it: its registers behind
//! READ_REG and WRITE_REG.
//!
//! The chip keeps the burned bits of every block; the read registers show them as of the last
//! read command (or reset), with read-protected blocks as zeros. Programming works as espefuse
//! drives it (`espefuse/efuse/base_fields.py`, `burn_words`, and `<chip>/fields.py`): the data go
//! to the program registers (PGM_DATA0..7 and PGM_CHECK_VALUE0..2 on the ESP32-C3, -S3 and -C6;
//! BLKn_WDATA on the ESP32), CONF takes the write opcode 0x5A5A, CMD the program command (with
//! the block number, except on the ESP32) and stays set for the few milliseconds the burn takes;
//! then CONF 0x5AA5 and the read command reload the read registers. Bits only go from 0 to 1,
//! nothing is burned where a WR_DIS bit protects it, and a block whose check bytes do not match
//! its data shows errors in the registers espefuse checks (RD_RS_ERR0/1, DEC_STATUS).

mod coding;
mod layout;

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::time::{Duration, Instant};

use crate::chip::Chip;
pub(crate) use layout::Family;
use layout::{Field, Layout};

/// CONF value that arms a program command.
const WRITE_OP: u32 = 0x5A5A;
/// CONF value that arms a read command.
const READ_OP: u32 = 0x5AA5;
/// CMD bit: program.
const PGM_CMD: u32 = 0x2;
/// CMD bit: reload the read registers.
const READ_CMD: u32 = 0x1;
/// How long CMD stays set for a program command (typical: the controller burns bit by bit).
const BURN_TIME: Duration = Duration::from_millis(8);
/// How long CMD stays set for a read command.
const READ_TIME: Duration = Duration::from_micros(200);
/// Size of the controller's register window.
const WINDOW: u32 = 0x200;

/// KEY_PURPOSE values (espefuse `KEY_PURPOSES` of the ESP32-C3, -S3 and -C6).
pub mod purpose {
    /// XTS_AES_256_KEY_1: the first half of a 256-bit flash encryption key (ESP32-S3).
    pub const XTS_AES_256_KEY_1: u8 = 2;
    /// XTS_AES_256_KEY_2: the second half.
    pub const XTS_AES_256_KEY_2: u8 = 3;
    /// XTS_AES_128_KEY: a 128-bit flash encryption key (the block's first 16 bytes).
    pub const XTS_AES_128_KEY: u8 = 4;
    /// SECURE_BOOT_DIGEST0; DIGEST1 and 2 follow.
    pub const SECURE_BOOT_DIGEST0: u8 = 9;
}

/// A value a board's eFuses cannot be started with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EfuseError {
    /// The chip's eFuse controller is not modelled.
    #[error("{0} has no modelled eFuse controller (esp32, esp32c3, esp32s3 and esp32c6 have)")]
    NoController(Chip),
    /// Not `NAME=VALUE`.
    #[error("bad eFuse setting `{0}` (expected NAME=VALUE, e.g. SPI_BOOT_CRYPT_CNT=1)")]
    Syntax(String),
    /// Not a field or block of the chip.
    #[error("{chip} has no eFuse field or block `{name}`")]
    UnknownName {
        /// The chip.
        chip: Chip,
        /// The name asked for.
        name: String,
    },
    /// The value does not fit.
    #[error("`{value}` does not fit eFuse {name} ({bits} bits; blocks take up to 64 hex digits)")]
    BadValue {
        /// The field or block.
        name: String,
        /// The value given.
        value: String,
        /// The field's width.
        bits: u32,
    },
    /// A line of an eFuse image that does not parse.
    #[error("bad eFuse image line `{0}` (expected NAME, 64 hex digits of data, 24 of check)")]
    ImageLine(String),
}

/// One eFuse field or block set when the board starts: `NAME=VALUE` as espefuse names them
/// (`SPI_BOOT_CRYPT_CNT=1`, `KEY_PURPOSE_0=4`, `BLOCK_KEY0=<hex bytes>`, `WR_DIS=0x800000`).
///
/// Values are ORed into the blank chip's eFuses, as burning would.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EfuseSetting {
    /// Field or block name.
    pub name: String,
    /// The value: an integer (decimal or 0x hex) for a field, hex bytes in order for a block.
    pub value: String,
}

impl FromStr for EfuseSetting {
    type Err = EfuseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (name, value) = s
            .split_once('=')
            .ok_or_else(|| EfuseError::Syntax(s.to_owned()))?;
        Ok(EfuseSetting {
            name: name.trim().to_ascii_uppercase(),
            value: value.trim().to_owned(),
        })
    }
}

impl fmt::Display for EfuseSetting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={}", self.name, self.value)
    }
}

/// The burned content of every eFuse block of a board: what survives a power cut.
///
/// Its text form has one line per block: the block's name, its 32 data bytes in hex (read
/// order, the first register's low byte first) and its 12 Reed-Solomon check bytes (zeros on
/// the ESP32, whose blocks hold their 3/4 code in the data).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EfuseImage {
    blocks: Vec<(String, [u32; 8], [u32; 3])>,
}

impl EfuseImage {
    /// The data words of block `index` (0 = BLOCK0).
    pub fn block(&self, index: usize) -> Option<[u32; 8]> {
        self.blocks.get(index).map(|b| b.1)
    }

    /// The burned value of a BLOCK0 field by espefuse's name (`SPI_BOOT_CRYPT_CNT`,
    /// `KEY_PURPOSE_0`, `WR_DIS`, ...: the field names `--efuse` takes).
    pub fn field(&self, chip: Chip, name: &str) -> Result<u32, EfuseError> {
        let layout = layout::layout(chip).ok_or(EfuseError::NoController(chip))?;
        let unknown = || EfuseError::UnknownName {
            chip,
            name: name.to_owned(),
        };
        let field = layout::named_field(layout, name).ok_or_else(unknown)?;
        let words: Vec<u32> = self
            .blocks
            .first()
            .map(|b| b.1.to_vec())
            .unwrap_or_default();
        let low = u64::from(words.get(field.word).copied().unwrap_or(0));
        let high = u64::from(words.get(field.word + 1).copied().unwrap_or(0));
        let wide = (low | (high << 32)) >> field.pos;
        Ok((wide & ((1u64 << field.len) - 1)) as u32)
    }

    /// Parses the text form for `chip`.
    pub fn parse(chip: Chip, text: &str) -> Result<Self, EfuseError> {
        let layout = layout::layout(chip).ok_or(EfuseError::NoController(chip))?;
        let mut image = EfuseImage {
            blocks: layout
                .blocks
                .iter()
                .map(|b| (b.name.to_owned(), [0; 8], [0; 3]))
                .collect(),
        };
        for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
            let bad = || EfuseError::ImageLine(line.to_owned());
            let mut parts = line.split_whitespace();
            let name = parts.next().ok_or_else(bad)?;
            let index = layout::named_block(layout, name).ok_or_else(bad)?;
            let data = parse_hex(parts.next().ok_or_else(bad)?, 32).ok_or_else(bad)?;
            let check = parse_hex(parts.next().unwrap_or(""), 12).ok_or_else(bad)?;
            let entry = &mut image.blocks[index];
            entry.1 = words(&data);
            entry.2 = words(&check);
        }
        Ok(image)
    }
}

impl fmt::Display for EfuseImage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (name, data, check) in &self.blocks {
            writeln!(f, "{name} {} {}", hex_words(data), hex_words(check))?;
        }
        Ok(())
    }
}

fn hex_words(words: &[u32]) -> String {
    words
        .iter()
        .flat_map(|w| w.to_le_bytes())
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Up to `len` bytes of hex, zero-padded to `len`.
fn parse_hex(text: &str, len: usize) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) || text.len() > 2 * len || !text.is_ascii() {
        return None;
    }
    let mut bytes = (0..text.len() / 2)
        .map(|i| u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok())
        .collect::<Option<Vec<u8>>>()?;
    bytes.resize(len, 0);
    Some(bytes)
}

/// Little-endian words of `bytes` (a multiple of 4 long), as many as fit `N`.
fn words<const N: usize>(bytes: &[u8]) -> [u32; N] {
    let mut out = [0u32; N];
    for (w, chunk) in out.iter_mut().zip(bytes.chunks_exact(4)) {
        *w = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
    }
    out
}

fn bytes_of(words: &[u32]) -> Vec<u8> {
    words.iter().flat_map(|w| w.to_le_bytes()).collect()
}

/// How much of a program command is carried out before the power goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Burn {
    /// All of it.
    Whole,
    /// The first half of the block's words only.
    Half,
}

/// The modelled eFuse controller of one chip.
#[derive(Debug)]
pub(crate) struct EfuseController {
    layout: &'static Layout,
    /// Burned data of every block (for the ESP32 under 3/4 coding: the coded words).
    burned: Vec<[u32; 8]>,
    /// Burned Reed-Solomon check words (ESP32-C3, -S3, -C6).
    check: Vec<[u32; 3]>,
    /// What the read registers show.
    shown: Vec<[u32; 8]>,
    /// The error registers, as of the last reload.
    errors: Vec<u32>,
    /// Every other register of the window (program data, CONF, timing), by offset.
    other: HashMap<u32, u32>,
    /// The command in progress and when it is done.
    cmd: u32,
    busy_until: Instant,
}

impl EfuseController {
    /// The controller of `chip`, burned with the eFuse values among `registers` (which it takes
    /// out of the map); `None` where the controller is not modelled.
    pub fn new(chip: Chip, registers: &mut HashMap<u32, u32>) -> Option<Self> {
        let layout = layout::layout(chip)?;
        let mut burned = vec![[0u32; 8]; layout.blocks.len()];
        for (block, def) in burned.iter_mut().zip(layout.blocks) {
            for (i, word) in block.iter_mut().take(def.words).enumerate() {
                *word = registers
                    .remove(&(layout.base + def.rd + 4 * i as u32))
                    .unwrap_or(0);
            }
        }
        registers.retain(|&addr, _| !(layout.base..layout.base + WINDOW).contains(&addr));
        let mut efuses = EfuseController {
            layout,
            check: vec![[0; 3]; burned.len()],
            shown: burned.clone(),
            burned,
            errors: vec![0; layout.errors.len()],
            other: HashMap::new(),
            cmd: 0,
            busy_until: Instant::now(),
        };
        efuses.recompute_checks();
        efuses.reload();
        Some(efuses)
    }

    /// Gives every Reed-Solomon block the check bytes of its data, as a factory burn would.
    fn recompute_checks(&mut self) {
        if self.layout.family != Family::ReedSolomon {
            return;
        }
        for (data, check) in self.burned.iter().zip(&mut self.check).skip(1) {
            let bytes: [u8; 32] = bytes_of(data).try_into().expect("8 words");
            *check = words(&coding::rs_check(&bytes));
        }
    }

    /// Sets `setting` (ORed into the burned bits).
    pub fn apply(&mut self, chip: Chip, setting: &EfuseSetting) -> Result<(), EfuseError> {
        let name = setting.name.as_str();
        let bad = |bits| EfuseError::BadValue {
            name: name.to_owned(),
            value: setting.value.clone(),
            bits,
        };
        if let Some(index) = layout::named_block(self.layout, name) {
            let bytes = parse_hex(&setting.value, 32).ok_or_else(|| bad(256))?;
            for (word, new) in self.burned[index].iter_mut().zip(words::<8>(&bytes)) {
                *word |= new;
            }
        } else {
            let field =
                layout::named_field(self.layout, name).ok_or_else(|| EfuseError::UnknownName {
                    chip,
                    name: name.to_owned(),
                })?;
            let value = parse_int(&setting.value)
                .filter(|&v| u64::from(v) >> field.len == 0)
                .ok_or_else(|| bad(field.len))?;
            let wide = u64::from(value) << field.pos;
            self.burned[0][field.word] |= wide as u32;
            if let Some(next) = self.burned[0].get_mut(field.word + 1) {
                *next |= (wide >> 32) as u32;
            }
        }
        self.recompute_checks();
        self.reload();
        Ok(())
    }

    /// ORs a saved image into the burned bits.
    pub fn restore(&mut self, image: &EfuseImage) {
        for (i, (_, data, check)) in image.blocks.iter().enumerate().take(self.burned.len()) {
            for (w, d) in self.burned[i].iter_mut().zip(data) {
                *w |= d;
            }
            for (w, c) in self.check[i].iter_mut().zip(check) {
                *w |= c;
            }
        }
        self.reload();
    }

    /// The burned content of every block.
    pub fn image(&self) -> EfuseImage {
        EfuseImage {
            blocks: self
                .layout
                .blocks
                .iter()
                .zip(self.burned.iter().zip(&self.check))
                .map(|(def, (data, check))| (def.name.to_owned(), *data, *check))
                .collect(),
        }
    }

    /// Whether `addr` is one of the controller's registers.
    pub fn claims(&self, addr: u32) -> bool {
        (self.layout.base..self.layout.base + WINDOW).contains(&addr)
    }

    /// READ_REG of one of the controller's registers.
    pub fn read(&mut self, addr: u32) -> u32 {
        let offset = addr - self.layout.base;
        if offset == self.layout.cmd {
            if Instant::now() >= self.busy_until {
                self.cmd = 0;
            }
            return self.cmd;
        }
        if let Some(i) = self.layout.errors.iter().position(|&e| e == offset) {
            return self.errors[i];
        }
        for (def, shown) in self.layout.blocks.iter().zip(&self.shown) {
            if (def.rd..def.rd + 4 * def.words as u32).contains(&offset) {
                return shown[((offset - def.rd) / 4) as usize];
            }
        }
        self.other.get(&offset).copied().unwrap_or(0)
    }

    /// WRITE_REG of one of the controller's registers; `burn` says how much of a program
    /// command it starts is carried out (all of it unless the power goes in the middle).
    pub fn write(&mut self, addr: u32, value: u32, mask: u32, burn: Burn) {
        let offset = addr - self.layout.base;
        if offset == self.layout.cmd {
            self.command(value & mask, burn);
            return;
        }
        let read_only = self.layout.errors.contains(&offset)
            || self
                .layout
                .blocks
                .iter()
                .any(|d| (d.rd..d.rd + 4 * d.words as u32).contains(&offset));
        if !read_only {
            let old = self.other.get(&offset).copied().unwrap_or(0);
            self.other.insert(offset, (old & !mask) | (value & mask));
        }
    }

    /// Whether `addr` is the CMD register.
    pub fn is_cmd(&self, addr: u32) -> bool {
        addr == self.layout.base + self.layout.cmd
    }

    fn command(&mut self, value: u32, burn: Burn) {
        let now = Instant::now();
        if now < self.busy_until && self.cmd != 0 {
            // The controller ignores commands while busy.
            return;
        }
        let conf = self.other.get(&self.layout.conf).copied().unwrap_or(0);
        let time = if value & PGM_CMD != 0 && conf == WRITE_OP {
            self.program(value, burn);
            BURN_TIME
        } else if value & READ_CMD != 0 && conf == READ_OP {
            self.reload();
            READ_TIME
        } else {
            Duration::ZERO
        };
        self.cmd = value;
        self.busy_until = now + time;
    }

    /// Burns the program registers into their block(s).
    fn program(&mut self, cmd: u32, burn: Burn) {
        match self.layout.family {
            Family::ReedSolomon => {
                let block = ((cmd >> 2) & 0xF) as usize;
                if block >= self.burned.len() {
                    return;
                }
                let reg = |i: u32| self.other.get(&(4 * i)).copied().unwrap_or(0);
                let data: [u32; 8] = core::array::from_fn(|i| reg(i as u32));
                let check: [u32; 3] = core::array::from_fn(|i| reg(8 + i as u32));
                self.burn_block(block, &data, burn);
                if block > 0 && burn == Burn::Whole && self.writable(block)[0] != 0 {
                    for (w, c) in self.check[block].iter_mut().zip(check) {
                        *w |= c;
                    }
                }
                for i in 0..layout::RS_PGM_WORDS {
                    self.other.remove(&(4 * i));
                }
            }
            Family::Esp32 => {
                for block in 0..self.burned.len() {
                    let wr = self.layout.blocks[block].wr;
                    let data: [u32; 8] = core::array::from_fn(|i| {
                        self.other.remove(&(wr + 4 * i as u32)).unwrap_or(0)
                    });
                    self.burn_block(block, &data, burn);
                }
            }
        }
    }

    fn burn_block(&mut self, block: usize, data: &[u32; 8], burn: Burn) {
        let writable = self.writable(block);
        let words = match burn {
            Burn::Whole => 8,
            Burn::Half => 4,
        };
        for i in 0..words {
            self.burned[block][i] |= data[i] & writable[i];
        }
    }

    /// The bits of `block` that WR_DIS (as last read) leaves writable.
    fn writable(&self, block: usize) -> [u32; 8] {
        let def = &self.layout.blocks[block];
        let wr_dis = self.shown[0][0];
        let protected = |bit: u32| wr_dis & (1 << bit) != 0;
        let mut mask = [0u32; 8];
        if def.wr_dis.is_some_and(protected) {
            return mask;
        }
        mask[..def.words].fill(u32::MAX);
        if block == 0 {
            for &(bit, word, bits) in self.layout.block0_wr_dis {
                if protected(bit) {
                    mask[word] &= !bits;
                }
            }
        }
        mask
    }

    /// The read command: the read registers take the burned bits, read protection applied,
    /// and the error registers the result of the coding check.
    fn reload(&mut self) {
        let rd_dis = self.layout.fields.rd_dis.get(&self.burned[0]);
        self.errors.fill(0);
        for block in 0..self.burned.len() {
            let def = self.layout.blocks[block];
            let (data, errors) = self.decode(block);
            self.record_errors(block, errors);
            let mut shown = data;
            shown[def.words..].fill(0);
            if def.rd_dis.is_some_and(|bit| rd_dis & (1 << bit) != 0) {
                shown = [0; 8];
            }
            if block == 0 && rd_dis & (1 << 3) != 0 {
                for &(word, bits) in self.layout.block0_rd_dis {
                    shown[word] &= !bits;
                }
            }
            self.shown[block] = shown;
        }
    }

    /// The data of `block` as the read registers show it, and the count of coding errors.
    fn decode(&self, block: usize) -> ([u32; 8], u32) {
        let data = self.burned[block];
        if block == 0 {
            return (data, 0);
        }
        match self.layout.family {
            Family::ReedSolomon => {
                let bytes: [u8; 32] = bytes_of(&data).try_into().expect("8 words");
                let expected = coding::rs_check(&bytes);
                let stored = bytes_of(&self.check[block]);
                let wrong = expected.iter().zip(&stored).filter(|(a, b)| a != b).count();
                (data, wrong as u32)
            }
            Family::Esp32 => {
                let coding = self
                    .layout
                    .fields
                    .coding_scheme
                    .map(|f| f.get(&self.burned[0]));
                if coding != Some(1) {
                    return (data, 0);
                }
                let raw = bytes_of(&data);
                let bad = raw.chunks(8).filter(|g| !coding::three_four_ok(g)).count();
                let plain: Vec<u8> = raw.chunks(8).flat_map(|g| g[..6].to_vec()).collect();
                let mut words8 = [0u32; 8];
                words8[..6].copy_from_slice(&words::<6>(&plain));
                (words8, bad as u32)
            }
        }
    }

    /// Sets the error count and fail bit of `block` as espefuse reads them.
    fn record_errors(&mut self, block: usize, errors: u32) {
        if errors == 0 || block == 0 {
            return;
        }
        match self.layout.family {
            Family::ReedSolomon => {
                let n = block - 1;
                self.errors[n / 8] |= errors.min(7) << (4 * (n % 8));
                let fail = if self.layout.fail_bit_shifted {
                    n + 1
                } else {
                    n
                };
                if let Some(reg) = self.errors.get_mut(fail / 8) {
                    *reg |= 1 << (4 * (fail % 8) + 3);
                }
            }
            Family::Esp32 => self.errors[0] |= errors.min(15) << (4 * (block - 1)),
        }
    }

    /// A BLOCK0 field as burned.
    fn field(&self, field: Field) -> u32 {
        field.get(&self.burned[0])
    }

    /// The chip family.
    pub fn family(&self) -> Family {
        self.layout.family
    }

    /// SPI_BOOT_CRYPT_CNT (FLASH_CRYPT_CNT): flash encryption is on when it has an odd number
    /// of bits set.
    pub fn crypt_cnt(&self) -> u32 {
        self.field(self.layout.fields.crypt_cnt)
    }

    /// Bits of the crypt counter (3, or 7 on the ESP32).
    pub fn crypt_cnt_width(&self) -> u32 {
        self.layout.fields.crypt_cnt.len
    }

    /// Whether WR_DIS protects the crypt counter (release mode).
    pub fn crypt_cnt_write_protected(&self) -> bool {
        let field = self.layout.fields.crypt_cnt;
        let wr_dis = self.burned[0][0];
        self.layout.block0_wr_dis.iter().any(|&(bit, word, bits)| {
            word == field.word && bits & field.mask() != 0 && wr_dis & (1 << bit) != 0
        })
    }

    /// SECURE_BOOT_EN (ABS_DONE_1 on the ESP32).
    pub fn secure_boot(&self) -> bool {
        self.field(self.layout.fields.secure_boot) != 0
    }

    /// ENABLE_SECURITY_DOWNLOAD.
    pub fn security_download(&self) -> bool {
        self.layout
            .fields
            .security_download
            .is_some_and(|f| self.field(f) != 0)
    }

    /// KEY_PURPOSE_0..5 (none on the ESP32).
    pub fn key_purposes(&self) -> Vec<u8> {
        let Some(p0) = self.layout.fields.key_purpose0 else {
            return Vec::new();
        };
        (0..6)
            .map(|n| {
                let bit = p0.word as u32 * 32 + p0.pos + 4 * n;
                let field = Field {
                    word: bit as usize / 32,
                    pos: bit % 32,
                    len: 4,
                };
                self.field(field) as u8
            })
            .collect()
    }

    /// The GET_SECURITY_INFO flags the eFuses give (without Secure Download Mode, which is the
    /// ROM's state since its last reset), as esptool decodes them (`loader.py`).
    pub fn security_flags(&self) -> u32 {
        let fields = &self.layout.fields;
        let on = |f: Option<Field>| f.is_some_and(|f| self.field(f) != 0);
        let mut flags = u32::from(self.secure_boot());
        flags |= u32::from(on(fields.aggressive_revoke)) << 1;
        if let Some(r0) = fields.revoke0 {
            for n in 0..3 {
                let bit = Field {
                    pos: r0.pos + n,
                    ..r0
                };
                flags |= u32::from(self.field(bit) != 0) << (3 + n);
            }
        }
        flags |= u32::from(on(Some(fields.dis_pad_jtag))) << 7;
        flags |= u32::from(on(fields.dis_usb_jtag)) << 8;
        flags |= u32::from(on(fields.dis_download_dcache)) << 9;
        flags |= u32::from(on(fields.dis_download_icache)) << 10;
        flags
    }

    /// The burned data of block `index` (what the hardware's key logic reads, whatever RD_DIS).
    pub fn block_bytes(&self, index: usize) -> Vec<u8> {
        bytes_of(&self.decode(index).0)
    }

    /// ESP32: FLASH_CRYPT_CONFIG.
    pub fn flash_crypt_config(&self) -> u32 {
        self.layout
            .fields
            .flash_crypt_config
            .map_or(0, |f| self.field(f))
    }

    /// The index of the first key block (BLOCK_KEY0 is BLOCK4; the ESP32's key is BLOCK1).
    pub fn first_key_block(&self) -> usize {
        match self.layout.family {
            Family::ReedSolomon => 4,
            Family::Esp32 => 1,
        }
    }
}

/// An integer, decimal or 0x hex.
fn parse_int(text: &str) -> Option<u32> {
    match text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        Some(hex) => u32::from_str_radix(hex, 16).ok(),
        None => text.parse().ok(),
    }
}

#[cfg(test)]
mod tests;
