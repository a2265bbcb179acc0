//! ESP firmware images (`bootloader.bin`, the app): header, checksum, appended digest,
//! the application descriptor, and the header patching esptool does at flash time.
//!
//! Layout: a 24-byte header (magic `0xE9`, segment count, flash mode, flash size and frequency,
//! entry point, extended header with the chip id and the "hash appended" flag), then segments
//! (`load_addr`, `length`, data), zero padding to 15 mod 16, a checksum byte (`0xEF` XOR every
//! segment byte), and, when the flag is set, the SHA-256 of everything before it.

use sha2::{Digest, Sha256};

use crate::chip::Chip;

/// First byte of every ESP image.
pub const IMAGE_MAGIC: u8 = 0xE9;
/// First word of `esp_app_desc_t`, at the start of an app's first segment.
pub const APP_DESC_MAGIC: u32 = 0xABCD_5432;
/// Length of the common plus extended header.
pub const HEADER_LEN: usize = 24;
const SEGMENT_HEADER_LEN: usize = 8;
const MAX_SEGMENTS: u8 = 16;
const CHECKSUM_SEED: u8 = 0xEF;
const SECURE_BOOT_V2_SIGNATURE_MAGIC: u8 = 0xE7;
/// Signature block version of RSA-PSS 3072 (espsecure `SIG_BLOCK_VERSION_RSA`).
const SIGNATURE_VERSION_RSA: u8 = 0x02;
/// Length of one signature block; a signature sector holds up to three.
const SIGNATURE_BLOCK_LEN: usize = 1216;
/// Where an RSA block's public key (n, e, rinv, m') lies: the bytes whose SHA-256 is the key
/// digest burnt into a board (espsecure `_digest_sbv2_public_key`).
const RSA_KEY_RANGE: std::ops::Range<usize> = 36..36 + 384 + 4 + 384 + 4;

/// Why bytes are not a valid ESP image.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImageError {
    /// The first byte is not `0xE9`.
    #[error("not an ESP image (first byte {0:#04x}, expected 0xe9)")]
    BadMagic(u8),
    /// The file ends inside the header, a segment, the checksum or the digest.
    #[error("truncated ESP image ({len} bytes, {needed} needed)")]
    Truncated {
        /// Length of the file.
        len: usize,
        /// Length the header and segments call for.
        needed: usize,
    },
    /// More segments than any ESP image may have.
    #[error("ESP image claims {0} segments (at most 16)")]
    TooManySegments(u8),
    /// The checksum byte does not match the segment data.
    #[error("ESP image checksum mismatch (stored {stored:#04x}, computed {computed:#04x})")]
    Checksum {
        /// Checksum byte in the file.
        stored: u8,
        /// Checksum of the segment data.
        computed: u8,
    },
    /// The appended SHA-256 does not match the image.
    #[error("ESP image appended SHA-256 does not match its contents")]
    Digest,
    /// A flash size the header cannot encode.
    #[error(
        "flash size {0} bytes cannot be written into an image header (1 MB to 128 MB, powers of two)"
    )]
    FlashSize(u64),
    /// The image carries a Secure Boot signature, which covers the header.
    #[error("ESP image is signed (Secure Boot): its header cannot be changed")]
    Signed,
}

/// SPI flash mode as the image header encodes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FlashMode {
    /// Quad I/O.
    Qio,
    /// Quad output.
    Qout,
    /// Dual I/O.
    Dio,
    /// Dual output.
    Dout,
}

impl FlashMode {
    /// Header byte 2.
    pub fn code(self) -> u8 {
        match self {
            FlashMode::Qio => 0,
            FlashMode::Qout => 1,
            FlashMode::Dio => 2,
            FlashMode::Dout => 3,
        }
    }

    /// Decodes header byte 2.
    pub fn from_code(code: u8) -> Option<FlashMode> {
        [
            FlashMode::Qio,
            FlashMode::Qout,
            FlashMode::Dio,
            FlashMode::Dout,
        ]
        .into_iter()
        .find(|m| m.code() == code)
    }

    /// Parses the sdkconfig / esptool spelling (`dio`).
    pub fn parse(s: &str) -> Option<FlashMode> {
        match s.to_ascii_lowercase().as_str() {
            "qio" => Some(FlashMode::Qio),
            "qout" => Some(FlashMode::Qout),
            "dio" => Some(FlashMode::Dio),
            "dout" => Some(FlashMode::Dout),
            _ => None,
        }
    }
}

/// The header nibble for a flash size in bytes (1 MB = 0 ... 128 MB = 7).
pub fn flash_size_code(bytes: u64) -> Option<u8> {
    (0..8u8).find(|&code| (1u64 << 20) << code == bytes)
}

/// The flash size in bytes a header nibble stands for.
pub fn flash_size_from_code(code: u8) -> Option<u64> {
    (code < 8).then(|| (1u64 << 20) << code)
}

