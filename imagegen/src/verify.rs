//! Checking the cosign signatures of an image, in a registry or in an OCI layout.
//!
//! The image at a reference (a tag or a digest) is its top manifest or index and, for an index,
//! every manifest it lists. Each one must have, under `sha256-<hex>.sig`, a signature layer
//! whose payload is a cosign container image signature naming that digest and whose signature
//! the public key accepts ([`crate::cosign`]). Every manifest gets one [`Check`].

use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use p256::ecdsa::signature::Verifier as _;
use p256::pkcs8::DecodePublicKey;
use serde_json::Value;

use crate::cosign::{self, claim, signature_layers, signature_tag};
use crate::error::{Error, Result, read};
use crate::oci::remote::{Destination, PushOptions, Reader};
use crate::oci::{Layout, tag_of};
use crate::sign::pem_blocks;

/// An ECDSA P-256 public key (`cosign.pub`).
#[derive(Debug, Clone)]
pub struct PublicKey {
    key: p256::ecdsa::VerifyingKey,
}

impl PublicKey {
    /// Reads a PEM `PUBLIC KEY` (SubjectPublicKeyInfo) file, as `cosign generate-key-pair`
    /// writes it.
    pub fn load(path: &Path) -> Result<PublicKey> {
        let fix = "pass the public key (cosign.pub, -----BEGIN PUBLIC KEY-----) of the P-256 key that signed; `openssl pkey -in KEY -pubout` or `cosign public-key --key KEY` writes it";
        let blocks = pem_blocks(&read(path)?);
        let (_, der) = blocks
            .iter()
            .find(|(label, _)| label == "PUBLIC KEY")
            .ok_or_else(|| Error::input(path, "holds no PEM public key", fix))?;
        let key = p256::ecdsa::VerifyingKey::from_public_key_der(der)
            .map_err(|_| Error::input(path, "is not an ECDSA P-256 public key", fix))?;
        Ok(PublicKey { key })
    }

    /// Whether `signature_b64` is this key's signature of `payload`.
    pub fn accepts(&self, payload: &[u8], signature_b64: &str) -> bool {
        BASE64
            .decode(signature_b64.trim())
            .ok()
            .and_then(|der| p256::ecdsa::Signature::from_der(&der).ok())
            .is_some_and(|sig| self.key.verify(payload, &sig).is_ok())
    }
}

/// Where manifests and blobs are read from.
pub trait Source {
    /// The bytes of the manifest at `reference` (a tag or `sha256:` digest); `None` when there
    /// is none.
    fn manifest(&mut self, reference: &str) -> Result<Option<Vec<u8>>>;
    /// The bytes of the blob `digest`, checked against it.
    fn blob(&mut self, digest: &str) -> Result<Vec<u8>>;
}

/// The outcome for one manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// The manifest's digest.
    pub digest: String,
    /// What it is: `index`, `manifest`, or the platform of an index entry (`linux/arm64`).
    pub subject: String,
    /// Whether it is signed.
    pub verdict: Verdict,
}

/// Whether a manifest is signed by the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// A signature of this digest by the key.
    Signed,
    /// No signature tag.
    Missing,
    /// Signatures, none valid: why the first one fails.
    Bad(String),
}

impl std::fmt::Display for Check {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.verdict {
            Verdict::Signed => write!(f, "verified {} {}", self.digest, self.subject),
            Verdict::Missing => write!(
                f,
                "MISSING {} {}: no signature (no tag {})",
                self.digest,
                self.subject,
                signature_tag(&self.digest)
            ),
            Verdict::Bad(why) => write!(f, "BAD {} {}: {why}", self.digest, self.subject),
        }
    }
}

/// Checks the signatures of the image at `reference` in `source` with `key`: one [`Check`]
/// for the top manifest, then one per manifest of an index.
pub fn verify(source: &mut dyn Source, reference: &str, key: &PublicKey) -> Result<Vec<Check>> {
    let top = source.manifest(reference)?.ok_or_else(|| {
        Error::Usage(format!(
            "no image at '{reference}': check the tag or digest"
        ))
    })?;
    let digest = cosign::digest(&top);
    let doc: Value = serde_json::from_slice(&top).unwrap_or_default();
    let mut subjects = Vec::new();
    match doc["manifests"].as_array() {
        Some(children) => {
            subjects.push((digest, "index".to_string()));
            for child in children {
                let platform = &child["platform"];
                let subject = match (platform["os"].as_str(), platform["architecture"].as_str()) {
                    (Some(os), Some(arch)) => format!("{os}/{arch}"),
                    _ => "manifest".into(),
                };
                let d = child["digest"].as_str().unwrap_or_default().to_string();
                subjects.push((d, subject));
            }
        }
        None => subjects.push((digest, "manifest".to_string())),
    }
    subjects
        .into_iter()
        .map(|(digest, subject)| {
            let verdict = check(source, &digest, key)?;
            Ok(Check {
                digest,
                subject,
                verdict,
            })
        })
        .collect()
}

