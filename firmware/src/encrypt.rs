//! Flash encryption on the host: the bytes a board with flash encryption enabled must hold so
//! that its flash controller decrypts them to the plaintext image.
//!
//! A pure transform (key, scheme, flash address and plaintext in; ciphertext out), byte for byte
//! what `espsecure encrypt-flash-data` writes for the same key, address and chip:
//!
//! - [`Scheme::XtsAes128`] and [`Scheme::XtsAes256`]: AES-XTS over 128-byte data units whose
//!   tweak is the unit's flash address, each unit byte-reversed before and after (every chip
//!   after the ESP32; 256 only where the chip has it, [`Scheme::supported_by`]).
//! - [`Scheme::Esp32Aes`]: the ESP32's AES-256 with the key tweaked per 32-byte block by the
//!   flash address, the bits selected by the `FLASH_CRYPT_CONFIG` eFuse, each 16-byte block
//!   byte-reversed and run through AES *decryption*.
//!
//! Plaintext whose length is not a multiple of the scheme's write unit ([`Scheme::align`]) is
//! padded with `0xFF`, as esptool pads an image it writes encrypted; the result is that long.

use aes::cipher::{Array, BlockCipherDecrypt, BlockCipherEncrypt, KeyInit};
use aes::{Aes128, Aes256};

use crate::chip::Chip;

/// The default `FLASH_CRYPT_CONFIG` of an ESP32 (every address bit tweaks the key).
pub const DEFAULT_FLASH_CRYPT_CONFIG: u8 = 0xF;

/// A flash encryption scheme, as the chip's flash controller applies it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scheme {
    /// XTS-AES with a 256-bit key (two AES-128 keys): every chip after the ESP32.
    XtsAes128,
    /// XTS-AES with a 512-bit key (two AES-256 keys): ESP32-S2, -S3 and -P4.
    XtsAes256,
    /// The ESP32's AES-256 with an address-tweaked key.
    Esp32Aes {
        /// The `FLASH_CRYPT_CONFIG` eFuse: which key bits the address tweaks (4 bits).
        flash_crypt_config: u8,
    },
}

impl Scheme {
    /// The key length in bytes (what one eFuse key block, or two for XTS-AES-256, holds).
    pub fn key_len(self) -> usize {
        match self {
            Scheme::XtsAes128 | Scheme::Esp32Aes { .. } => 32,
            Scheme::XtsAes256 => 64,
        }
    }

    /// The unit encrypted data is written in, and plaintext padded to (esptool's
    /// `FLASH_ENCRYPTED_WRITE_ALIGN`): 32 bytes on the ESP32, 16 elsewhere.
    pub fn align(self) -> usize {
        match self {
            Scheme::Esp32Aes { .. } => 32,
            Scheme::XtsAes128 | Scheme::XtsAes256 => 16,
        }
    }

    /// Whether `chip`'s flash controller has this scheme.
    pub fn supported_by(self, chip: Chip) -> bool {
        match self {
            Scheme::Esp32Aes { .. } => chip == Chip::Esp32,
            Scheme::XtsAes128 => chip != Chip::Esp32,
            Scheme::XtsAes256 => matches!(chip, Chip::Esp32s2 | Chip::Esp32s3 | Chip::Esp32p4),
        }
    }

    /// The scheme's name as ESP-IDF's menuconfig and the security profile spell it.
    pub fn name(self) -> &'static str {
        match self {
            Scheme::XtsAes128 => "xts-aes-128",
            Scheme::XtsAes256 => "xts-aes-256",
            Scheme::Esp32Aes { .. } => "aes-256",
        }
    }
}

/// Why data could not be encrypted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncryptError {
    /// The key is not as long as the scheme needs.
    #[error("a {scheme} flash encryption key is {expected} bytes, this one is {actual}")]
    KeyLength {
        /// The scheme's name.
        scheme: &'static str,
        /// The length the scheme needs.
        expected: usize,
        /// The key's length.
        actual: usize,
    },
    /// The flash address is not on a write unit of the scheme.
    #[error(
        "flash address {address:#x} is not a multiple of {align}: encrypted data starts on a \
         {align}-byte boundary"
    )]
    Unaligned {
        /// The address asked for.
        address: u32,
        /// The scheme's unit.
        align: usize,
    },
    /// The data would run past the 32-bit flash address space.
    #[error("{len} bytes at {address:#x} run past the end of the flash address space")]
    TooLong {
        /// The address asked for.
        address: u32,
        /// The data's length.
        len: usize,
    },
    /// Ciphertext to decrypt is not a whole number of write units.
    #[error("encrypted data of {len} bytes is not a multiple of {align} bytes")]
    Partial {
        /// The data's length.
        len: usize,
        /// The scheme's unit.
        align: usize,
    },
}

