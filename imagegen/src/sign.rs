//! Signing keys and cosign-compatible signatures of pushed manifests.
//!
//! Keys are ECDSA P-256, cosign's default, in one of three PEM forms:
//! - `PRIVATE KEY`: PKCS#8 (`openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256`);
//! - `EC PRIVATE KEY`: SEC1 (`openssl ecparam -genkey -name prime256v1`), an `EC PARAMETERS`
//!   block before it is skipped;
//! - `ENCRYPTED SIGSTORE PRIVATE KEY` or `ENCRYPTED COSIGN PRIVATE KEY`: the file
//!   `cosign generate-key-pair` writes, JSON inside the PEM: an scrypt key derivation
//!   (`kdf`: `N`, `r`, `p`, `salt`) and a NaCl secretbox (`cipher`: `nonce`) sealing the PKCS#8
//!   key (`ciphertext`), opened with the password.
//!
//! Each manifest is signed as [`crate::cosign`] describes: a deterministic (RFC 6979) ECDSA
//! signature over SHA-256 of the payload, DER, in base64.

use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use crypto_secretbox::aead::{Aead, KeyInit};
use p256::ecdsa::signature::Signer as _;
use p256::pkcs8::{DecodePrivateKey, EncodePublicKey, LineEnding};
use serde_json::Value;

use crate::cosign::{self, SignatureImage};
use crate::error::{Error, Result, read};

/// The environment variable holding the password of an encrypted key, as for cosign.
pub const PASSWORD_VARIABLE: &str = "COSIGN_PASSWORD";

/// How to convert a key imagegen cannot read into one it can.
const CONVERT: &str = "use an ECDSA P-256 key: `cosign generate-key-pair`, or `openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out cosign.key`; `cosign import-key-pair --key KEY` turns a PEM P-256 key into cosign's encrypted form";

/// An ECDSA P-256 signing key.
#[derive(Clone)]
pub struct Signer {
    key: p256::ecdsa::SigningKey,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer").finish_non_exhaustive()
    }
}

impl Signer {
    /// Reads the private key at `path`; `password` is asked only for an encrypted key.
    pub fn load(path: &Path, password: &dyn Fn() -> Result<Vec<u8>>) -> Result<Signer> {
        let text = read(path)?;
        let blocks = pem_blocks(&text);
        let Some((label, der)) = blocks.iter().find(|(l, _)| l != "EC PARAMETERS") else {
            return Err(Error::input(
                path,
                "is not a PEM private key (no -----BEGIN ...----- block)",
                CONVERT,
            ));
        };
        let secret = match label.as_str() {
            "PRIVATE KEY" => pkcs8_key(path, der)?,
            "EC PRIVATE KEY" => p256::SecretKey::from_sec1_der(der).map_err(|_| {
                Error::input(path, "is an EC key, but not on the P-256 curve", CONVERT)
            })?,
            "ENCRYPTED SIGSTORE PRIVATE KEY" | "ENCRYPTED COSIGN PRIVATE KEY" => {
                let plain = decrypt(path, der, &password()?)?;
                pkcs8_key(path, &plain)?
            }
            "ENCRYPTED PRIVATE KEY" => {
                return Err(Error::input(
                    path,
                    "is a password-protected PKCS#8 key, which imagegen does not open",
                    "turn it into cosign's encrypted form with `cosign import-key-pair --key KEY`, or decrypt it with `openssl pkcs8 -in KEY -out plain.key` on a trusted machine",
                ));
            }
            other => {
                return Err(Error::input(
                    path,
                    format!("holds a '{other}' block, not an ECDSA P-256 private key"),
                    CONVERT,
                ));
            }
        };
        Ok(Signer { key: secret.into() })
    }

    /// The public key (PEM, SubjectPublicKeyInfo) that verifies this key's signatures, as
    /// `cosign generate-key-pair` writes `cosign.pub`.
    pub fn public_key_pem(&self) -> String {
        self.key
            .verifying_key()
            .to_public_key_pem(LineEnding::LF)
            .expect("P-256 public keys encode")
    }

    /// The base64 DER ECDSA signature of `payload` (SHA-256 of its bytes).
    pub fn sign(&self, payload: &[u8]) -> String {
        let signature: p256::ecdsa::Signature = self.key.sign(payload);
        BASE64.encode(signature.to_der().to_bytes())
    }

