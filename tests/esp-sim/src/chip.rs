//! What distinguishes the simulated chips: identification values, register
//! addresses, eFuse contents and the SPI flash identity.
//!
//! Every chip has one table of facts ([`Facts`]); the values come from the
//! chip classes of esptool 5.6 (`esptool/targets/<chip>.py`) and from
//! espflash 4.7 (`src/target/mod.rs`, `src/target/efuse/<chip>.rs`).

use std::fmt;
use std::str::FromStr;

use crate::ConfigError;
use crate::security::{self, Security};

/// Address of the word the loader clients read to identify a chip.
pub const CHIP_MAGIC_REG: u32 = 0x4000_1000;

/// The line rate the ROM loader starts at; its UART divider is set for it.
const ROM_BAUD: u32 = 115_200;

/// An ESP32-family chip the simulator can pose as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Chip {
    /// ESP32 (Xtensa, dual core).
    Esp32,
    /// ESP32-S2 (Xtensa, single core).
    Esp32s2,
    /// ESP32-S3 (Xtensa, dual core).
    Esp32s3,
    /// ESP32-C2 / ESP8684 (RISC-V).
    Esp32c2,
    /// ESP32-C3 (RISC-V).
    Esp32c3,
    /// ESP32-C5 (RISC-V, dual-band Wi-Fi 6).
    Esp32c5,
    /// ESP32-C6 (RISC-V).
    Esp32c6,
    /// ESP32-C61 (RISC-V).
    Esp32c61,
    /// ESP32-H2 (RISC-V).
    Esp32h2,
    /// ESP32-P4 (RISC-V, dual core, no radio).
    Esp32p4,
}

/// A bit field of one register word: `width` bits from bit `shift` of the
/// word at `addr`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Bits {
    addr: u32,
    shift: u32,
    width: u32,
}

const fn bits(addr: u32, shift: u32, width: u32) -> Bits {
    Bits { addr, shift, width }
}

impl Bits {
    fn max(self) -> u32 {
        ((1u64 << self.width) - 1) as u32
    }
}

/// What GET_SECURITY_INFO answers in the ROM loader.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SecurityInfoFormat {
    /// The ROM lacks the command (ESP32).
    Absent,
    /// 12 bytes: flags, flash crypt count, key purposes (ESP32-S2).
    Short,
    /// 20 bytes: the above, chip id and ECO version.
    WithChipId,
}

/// How the major revision is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MajorEncoding {
    /// A binary number, low pieces first.
    Binary,
    /// ESP32: one bit per step (0, 1, 3, 7 for v0..v3) in three places.
    Thermometer,
}

/// The crystal: which parts exist and where the ROM shows the frequency.
#[derive(Debug, Clone, Copy)]
struct CrystalFacts {
    /// Crystal frequencies the chip is sold with, in MHz.
    choices: &'static [u32],
    /// The common part.
    default: u32,
    /// UART0 CLKDIV, set by the ROM for 115200 baud from the crystal (the
    /// clients multiply it by the baud rate to estimate the crystal).
    uart_clkdiv: Option<u32>,
    /// A register field holding the crystal frequency in MHz as the ROM
    /// expects it (ESP32-C5 PCR_SYSCLK_CONF).
    rom_xtal_field: Option<Bits>,
}

