//! Secure Boot V2 public keys: the digest a board's SECURE_BOOT_DIGESTn key block holds for a
//! signing key, computed from the PEM public key exactly as `espsecure digest-sbv2-public-key`
//! does (SHA-256 over the key as a signature block carries it).
//!
//! - RSA-3072: the modulus, the exponent, `R^-1 = 2^6144 mod n` and `-n^-1 mod 2^32`, each
//!   little-endian (`<384sI384sI`).
//! - ECDSA (P-192, P-256, P-384): the curve id and the point's coordinates, each
//!   little-endian, zero-padded to 64 bytes (`<B64s`; `<B96s` for P-384).
//!
//! Only public keys are read: a station never needs the signing key.

use sha2::{Digest, Sha256};

use crate::chip::Chip;

/// The kind of a Secure Boot V2 key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyKind {
    /// RSA-3072 (RSA-PSS signatures).
    Rsa3072,
    /// ECDSA over NIST P-192.
    EcdsaP192,
    /// ECDSA over NIST P-256.
    EcdsaP256,
    /// ECDSA over NIST P-384.
    EcdsaP384,
}

impl KeyKind {
    /// The name espsecure's `--scheme` uses.
    pub fn name(self) -> &'static str {
        match self {
            KeyKind::Rsa3072 => "rsa3072",
            KeyKind::EcdsaP192 => "ecdsa192",
            KeyKind::EcdsaP256 => "ecdsa256",
            KeyKind::EcdsaP384 => "ecdsa384",
        }
    }

    /// Whether `chip`'s ROM verifies Secure Boot V2 signatures of this kind (ESP-IDF's
    /// `SOC_SECURE_BOOT_V2_RSA` / `SOC_SECURE_BOOT_V2_ECC`; P-384 on the ESP32-C5 and -P4).
    pub fn supported_by(self, chip: Chip) -> bool {
        let ecc = matches!(
            chip,
            Chip::Esp32c2
                | Chip::Esp32c5
                | Chip::Esp32c6
                | Chip::Esp32c61
                | Chip::Esp32h2
                | Chip::Esp32p4
        );
        match self {
            KeyKind::Rsa3072 => chip != Chip::Esp32c2,
            KeyKind::EcdsaP192 | KeyKind::EcdsaP256 => ecc,
            KeyKind::EcdsaP384 => matches!(chip, Chip::Esp32c5 | Chip::Esp32p4),
        }
    }
}

/// How many key digests `chip` can hold for Secure Boot V2: one on the ESP32 (BLOCK2) and the
/// ESP32-C2, three elsewhere.
pub fn max_keys(chip: Chip) -> usize {
    match chip {
        Chip::Esp32 | Chip::Esp32c2 => 1,
        _ => 3,
    }
}

/// A public key's Secure Boot V2 digest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyDigest {
    /// The key's kind.
    pub kind: KeyKind,
    /// SHA-256 over the key as a signature block carries it.
    pub digest: [u8; 32],
}

/// Why a key file gives no Secure Boot V2 digest.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// A private key was given.
    #[error(
        "this is a private key: give the station only the public key \
         (`espsecure extract-public-key --version 2 --keyfile KEY pub.pem`)"
    )]
    Private,
    /// The file is not a PEM public key.
    #[error("not a PEM public key (expected -----BEGIN PUBLIC KEY-----)")]
    NotPem,
    /// The DER inside is not a public key Secure Boot V2 knows.
    #[error("{0}")]
    Unsupported(String),
}

/// The Secure Boot V2 digest of a PEM public key (`-----BEGIN PUBLIC KEY-----`).
pub fn public_key_digest(pem: &str) -> Result<KeyDigest, KeyError> {
    if pem.contains("PRIVATE KEY-----") {
        return Err(KeyError::Private);
    }
    let der = pem_body(pem).ok_or(KeyError::NotPem)?;
    let Spki {
        algorithm,
        params,
        key,
    } = parse_spki(&der).ok_or_else(|| bad("malformed public key"))?;
    match algorithm {
        OID_RSA => rsa_digest(key),
        OID_EC => ec_digest(params.ok_or_else(|| bad("EC key without a curve"))?, key),
        _ => Err(bad(
            "neither RSA nor ECDSA: Secure Boot V2 takes RSA-3072 or ECDSA keys",
        )),
    }
}

fn bad(what: &str) -> KeyError {
    KeyError::Unsupported(what.to_string())
}

