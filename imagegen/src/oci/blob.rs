//! Content-addressed blobs: the bytes of layers, configs, manifests and indexes.

use std::str::FromStr;

use oci_spec::image::{Descriptor, MediaType, Sha256Digest};
use serde::Serialize;
use sha2::{Digest, Sha256};

/// A content-addressed blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blob {
    media_type: MediaType,
    bytes: Vec<u8>,
    digest: String,
}

impl Blob {
    /// A blob of `media_type` holding `bytes`.
    pub fn new(media_type: MediaType, bytes: Vec<u8>) -> Blob {
        let digest = format!(
            "sha256:{}",
            firmware::manifest::hex(&Sha256::digest(&bytes))
        );
        Blob {
            media_type,
            bytes,
            digest,
        }
    }

    /// A blob holding `value` as compact JSON with sorted keys.
    pub fn json(media_type: MediaType, value: &impl Serialize) -> Blob {
        let value = serde_json::to_value(value).expect("OCI types serialize");
        Blob::new(
            media_type,
            serde_json::to_vec(&value).expect("JSON values serialize"),
        )
    }

    /// `sha256:<hex>`.
    pub fn digest(&self) -> &str {
        &self.digest
    }

    /// The hex part of the digest.
    pub fn hex(&self) -> &str {
        &self.digest["sha256:".len()..]
    }

    /// The contents.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The media type.
    pub fn media_type(&self) -> &MediaType {
        &self.media_type
    }

    /// A descriptor pointing at this blob.
    pub fn descriptor(&self) -> Descriptor {
        let digest = Sha256Digest::from_str(self.hex()).expect("hex sha256");
        Descriptor::new(self.media_type.clone(), self.bytes.len() as u64, digest)
    }

    /// Whether `descriptor` names exactly this blob (digest and size).
    pub fn matches(&self, descriptor: &Descriptor) -> bool {
        descriptor.digest().as_ref() == self.digest && descriptor.size() == self.bytes.len() as u64
    }
}