/// The header nibble for a flash frequency (`80m`) on `chip`, as esptool's targets encode it
/// (`FLASH_FREQUENCY`, inherited from the ESP32 table where a target does not override it).
pub fn flash_freq_code(chip: Chip, freq: &str) -> Option<u8> {
    let freq = freq.to_ascii_lowercase();
    let table: &[(&str, u8)] = match chip {
        Chip::Esp32 | Chip::Esp32s2 | Chip::Esp32c3 | Chip::Esp32p4 => {
            &[("80m", 0xF), ("40m", 0x0), ("26m", 0x1), ("20m", 0x2)]
        }
        Chip::Esp32s3 => &[("120m", 0xF), ("80m", 0xF), ("40m", 0x0), ("20m", 0x2)],
        Chip::Esp32c2 => &[("60m", 0xF), ("30m", 0x0), ("20m", 0x1), ("15m", 0x2)],
        Chip::Esp32c5 | Chip::Esp32c61 => &[("80m", 0xF), ("40m", 0x0), ("20m", 0x2)],
        Chip::Esp32c6 => &[("80m", 0x0), ("40m", 0x0), ("20m", 0x2)],
        Chip::Esp32h2 => &[("48m", 0xF), ("24m", 0x0), ("16m", 0x1), ("12m", 0x2)],
    };
    table.iter().find(|(f, _)| *f == freq).map(|&(_, c)| c)
}

/// What the header and trailer of a valid image say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageInfo {
    /// Number of segments.
    pub segment_count: u8,
    /// Header byte 2.
    pub flash_mode: u8,
    /// Header byte 3: size in the high nibble, frequency in the low one.
    pub flash_size_freq: u8,
    /// Entry point.
    pub entry: u32,
    /// Chip id from the extended header.
    pub chip_id: u16,
    /// Byte 14: the legacy minimum chip revision (the major revision, the minor one on the
    /// ESP32-C3).
    pub min_rev: u8,
    /// Bytes 15..17: the minimum chip revision as `major * 100 + minor`.
    pub min_rev_full: u16,
    /// Bytes 17..19: the maximum chip revision as `major * 100 + minor`; 0 (images from before
    /// the field existed) and 0xFFFF mean no limit.
    pub max_rev_full: u16,
    /// Whether a SHA-256 of the image follows the checksum.
    pub hash_appended: bool,
    /// Length up to and including the checksum byte (what the digest covers).
    pub data_len: usize,
    /// Whether a Secure Boot V2 signature block follows the image.
    pub signed: bool,
}

impl ImageInfo {
    /// The chip the image was built for, if it is a supported one.
    pub fn chip(&self) -> Option<Chip> {
        Chip::from_image_chip_id(self.chip_id)
    }