/// Everything the simulator knows about one chip.
#[derive(Debug)]
pub(crate) struct Facts {
    name: &'static str,
    /// CHIP_MAGIC_REG value; `None` where the clients identify the chip by
    /// chip id only and the register reads 0 in the simulator.
    magic: Option<u32>,
    /// Image header and GET_SECURITY_INFO chip id.
    chip_id: u16,
    bootloader_offset: u32,
    security_info: SecurityInfoFormat,
    spi: SpiRegs,
    /// eFuse word with MAC bytes 2..5; the next word holds bytes 0..1 in its
    /// low half.
    mac_reg: u32,
    /// MAC_EXT, the EUI-64 filler in the high half of the second MAC word.
    mac_ext: Option<u16>,
    crystal: CrystalFacts,
    major: &'static [Bits],
    major_encoding: MajorEncoding,
    minor: &'static [Bits],
    default_revision: Revision,
    /// PSRAM sizes with a variant, and the eFuse bits that show them.
    psram: &'static [(Psram, &'static [(u32, u32)])],
    /// The eFuse bit(s) set when Secure Boot (V2) is enabled.
    secure_boot: (u32, u32),
    /// SPI_BOOT_CRYPT_CNT / FLASH_CRYPT_CNT.
    flash_crypt_cnt: Bits,
    /// Other registers that read non-zero.
    extra: &'static [(u32, u32)],
    /// The ROM's `rom_spiflash_legacy_funcs.read` pointer, where a ROM that
    /// will not run RAM code under Secure Boot can be sent to the stub
    /// (ESP32-S3; esptool `loader.py`, `run_stub`).
    rom_read_hook: Option<u32>,
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
    /// The register layout of every chip after the ESP32: USR2 at 0x20,
    /// MISO_DLEN at 0x28, W0 at 0x58.
    const fn newer(base: u32) -> Self {
        SpiRegs {
            base,
            usr2: base + 0x20,
            miso_dlen: base + 0x28,
            w0: base + 0x58,
            addr_msb: false,
        }
    }

    pub fn cmd(&self) -> u32 {
        self.base
    }

    pub fn addr(&self) -> u32 {
        self.base + 4
    }
}

/// Crystal of the chips that only come with 40 MHz and show it nowhere.
const FIXED_40: CrystalFacts = CrystalFacts {
    choices: &[40],
    default: 40,
    uart_clkdiv: None,
    rom_xtal_field: None,
};

/// ESP32: esp32.py, espflash efuse/esp32.rs.
const ESP32: Facts = Facts {
    name: "esp32",
    magic: Some(0x00F0_1D83),
    chip_id: 0,
    bootloader_offset: 0x1000,
    security_info: SecurityInfoFormat::Absent,
    spi: SpiRegs {
        base: 0x3FF4_2000,
        usr2: 0x3FF4_2024,
        miso_dlen: 0x3FF4_202C,
        w0: 0x3FF4_2080,
        addr_msb: true,
    },
    mac_reg: 0x3FF5_A004,
    mac_ext: None,
    crystal: CrystalFacts {
        // 26 MHz ESP32 parts exist, but the ROM baud-change calibration
        // below is modelled for 40 MHz only.
        choices: &[40],
        default: 40,
        uart_clkdiv: Some(0x3FF4_0014),
        rom_xtal_field: None,
    },
    // rev bit 0: eFuse word 3 bit 15; bit 1: word 5 bit 20; bit 2:
    // APB_CTL_DATE (0x3FF6607C) bit 31.
    major: &[
        bits(0x3FF5_A00C, 15, 1),
        bits(0x3FF5_A014, 20, 1),
        bits(0x3FF6_607C, 31, 1),
    ],
    major_encoding: MajorEncoding::Thermometer,
    minor: &[bits(0x3FF5_A014, 24, 2)],
    default_revision: Revision::new(0, 0),
    psram: &[
        // ESP32-PICO-V3-02: package version 6 in eFuse word 3 (bits 9..11
        // and bit 2), read as "Embedded PSRAM".
        (Psram::Mb2, &[(0x3FF5_A00C, 6 << 9)]),
        // 4 and 8 MB sit outside the package and leave no trace in eFuses.
        (Psram::Mb4, &[]),
        (Psram::Mb8, &[]),
    ],
    // EFUSE_RD_ABS_DONE_1 (Secure Boot V2, revision 3 and later).
    secure_boot: (0x3FF5_A018, 1 << 5),
    flash_crypt_cnt: bits(0x3FF5_A000, 20, 7),
    // RTC calibration and 8M clock divider that esptool turns into a 40 MHz
    // crystal before a ROM baud change.
    extra: &[(0x3FF5_F06C, 1024 << 7), (0x3FF5_A010, 100)],
    rom_read_hook: None,
};

