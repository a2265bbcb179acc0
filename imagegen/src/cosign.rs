//! The cosign signature format, as cosign writes and verifies it for key-based signatures.
//!
//! A signature of the manifest `sha256:<hex>` in repository `REGISTRY/REPO` is an OCI image
//! manifest tagged `sha256-<hex>.sig` in the same repository. Its one layer is the "simple
//! signing" payload, of media type [`PAYLOAD_MEDIA_TYPE`], naming the repository and the digest:
//!
//! ```json
//! {"critical":{"identity":{"docker-reference":"REGISTRY/REPO"},"image":{"docker-manifest-digest":"sha256:<hex>"},"type":"cosign container image signature"},"optional":null}
//! ```
//!
//! The layer's annotation [`SIGNATURE_ANNOTATION`] holds the base64 ECDSA P-256 signature (DER)
//! over the SHA-256 of the payload's exact bytes. The config is an OCI image config
//! (`application/vnd.oci.image.config.v1+json`) whose `rootfs.diff_ids` names the payload.

use oci_spec::image::MediaType;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::oci::Blob;

/// Media type of the simple-signing payload layer.
pub const PAYLOAD_MEDIA_TYPE: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
/// Layer annotation holding the base64 signature.
pub const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";
/// The `critical.type` of a container image signature payload.
pub const PAYLOAD_TYPE: &str = "cosign container image signature";
/// Media type of the signature image's config.
const CONFIG_MEDIA_TYPE: &str = "application/vnd.oci.image.config.v1+json";
/// Media type of the signature manifest.
pub const MANIFEST_MEDIA_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";

/// `sha256:<hex>` of `bytes`.
pub fn digest(bytes: &[u8]) -> String {
    let hex: String = Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("sha256:{hex}")
}

/// The tag holding the signatures of the manifest `digest` (`sha256:<hex>` → `sha256-<hex>.sig`).
pub fn signature_tag(digest: &str) -> String {
    format!("{}.sig", digest.replacen(':', "-", 1))
}

/// The digest whose signatures the tag `sha256-<hex>.sig` holds (the inverse of
/// [`signature_tag`]).
pub fn signed_digest(tag: &str) -> String {
    tag.strip_suffix(".sig")
        .unwrap_or(tag)
        .replacen('-', ":", 1)
}

/// The repository as cosign names it in payloads (`REGISTRY/REPO`, go-containerregistry's
/// `Repository.Name()`): Docker Hub is `index.docker.io`, and its one-part names are under
/// `library/`.
pub fn docker_reference(registry: &str, repository: &str) -> String {
    if matches!(
        registry,
        "docker.io" | "index.docker.io" | "registry-1.docker.io"
    ) {
        if repository.contains('/') {
            format!("index.docker.io/{repository}")
        } else {
            format!("index.docker.io/library/{repository}")
        }
    } else {
        format!("{registry}/{repository}")
    }
}

/// The payload signed for the manifest `digest` in `repository` (`REGISTRY/REPO`), byte for byte
/// as cosign writes it.
pub fn payload(repository: &str, digest: &str) -> Vec<u8> {
    // Field order and `"optional":null` as cosign's Go structs serialize them.
    let text = format!(
        "{{\"critical\":{{\"identity\":{{\"docker-reference\":{}}},\"image\":{{\"docker-manifest-digest\":{}}},\"type\":{}}},\"optional\":null}}",
        Value::from(repository),
        Value::from(digest),
        Value::from(PAYLOAD_TYPE)
    );
    text.into_bytes()
}

/// What a payload claims: the repository and the manifest digest it signs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    /// `critical.identity.docker-reference`.
    pub repository: String,
    /// `critical.image.docker-manifest-digest`.
    pub digest: String,
}

/// Reads the claim of a payload; `None` when it is not a cosign container image signature.
pub fn claim(payload: &[u8]) -> Option<Claim> {
    let v: Value = serde_json::from_slice(payload).ok()?;
    let critical = &v["critical"];
    (critical["type"].as_str()? == PAYLOAD_TYPE).then_some(())?;
    Some(Claim {
        repository: critical["identity"]["docker-reference"]
            .as_str()?
            .to_string(),
        digest: critical["image"]["docker-manifest-digest"]
            .as_str()?
            .to_string(),
    })
}

/// A signature image: its blobs and its manifest, ready to push under [`SignatureImage::tag`].
#[derive(Debug, Clone)]
pub struct SignatureImage {
    /// `sha256-<hex>.sig`.
    pub tag: String,
    /// The config blob.
    pub config: Blob,
    /// The payload blob (the only layer).
    pub payload: Blob,
    /// The manifest ([`MANIFEST_MEDIA_TYPE`]).
    pub manifest: Blob,
}

impl SignatureImage {
    /// The signature image of the manifest `digest` with `payload` and its base64 signature.
    pub fn new(digest: &str, payload: Vec<u8>, signature_b64: &str) -> SignatureImage {
        let layer = json!({
            "mediaType": PAYLOAD_MEDIA_TYPE,
            "size": payload.len(),
            "digest": self::digest(&payload),
            "annotations": { SIGNATURE_ANNOTATION: signature_b64 },
        });
        let (config, manifest) = config_and_manifest(vec![layer]);
        SignatureImage {
            tag: signature_tag(digest),
            config,
            payload: Blob::new(MediaType::Other(PAYLOAD_MEDIA_TYPE.into()), payload),
            manifest,
        }
    }
}