    /// The flash size (bytes) the header declares.
    pub fn flash_size(&self) -> Option<u64> {
        flash_size_from_code(self.flash_size_freq >> 4)
    }
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Parses and checks an image: magic, segment bounds, checksum and, when present, the digest.
pub fn parse(bytes: &[u8]) -> Result<ImageInfo, ImageError> {
    let truncated = |needed: usize| ImageError::Truncated {
        len: bytes.len(),
        needed,
    };
    let first = *bytes.first().ok_or_else(|| truncated(HEADER_LEN))?;
    if first != IMAGE_MAGIC {
        return Err(ImageError::BadMagic(first));
    }
    if bytes.len() < HEADER_LEN {
        return Err(truncated(HEADER_LEN));
    }
    let segment_count = bytes[1];
    if segment_count > MAX_SEGMENTS {
        return Err(ImageError::TooManySegments(segment_count));
    }
    let mut pos = HEADER_LEN;
    let mut checksum = CHECKSUM_SEED;
    for _ in 0..segment_count {
        let data_start = pos + SEGMENT_HEADER_LEN;
        if bytes.len() < data_start {
            return Err(truncated(data_start));
        }
        let len = u32_at(bytes, pos + 4) as usize;
        let end = data_start
            .checked_add(len)
            .filter(|&e| e <= bytes.len())
            .ok_or_else(|| truncated(data_start.saturating_add(len)))?;
        checksum = bytes[data_start..end].iter().fold(checksum, |c, b| c ^ b);
        pos = end;
    }
    let checksum_at = pos + (15 - pos % 16);
    let data_len = checksum_at + 1;
    let stored = *bytes.get(checksum_at).ok_or_else(|| truncated(data_len))?;
    if stored != checksum {
        return Err(ImageError::Checksum {
            stored,
            computed: checksum,
        });
    }
    let hash_appended = bytes[23] == 1;
    let mut end = data_len;
    if hash_appended {
        end += 32;
        let digest = bytes.get(data_len..end).ok_or_else(|| truncated(end))?;
        if Sha256::digest(&bytes[..data_len]).as_slice() != digest {
            return Err(ImageError::Digest);
        }
    }
    let signed = signature_sector(bytes, end).is_some();
    Ok(ImageInfo {
        segment_count,
        flash_mode: bytes[2],
        flash_size_freq: bytes[3],
        entry: u32_at(bytes, 4),
        chip_id: u16::from_le_bytes([bytes[12], bytes[13]]),
        min_rev: bytes[14],
        min_rev_full: u16::from_le_bytes([bytes[15], bytes[16]]),
        max_rev_full: u16::from_le_bytes([bytes[17], bytes[18]]),
        hash_appended,
        data_len,
        signed,
    })
}

/// Where the Secure Boot V2 signature sector of an image ending at `end` starts: the next
/// 4 KiB boundary, or `end` itself.
fn signature_sector(bytes: &[u8], end: usize) -> Option<usize> {
    [end.div_ceil(4096) * 4096, end]
        .into_iter()
        .find(|&at| bytes.get(at) == Some(&SECURE_BOOT_V2_SIGNATURE_MAGIC))
}

/// The public key digests of an image's Secure Boot V2 RSA signature blocks, in order: the
/// SHA-256 over each block's public key, as `espsecure digest-sbv2-public-key` computes it and
/// ESP-IDF burns it into a SECURE_BOOT_DIGESTn key block. ECDSA blocks are left out; an
/// unsigned image has none.
pub fn signature_key_digests(bytes: &[u8]) -> Result<Vec<[u8; 32]>, ImageError> {
    let info = parse(bytes)?;
    let end = info.data_len + if info.hash_appended { 32 } else { 0 };
    let Some(sector) = signature_sector(bytes, end) else {
        return Ok(Vec::new());
    };
    let digests = bytes[sector..]
        .chunks_exact(SIGNATURE_BLOCK_LEN)
        .take(3)
        .take_while(|block| block[0] == SECURE_BOOT_V2_SIGNATURE_MAGIC)
        .filter(|block| block[1] == SIGNATURE_VERSION_RSA)
        .map(|block| Sha256::digest(&block[RSA_KEY_RANGE]).into())
        .collect();
    Ok(digests)
}

/// Signature block version of ECDSA (espsecure `SIG_BLOCK_VERSION_ECDSA`).
const SIGNATURE_VERSION_ECDSA: u8 = 0x03;

/// The public key digests of all an image's Secure Boot V2 signature blocks, RSA and ECDSA, in
/// order: for an ECDSA block the SHA-256 over its curve id and point (`<B64s`, `<B96s` for
/// P-384), as `espsecure digest-sbv2-public-key` computes it. An unsigned image has none.
pub fn signing_key_digests(bytes: &[u8]) -> Result<Vec<[u8; 32]>, ImageError> {
    let info = parse(bytes)?;
    let end = info.data_len + if info.hash_appended { 32 } else { 0 };
    let Some(sector) = signature_sector(bytes, end) else {
        return Ok(Vec::new());
    };
    let digests = bytes[sector..]
        .chunks_exact(SIGNATURE_BLOCK_LEN)
        .take(3)
        .take_while(|block| block[0] == SECURE_BOOT_V2_SIGNATURE_MAGIC)
        .filter_map(|block| match block[1] {
            SIGNATURE_VERSION_RSA => Some(Sha256::digest(&block[RSA_KEY_RANGE]).into()),
            // SHA-256 blocks (P-192, P-256) carry a 32-byte image digest, SHA-384 ones (P-384)
            // a 48-byte one, before the curve id.
            SIGNATURE_VERSION_ECDSA if block[2] == 0 => {
                Some(Sha256::digest(&block[36..36 + 65]).into())
            }
            SIGNATURE_VERSION_ECDSA => Some(Sha256::digest(&block[52..52 + 97]).into()),
            _ => None,
        })
        .collect();
    Ok(digests)
}

/// The header fields a flasher may rewrite in the bootloader, as esptool's
/// `--flash_mode/--flash_freq/--flash_size` do. `None` keeps the image's value.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HeaderPatch {
    /// New flash mode (header byte 2).
    pub mode: Option<FlashMode>,
    /// New frequency nibble (low nibble of byte 3).
    pub freq_code: Option<u8>,
    /// New size in bytes (high nibble of byte 3).
    pub size: Option<u64>,
}