const OID_RSA: &[u8] = &[0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x01, 0x01];
const OID_EC: &[u8] = &[0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x02, 0x01];
const OID_P192: &[u8] = &[0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x03, 0x01, 0x01];
const OID_P256: &[u8] = &[0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x03, 0x01, 0x07];
const OID_P384: &[u8] = &[0x2B, 0x81, 0x04, 0x00, 0x22];

/// The base64 body between `-----BEGIN PUBLIC KEY-----` and its END line, decoded.
fn pem_body(pem: &str) -> Option<Vec<u8>> {
    const BEGIN: &str = "-----BEGIN PUBLIC KEY-----";
    const END: &str = "-----END PUBLIC KEY-----";
    let start = pem.find(BEGIN)? + BEGIN.len();
    let end = start + pem[start..].find(END)?;
    let text: String = pem[start..end]
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    base64_decode(&text)
}

/// Standard base64 with padding.
fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let value = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let bytes = text.trim_end_matches('=').as_bytes();
    let mut out = Vec::with_capacity(bytes.len() * 3 / 4);
    for chunk in bytes.chunks(4) {
        let mut acc = 0u32;
        for &c in chunk {
            acc = (acc << 6) | value(c)?;
        }
        acc <<= 6 * (4 - chunk.len() as u32);
        let n = match chunk.len() {
            4 => 3,
            3 => 2,
            2 => 1,
            _ => return None,
        };
        out.extend_from_slice(&acc.to_be_bytes()[1..1 + n]);
    }
    Some(out)
}

/// One DER element: its tag, its contents and what follows it.
fn der(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7F);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        (len, &rest[n..])
    };
    (rest.len() >= len).then(|| (tag, &rest[..len], &rest[len..]))
}

/// A SubjectPublicKeyInfo's parts.
struct Spki<'a> {
    /// The algorithm OID.
    algorithm: &'a [u8],
    /// Its parameter, when that is an OID (the curve of an EC key).
    params: Option<&'a [u8]>,
    /// The key bits.
    key: &'a [u8],
}

/// A SubjectPublicKeyInfo, DER.
fn parse_spki(input: &[u8]) -> Option<Spki<'_>> {
    let (0x30, spki, _) = der(input)? else {
        return None;
    };
    let (0x30, algorithm, rest) = der(spki)? else {
        return None;
    };
    let (0x06, oid, params) = der(algorithm)? else {
        return None;
    };
    let params = match der(params) {
        Some((0x06, curve, _)) => Some(curve),
        _ => None,
    };
    let (0x03, bits, _) = der(rest)? else {
        return None;
    };
    let (&0, key) = bits.split_first()? else {
        return None;
    };
    Some(Spki {
        algorithm: oid,
        params,
        key,
    })
}

/// A DER INTEGER's magnitude, big-endian, without leading zeros.
fn integer(input: &[u8]) -> Option<(&[u8], &[u8])> {
    let (0x02, mut value, rest) = der(input)? else {
        return None;
    };
    while let [0, tail @ ..] = value {
        value = tail;
    }
    Some((value, rest))
}

const RSA_BYTES: usize = 384;

fn rsa_digest(key: &[u8]) -> Result<KeyDigest, KeyError> {
    let malformed = || bad("malformed RSA public key");
    let (0x30, seq, _) = der(key).ok_or_else(malformed)? else {
        return Err(malformed());
    };
    let (n, rest) = integer(seq).ok_or_else(malformed)?;
    let (e, _) = integer(rest).ok_or_else(malformed)?;
    if n.len() != RSA_BYTES || n[0] & 0x80 == 0 {
        return Err(KeyError::Unsupported(format!(
            "RSA key of {} bits: Secure Boot V2 takes RSA-3072 only",
            bit_len(n)
        )));
    }
    if e.len() > 4 || n[RSA_BYTES - 1] & 1 == 0 {
        return Err(malformed());
    }
    let e = e.iter().fold(0u32, |acc, &b| (acc << 8) | u32::from(b));
    let n_le = le_limbs(n);
    let mut block = Vec::with_capacity(2 * RSA_BYTES + 8);
    block.extend(n.iter().rev());
    block.extend_from_slice(&e.to_le_bytes());
    block.extend(limbs_to_le_bytes(&rinv(&n_le)));
    block.extend_from_slice(&neg_inverse_u32(n_le[0] as u32).to_le_bytes());
    Ok(KeyDigest {
        kind: KeyKind::Rsa3072,
        digest: Sha256::digest(&block).into(),
    })
}

