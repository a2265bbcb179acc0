//! Flash decryption as the chip's flash cache does it when flash encryption is on: XTS-AES-128
//! or -256 with the key burned in the key blocks (ESP32-C3, -S3, -C6), the ESP32's AES-256 with
//! a key tweaked per 32 bytes by FLASH_CRYPT_CONFIG.
//!
//! The byte order and tweaks are those of espsecure (`_flash_encryption_operation_aes_xts`,
//! `_flash_encryption_operation_esp32`, `_flash_encryption_tweak_key` in esptool's
//! `espsecure/__init__.py`): XTS works on 128-byte data units whose tweak is the unit's flash
//! address (little-endian, padded with zeros), with each unit's bytes reversed before and after;
//! the ESP32 reverses each 16-byte block and runs AES "inverted" (the flash holds the AES
//! decryption of the plaintext, so reading it is an AES encryption). espefuse burns keys with
//! their bytes reversed, so the key of a key file is its block read backwards.

use aes::cipher::{Array, BlockCipherEncrypt, KeyInit};
use aes::{Aes128, Aes256};
use xts_mode::Xts128;

use crate::efuse::{EfuseController, Family, purpose};

/// XTS data unit: 1024 bits.
const XTS_UNIT: usize = 0x80;

/// A flash encryption key as the chip applies it.
#[derive(Clone)]
pub(crate) enum FlashKey {
    /// XTS-AES-128: the 32 bytes of a key file (two AES-128 keys).
    Xts128([u8; 32]),
    /// XTS-AES-256: the 64 bytes of a key file.
    Xts256([u8; 64]),
    /// ESP32: the 32 bytes of a key file and FLASH_CRYPT_CONFIG.
    Esp32 { key: [u8; 32], config: u32 },
}

impl std::fmt::Debug for FlashKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            FlashKey::Xts128(_) => "FlashKey::Xts128",
            FlashKey::Xts256(_) => "FlashKey::Xts256",
            FlashKey::Esp32 { .. } => "FlashKey::Esp32",
        })
    }
}

/// The block's bytes read backwards, as a key file holds them.
fn reversed<const N: usize>(bytes: &[u8]) -> [u8; N] {
    let mut out = [0u8; N];
    for (o, b) in out.iter_mut().zip(bytes.iter().rev()) {
        *o = *b;
    }
    out
}

impl FlashKey {
    /// The key the chip uses: the block with purpose XTS_AES_128_KEY, or the pair with
    /// XTS_AES_256_KEY_1 and _2; the ESP32's BLOCK1. `None` when no key block has a flash
    /// encryption purpose.
    pub fn from_efuses(efuses: &EfuseController) -> Option<FlashKey> {
        let first = efuses.first_key_block();
        if efuses.family() == Family::Esp32 {
            return Some(FlashKey::Esp32 {
                key: reversed(&efuses.block_bytes(first)),
                config: efuses.flash_crypt_config(),
            });
        }
        let purposes = efuses.key_purposes();
        let block_of = |p: u8| purposes.iter().position(|&q| q == p).map(|n| first + n);
        if let Some(block) = block_of(purpose::XTS_AES_128_KEY) {
            return Some(FlashKey::Xts128(reversed(&efuses.block_bytes(block))));
        }
        let one = block_of(purpose::XTS_AES_256_KEY_1)?;
        let two = block_of(purpose::XTS_AES_256_KEY_2)?;
        let mut key = [0u8; 64];
        key[..32].copy_from_slice(&reversed::<32>(&efuses.block_bytes(one)));
        key[32..].copy_from_slice(&reversed::<32>(&efuses.block_bytes(two)));
        Some(FlashKey::Xts256(key))
    }

    /// A key from the bytes of a key file (32 or 64 for XTS, 32 for the ESP32).
    #[cfg(test)]
    pub fn from_file(chip: crate::Chip, bytes: &[u8], config: u32) -> FlashKey {
        match (chip, bytes.len()) {
            (crate::Chip::Esp32, _) => FlashKey::Esp32 {
                key: bytes.try_into().unwrap(),
                config,
            },
            (_, 64) => FlashKey::Xts256(bytes.try_into().unwrap()),
            _ => FlashKey::Xts128(bytes.try_into().unwrap()),
        }
    }

