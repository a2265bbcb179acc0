//! ESP images with realistic contents: valid headers, checksums, appended SHA-256 and, for apps,
//! an `esp_app_desc_t`; payloads that compress about as well as real firmware does.

use ::firmware::chip::Chip;
use ::firmware::esp_image::{
    APP_DESC_MAGIC, FlashMode, IMAGE_MAGIC, flash_freq_code, flash_size_code,
};
use sha2::{Digest, Sha256};

/// Flash settings written into an image header.
#[derive(Debug, Clone, Copy)]
pub struct HeaderFlash {
    /// Flash mode (byte 2).
    pub mode: FlashMode,
    /// Frequency as ESP-IDF spells it (`80m`, `48m` on the H2).
    pub freq: &'static str,
    /// Flash size in bytes.
    pub size: u64,
}

impl HeaderFlash {
    /// DIO at the chip's usual frequency, `size` bytes.
    pub fn dio(chip: Chip, size: u64) -> HeaderFlash {
        HeaderFlash {
            mode: FlashMode::Dio,
            freq: default_freq(chip),
            size,
        }
    }
}

/// The flash frequency ESP-IDF configures by default for `chip`.
pub fn default_freq(chip: Chip) -> &'static str {
    match chip {
        Chip::Esp32h2 => "48m",
        Chip::Esp32c2 => "60m",
        Chip::Esp32 => "40m",
        _ => "80m",
    }
}