/// ESP32-S2: esp32s2.py, espflash efuse/esp32s2.rs.
const ESP32S2: Facts = Facts {
    name: "esp32s2",
    magic: Some(0x0000_07C6),
    chip_id: 2,
    bootloader_offset: 0x1000,
    security_info: SecurityInfoFormat::Short,
    spi: SpiRegs::newer(0x3F40_2000),
    mac_reg: 0x3F41_A044,
    mac_ext: None,
    crystal: FIXED_40,
    major: &[bits(0x3F41_A050, 18, 2)],
    major_encoding: MajorEncoding::Binary,
    minor: &[bits(0x3F41_A054, 4, 3), bits(0x3F41_A050, 20, 1)],
    default_revision: Revision::new(0, 0),
    psram: &[
        // PSRAM_VERSION: BLOCK1 word 3 bits 28..31 (1 = 2 MB, 2 = 4 MB).
        (Psram::Mb2, &[(0x3F41_A050, 1 << 28)]),
        (Psram::Mb4, &[(0x3F41_A050, 2 << 28)]),
        (Psram::Mb8, &[]),
    ],
    secure_boot: (0x3F41_A038, 1 << 20),
    flash_crypt_cnt: bits(0x3F41_A034, 18, 3),
    extra: &[],
    rom_read_hook: None,
};

/// ESP32-S3: esp32s3.py, espflash efuse/esp32s3.rs.
const ESP32S3: Facts = Facts {
    name: "esp32s3",
    magic: Some(0x0000_0009),
    chip_id: 9,
    bootloader_offset: 0,
    security_info: SecurityInfoFormat::WithChipId,
    spi: SpiRegs::newer(0x6000_2000),
    mac_reg: 0x6000_7044,
    mac_ext: None,
    crystal: FIXED_40,
    major: &[bits(0x6000_7058, 24, 2)],
    major_encoding: MajorEncoding::Binary,
    minor: &[bits(0x6000_7050, 18, 3), bits(0x6000_7058, 23, 1)],
    default_revision: Revision::new(0, 0),
    // PSRAM_CAP: BLOCK1 word 4 bits 3..4 plus word 5 bit 19 (8 MB = 1,
    // 2 MB = 2, 4 MB = 4); PSRAM_VENDOR bits 7..8 (1 = AP_3v3).
    psram: &[
        (Psram::Mb8, &[(0x6000_7054, (1 << 3) | (1 << 7))]),
        (Psram::Mb2, &[(0x6000_7054, (2 << 3) | (1 << 7))]),
        (Psram::Mb4, &[(0x6000_7054, 1 << 7), (0x6000_7058, 1 << 19)]),
    ],
    secure_boot: (0x6000_7038, 1 << 20),
    flash_crypt_cnt: bits(0x6000_7034, 18, 3),
    extra: &[],
    rom_read_hook: Some(0x3FCE_F688),
};

/// ESP32-C2: esp32c2.py, espflash efuse/esp32c2.rs and target/mod.rs
/// (`xtal_frequency`: UART divider, 26 or 40 MHz).
const ESP32C2: Facts = Facts {
    name: "esp32c2",
    // espflash: ECO1 (revision v1.x); ECO0 reads 0x6F51306F.
    magic: Some(0x7C41_A06F),
    chip_id: 12,
    bootloader_offset: 0,
    security_info: SecurityInfoFormat::WithChipId,
    spi: SpiRegs::newer(0x6000_2000),
    // BLOCK2 holds the MAC on this chip.
    mac_reg: 0x6000_8840,
    mac_ext: None,
    crystal: CrystalFacts {
        choices: &[26, 40],
        // ESP8684 modules and ESP-IDF's default for this chip use 26 MHz.
        default: 26,
        uart_clkdiv: Some(0x6000_0014),
        rom_xtal_field: None,
    },
    major: &[bits(0x6000_8844, 20, 2)],
    major_encoding: MajorEncoding::Binary,
    minor: &[bits(0x6000_8844, 16, 4)],
    // esptool disables its stub on revision v0.0 (ECO0).
    default_revision: Revision::new(1, 0),
    psram: &[],
    secure_boot: (0x6000_8830, 1 << 21),
    flash_crypt_cnt: bits(0x6000_8830, 7, 3),
    extra: &[],
    rom_read_hook: None,
};