    /// The signature image of the manifest `digest` pushed to `repository` (`REGISTRY/REPO`).
    pub fn signature_image(&self, repository: &str, digest: &str) -> SignatureImage {
        let payload = cosign::payload(repository, digest);
        let signature = self.sign(&payload);
        SignatureImage::new(digest, payload, &signature)
    }
}

/// Every PEM block of `text`: its label and decoded bytes (blocks that do not decode are left
/// out).
pub(crate) fn pem_blocks(text: &[u8]) -> Vec<(String, Vec<u8>)> {
    let text = String::from_utf8_lossy(text);
    let mut blocks = Vec::new();
    let mut current: Option<(String, String)> = None;
    for line in text.lines().map(str::trim) {
        if let Some(label) = line
            .strip_prefix("-----BEGIN ")
            .and_then(|l| l.strip_suffix("-----"))
        {
            current = Some((label.to_string(), String::new()));
        } else if line.starts_with("-----END ") {
            if let Some((label, body)) = current.take()
                && let Ok(bytes) = BASE64.decode(body)
            {
                blocks.push((label, bytes));
            }
        } else if let Some((_, body)) = current.as_mut()
            && !line.contains(':')
        {
            body.push_str(line);
        }
    }
    blocks
}

/// A P-256 key from PKCS#8 DER, naming the key type when it is another.
fn pkcs8_key(path: &Path, der: &[u8]) -> Result<p256::SecretKey> {
    p256::SecretKey::from_pkcs8_der(der).map_err(|_| {
        let contains = |oid: &[u8]| der.windows(oid.len()).any(|w| w == oid);
        let kind = if contains(&[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01]) {
            "an RSA key"
        } else if contains(&[0x06, 0x03, 0x2b, 0x65, 0x70]) {
            "an Ed25519 key"
        } else if contains(&[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01]) {
            "an EC key on another curve than P-256"
        } else {
            "not a readable PKCS#8 key"
        };
        Error::input(
            path,
            format!("is {kind}; imagegen signs with ECDSA P-256 only"),
            CONVERT,
        )
    })
}

/// Opens cosign's encrypted key: scrypt derives the secretbox key from `password`.
fn decrypt(path: &Path, json: &[u8], password: &[u8]) -> Result<Vec<u8>> {
    let broken = |what: &str| {
        Error::input(
            path,
            format!("is not a readable cosign encrypted key ({what})"),
            "write it again with `cosign generate-key-pair` or `cosign import-key-pair`",
        )
    };
    let v: Value = serde_json::from_slice(json).map_err(|_| broken("not JSON"))?;
    let field = |value: &Value, name: &str| -> Result<Vec<u8>> {
        value
            .as_str()
            .and_then(|s| BASE64.decode(s).ok())
            .ok_or_else(|| broken(&format!("no base64 {name}")))
    };
    let (kdf, cipher) = (&v["kdf"], &v["cipher"]);
    if kdf["name"] != "scrypt" || cipher["name"] != "nacl/secretbox" {
        return Err(broken("not scrypt and nacl/secretbox"));
    }
    let params = &kdf["params"];
    let (n, r, p) = (
        params["N"].as_u64(),
        params["r"].as_u64(),
        params["p"].as_u64(),
    );
    // The parameters cosign writes; anything else could make scrypt take forever.
    let log_n = match (n, r, p) {
        (Some(32768), Some(8), Some(1)) => 15,
        (Some(65536), Some(8), Some(1)) => 16,
        _ => return Err(broken("unexpected scrypt parameters")),
    };
    let salt = field(&kdf["salt"], "salt")?;
    let nonce = field(&cipher["nonce"], "nonce")?;
    let ciphertext = field(&v["ciphertext"], "ciphertext")?;
    if nonce.len() != 24 {
        return Err(broken("the nonce is not 24 bytes"));
    }
    let mut key = [0u8; 32];
    let params = scrypt::Params::new(log_n, 8, 1).expect("cosign's scrypt parameters are valid");
    scrypt::scrypt(password, &salt, &params, &mut key).expect("a 32-byte output is valid");
    let cipher = crypto_secretbox::XSalsa20Poly1305::new(&key.into());
    cipher
        .decrypt(
            crypto_secretbox::Nonce::from_slice(&nonce),
            ciphertext.as_slice(),
        )
        .map_err(|_| {
            Error::input(
                path,
                "cannot be opened with this password",
                format!(
                    "set {PASSWORD_VARIABLE} to the key's password (or pass --sign-password-stdin)"
                ),
            )
        })
}