/// A small deterministic generator (SplitMix64).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// `len` bytes that zlib compresses to about 66 %, like Xtensa/RISC-V firmware: words
/// drawn from a small vocabulary of "instructions", mixed with unique constants.
pub fn code_like(len: usize, seed: u64) -> Vec<u8> {
    let mut rng = Rng::new(seed);
    let vocabulary: Vec<u32> = (0..512).map(|_| rng.next_u64() as u32).collect();
    let mut out = Vec::with_capacity(len + 4);
    while out.len() < len {
        let r = rng.next_u64();
        let word = if r % 100 < 30 {
            (r >> 32) as u32
        } else {
            vocabulary[((r >> 8) % vocabulary.len() as u64) as usize]
        };
        out.extend_from_slice(&word.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Assembles an image from segments (`load address`, data).
pub fn image(
    chip: Chip,
    flash: HeaderFlash,
    entry: u32,
    segments: &[(u32, Vec<u8>)],
    hash_appended: bool,
) -> Vec<u8> {
    let freq = flash_freq_code(chip, flash.freq).expect("frequency valid for the chip");
    let size = flash_size_code(flash.size).expect("flash size encodable");
    let mut v = vec![
        IMAGE_MAGIC,
        segments.len() as u8,
        flash.mode.code(),
        (size << 4) | freq,
    ];
    v.extend_from_slice(&entry.to_le_bytes());
    v.extend_from_slice(&[0xEE, 0, 0, 0]);
    v.extend_from_slice(&chip.image_chip_id().to_le_bytes());
    v.push(0); // legacy minimum revision
    v.extend_from_slice(&0u16.to_le_bytes()); // minimum revision, full
    v.extend_from_slice(&399u16.to_le_bytes()); // maximum revision, full
    v.extend_from_slice(&[0; 4]);
    v.push(u8::from(hash_appended));
    let mut checksum = 0xEFu8;
    for (addr, data) in segments {
        assert!(data.len() % 4 == 0, "segment lengths are word multiples");
        v.extend_from_slice(&addr.to_le_bytes());
        v.extend_from_slice(&(data.len() as u32).to_le_bytes());
        v.extend_from_slice(data);
        checksum = data.iter().fold(checksum, |c, b| c ^ b);
    }
    while v.len() % 16 != 15 {
        v.push(0);
    }
    v.push(checksum);
    if hash_appended {
        let digest = Sha256::digest(&v);
        v.extend_from_slice(&digest);
    }
    v
}

/// Rewrites the chip revision range of a valid image (`min_rev_full`, `max_rev_full`, as
/// `major * 100 + minor`) and its appended SHA-256, as ESP-IDF writes them for
/// `CONFIG_ESP_REV_MIN_FULL` / `CONFIG_ESP_REV_MAX_FULL`.
pub fn set_revision_range(image: &mut [u8], min_full: u16, max_full: u16) {
    let info = ::firmware::esp_image::parse(image).expect("a valid image");
    image[15..17].copy_from_slice(&min_full.to_le_bytes());
    image[17..19].copy_from_slice(&max_full.to_le_bytes());
    if info.hash_appended {
        let digest = Sha256::digest(&image[..info.data_len]);
        image[info.data_len..info.data_len + 32].copy_from_slice(&digest);
    }
}

fn fixed_str<const N: usize>(s: &str) -> [u8; N] {
    let mut out = [0u8; N];
    let n = s.len().min(N - 1);
    out[..n].copy_from_slice(&s.as_bytes()[..n]);
    out
}

/// The 256-byte `esp_app_desc_t`.
pub fn app_descriptor(project: &str, version: &str) -> Vec<u8> {
    let mut d = Vec::with_capacity(256);
    d.extend_from_slice(&APP_DESC_MAGIC.to_le_bytes());
    d.extend_from_slice(&[0; 12]); // secure_version, reserved
    d.extend_from_slice(&fixed_str::<32>(version));
    d.extend_from_slice(&fixed_str::<32>(project));
    d.extend_from_slice(&fixed_str::<16>("00:00:00"));
    d.extend_from_slice(&fixed_str::<16>("Jan  1 2026"));
    d.extend_from_slice(&fixed_str::<32>("v5.4.1"));
    d.extend_from_slice(&Sha256::digest(project.as_bytes()));
    d.resize(256, 0);
    d
}

fn memory_map(chip: Chip) -> (u32, u32, u32) {
    // (DROM, IRAM, IROM) load addresses.
    match chip {
        Chip::Esp32 => (0x3F40_0020, 0x4008_0000, 0x400D_0020),
        Chip::Esp32s2 => (0x3F00_0020, 0x4002_2000, 0x4008_0020),
        Chip::Esp32s3 => (0x3C00_0020, 0x4037_0000, 0x4200_0020),
        Chip::Esp32c2 | Chip::Esp32c3 => (0x3C00_0020, 0x4038_0000, 0x4200_0020),
        Chip::Esp32c5 | Chip::Esp32c6 | Chip::Esp32c61 | Chip::Esp32h2 => {
            (0x4200_0020, 0x4080_0000, 0x4201_0020)
        }
        Chip::Esp32p4 => (0x4000_0020, 0x4FF0_0000, 0x4001_0020),
    }
}

/// An app image of about `len` bytes for `chip`, with an `esp_app_desc_t`.
pub fn app(
    chip: Chip,
    flash: HeaderFlash,
    project: &str,
    version: &str,
    len: usize,
    seed: u64,
) -> Vec<u8> {
    let (drom, iram, irom) = memory_map(chip);
    let body = len.saturating_sub(24 + 3 * 8 + 256 + 48) / 4 * 4;
    let rodata = body / 5 / 4 * 4;
    let iram_len = body / 10 / 4 * 4;
    let text = body - rodata - iram_len;
    let mut first = app_descriptor(project, version);
    first.extend_from_slice(&code_like(rodata, seed));
    let segments = [
        (drom, first),
        (iram, code_like(iram_len, seed ^ 1)),
        (irom, code_like(text, seed ^ 2)),
    ];
    image(chip, flash, iram, &segments, true)
}

/// A second-stage bootloader image of about 20 KiB for `chip`.
pub fn bootloader(chip: Chip, flash: HeaderFlash, seed: u64) -> Vec<u8> {
    let (_, iram, _) = memory_map(chip);
    let segments = [
        (iram + 0x1_0000, code_like(0x1400, seed ^ 0xB0)),
        (iram + 0x2_0000, code_like(0x3800, seed ^ 0xB1)),
    ];
    image(chip, flash, iram + 0x2_0000, &segments, true)
}

/// `ota_data_initial.bin`: two erased OTA select sectors.
pub fn ota_data_initial() -> Vec<u8> {
    vec![0xFF; 0x2000]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_images_are_valid() {
        for chip in Chip::ALL {
            let flash = HeaderFlash::dio(chip, 4 << 20);
            let app = app(chip, flash, "demo", "1.2.3", 200_000, 1);
            let info = ::firmware::esp_image::parse(&app).unwrap();
            assert_eq!(info.chip(), Some(chip));
            let desc = ::firmware::esp_image::app_descriptor(&app).unwrap();
            assert_eq!(
                (desc.project_name.as_str(), desc.version.as_str()),
                ("demo", "1.2.3")
            );
            let boot = bootloader(chip, flash, 1);
            assert_eq!(
                ::firmware::esp_image::parse(&boot).unwrap().chip(),
                Some(chip)
            );
            assert!(::firmware::esp_image::app_descriptor(&boot).is_none());
        }
    }
}