/// A flash encryption key. Its bytes are wiped when it is dropped and never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Key(Vec<u8>);

impl Key {
    /// A key from its bytes, checked against the scheme's length.
    pub fn new(bytes: Vec<u8>, scheme: Scheme) -> Result<Key, EncryptError> {
        let key = Key(bytes);
        if key.0.len() != scheme.key_len() {
            return Err(EncryptError::KeyLength {
                scheme: scheme.name(),
                expected: scheme.key_len(),
                actual: key.0.len(),
            });
        }
        Ok(key)
    }

    /// The key's bytes, as they are burned into the eFuse key block(s) and as `espsecure`
    /// reads them from a key file.
    pub fn bytes(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Key({} bytes)", self.0.len())
    }
}

impl Drop for Key {
    fn drop(&mut self) {
        for b in self.0.iter_mut() {
            // SAFETY: `b` is a valid, aligned, exclusive reference into the key's buffer.
            unsafe { std::ptr::write_volatile(b, 0) };
        }
    }
}

/// `plain` as it must sit in flash at `address` under `scheme` and `key`, padded with `0xFF` to
/// the scheme's unit (see the module documentation).
pub fn encrypt(
    key: &Key,
    scheme: Scheme,
    address: u32,
    plain: &[u8],
) -> Result<Vec<u8>, EncryptError> {
    let mut data = plain.to_vec();
    data.resize(plain.len().next_multiple_of(scheme.align()), 0xFF);
    transform(key, scheme, address, &mut data, Direction::Encrypt)?;
    Ok(data)
}