    /// Decrypts `data` read from flash at `addr` in place. `addr` and the length are multiples
    /// of 128 bytes for XTS and of 16 for the ESP32.
    pub fn decrypt(&self, addr: u32, data: &mut [u8]) {
        match self {
            FlashKey::Xts128(key) => {
                let xts = Xts128::new(
                    Aes128::new(&Array::try_from(&key[..16]).expect("16 bytes")),
                    Aes128::new(&Array::try_from(&key[16..]).expect("16 bytes")),
                );
                xts_units(addr, data, |unit, tweak| xts.decrypt_sector(unit, tweak));
            }
            FlashKey::Xts256(key) => {
                let xts = Xts128::new(
                    Aes256::new(&Array::try_from(&key[..32]).expect("32 bytes")),
                    Aes256::new(&Array::try_from(&key[32..]).expect("32 bytes")),
                );
                xts_units(addr, data, |unit, tweak| xts.decrypt_sector(unit, tweak));
            }
            FlashKey::Esp32 { key, config } => esp32_decrypt(key, *config, addr, data),
        }
    }
}

/// Runs `op` on each 128-byte unit of `data` (at flash address `addr`), its bytes reversed,
/// with the unit's address as tweak.
fn xts_units(
    addr: u32,
    data: &mut [u8],
    op: impl Fn(&mut [u8], Array<u8, aes::cipher::consts::U16>),
) {
    for (i, unit) in data.chunks_exact_mut(XTS_UNIT).enumerate() {
        let at = addr as usize + i * XTS_UNIT;
        let mut tweak = [0u8; 16];
        tweak[..4].copy_from_slice(&(at as u32 & !0x7F).to_le_bytes());
        unit.reverse();
        op(unit, Array::from(tweak));
        unit.reverse();
    }
}

/// A 256-bit number, most significant 64 bits first.
type U256 = [u64; 4];

/// The bits FLASH_CRYPT_CONFIG's four bits let the tweak change.
const TWEAK_RANGES: [U256; 4] = [
    [u64::MAX, 0xE000_0000_0000_0000, 0, 0],
    [0, 0x1FFF_FFFF_FFFF_FFFF, 0xF000_0000_0000_0000, 0],
    [0, 0, 0x0FFF_FFFF_FFFF_FFFF, 0xE000_0000_0000_0000],
    [0, 0, 0, 0x1FFF_FFFF_FFFF_FFFF],
];
const MUL1: U256 = [
    0x0000_2000_0400_0080,
    0x0000_0400_0080_0010,
    0x0000_0200_0040_0008,
    0x0000_0400_0080_0010,
];
const MUL2: U256 = [
    0,
    0x2000_0000_0000_0000,
    0x1000_0000_0000_0000,
    0x2000_0000_0000_0001,
];
const MUL2_MASK: U256 = [
    0x0000_0000_0000_007F,
    0xE000_0000_0000_000F,
    0xF000_0000_0000_0007,
    0xE000_0000_0000_000F,
];

/// `a * m` modulo 2^256.
fn mul(a: U256, m: u64) -> U256 {
    let mut out = [0u64; 4];
    let mut carry = 0u128;
    for i in (0..4).rev() {
        let product = u128::from(a[i]) * u128::from(m) + carry;
        out[i] = product as u64;
        carry = product >> 64;
    }
    out
}

/// The ESP32's key for the 32 bytes at `offset`: the key XORed with tweak bits derived from
/// the offset, where FLASH_CRYPT_CONFIG allows.
fn tweaked_key(key: &[u8; 32], config: u32, offset: u32) -> [u8; 32] {
    let addr = u64::from(offset >> 5);
    let (m1, m2) = (mul(MUL1, addr), mul(MUL2, addr));
    let mut out = *key;
    for limb in 0..4 {
        let range = (0..4)
            .filter(|bit| config & (1 << bit) != 0)
            .fold(0u64, |acc, bit| acc | TWEAK_RANGES[bit][limb]);
        let tweak = (m1[limb] | (m2[limb] & MUL2_MASK[limb])) & range;
        for (o, t) in out[8 * limb..8 * limb + 8]
            .iter_mut()
            .zip(tweak.to_be_bytes())
        {
            *o ^= t;
        }
    }
    out
}

