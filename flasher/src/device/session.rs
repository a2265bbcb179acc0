//! One connection to a board, for one attempt: what each phase of the attempt works on.

use espflash::flasher::Flasher;
use espflash::target::Chip as EspChip;
use md5::{Digest, Md5};
use serialport::UsbPortInfo;

use crate::port::Link;
use firmware::chip::{Chip, TargetName};

use super::failure::{self, Failure};
use super::options::Options;

/// A board connected through espflash, with what the phases need to know about it: the port
/// it is on, the target asked for, the options and console. The phases are methods in their
/// modules: [`connect`](super::connect), [`identify`](super::identify),
/// [`write`](mod@super::write).
pub(super) struct Session<'a> {
    /// espflash's flasher, stub loaded (unless `--before no-reset-no-sync`).
    pub(super) flasher: Flasher,
    /// Whether espflash's stub runs (not with `--before no-reset-no-sync`, in Secure Download
    /// Mode, or on an ESP32-S3 under Secure Boot, whose ROM runs no RAM code).
    pub(super) stub: bool,
    /// The port as opened: the tty, its USB identity, its network bridge.
    pub(super) link: Link,
    /// The USB ids espflash was given (for the reset after writing).
    pub(super) usb: UsbPortInfo,
    /// The `--port` the board is on, for messages.
    pub(super) port: &'a str,
    /// The `--chip` target.
    pub(super) target: &'a TargetName,
    /// How to talk to the board.
    pub(super) opts: &'a Options,
}

impl Session<'_> {
    /// The chip the target asks for, as espflash names it.
    pub(super) fn chip(&self) -> EspChip {
        esp_chip(self.target.chip())
    }

    /// The board's MD5 of `len` bytes at `offset` (the stub finishes pending writes first); a
    /// failure is one of the line while `doing`.
    pub(super) fn board_md5(
        &mut self,
        offset: u32,
        len: u32,
        doing: &'static str,
    ) -> Result<u128, Failure> {
        self.flasher
            .checksum_md5(offset, len)
            .map_err(failure::line(self.port, doing))
    }
}

/// The MD5 of `bytes` as espflash returns the board's digests.
pub(super) fn md5_value(bytes: &[u8]) -> u128 {
    u128::from_be_bytes(Md5::digest(bytes).into())
}

/// `chip` as espflash names it.
pub(super) fn esp_chip(chip: Chip) -> EspChip {
    match chip {
        Chip::Esp32 => EspChip::Esp32,
        Chip::Esp32s2 => EspChip::Esp32s2,
        Chip::Esp32s3 => EspChip::Esp32s3,
        Chip::Esp32c2 => EspChip::Esp32c2,
        Chip::Esp32c3 => EspChip::Esp32c3,
        Chip::Esp32c5 => EspChip::Esp32c5,
        Chip::Esp32c6 => EspChip::Esp32c6,
        Chip::Esp32c61 => EspChip::Esp32c61,
        Chip::Esp32h2 => EspChip::Esp32h2,
        Chip::Esp32p4 => EspChip::Esp32p4,
    }
}
