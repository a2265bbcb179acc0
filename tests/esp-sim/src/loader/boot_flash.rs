//! The flash as the booting chip reads it: through the flash cache, which decrypts what it
//! reads when flash encryption is on; and the checks the ROM and the bootloader make of an
//! image before they run it (its checksum and, where appended, its SHA-256).

use std::borrow::Cow;
use std::ops::Range;

use sha2::{Digest, Sha256};

use crate::crypt::FlashKey;

/// Flash encryption as the eFuses set it at reset.
#[derive(Debug, Clone)]
pub(crate) struct Encryption {
    /// The key the flash cache decrypts with.
    pub key: FlashKey,
    /// Plaintext flashes left: unset crypt counter bits / 2, 0 once the counter is
    /// write-protected.
    pub flashes_left: u32,
    /// Release mode: the crypt counter is write-protected.
    pub release: bool,
}

/// Decryption works on whole XTS units (128 bytes), which also holds the ESP32's 16.
const UNIT: usize = 0x80;

/// The flash seen through the cache: decrypted range by range as the boot reads it.
pub(crate) struct BootFlash<'a> {
    bytes: Cow<'a, [u8]>,
    key: Option<&'a FlashKey>,
    revealed: Vec<Range<usize>>,
}

impl<'a> BootFlash<'a> {
    pub fn new(raw: &'a [u8], encryption: Option<&'a Encryption>) -> Self {
        BootFlash {
            bytes: Cow::Borrowed(raw),
            key: encryption.map(|e| &e.key),
            revealed: Vec::new(),
        }
    }

    /// Decrypts `len` bytes from `at` (widened to whole units), once.
    pub fn reveal(&mut self, at: usize, len: usize) {
        let Some(key) = self.key else { return };
        let start = at - at % UNIT;
        let end = (at + len).next_multiple_of(UNIT).min(self.bytes.len());
        if start >= end
            || self
                .revealed
                .iter()
                .any(|r| r.contains(&start) && r.end >= end)
        {
            return;
        }
        let bytes = self.bytes.to_mut();
        key.decrypt(start as u32, &mut bytes[start..end]);
        self.revealed.push(start..end);
    }

    /// What the cache shows (decrypted where revealed).
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }
}

/// Why an image whose header and segments parse is not run.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Corrupt {
    /// The XOR checksum of the segment data does not match.
    Checksum { calculated: u8, stored: u8 },
    /// The appended SHA-256 does not match.
    Hash,
}

/// Checks the image at `at` whose segment data end at `end` and take `data` ranges: the
/// checksum byte that closes the 16-byte padding, and the SHA-256 after it when the header's
/// `hash_appended` byte is 1.
pub(crate) fn verify(flash: &[u8], at: usize, data: &[Range<usize>]) -> Result<(), Corrupt> {
    let end = data.last().map_or(at + 24, |r| r.end);
    let pos = at + (end - at + 1).next_multiple_of(16) - 1;
    let stored = flash.get(pos).copied().unwrap_or(0xFF);
    let calculated = data
        .iter()
        .flat_map(|r| &flash[r.clone()])
        .fold(0xEF, |acc, b| acc ^ b);
    if calculated != stored {
        return Err(Corrupt::Checksum { calculated, stored });
    }
    if flash.get(at + 23) == Some(&1) {
        let digest = Sha256::digest(&flash[at..=pos]);
        if flash.get(pos + 1..pos + 33) != Some(&digest[..]) {
            return Err(Corrupt::Hash);
        }
    }
    Ok(())
}