/// The config and manifest of a signature image with `layers`, in order (the config's
/// `rootfs.diff_ids` names each layer, as cosign appends them).
fn config_and_manifest(layers: Vec<Value>) -> (Blob, Blob) {
    let diff_ids: Vec<&Value> = layers.iter().map(|l| &l["digest"]).collect();
    let config = serde_json::to_vec(&json!({
        "architecture": "",
        "created": "0001-01-01T00:00:00Z",
        "history": [{ "created": "0001-01-01T00:00:00Z" }],
        "os": "",
        "rootfs": { "type": "layers", "diff_ids": diff_ids },
        "config": {},
    }))
    .expect("JSON values serialize");
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": MANIFEST_MEDIA_TYPE,
        "config": {
            "mediaType": CONFIG_MEDIA_TYPE,
            "size": config.len(),
            "digest": self::digest(&config),
        },
        "layers": layers,
    }))
    .expect("JSON values serialize");
    (
        Blob::new(MediaType::ImageConfig, config),
        Blob::new(MediaType::ImageManifest, manifest),
    )
}

/// The layers of a manifest, as JSON (empty when it is none).
fn layers(manifest: &[u8]) -> Vec<Value> {
    serde_json::from_slice::<Value>(manifest)
        .ok()
        .and_then(|v| v["layers"].as_array().cloned())
        .unwrap_or_default()
}

/// What to put under a `.sig` tag that holds `existing` when adding the signature manifest
/// `new`: the existing layers with the new ones appended (its config and manifest), as cosign
/// keeps earlier signatures; `None` when `existing` holds every new layer already (the same
/// payload with the same signature), so nothing needs to be put.
pub fn append_signatures(existing: &[u8], new: &[u8]) -> Option<(Blob, Blob)> {
    let mut all = layers(existing);
    let before = all.len();
    for layer in layers(new) {
        if !all.contains(&layer) {
            all.push(layer);
        }
    }
    (all.len() > before).then(|| config_and_manifest(all))
}

/// A signature layer read from a signature manifest: the payload's digest and the base64
/// signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureLayer {
    /// Digest of the payload blob.
    pub payload_digest: String,
    /// Base64 signature from [`SIGNATURE_ANNOTATION`].
    pub signature_b64: String,
}

/// The simple-signing layers of a signature manifest (empty when it has none).
pub fn signature_layers(manifest: &[u8]) -> Vec<SignatureLayer> {
    let Ok(v) = serde_json::from_slice::<Value>(manifest) else {
        return Vec::new();
    };
    v["layers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|l| l["mediaType"].as_str() == Some(PAYLOAD_MEDIA_TYPE))
        .filter_map(|l| {
            Some(SignatureLayer {
                payload_digest: l["digest"].as_str()?.to_string(),
                signature_b64: l["annotations"][SIGNATURE_ANNOTATION].as_str()?.to_string(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_is_cosigns_simple_signing_json() {
        let p = payload("127.0.0.1:5000/acme/app", "sha256:ab");
        assert_eq!(
            String::from_utf8(p.clone()).unwrap(),
            r#"{"critical":{"identity":{"docker-reference":"127.0.0.1:5000/acme/app"},"image":{"docker-manifest-digest":"sha256:ab"},"type":"cosign container image signature"},"optional":null}"#
        );
        assert_eq!(
            claim(&p),
            Some(Claim {
                repository: "127.0.0.1:5000/acme/app".into(),
                digest: "sha256:ab".into()
            })
        );
        assert_eq!(signature_tag("sha256:ab"), "sha256-ab.sig");
        assert_eq!(signed_digest("sha256-ab.sig"), "sha256:ab");
    }

    #[test]
    fn signature_manifest_names_payload_and_signature() {
        let image = SignatureImage::new("sha256:ab", payload("r/x", "sha256:ab"), "c2ln");
        let layers = signature_layers(image.manifest.bytes());
        assert_eq!(image.manifest.media_type().to_string(), MANIFEST_MEDIA_TYPE);
        assert_eq!(
            layers,
            vec![SignatureLayer {
                payload_digest: image.payload.digest().to_string(),
                signature_b64: "c2ln".into()
            }]
        );
    }

    #[test]
    fn a_second_signature_is_appended_and_an_identical_one_skipped() {
        let first = SignatureImage::new("sha256:ab", payload("r/x", "sha256:ab"), "Zmlyc3Q=");
        let second = SignatureImage::new("sha256:ab", payload("r/x", "sha256:ab"), "c2Vjb25k");
        let (config, manifest) =
            append_signatures(first.manifest.bytes(), second.manifest.bytes()).unwrap();
        let sigs: Vec<String> = signature_layers(manifest.bytes())
            .into_iter()
            .map(|l| l.signature_b64)
            .collect();
        assert_eq!(sigs, ["Zmlyc3Q=", "c2Vjb25k"]);
        let config: Value = serde_json::from_slice(config.bytes()).unwrap();
        assert_eq!(config["rootfs"]["diff_ids"].as_array().unwrap().len(), 2);
        assert!(append_signatures(manifest.bytes(), first.manifest.bytes()).is_none());
        assert!(append_signatures(first.manifest.bytes(), first.manifest.bytes()).is_none());
    }
}