fn esp32_decrypt(key: &[u8; 32], config: u32, addr: u32, data: &mut [u8]) {
    let mut cipher: Option<(u32, Aes256)> = None;
    for (i, block) in data.chunks_exact_mut(16).enumerate() {
        let at = addr + 16 * i as u32;
        let unit = at >> 5;
        if cipher.as_ref().is_none_or(|(u, _)| *u != unit) {
            let k = tweaked_key(key, config, at);
            cipher = Some((unit, Aes256::new(&Array::from(k))));
        }
        let aes = &cipher.as_ref().expect("set above").1;
        block.reverse();
        let mut b = Array::try_from(&*block).expect("16 bytes");
        // The flash holds the AES decryption of the plaintext: reading is an encryption.
        aes.encrypt_block(&mut b);
        block.copy_from_slice(&b);
        block.reverse();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Chip;
    use std::path::PathBuf;
    use std::process::Command;

    /// espsecure from the workspace's venv, or on PATH.
    fn espsecure() -> PathBuf {
        let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/espsecure");
        let tool = if venv.is_file() {
            venv
        } else {
            PathBuf::from("espsecure")
        };
        assert!(
            Command::new(&tool).arg("--help").output().is_ok(),
            "espsecure not found: install esptool 5.x, e.g. `.venv/bin/pip install 'esptool>=5,<6'` \
             in the workspace root"
        );
        tool
    }

    fn noise(seed: u32, len: usize) -> Vec<u8> {
        let mut x = seed;
        (0..len)
            .map(|_| {
                x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                (x >> 16) as u8
            })
            .collect()
    }

    /// `espsecure encrypt-flash-data` of `plain` at `addr`.
    fn espsecure_encrypt(chip: Chip, key: &[u8], config: u32, addr: u32, plain: &[u8]) -> Vec<u8> {
        let dir = tempfile::tempdir().unwrap();
        let file = |n: &str| dir.path().join(n);
        std::fs::write(file("key.bin"), key).unwrap();
        std::fs::write(file("plain.bin"), plain).unwrap();
        let mut cmd = Command::new(espsecure());
        cmd.arg("encrypt-flash-data");
        if chip == Chip::Esp32 {
            cmd.args(["--flash-crypt-conf", &format!("{config:#x}")]);
        } else {
            cmd.arg("--aes-xts");
        }
        let out = cmd
            .args(["--keyfile", file("key.bin").to_str().unwrap()])
            .args(["--address", &format!("{addr:#x}")])
            .args(["--output", file("enc.bin").to_str().unwrap()])
            .arg(file("plain.bin"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::fs::read(file("enc.bin")).unwrap()
    }

    #[test]
    fn decrypts_what_espsecure_encrypts_for_every_modelled_chip() {
        let cases: [(Chip, usize, u32, u32); 6] = [
            (Chip::Esp32, 32, 0xF, 0x1000),
            (Chip::Esp32, 32, 0x5, 0x1_0010),
            (Chip::Esp32c3, 32, 0, 0),
            (Chip::Esp32s3, 32, 0, 0x8000),
            (Chip::Esp32s3, 64, 0, 0x1_0000),
            (Chip::Esp32c6, 32, 0, 0x2_0080),
        ];
        for (i, (chip, key_len, config, addr)) in cases.into_iter().enumerate() {
            let key = noise(i as u32 + 1, key_len);
            let plain = noise(100 + i as u32, 0x1000);
            let mut data = espsecure_encrypt(chip, &key, config, addr, &plain);
            assert_ne!(data, plain);
            FlashKey::from_file(chip, &key, config).decrypt(addr, &mut data);
            assert!(
                data == plain,
                "{chip} key {key_len} conf {config:#x} at {addr:#x}"
            );
        }
    }
}
