//! What distinguishes the simulated chips: identification values, register
//! addresses, eFuse contents and the SPI flash identity.

use std::fmt;
use std::str::FromStr;

use crate::ConfigError;

/// Address of the word the loader clients read to identify a chip.
pub const CHIP_MAGIC_REG: u32 = 0x4000_1000;

/// An ESP32-family chip the simulator can pose as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Chip {
    /// ESP32 (Xtensa, dual core).
    Esp32,
    /// ESP32-S2 (Xtensa, single core).
    Esp32s2,
    /// ESP32-S3 (Xtensa, dual core).
    Esp32s3,
    /// ESP32-C3 (RISC-V).
    Esp32c3,
    /// ESP32-C6 (RISC-V).
    Esp32c6,
    /// ESP32-H2 (RISC-V).
    Esp32h2,
}

/// The SPI1 controller registers used to run a raw flash command.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SpiRegs {
    pub base: u32,
    pub usr2: u32,
    pub miso_dlen: u32,
    pub w0: u32,
    /// The address register holds the address left-aligned (ESP32).
    pub addr_msb: bool,
}

impl SpiRegs {
    pub fn cmd(&self) -> u32 {
        self.base
    }

    pub fn addr(&self) -> u32 {
        self.base + 4
    }
}

impl Chip {
    /// Every simulated chip.
    pub const ALL: [Chip; 6] = [
        Chip::Esp32,
        Chip::Esp32s2,
        Chip::Esp32s3,
        Chip::Esp32c3,
        Chip::Esp32c6,
        Chip::Esp32h2,
    ];

