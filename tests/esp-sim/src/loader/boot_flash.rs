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
    /// Which units are decrypted already.
    revealed: Vec<bool>,
}

impl<'a> BootFlash<'a> {
    pub fn new(raw: &'a [u8], encryption: Option<&'a Encryption>) -> Self {
        BootFlash {
            bytes: Cow::Borrowed(raw),
            key: encryption.map(|e| &e.key),
            revealed: vec![false; raw.len().div_ceil(UNIT)],
        }
    }

    /// Decrypts `len` bytes from `at` (widened to whole units), each unit once.
    pub fn reveal(&mut self, at: usize, len: usize) {
        let Some(key) = self.key else { return };
        let first = at / UNIT;
        let last = (at.saturating_add(len).div_ceil(UNIT)).min(self.revealed.len());
        let mut unit = first;
        while unit < last {
            if self.revealed[unit] {
                unit += 1;
                continue;
            }
            let run = self.revealed[unit..last]
                .iter()
                .position(|&done| done)
                .map_or(last, |n| unit + n);
            let range = unit * UNIT..(run * UNIT).min(self.bytes.len());
            key.decrypt(range.start as u32, &mut self.bytes.to_mut()[range]);
            self.revealed[unit..run].fill(true);
            unit = run;
        }
    }

    /// Decrypts the image at `at` as far as its segments reach (its checksum and digest too),
    /// at most `limit` bytes: the bootloader reads no more of an app partition than that.
    pub fn reveal_image(&mut self, at: usize, limit: usize) {
        let limit = limit.min(self.bytes.len().saturating_sub(at));
        let mut len = HEADER_READ.min(limit);
        loop {
            self.reveal(at, len);
            match image_reach(&self.bytes, at, at + len) {
                Some(end) if end - at > len && len < limit => {
                    len = (end - at + HEADER_READ).min(limit);
                }
                _ => return,
            }
        }
    }

    /// What the cache shows (decrypted where revealed).
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }
}

/// What the boot reads of an image at a time.
const HEADER_READ: usize = 0x1000;
/// The checksum's padding and the SHA-256 after the last segment.
const IMAGE_TAIL: usize = 16 + 32;

/// How far the image at `at` reaches as far as the bytes before `readable` tell: the end of the
/// segment header that lies beyond, or of the image's tail; `None` if it is not an image.
fn image_reach(flash: &[u8], at: usize, readable: usize) -> Option<usize> {
    if flash.get(at) != Some(&0xE9) {
        return None;
    }
    let segments = *flash.get(at + 1)?;
    let mut pos = at + 24;
    for _ in 0..segments {
        if pos + 8 > readable {
            return Some(pos + 8);
        }
        let len = u32::from_le_bytes(flash[pos + 4..pos + 8].try_into().ok()?) as usize;
        pos = pos.checked_add(8 + len)?;
    }
    Some(pos + IMAGE_TAIL)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn encryption() -> Encryption {
        Encryption {
            key: FlashKey::Xts128([7; 32]),
            flashes_left: 1,
            release: false,
        }
    }

    #[test]
    fn overlapping_reveals_decrypt_each_unit_once() {
        let raw: Vec<u8> = (0..0x400u32).map(|i| (i * 31) as u8).collect();
        let e = encryption();
        let mut once = BootFlash::new(&raw, Some(&e));
        once.reveal(0, 0x180);
        let mut twice = BootFlash::new(&raw, Some(&e));
        twice.reveal(0, 0x100);
        twice.reveal(0x80, 0x100);
        twice.reveal(0x10, 0x10);
        assert_eq!(once.bytes(), twice.bytes());
        assert_ne!(&once.bytes()[..0x180], &raw[..0x180]);
        assert_eq!(&once.bytes()[0x180..], &raw[0x180..], "the rest untouched");
    }

    #[test]
    fn an_image_is_revealed_as_far_as_its_segments_reach() {
        // Plaintext (no key): the reach of an image with two segments.
        let mut img = vec![0xE9, 2, 0, 0];
        img.resize(24, 0);
        for len in [0x20u32, 0x1800] {
            img.extend_from_slice(&0u32.to_le_bytes());
            img.extend_from_slice(&len.to_le_bytes());
            img.resize(img.len() + len as usize, 0);
        }
        let end = img.len();
        img.resize(0x4000, 0xFF);
        assert_eq!(image_reach(&img, 0, 0x1000), Some(end + IMAGE_TAIL));
        assert_eq!(image_reach(&img, 0, 30), Some(24 + 8));
        assert_eq!(image_reach(&img, 0, 40), Some(24 + 8 + 0x20 + 8));
        assert_eq!(image_reach(&[0xFF; 64], 0, 64), None);
    }
}
