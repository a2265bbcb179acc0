//! A simulated ESP32-family board in serial download mode.
//!
//! The board speaks the ESP serial loader protocol on a pseudo-terminal:
//! the mask ROM's commands, and after a stub upload those of the flasher
//! stub. Behind it sits a NOR flash with real erase/program semantics.
//! Optional real-time pacing and deterministic fault injection make it a
//! stand-in for hardware in tests of flashing tools.
//!
//! ```no_run
//! use esp_sim::{BoardConfig, Chip, SimBoard};
//!
//! let board = SimBoard::start(BoardConfig::new(Chip::Esp32c3))?;
//! println!("flash me at {}", board.path().display());
//! // ... run a client against board.path() with no-reset ...
//! let flash = board.stop();
//! # Ok::<(), esp_sim::BoardError>(())
//! ```
#![warn(missing_docs)]

pub mod board;
pub mod chip;
mod crypt;
pub mod efuse;
pub mod faults;
pub mod flash;
pub mod loader;
pub mod pacing;
pub mod process;
pub mod protocol;
pub mod pty;
pub mod security;
pub mod slip;

pub use board::{BoardConfig, BoardError, LineStats, SimBoard};
pub use chip::{Chip, Crystal, FlashSize, MacAddress, Psram, Revision};
pub use efuse::{EfuseError, EfuseImage, EfuseSetting};
pub use faults::{FaultSpec, FaultSpecError};
pub use loader::CommandRecord;
pub use pacing::{FlashTimings, PageProgramTime};
pub use process::SimProcess;
pub use protocol::Opcode;
pub use security::Security;

/// A board configuration that cannot be simulated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// Not one of the simulated chips.
    #[error(
        "unknown chip `{0}` (expected esp32, esp32s2, esp32s3, esp32c2, esp32c3, esp32c5, \
         esp32c6, esp32c61, esp32h2 or esp32p4)"
    )]
    UnknownChip(String),
    /// Not a flash size that exists.
    #[error("bad flash size `{0}` (expected a power of two from 1MB to 128MB)")]
    BadFlashSize(String),
    /// Not a PSRAM size.
    #[error("bad PSRAM size `{0}` (expected 2MB, 4MB or 8MB)")]
    BadPsram(String),
    /// The chip has no PSRAM variant.
    #[error("{chip} has no {psram} PSRAM variant")]
    PsramUnsupported {
        /// The chip.
        chip: Chip,
        /// The PSRAM asked for.
        psram: Psram,
    },
    /// Not a chip revision.
    #[error("bad chip revision `{0}` (expected MAJOR.MINOR, e.g. v1.2)")]
    BadRevision(String),
    /// The revision does not fit the chip's eFuse fields.
    #[error("{chip} has no revision {revision} (its eFuses cannot encode it)")]
    RevisionUnsupported {
        /// The chip.
        chip: Chip,
        /// The revision asked for.
        revision: Revision,
    },
    /// Not a crystal frequency.
    #[error("bad crystal frequency `{0}` (expected MHz, e.g. 26MHz or 40MHz)")]
    BadCrystal(String),
    /// The chip is not sold with this crystal.
    #[error("{chip} has no {crystal} crystal variant (it takes {choices})", choices = crystal_choices(*chip))]
    CrystalUnsupported {
        /// The chip.
        chip: Chip,
        /// The crystal asked for.
        crystal: Crystal,
    },
    /// The ESP32 ROM has no Secure Download Mode.
    #[error("{0} has no Secure Download Mode (leave out --secure-download)")]
    NoSecureDownloadMode(Chip),
    /// ESP32 Secure Boot V2 exists from revision v3.0.
    #[error("esp32 {0} has no Secure Boot V2 (it needs revision v3.0 or later)")]
    SecureBootNeedsV3(Revision),
    /// Secure Boot key digests on a chip without key purposes, or too many.
    #[error(
        "{chip} cannot hold {count} Secure Boot key digests (ESP32-S2, S3, C3, C6, H2: up to 3)"
    )]
    SecureBootDigests {
        /// The chip.
        chip: Chip,
        /// Digests asked for.
        count: usize,
    },
    /// Not a page program time.
    #[error("bad page program time `{0}` (expected e.g. 400us or 0.7ms, at most 3ms)")]
    BadPageProgram(String),
    /// Not a MAC address.
    #[error("bad MAC address `{0}` (expected AA:BB:CC:DD:EE:FF)")]
    BadMac(String),
    /// Initial content larger than the flash.
    #[error("initial content of {content} bytes does not fit a {flash}-byte flash")]
    ContentTooLarge {
        /// Content length.
        content: usize,
        /// Flash size.
        flash: u32,
    },
}

fn crystal_choices(chip: Chip) -> String {
    chip.crystals()
        .map(|c| c.to_string())
        .collect::<Vec<_>>()
        .join(" or ")
}