    /// The name the CLI tools use (`esp32s3`).
    pub fn name(self) -> &'static str {
        match self {
            Chip::Esp32 => "esp32",
            Chip::Esp32s2 => "esp32s2",
            Chip::Esp32s3 => "esp32s3",
            Chip::Esp32c3 => "esp32c3",
            Chip::Esp32c6 => "esp32c6",
            Chip::Esp32h2 => "esp32h2",
        }
    }

    /// The value the ROM exposes at [`CHIP_MAGIC_REG`].
    pub fn magic(self) -> u32 {
        match self {
            Chip::Esp32 => 0x00F0_1D83,
            Chip::Esp32s2 => 0x0000_07C6,
            Chip::Esp32s3 => 0x0000_0009,
            Chip::Esp32c3 => 0x1B31_506F,
            Chip::Esp32c6 => 0x2CE0_806F,
            Chip::Esp32h2 => 0xD7B7_3E80,
        }
    }

    /// The chip id of firmware image headers and GET_SECURITY_INFO.
    pub fn image_chip_id(self) -> u16 {
        match self {
            Chip::Esp32 => 0,
            Chip::Esp32s2 => 2,
            Chip::Esp32s3 => 9,
            Chip::Esp32c3 => 5,
            Chip::Esp32c6 => 13,
            Chip::Esp32h2 => 16,
        }
    }

    /// Flash offset of the second-stage bootloader.
    pub fn bootloader_offset(self) -> u32 {
        match self {
            Chip::Esp32 | Chip::Esp32s2 => 0x1000,
            _ => 0,
        }
    }

    /// The GET_SECURITY_INFO reply data; `None` where the ROM lacks the
    /// command (ESP32).
    pub(crate) fn security_info(self) -> Option<Vec<u8>> {
        // flags u32, flash_crypt_cnt u8, key_purposes [u8; 7]
        let mut info = vec![0u8; 12];
        match self {
            Chip::Esp32 => return None,
            Chip::Esp32s2 => {}
            _ => {
                info.extend_from_slice(&u32::from(self.image_chip_id()).to_le_bytes());
                // eco_version: must stay below 0x10000 (see the protocol notes)
                info.extend_from_slice(&0u32.to_le_bytes());
            }
        }
        Some(info)
    }

    pub(crate) fn spi_regs(self) -> SpiRegs {
        let (base, usr2, miso_dlen, w0) = match self {
            Chip::Esp32 => (0x3FF4_2000, 0x24, 0x2C, 0x80),
            Chip::Esp32s2 => (0x3F40_2000, 0x20, 0x28, 0x58),
            Chip::Esp32s3 | Chip::Esp32c3 => (0x6000_2000, 0x20, 0x28, 0x58),
            Chip::Esp32c6 | Chip::Esp32h2 => (0x6000_3000, 0x20, 0x28, 0x58),
        };
        SpiRegs {
            base,
            usr2: base + usr2,
            miso_dlen: base + miso_dlen,
            w0: base + w0,
            addr_msb: self == Chip::Esp32,
        }
    }

    /// Address of the eFuse word holding MAC bytes 2..5 (the next word holds
    /// bytes 0..1).
    fn mac_reg(self) -> u32 {
        match self {
            Chip::Esp32 => 0x3FF5_A004,
            Chip::Esp32s2 => 0x3F41_A044,
            Chip::Esp32s3 => 0x6000_7044,
            Chip::Esp32c3 => 0x6000_8844,
            Chip::Esp32c6 | Chip::Esp32h2 => 0x600B_0844,
        }
    }

    /// Which PSRAM sizes show up in this chip's eFuses, as the field value the
    /// clients decode.
    fn psram_efuse(self, psram: Psram) -> Result<Vec<(u32, u32)>, ConfigError> {
        let unsupported = || ConfigError::PsramUnsupported { chip: self, psram };
        Ok(match (self, psram) {
            // ESP32-PICO-V3-02: package version 6 in eFuse word 3 (bits 9..11
            // and bit 2), read as "Embedded PSRAM".
            (Chip::Esp32, Psram::Mb2) => vec![(0x3FF5_A00C, (6 & 7) << 9)],
            // Other ESP32 PSRAM sizes sit outside the package and leave no
            // trace in eFuses.
            (Chip::Esp32, _) => Vec::new(),
            // PSRAM_VERSION: BLOCK1 word 3 bits 28..31 (1 = 2 MB, 2 = 4 MB).
            (Chip::Esp32s2, Psram::Mb2) => vec![(0x3F41_A050, 1 << 28)],
            (Chip::Esp32s2, Psram::Mb4) => vec![(0x3F41_A050, 2 << 28)],
            (Chip::Esp32s2, Psram::Mb8) => Vec::new(),
            // PSRAM_CAP: BLOCK1 word 4 bits 3..4 plus word 5 bit 19 (8 MB = 1,
            // 2 MB = 2, 4 MB = 4); PSRAM_VENDOR bits 7..8 (1 = AP_3v3).
            (Chip::Esp32s3, psram) => {
                let cap: u32 = match psram {
                    Psram::Mb8 => 1,
                    Psram::Mb2 => 2,
                    Psram::Mb4 => 4,
                };
                vec![
                    (0x6000_7054, ((cap & 3) << 3) | (1 << 7)),
                    (0x6000_7058, (cap >> 2) << 19),
                ]
            }
            _ => return Err(unsupported()),
        })
    }

    /// Register values that differ from 0 after reset.
    pub(crate) fn initial_registers(
        self,
        mac: [u8; 6],
        psram: Option<Psram>,
    ) -> Result<Vec<(u32, u32)>, ConfigError> {
        let mut regs = vec![(CHIP_MAGIC_REG, self.magic())];
        let lo = u32::from_be_bytes([mac[2], mac[3], mac[4], mac[5]]);
        let mut hi = u32::from(u16::from_be_bytes([mac[0], mac[1]]));
        if matches!(self, Chip::Esp32c6 | Chip::Esp32h2) {
            // EUI-64 extension bytes.
            hi |= 0xFFFE << 16;
        }
        regs.push((self.mac_reg(), lo));
        regs.push((self.mac_reg() + 4, hi));
        if self == Chip::Esp32 {
            // UART_CLKDIV for 115200 baud from a 40 MHz APB clock.
            regs.push((0x3FF4_0014, 347));
            // RTC calibration and 8M clock divider that esptool turns into
            // a 40 MHz crystal before a ROM baud change.
            regs.push((0x3FF5_F06C, 1024 << 7));
            regs.push((0x3FF5_A010, 100));
        }
        if let Some(psram) = psram {
            for (addr, bits) in self.psram_efuse(psram)? {
                let word = regs.iter_mut().find(|(a, _)| *a == addr);
                match word {
                    Some((_, value)) => *value |= bits,
                    None => regs.push((addr, bits)),
                }
            }
        }
        Ok(regs)
    }

    /// A default MAC address, distinct per chip.
    pub fn default_mac(self) -> [u8; 6] {
        let id = self.image_chip_id().to_be_bytes();
        [0x24, 0x0A, 0xC4, 0x5E, id[0], id[1]]
    }
}

impl fmt::Display for Chip {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Chip {
    type Err = ConfigError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let wanted = s.to_ascii_lowercase().replace(['-', '_'], "");
        Chip::ALL
            .into_iter()
            .find(|chip| chip.name() == wanted)
            .ok_or_else(|| ConfigError::UnknownChip(s.to_owned()))
    }
}

/// Size of an embedded or attached PSRAM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Psram {
    /// 2 MB.
    Mb2,
    /// 4 MB.
    Mb4,
    /// 8 MB.
    Mb8,
}