/// The plaintext of `encrypted`, read from flash at `address` (what the board's flash
/// controller returns to a program reading it).
pub fn decrypt(
    key: &Key,
    scheme: Scheme,
    address: u32,
    encrypted: &[u8],
) -> Result<Vec<u8>, EncryptError> {
    if !encrypted.len().is_multiple_of(scheme.align()) {
        return Err(EncryptError::Partial {
            len: encrypted.len(),
            align: scheme.align(),
        });
    }
    let mut data = encrypted.to_vec();
    transform(key, scheme, address, &mut data, Direction::Decrypt)?;
    Ok(data)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Direction {
    Encrypt,
    Decrypt,
}

/// Checks the key and the range, then runs the scheme over `data` in place.
fn transform(
    key: &Key,
    scheme: Scheme,
    address: u32,
    data: &mut [u8],
    direction: Direction,
) -> Result<(), EncryptError> {
    if key.0.len() != scheme.key_len() {
        return Err(EncryptError::KeyLength {
            scheme: scheme.name(),
            expected: scheme.key_len(),
            actual: key.0.len(),
        });
    }
    if !(address as usize).is_multiple_of(scheme.align()) {
        return Err(EncryptError::Unaligned {
            address,
            align: scheme.align(),
        });
    }
    if u64::from(address) + data.len() as u64 > 1 << 32 {
        return Err(EncryptError::TooLong {
            address,
            len: data.len(),
        });
    }
    match scheme {
        Scheme::XtsAes128 => {
            let (k1, k2) = key.0.split_at(16);
            let data_cipher = Aes128::new(&Array::try_from(k1).expect("16-byte half"));
            let tweak_cipher = Aes128::new(&Array::try_from(k2).expect("16-byte half"));
            xts(&data_cipher, &tweak_cipher, address, data, direction);
        }
        Scheme::XtsAes256 => {
            let (k1, k2) = key.0.split_at(32);
            let data_cipher = Aes256::new(&Array::try_from(k1).expect("32-byte half"));
            let tweak_cipher = Aes256::new(&Array::try_from(k2).expect("32-byte half"));
            xts(&data_cipher, &tweak_cipher, address, data, direction);
        }
        Scheme::Esp32Aes { flash_crypt_config } => {
            esp32_aes(&key.0, flash_crypt_config, address, data, direction)
        }
    }
    Ok(())
}

/// The XTS data unit of Espressif's flash controllers: 1024 bits.
const XTS_UNIT: usize = 0x80;

/// AES-XTS as the flash controller applies it: the address space cut into 128-byte units, each
/// with the tweak `address & !0x7F` (little-endian), each unit byte-reversed before and after.
/// A range that starts or ends inside a unit is run as the whole unit, zero-filled around it.
fn xts<C: BlockCipherEncrypt + BlockCipherDecrypt<BlockSize = aes::cipher::consts::U16>>(
    data_cipher: &C,
    tweak_cipher: &impl BlockCipherEncrypt<BlockSize = aes::cipher::consts::U16>,
    address: u32,
    data: &mut [u8],
    direction: Direction,
) {
    let mut pos = 0usize;
    while pos < data.len() {
        let at = address as usize + pos;
        let unit_start = at & !(XTS_UNIT - 1);
        let skip = at - unit_start;
        let take = (XTS_UNIT - skip).min(data.len() - pos);
        let mut unit = [0u8; XTS_UNIT];
        unit[skip..skip + take].copy_from_slice(&data[pos..pos + take]);
        unit.reverse();
        xts_unit(
            data_cipher,
            tweak_cipher,
            unit_start as u32,
            &mut unit,
            direction,
        );
        unit.reverse();
        data[pos..pos + take].copy_from_slice(&unit[skip..skip + take]);
        pos += take;
    }
}

/// Standard XTS (IEEE 1619) over one whole data unit, the tweak being its flash address.
fn xts_unit<C: BlockCipherEncrypt + BlockCipherDecrypt<BlockSize = aes::cipher::consts::U16>>(
    data_cipher: &C,
    tweak_cipher: &impl BlockCipherEncrypt<BlockSize = aes::cipher::consts::U16>,
    unit_address: u32,
    unit: &mut [u8; XTS_UNIT],
    direction: Direction,
) {
    let mut tweak = Array::from([0u8; 16]);
    tweak[..4].copy_from_slice(&unit_address.to_le_bytes());
    tweak_cipher.encrypt_block(&mut tweak);
    for chunk in unit.chunks_exact_mut(16) {
        let mut block = Array::from([0u8; 16]);
        for i in 0..16 {
            block[i] = chunk[i] ^ tweak[i];
        }
        match direction {
            Direction::Encrypt => data_cipher.encrypt_block(&mut block),
            Direction::Decrypt => data_cipher.decrypt_block(&mut block),
        }
        for i in 0..16 {
            chunk[i] = block[i] ^ tweak[i];
        }
        double_tweak(&mut tweak);
    }
}

/// Multiplies the tweak by x in GF(2^128), little-endian as XTS defines it.
fn double_tweak(tweak: &mut [u8]) {
    let mut carry = 0u8;
    for b in tweak.iter_mut() {
        let next = *b >> 7;
        *b = (*b << 1) | carry;
        carry = next;
    }
    if carry != 0 {
        tweak[0] ^= 0x87;
    }
}

/// The ESP32 scheme: per 32-byte block a key tweaked by the block's address, each 16-byte
/// block byte-reversed and run through AES-256 *decryption* to encrypt (and encryption to
/// decrypt), then reversed back.
fn esp32_aes(
    key: &[u8],
    flash_crypt_config: u8,
    address: u32,
    data: &mut [u8],
    direction: Direction,
) {
    let range = tweak_range(flash_crypt_config);
    let mut cipher: Option<Aes256> = None;
    for (i, chunk) in data.chunks_exact_mut(16).enumerate() {
        let at = address as usize + i * 16;
        if at.is_multiple_of(32) || cipher.is_none() {
            let block_key = tweak_key(key, at as u32, &range);
            cipher = Some(Aes256::new(&Array::from(block_key)));
        }
        let cipher = cipher.as_ref().expect("set above");
        let mut block = Array::from([0u8; 16]);
        block.copy_from_slice(chunk);
        block.reverse();
        match direction {
            Direction::Encrypt => cipher.decrypt_block(&mut block),
            Direction::Decrypt => cipher.encrypt_block(&mut block),
        }
        block.reverse();
        chunk.copy_from_slice(&block);
    }
}

/// A 256-bit number as four 64-bit limbs, least significant first (espsecure computes the key
/// tweak with Python integers of this width).
type U256 = [u64; 4];

/// A 256-bit number from its 64 hex digits.
const fn u256(hex: &[u8; 64]) -> U256 {
    let mut out = [0u64; 4];
    let mut i = 0;
    while i < 64 {
        let c = hex[i];
        let d = match c {
            b'0'..=b'9' => c - b'0',
            b'A'..=b'F' => c - b'A' + 10,
            _ => panic!("hex digit"),
        } as u64;
        let limb = 3 - i / 16;
        out[limb] = (out[limb] << 4) | d;
        i += 1;
    }
    out
}

/// espsecure's `mul1`, `mul2` and `mul2_mask`: the products with the block number that spread
/// its bits over the key.
const MUL1: U256 = u256(b"0000200004000080000004000080001000000200004000080000040000800010");
const MUL2: U256 = u256(b"0000000000000000200000000000000010000000000000002000000000000001");
const MUL2_MASK: U256 = u256(b"000000000000007FE00000000000000FF000000000000007E00000000000000F");

/// The key bits each `FLASH_CRYPT_CONFIG` bit lets the address tweak (espsecure's
/// `_flash_encryption_tweak_range_bits`).
const RANGE_BITS: [U256; 4] = [
    u256(b"FFFFFFFFFFFFFFFFE00000000000000000000000000000000000000000000000"),
    u256(b"00000000000000001FFFFFFFFFFFFFFFF0000000000000000000000000000000"),
    u256(b"000000000000000000000000000000000FFFFFFFFFFFFFFFE000000000000000"),
    u256(b"0000000000000000000000000000000000000000000000001FFFFFFFFFFFFFFF"),
];

/// The key bits the address tweaks under `flash_crypt_config`.
fn tweak_range(flash_crypt_config: u8) -> U256 {
    let mut range = [0u64; 4];
    for (i, bits) in RANGE_BITS.iter().enumerate() {
        if flash_crypt_config & (1 << i) != 0 {
            for (r, b) in range.iter_mut().zip(bits) {
                *r |= b;
            }
        }
    }
    range
}

/// `a * m`, truncated to 256 bits.
fn mul_small(a: &U256, m: u64) -> U256 {
    let mut out = [0u64; 4];
    let mut carry = 0u128;
    for (o, &limb) in out.iter_mut().zip(a) {
        let p = u128::from(limb) * u128::from(m) + carry;
        *o = p as u64;
        carry = p >> 64;
    }
    out
}

/// The key for the 32-byte block at `address` (espsecure's `_flash_encryption_tweak_key`):
/// `key ^ (((MUL1 * n) | ((MUL2 * n) & MUL2_MASK)) & range)` with `n = address >> 5`, the key
/// read as a big-endian number.
fn tweak_key(key: &[u8], address: u32, range: &U256) -> [u8; 32] {
    let n = u64::from(address >> 5);
    let (a, b) = (mul_small(&MUL1, n), mul_small(&MUL2, n));
    let mut out = [0u8; 32];
    out.copy_from_slice(key);
    for limb in 0..4 {
        let tweak = (a[limb] | (b[limb] & MUL2_MASK[limb])) & range[limb];
        let at = (3 - limb) * 8;
        for (o, t) in out[at..at + 8].iter_mut().zip(tweak.to_be_bytes()) {
            *o ^= t;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(scheme: Scheme) -> Key {
        Key::new((0..scheme.key_len() as u8).collect(), scheme).unwrap()
    }

    #[test]
    fn every_scheme_round_trips_at_unaligned_lengths() {
        let plain: Vec<u8> = (0..1001u32).map(|i| (i * 7) as u8).collect();
        for scheme in [
            Scheme::XtsAes128,
            Scheme::XtsAes256,
            Scheme::Esp32Aes {
                flash_crypt_config: 0xF,
            },
        ] {
            let k = key(scheme);
            let enc = encrypt(&k, scheme, 0x1_0020, &plain).unwrap();
            assert_eq!(enc.len(), 1001usize.next_multiple_of(scheme.align()));
            assert_ne!(&enc[..1001], &plain[..]);
            let dec = decrypt(&k, scheme, 0x1_0020, &enc).unwrap();
            assert_eq!(&dec[..1001], &plain[..]);
            assert!(dec[1001..].iter().all(|&b| b == 0xFF));
        }
    }

    #[test]
    fn bad_keys_and_addresses_are_refused() {
        let scheme = Scheme::XtsAes256;
        assert!(matches!(
            Key::new(vec![0; 32], scheme),
            Err(EncryptError::KeyLength { expected: 64, .. })
        ));
        let esp32 = Scheme::Esp32Aes {
            flash_crypt_config: 0xF,
        };
        assert_eq!(
            encrypt(&key(esp32), esp32, 0x1010, &[0; 32]),
            Err(EncryptError::Unaligned {
                address: 0x1010,
                align: 32
            })
        );
        assert!(format!("{:?}", key(esp32)).contains("32 bytes"));
    }

    #[test]
    fn chips_have_the_schemes_esp_idf_offers() {
        assert!(Scheme::XtsAes256.supported_by(Chip::Esp32s3));
        assert!(!Scheme::XtsAes256.supported_by(Chip::Esp32c3));
        assert!(!Scheme::XtsAes128.supported_by(Chip::Esp32));
        assert!(
            Scheme::Esp32Aes {
                flash_crypt_config: 0xF
            }
            .supported_by(Chip::Esp32)
        );
    }
}