/// ESP32-C3: esp32c3.py, espflash efuse/esp32c3.rs.
const ESP32C3: Facts = Facts {
    name: "esp32c3",
    magic: Some(0x1B31_506F),
    chip_id: 5,
    bootloader_offset: 0,
    security_info: SecurityInfoFormat::WithChipId,
    spi: SpiRegs::newer(0x6000_2000),
    mac_reg: 0x6000_8844,
    mac_ext: None,
    crystal: FIXED_40,
    major: &[bits(0x6000_8858, 24, 2)],
    major_encoding: MajorEncoding::Binary,
    minor: &[bits(0x6000_8850, 18, 3), bits(0x6000_8858, 23, 1)],
    default_revision: Revision::new(0, 0),
    psram: &[],
    secure_boot: (0x6000_8838, 1 << 20),
    flash_crypt_cnt: bits(0x6000_8834, 18, 3),
    extra: &[],
    rom_read_hook: None,
};

/// ESP32-C5: esp32c5.py, espflash efuse/esp32c5.rs and target/mod.rs
/// (`xtal_frequency`: PCR_SYSCLK_CONF, 40 or 48 MHz).
const ESP32C5: Facts = Facts {
    name: "esp32c5",
    // espflash lists three magic values without saying which revision has
    // which; both clients identify the chip by chip id.
    magic: None,
    chip_id: 23,
    bootloader_offset: 0x2000,
    security_info: SecurityInfoFormat::WithChipId,
    spi: SpiRegs::newer(0x6000_3000),
    mac_reg: 0x600B_4844,
    // esptool reads MAC_EXT like the ESP32-C6's (the FF:FE EUI-64 filler).
    mac_ext: Some(0xFFFE),
    crystal: CrystalFacts {
        choices: &[40, 48],
        default: 48,
        uart_clkdiv: Some(0x6000_0014),
        rom_xtal_field: Some(bits(0x6009_6110, 24, 7)),
    },
    major: &[bits(0x600B_484C, 4, 2)],
    major_encoding: MajorEncoding::Binary,
    minor: &[bits(0x600B_484C, 0, 4)],
    default_revision: Revision::new(0, 0),
    // PSRAM_CAP: BLOCK1 word 2 bits 19..21 (1 = 4 MB, 2 = 8 MB);
    // PSRAM_VENDOR bits 22..23 (1 = AP_3v3).
    psram: &[
        (Psram::Mb4, &[(0x600B_484C, (1 << 19) | (1 << 22))]),
        (Psram::Mb8, &[(0x600B_484C, (2 << 19) | (1 << 22))]),
    ],
    secure_boot: (0x600B_4838, 1 << 25),
    flash_crypt_cnt: bits(0x600B_4834, 16, 3),
    extra: &[],
    rom_read_hook: None,
};

/// ESP32-C6: esp32c6.py, espflash efuse/esp32c6.rs.
const ESP32C6: Facts = Facts {
    name: "esp32c6",
    magic: Some(0x2CE0_806F),
    chip_id: 13,
    bootloader_offset: 0,
    security_info: SecurityInfoFormat::WithChipId,
    spi: SpiRegs::newer(0x6000_3000),
    mac_reg: 0x600B_0844,
    mac_ext: Some(0xFFFE),
    crystal: FIXED_40,
    major: &[bits(0x600B_0850, 22, 2)],
    major_encoding: MajorEncoding::Binary,
    minor: &[bits(0x600B_0850, 18, 4)],
    default_revision: Revision::new(0, 0),
    psram: &[],
    secure_boot: (0x600B_0838, 1 << 20),
    flash_crypt_cnt: bits(0x600B_0834, 18, 3),
    extra: &[],
    rom_read_hook: None,
};