impl fmt::Display for Psram {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Psram::Mb2 => "2MB",
            Psram::Mb4 => "4MB",
            Psram::Mb8 => "8MB",
        })
    }
}

impl FromStr for Psram {
    type Err = ConfigError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match parse_size(s) {
            Some(0x20_0000) => Ok(Psram::Mb2),
            Some(0x40_0000) => Ok(Psram::Mb4),
            Some(0x80_0000) => Ok(Psram::Mb8),
            _ => Err(ConfigError::BadPsram(s.to_owned())),
        }
    }
}

/// Size of the SPI NOR flash, a power of two from 1 MB to 128 MB.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlashSize(u32);

impl FlashSize {
    /// 4 MB, the most common module flash.
    pub const MB4: FlashSize = FlashSize(0x40_0000);

    /// A flash of `bytes` bytes, if such a part exists (1-128 MB, power of two).
    pub fn from_bytes(bytes: u32) -> Option<Self> {
        (bytes.is_power_of_two() && (0x10_0000..=0x800_0000).contains(&bytes))
            .then_some(FlashSize(bytes))
    }

    /// Size in bytes.
    pub fn bytes(self) -> u32 {
        self.0
    }

    /// The JEDEC id (RDID) a Winbond W25Q part of this size answers:
    /// manufacturer 0xEF, memory type 0x40, capacity code.
    pub fn jedec_id(self) -> u32 {
        let log2 = self.0.trailing_zeros();
        // W25Q256 and smaller: 2^code bytes; W25Q512 is 0x20, W25Q01 0x21.
        let capacity = if log2 <= 25 { log2 } else { log2 - 26 + 0x20 };
        0xEF | (0x40 << 8) | (capacity << 16)
    }
}

impl Default for FlashSize {
    fn default() -> Self {
        FlashSize::MB4
    }
}

impl fmt::Display for FlashSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}MB", self.0 >> 20)
    }
}

impl FromStr for FlashSize {
    type Err = ConfigError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_size(s)
            .and_then(FlashSize::from_bytes)
            .ok_or_else(|| ConfigError::BadFlashSize(s.to_owned()))
    }
}

/// Parses `4MB`, `4M`, `512KB`, `0x400000` or a plain byte count.
fn parse_size(s: &str) -> Option<u32> {
    let s = s.trim().to_ascii_uppercase();
    let s = s.strip_suffix('B').unwrap_or(&s);
    if let Some(hex) = s.strip_prefix("0X") {
        return u32::from_str_radix(hex, 16).ok();
    }
    let (digits, unit) = match s.as_bytes().last()? {
        b'M' => (&s[..s.len() - 1], 1 << 20),
        b'K' => (&s[..s.len() - 1], 1 << 10),
        _ => (s, 1),
    };
    digits.parse::<u32>().ok()?.checked_mul(unit)
}

/// A MAC address in `AA:BB:CC:DD:EE:FF` notation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MacAddress(pub [u8; 6]);

impl FromStr for MacAddress {
    type Err = ConfigError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || ConfigError::BadMac(s.to_owned());
        let mut mac = [0u8; 6];
        let mut parts = s.split([':', '-']);
        for byte in &mut mac {
            let part = parts.next().ok_or_else(bad)?;
            *byte = u8::from_str_radix(part, 16).map_err(|_| bad())?;
        }
        if parts.next().is_some() {
            return Err(bad());
        }
        Ok(MacAddress(mac))
    }
}

impl fmt::Display for MacAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jedec_capacity_codes() {
        let id = |s: &str| s.parse::<FlashSize>().unwrap().jedec_id();
        assert_eq!(id("4MB"), 0x0016_40EF);
        assert_eq!(id("16MB"), 0x0018_40EF);
        assert_eq!(id("32MB"), 0x0019_40EF);
        assert_eq!(id("64MB"), 0x0020_40EF);
        assert_eq!(id("128MB"), 0x0021_40EF);
        assert!("3MB".parse::<FlashSize>().is_err());
    }

    #[test]
    fn parses_names() {
        assert_eq!("ESP32-S3".parse::<Chip>().unwrap(), Chip::Esp32s3);
        assert_eq!("8MB".parse::<Psram>().unwrap(), Psram::Mb8);
        assert_eq!(
            "aa:bb:cc:dd:ee:0f".parse::<MacAddress>().unwrap().0,
            [0xAA, 0xBB, 0xCC, 0xDD, 0xEE, 0x0F]
        );
        assert!("aa:bb".parse::<MacAddress>().is_err());
    }
}