fn bit_len(n: &[u8]) -> usize {
    n.first()
        .map_or(0, |&b| n.len() * 8 - b.leading_zeros() as usize)
}

/// A big-endian magnitude as 64-bit limbs, least significant first.
fn le_limbs(be: &[u8]) -> Vec<u64> {
    be.rchunks(8)
        .map(|c| c.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b)))
        .collect()
}

fn limbs_to_le_bytes(limbs: &[u64]) -> Vec<u8> {
    limbs.iter().flat_map(|l| l.to_le_bytes()).collect()
}

/// `2^(2 * 3072) mod n`, by doubling and reducing (n's top bit is set, so one subtraction
/// per doubling is enough).
fn rinv(n: &[u64]) -> Vec<u64> {
    let mut r = vec![0u64; n.len()];
    r[0] = 1;
    for _ in 0..2 * RSA_BYTES * 8 {
        let mut carry = 0u64;
        for limb in r.iter_mut() {
            let next = *limb >> 63;
            *limb = (*limb << 1) | carry;
            carry = next;
        }
        if carry == 1 || !less_than(&r, n) {
            subtract(&mut r, n);
        }
    }
    r
}

fn less_than(a: &[u64], b: &[u64]) -> bool {
    for (x, y) in a.iter().rev().zip(b.iter().rev()) {
        if x != y {
            return x < y;
        }
    }
    false
}

fn subtract(a: &mut [u64], b: &[u64]) {
    let mut borrow = false;
    for (x, &y) in a.iter_mut().zip(b) {
        let (d, b1) = x.overflowing_sub(y);
        let (d, b2) = d.overflowing_sub(u64::from(borrow));
        *x = d;
        borrow = b1 || b2;
    }
}

/// `-n^-1 mod 2^32` for odd `n0` (Newton's iteration doubles the correct bits each step).
fn neg_inverse_u32(n0: u32) -> u32 {
    let mut x: u32 = 1;
    for _ in 0..5 {
        x = x.wrapping_mul(2u32.wrapping_sub(n0.wrapping_mul(x)));
    }
    x.wrapping_neg()
}

fn ec_digest(curve: &[u8], point: &[u8]) -> Result<KeyDigest, KeyError> {
    let (kind, id, len) = match curve {
        OID_P192 => (KeyKind::EcdsaP192, 1u8, 24),
        OID_P256 => (KeyKind::EcdsaP256, 2, 32),
        OID_P384 => (KeyKind::EcdsaP384, 3, 48),
        _ => {
            return Err(bad(
                "ECDSA key on a curve Secure Boot V2 does not take: use P-192, P-256 or P-384",
            ));
        }
    };
    let Some((&0x04, xy)) = point.split_first() else {
        return Err(bad("compressed EC point: export the key uncompressed"));
    };
    if xy.len() != 2 * len {
        return Err(bad("malformed EC point"));
    }
    let mut block = vec![id];
    block.extend(xy[..len].iter().rev());
    block.extend(xy[len..].iter().rev());
    // `<B64s` pads a P-192 point to 64 bytes; P-384 takes 96.
    block.resize(1 + (2 * len).max(64), 0);
    Ok(KeyDigest {
        kind,
        digest: Sha256::digest(&block).into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_decodes_every_tail() {
        assert_eq!(base64_decode("TWFu").unwrap(), b"Man");
        assert_eq!(base64_decode("TWE=").unwrap(), b"Ma");
        assert_eq!(base64_decode("TQ==").unwrap(), b"M");
        assert!(base64_decode("T").is_none());
    }

    #[test]
    fn the_montgomery_inverse_is_an_inverse() {
        for n0 in [1u32, 3, 0x1234_5677, 0xFFFF_FFFF] {
            assert_eq!(n0.wrapping_mul(neg_inverse_u32(n0).wrapping_neg()), 1);
        }
    }

    #[test]
    fn private_and_garbled_keys_are_refused() {
        assert_eq!(
            public_key_digest("-----BEGIN PRIVATE KEY-----\nAA==\n-----END PRIVATE KEY-----"),
            Err(KeyError::Private)
        );
        assert_eq!(public_key_digest("hello"), Err(KeyError::NotPem));
        assert!(matches!(
            public_key_digest("-----BEGIN PUBLIC KEY-----\nMAA=\n-----END PUBLIC KEY-----"),
            Err(KeyError::Unsupported(_))
        ));
    }
}