/// ESP32-C61: esp32c61.py, espflash efuse/esp32c61.rs.
const ESP32C61: Facts = Facts {
    name: "esp32c61",
    magic: Some(0x7211_606F),
    chip_id: 20,
    bootloader_offset: 0,
    security_info: SecurityInfoFormat::WithChipId,
    spi: SpiRegs::newer(0x6000_3000),
    mac_reg: 0x600B_4844,
    mac_ext: None,
    crystal: FIXED_40,
    major: &[bits(0x600B_484C, 4, 2)],
    major_encoding: MajorEncoding::Binary,
    minor: &[bits(0x600B_484C, 0, 4)],
    default_revision: Revision::new(0, 0),
    // PSRAM_CAP: BLOCK1 word 2 bits 19..21 (1 = 2 MB, 2 = 8 MB).
    psram: &[
        (Psram::Mb2, &[(0x600B_484C, 1 << 19)]),
        (Psram::Mb8, &[(0x600B_484C, 2 << 19)]),
    ],
    secure_boot: (0x600B_4834, 1 << 26),
    flash_crypt_cnt: bits(0x600B_4830, 23, 3),
    extra: &[],
    rom_read_hook: None,
};

/// ESP32-H2: esp32h2.py, espflash efuse/esp32h2.rs (32 MHz crystal).
const ESP32H2: Facts = Facts {
    name: "esp32h2",
    magic: Some(0xD7B7_3E80),
    chip_id: 16,
    bootloader_offset: 0,
    security_info: SecurityInfoFormat::WithChipId,
    spi: SpiRegs::newer(0x6000_3000),
    mac_reg: 0x600B_0844,
    mac_ext: Some(0xFFFE),
    crystal: CrystalFacts {
        choices: &[32],
        default: 32,
        uart_clkdiv: None,
        rom_xtal_field: None,
    },
    major: &[bits(0x600B_0850, 21, 2)],
    major_encoding: MajorEncoding::Binary,
    minor: &[bits(0x600B_0850, 18, 3)],
    default_revision: Revision::new(0, 0),
    psram: &[],
    secure_boot: (0x600B_0838, 1 << 20),
    flash_crypt_cnt: bits(0x600B_0834, 18, 3),
    extra: &[],
    rom_read_hook: None,
};

/// ESP32-P4: esp32p4.py, espflash efuse/esp32p4.rs.
const ESP32P4: Facts = Facts {
    name: "esp32p4",
    // The ROM is not at 0x40000000 on this chip; both clients identify it
    // by chip id.
    magic: None,
    chip_id: 18,
    bootloader_offset: 0x2000,
    security_info: SecurityInfoFormat::WithChipId,
    spi: SpiRegs::newer(0x5008_D000),
    mac_reg: 0x5012_D044,
    mac_ext: None,
    crystal: FIXED_40,
    // WAFER_VERSION_MAJOR_LO bits 4..5, MAJOR_HI bit 23 of BLOCK1 word 2.
    major: &[bits(0x5012_D04C, 4, 2), bits(0x5012_D04C, 23, 1)],
    major_encoding: MajorEncoding::Binary,
    minor: &[bits(0x5012_D04C, 0, 4)],
    default_revision: Revision::new(0, 0),
    // espflash defines PSRAM_CAP for this chip but neither client decodes
    // it, so no size can be shown.
    psram: &[],
    secure_boot: (0x5012_D038, 1 << 20),
    flash_crypt_cnt: bits(0x5012_D034, 18, 3),
    extra: &[],
    rom_read_hook: None,
};

/// What the board's eFuses and straps say, as chosen by its configuration.
#[derive(Debug, Clone)]
pub(crate) struct Efuses {
    pub mac: [u8; 6],
    pub psram: Option<Psram>,
    pub revision: Revision,
    pub crystal: Crystal,
    pub security: Security,
    pub secure_boot_digests: Vec<[u8; 32]>,
}