/// Rewrites header bytes 2-3 of a valid image and, when it carries one, recomputes the appended
/// SHA-256 exactly as esptool does. Returns whether anything changed.
///
/// Refuses signed images, whose signature covers the header.
pub fn patch_header(image: &mut [u8], patch: HeaderPatch) -> Result<bool, ImageError> {
    let info = parse(image)?;
    let mut byte2 = image[2];
    let mut byte3 = image[3];
    if let Some(mode) = patch.mode {
        byte2 = mode.code();
    }
    if let Some(freq) = patch.freq_code {
        byte3 = (byte3 & 0xF0) | (freq & 0x0F);
    }
    if let Some(size) = patch.size {
        let code = flash_size_code(size).ok_or(ImageError::FlashSize(size))?;
        byte3 = (byte3 & 0x0F) | (code << 4);
    }
    if (byte2, byte3) == (image[2], image[3]) {
        return Ok(false);
    }
    if info.signed {
        return Err(ImageError::Signed);
    }
    image[2] = byte2;
    image[3] = byte3;
    if info.hash_appended {
        let digest = Sha256::digest(&image[..info.data_len]);
        image[info.data_len..info.data_len + 32].copy_from_slice(&digest);
    }
    Ok(true)
}

/// The `esp_app_desc_t` an ESP-IDF app carries at the start of its first segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppDescriptor {
    /// `PROJECT_VER` (the app version).
    pub version: String,
    /// `PROJECT_NAME`.
    pub project_name: String,
    /// Build time.
    pub time: String,
    /// Build date.
    pub date: String,
    /// ESP-IDF version the app was built with.
    pub idf_version: String,
}

fn c_string(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

/// Reads the application descriptor of an app image, if it has one.
pub fn app_descriptor(image: &[u8]) -> Option<AppDescriptor> {
    const AT: usize = HEADER_LEN + SEGMENT_HEADER_LEN;
    let desc = image.get(AT..AT + 176)?;
    if image.get(1).is_none_or(|&n| n == 0) || u32_at(desc, 0) != APP_DESC_MAGIC {
        return None;
    }
    Some(AppDescriptor {
        version: c_string(&desc[16..48]),
        project_name: c_string(&desc[48..80]),
        time: c_string(&desc[80..96]),
        date: c_string(&desc[96..112]),
        idf_version: c_string(&desc[112..144]),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal valid image: one segment of `data`, hash appended.
    fn image(chip_id: u16, data: &[u8]) -> Vec<u8> {
        let mut v = vec![IMAGE_MAGIC, 1, 2, 0x20, 0, 0, 0, 0x40, 0xEE, 0, 0, 0];
        v.extend_from_slice(&chip_id.to_le_bytes());
        v.extend_from_slice(&[0; 9]);
        v.push(1);
        v.extend_from_slice(&0x3FC8_0000u32.to_le_bytes());
        v.extend_from_slice(&(data.len() as u32).to_le_bytes());
        v.extend_from_slice(data);
        let checksum = data.iter().fold(CHECKSUM_SEED, |c, b| c ^ b);
        while v.len() % 16 != 15 {
            v.push(0);
        }
        v.push(checksum);
        let digest = Sha256::digest(&v);
        v.extend_from_slice(&digest);
        v
    }

    #[test]
    fn parses_and_checks_a_valid_image() {
        let img = image(9, &[1, 2, 3, 4, 5]);
        let info = parse(&img).unwrap();
        assert_eq!(info.chip(), Some(Chip::Esp32s3));
        assert_eq!(info.flash_size(), Some(4 << 20));
        assert!(info.hash_appended);
        assert_eq!(info.data_len + 32, img.len());
    }

    #[test]
    fn rejects_corruption() {
        let mut img = image(9, &[1, 2, 3, 4, 5]);
        img[33] ^= 1;
        assert!(matches!(parse(&img), Err(ImageError::Checksum { .. })));
        let mut img = image(9, &[1, 2, 3, 4, 5]);
        img[4] ^= 1;
        assert_eq!(parse(&img), Err(ImageError::Digest));
        assert_eq!(parse(&[0x00; 40]), Err(ImageError::BadMagic(0)));
        assert!(matches!(
            parse(&img[..20]),
            Err(ImageError::Truncated { .. })
        ));
        assert!(matches!(parse(&[]), Err(ImageError::Truncated { .. })));
    }

    #[test]
    fn patching_the_size_recomputes_the_digest() {
        let mut img = image(0, &[7; 64]);
        let patch = HeaderPatch {
            size: Some(16 << 20),
            ..HeaderPatch::default()
        };
        assert!(patch_header(&mut img, patch).unwrap());
        let info = parse(&img).unwrap();
        assert_eq!(info.flash_size(), Some(16 << 20));
        assert!(!patch_header(&mut img, patch).unwrap());
    }

    #[test]
    fn size_codes() {
        assert_eq!(flash_size_code(4 << 20), Some(2));
        assert_eq!(flash_size_code(128 << 20), Some(7));
        assert_eq!(flash_size_code(3 << 20), None);
        assert_eq!(flash_freq_code(Chip::Esp32, "80m"), Some(0xF));
        assert_eq!(flash_freq_code(Chip::Esp32h2, "80m"), None);
    }
}