/// Whether the manifest `digest` has a signature by `key`.
fn check(source: &mut dyn Source, digest: &str, key: &PublicKey) -> Result<Verdict> {
    let Some(signatures) = source.manifest(&signature_tag(digest))? else {
        return Ok(Verdict::Missing);
    };
    let layers = signature_layers(&signatures);
    let mut first_failure = None;
    for layer in &layers {
        let payload = source.blob(&layer.payload_digest)?;
        let failure = if !key.accepts(&payload, &layer.signature_b64) {
            "the signature does not match the key".to_string()
        } else {
            match claim(&payload) {
                None => "the payload is not a cosign container image signature".into(),
                Some(c) if c.digest != digest => {
                    format!("the payload signs {}, not this manifest", c.digest)
                }
                Some(_) => return Ok(Verdict::Signed),
            }
        };
        first_failure.get_or_insert(failure);
    }
    Ok(Verdict::Bad(first_failure.unwrap_or_else(|| {
        "the signature tag holds no cosign signature layer".into()
    })))
}

/// The error for checks that are not all [`Verdict::Signed`], if any.
pub fn failure(checks: &[Check], reference: &str, key: &Path) -> Option<Error> {
    let bad = checks
        .iter()
        .filter(|c| c.verdict != Verdict::Signed)
        .count();
    (bad > 0).then(|| {
        Error::Unverified(format!(
            "{bad} of {} manifests of {reference} have no valid signature by {}: sign them with `imagegen push --sign-key` (or cosign sign) and check that this is the matching public key",
            checks.len(),
            key.display()
        ))
    })
}

/// An OCI image layout read as a [`Source`]: tags are its `index.json` names.
pub struct LayoutSource {
    layout: Layout,
}

impl LayoutSource {
    /// The layout at `dir`.
    pub fn new(dir: &Path) -> LayoutSource {
        LayoutSource {
            layout: Layout::new(dir),
        }
    }

    fn blob_path(&self, digest: &str) -> PathBuf {
        let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
        self.layout.path().join("blobs/sha256").join(hex)
    }
}

impl Source for LayoutSource {
    fn manifest(&mut self, reference: &str) -> Result<Option<Vec<u8>>> {
        let digest = if reference.starts_with("sha256:") {
            Some(reference.to_string())
        } else {
            let index = self.layout.index()?;
            index
                .manifests()
                .iter()
                .find(|d| tag_of(d) == Some(reference))
                .map(|d| d.digest().to_string())
        };
        match digest {
            Some(d) if self.blob_path(&d).is_file() => self.blob(&d).map(Some),
            _ => Ok(None),
        }
    }

    fn blob(&mut self, digest: &str) -> Result<Vec<u8>> {
        let path = self.blob_path(digest);
        let bytes = read(&path)?;
        if cosign::digest(&bytes) != digest {
            return Err(Error::input(
                &path,
                "does not match its digest (corrupted layout)",
                "copy the layout again",
            ));
        }
        Ok(bytes)
    }
}

/// A registry repository read as a [`Source`], through [`Reader`].
pub struct RegistrySource<'a> {
    reader: Reader<'a>,
}

impl<'a> RegistrySource<'a> {
    /// Connects to `dest` for reading.
    pub fn connect(dest: &'a Destination, options: &'a PushOptions) -> Result<RegistrySource<'a>> {
        Ok(RegistrySource {
            reader: Reader::connect(dest, options)?,
        })
    }
}

impl Source for RegistrySource<'_> {
    fn manifest(&mut self, reference: &str) -> Result<Option<Vec<u8>>> {
        self.reader.manifest(reference)
    }

    fn blob(&mut self, digest: &str) -> Result<Vec<u8>> {
        self.reader.blob(digest)
    }
}

/// Splits `REGISTRY/REPO:TAG` or `REGISTRY/REPO@sha256:<hex>` into the repository and the tag
/// or digest.
pub fn parse_reference(s: &str) -> Result<(Destination, String)> {
    let (repo, reference) = match s.split_once('@') {
        Some((repo, digest)) => (repo, digest),
        None => {
            let last = s.rsplit('/').next().unwrap_or(s);
            match last.split_once(':') {
                Some((name, tag)) => (&s[..s.len() - last.len() + name.len()], tag),
                None => {
                    return Err(Error::Usage(format!(
                        "'{s}' names no tag or digest: give REGISTRY/REPO:TAG or REGISTRY/REPO@sha256:..., and verify by digest what a station will run"
                    )));
                }
            }
        }
    };
    Ok((repo.parse()?, reference.to_string()))
}

#[cfg(test)]
mod tests {
    use super::parse_reference;

    #[test]
    fn references() {
        let (d, r) = parse_reference("127.0.0.1:5000/acme/app:demo-1.2.0").unwrap();
        assert_eq!(
            (d.to_string().as_str(), r.as_str()),
            ("127.0.0.1:5000/acme/app", "demo-1.2.0")
        );
        let (d, r) = parse_reference("ghcr.io/acme/app@sha256:ab").unwrap();
        assert_eq!(
            (d.to_string().as_str(), r.as_str()),
            ("ghcr.io/acme/app", "sha256:ab")
        );
        assert!(parse_reference("127.0.0.1:5000/acme/app").is_err());
    }
}