impl Chip {
    /// Every simulated chip: the one list other crates iterate.
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

    pub(crate) fn facts(self) -> &'static Facts {
        match self {
            Chip::Esp32 => &ESP32,
            Chip::Esp32s2 => &ESP32S2,
            Chip::Esp32s3 => &ESP32S3,
            Chip::Esp32c2 => &ESP32C2,
            Chip::Esp32c3 => &ESP32C3,
            Chip::Esp32c5 => &ESP32C5,
            Chip::Esp32c6 => &ESP32C6,
            Chip::Esp32c61 => &ESP32C61,
            Chip::Esp32h2 => &ESP32H2,
            Chip::Esp32p4 => &ESP32P4,
        }
    }

    /// The name the CLI tools use (`esp32s3`).
    pub fn name(self) -> &'static str {
        self.facts().name
    }

    /// The value the ROM exposes at [`CHIP_MAGIC_REG`], where the simulator
    /// models one.
    pub fn magic(self) -> Option<u32> {
        self.facts().magic
    }

    /// The chip id of firmware image headers and GET_SECURITY_INFO.
    pub fn image_chip_id(self) -> u16 {
        self.facts().chip_id
    }

    /// Flash offset of the second-stage bootloader.
    pub fn bootloader_offset(self) -> u32 {
        self.facts().bootloader_offset
    }

    /// The crystal of the common part, in MHz.
    pub fn default_crystal(self) -> Crystal {
        Crystal(self.facts().crystal.default)
    }

    /// The crystal frequencies this chip is sold with.
    pub fn crystals(self) -> impl Iterator<Item = Crystal> {
        self.facts().crystal.choices.iter().map(|&mhz| Crystal(mhz))
    }

    /// The revision the simulator reports unless told otherwise.
    pub fn default_revision(self) -> Revision {
        self.facts().default_revision
    }

    /// Whether the chip has a PSRAM variant of this size.
    pub fn has_psram(self, psram: Psram) -> bool {
        self.facts().psram.iter().any(|(size, _)| *size == psram)
    }

    /// Whether the ROM has Secure Download Mode (every chip after the
    /// ESP32; esptool and espflash both say the ESP32 has none).
    pub fn has_secure_download_mode(self) -> bool {
        self.facts().security_info != SecurityInfoFormat::Absent
    }

    /// The GET_SECURITY_INFO reply data for these flags, crypt counter and key purposes;
    /// `None` where the ROM lacks the command (ESP32).
    pub(crate) fn security_info(
        self,
        flags: u32,
        crypt_cnt: u8,
        purposes: &[u8],
    ) -> Option<Vec<u8>> {
        // flags u32, flash_crypt_cnt u8, key_purposes [u8; 7]
        let mut info = flags.to_le_bytes().to_vec();
        info.push(crypt_cnt);
        let mut key_purposes = [0u8; 7];
        for (slot, p) in key_purposes.iter_mut().zip(purposes) {
            *slot = *p;
        }
        info.extend_from_slice(&key_purposes);
        match self.facts().security_info {
            SecurityInfoFormat::Absent => return None,
            SecurityInfoFormat::Short => {}
            SecurityInfoFormat::WithChipId => {
                info.extend_from_slice(&u32::from(self.image_chip_id()).to_le_bytes());
                // eco_version: must stay below 0x10000 (see the protocol notes)
                info.extend_from_slice(&0u32.to_le_bytes());
            }
        }
        Some(info)
    }

    pub(crate) fn rom_read_hook(self) -> Option<u32> {
        self.facts().rom_read_hook
    }

    pub(crate) fn spi_regs(self) -> SpiRegs {
        self.facts().spi
    }

    /// Checks that the chip exists with these eFuse choices.
    pub(crate) fn check(self, efuses: &Efuses) -> Result<(), ConfigError> {
        let facts = self.facts();
        if !facts.crystal.choices.contains(&efuses.crystal.0) {
            return Err(ConfigError::CrystalUnsupported {
                chip: self,
                crystal: efuses.crystal,
            });
        }
        self.revision_bits(efuses.revision)?;
        if let Some(psram) = efuses.psram
            && !self.has_psram(psram)
        {
            return Err(ConfigError::PsramUnsupported { chip: self, psram });
        }
        efuses.security.check(self, efuses.revision)?;
        security::check_digests(self, &efuses.secure_boot_digests)
    }

    /// Register values that differ from 0 after reset.
    pub(crate) fn initial_registers(self, efuses: &Efuses) -> Result<Vec<(u32, u32)>, ConfigError> {
        self.check(efuses)?;
        let facts = self.facts();
        let mut regs = Registers::default();
        if let Some(magic) = facts.magic {
            regs.set(CHIP_MAGIC_REG, magic);
        }
        let mac = efuses.mac;
        regs.set(
            facts.mac_reg,
            u32::from_be_bytes([mac[2], mac[3], mac[4], mac[5]]),
        );
        let ext = u32::from(facts.mac_ext.unwrap_or(0)) << 16;
        regs.set(
            facts.mac_reg + 4,
            ext | u32::from(u16::from_be_bytes([mac[0], mac[1]])),
        );
        regs.crystal(&facts.crystal, efuses.crystal);
        for (addr, value) in self.revision_bits(efuses.revision)? {
            regs.set(addr, value);
        }
        if let Some(psram) = efuses.psram {
            let shown = facts.psram.iter().find(|(size, _)| *size == psram);
            for &(addr, value) in shown.map_or(&[][..], |(_, bits)| bits) {
                regs.set(addr, value);
            }
        }
        if efuses.security.secure_boot {
            regs.set(facts.secure_boot.0, facts.secure_boot.1);
        }
        regs.field(
            facts.flash_crypt_cnt,
            efuses.security.flash_crypt_cnt().into(),
        );
        for (addr, value) in security::digest_registers(self, &efuses.secure_boot_digests) {
            regs.set(addr, value);
        }
        for &(addr, value) in facts.extra {
            regs.set(addr, value);
        }
        Ok(regs.0)
    }

    /// The register bits that encode `revision`.
    fn revision_bits(self, revision: Revision) -> Result<Vec<(u32, u32)>, ConfigError> {
        let facts = self.facts();
        let unsupported = || ConfigError::RevisionUnsupported {
            chip: self,
            revision,
        };
        let major = match facts.major_encoding {
            MajorEncoding::Binary => revision.major,
            MajorEncoding::Thermometer if revision.major <= 3 => (1 << revision.major) - 1,
            MajorEncoding::Thermometer => return Err(unsupported()),
        };
        let mut regs = Registers::default();
        for (pieces, value) in [(facts.major, major), (facts.minor, revision.minor)] {
            let mut rest = value;
            for &piece in pieces {
                regs.field(piece, rest & piece.max());
                rest = rest.checked_shr(piece.width).unwrap_or(0);
            }
            if rest != 0 {
                return Err(unsupported());
            }
        }
        Ok(regs.0)
    }

    /// A default MAC address, distinct per chip.
    pub fn default_mac(self) -> [u8; 6] {
        let id = self.image_chip_id().to_be_bytes();
        [0x24, 0x0A, 0xC4, 0x5E, id[0], id[1]]
    }
}

/// Register values under construction: fields are ORed into their words.
#[derive(Default)]
struct Registers(Vec<(u32, u32)>);

impl Registers {
    fn set(&mut self, addr: u32, bits: u32) {
        match self.0.iter_mut().find(|(a, _)| *a == addr) {
            Some((_, value)) => *value |= bits,
            None => self.0.push((addr, bits)),
        }
    }

    fn field(&mut self, field: Bits, value: u32) {
        if value != 0 {
            self.set(field.addr, (value & field.max()) << field.shift);
        }
    }

    /// The registers from which clients read the crystal frequency.
    fn crystal(&mut self, facts: &CrystalFacts, crystal: Crystal) {
        if let Some(addr) = facts.uart_clkdiv {
            self.set(addr, crystal.0 * 1_000_000 / ROM_BAUD);
        }
        if let Some(field) = facts.rom_xtal_field {
            self.field(field, crystal.0);
        }
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

/// A chip revision, `vMAJOR.MINOR` as esptool prints it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Revision {
    /// Major (wafer) version.
    pub major: u32,
    /// Minor version.
    pub minor: u32,
}

impl Revision {
    /// `vmajor.minor`.
    pub const fn new(major: u32, minor: u32) -> Self {
        Revision { major, minor }
    }
}

impl fmt::Display for Revision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "v{}.{}", self.major, self.minor)
    }
}

impl FromStr for Revision {
    type Err = ConfigError;

    /// Parses `v1.2` or `1.2`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || ConfigError::BadRevision(s.to_owned());
        let digits = s.trim().trim_start_matches(['v', 'V']);
        let (major, minor) = digits.split_once('.').ok_or_else(bad)?;
        Ok(Revision::new(
            major.parse().map_err(|_| bad())?,
            minor.parse().map_err(|_| bad())?,
        ))
    }
}

/// A crystal frequency in MHz.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Crystal(pub u32);

impl fmt::Display for Crystal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}MHz", self.0)
    }
}

impl FromStr for Crystal {
    type Err = ConfigError;

    /// Parses `26`, `26M` or `26MHz`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let upper = s.trim().to_ascii_uppercase();
        let digits = upper.trim_end_matches("HZ").trim_end_matches('M');
        digits
            .parse()
            .map(Crystal)
            .map_err(|_| ConfigError::BadCrystal(s.to_owned()))
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
    fn revisions_land_in_the_clients_fields() {
        let bits = |chip: Chip, rev: &str| chip.revision_bits(rev.parse().unwrap()).unwrap();
        // ESP32 v3.1: word 3 bit 15, word 5 bits 20 and 24, APB_CTL_DATE bit 31.
        assert_eq!(
            bits(Chip::Esp32, "v3.1"),
            [
                (0x3FF5_A00C, 1 << 15),
                (0x3FF5_A014, (1 << 20) | (1 << 24)),
                (0x3FF6_607C, 1 << 31)
            ]
        );
        // ESP32-S2 v1.9: minor 9 = hi bit (word 3 bit 20) + lo 1 (word 4 bits 4..6).
        assert_eq!(
            bits(Chip::Esp32s2, "1.9"),
            [(0x3F41_A050, (1 << 18) | (1 << 20)), (0x3F41_A054, 1 << 4)]
        );
        // ESP32-P4 v3.1: major 3 = lo 3 (bits 4..5), hi 0 (bit 23).
        assert_eq!(bits(Chip::Esp32p4, "v3.1"), [(0x5012_D04C, (3 << 4) | 1)]);
        assert!(Chip::Esp32c3.revision_bits(Revision::new(0, 16)).is_err());
        assert!(Chip::Esp32.revision_bits(Revision::new(4, 0)).is_err());
    }

    #[test]
    fn crystal_sets_the_uart_divider() {
        let config = crate::BoardConfig::new(Chip::Esp32c2);
        let regs = Chip::Esp32c2
            .initial_registers(&config.factory_efuses())
            .unwrap();
        // 26 MHz / 115200 baud; esptool and espflash multiply back to 25.9.
        assert!(regs.contains(&(0x6000_0014, 225)));
        let regs = Chip::Esp32c5
            .initial_registers(&crate::BoardConfig::new(Chip::Esp32c5).factory_efuses())
            .unwrap();
        assert!(regs.contains(&(0x6000_0014, 416)));
        assert!(regs.contains(&(0x6009_6110, 48 << 24)));
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
        assert_eq!("v1.2".parse::<Revision>().unwrap(), Revision::new(1, 2));
        assert_eq!("26MHz".parse::<Crystal>().unwrap(), Crystal(26));
        assert_eq!("40".parse::<Crystal>().unwrap().to_string(), "40MHz");
        assert!("1".parse::<Revision>().is_err());
    }
}
