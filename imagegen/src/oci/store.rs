//! The one in-memory model every source and sink speaks: tagged manifests and indexes with every
//! blob below them, as an OCI image layout holds them (a top-level list of descriptors, each
//! tag in its `org.opencontainers.image.ref.name` annotation, and the blobs by digest).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use oci_spec::image::{Descriptor, ImageIndex, ImageIndexBuilder, ImageManifest, MediaType};

use super::Blob;
use crate::error::{Error, Result};

/// Annotation carrying a tag in an OCI layout's `index.json`.
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// Docker's media type of a multi-platform manifest list (read from layouts, never written).
const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// Docker's media type of a single-platform manifest (read from layouts, never written).
const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";

/// Why a store's contents do not hold together.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A descriptor names a blob the store lacks.
    #[error("blob {0} is missing")]
    Missing(String),
    /// A manifest or index that does not parse.
    #[error("manifest {digest} is not valid JSON ({reason})")]
    Invalid {
        /// Its digest.
        digest: String,
        /// The parser's message.
        reason: String,
    },
    /// A tag or an index entry that points at something other than a manifest or an index.
    #[error("{digest} has media type '{media_type}', which is neither a manifest nor an index")]
    NotAManifest {
        /// Its digest.
        digest: String,
        /// Its media type.
        media_type: String,
    },
}

/// A parsed manifest or index.
#[derive(Debug, Clone)]
pub enum Document {
    /// A multi-platform index (OCI index or Docker manifest list).
    Index(Box<ImageIndex>),
    /// A single-platform manifest (OCI or Docker), or an artifact manifest.
    Manifest(Box<ImageManifest>),
}

/// What a media type says a blob is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// An index or manifest list.
    Index,
    /// A manifest.
    Manifest,
    /// Anything else (config, layer).
    Leaf,
}

impl Kind {
    /// The kind of a blob of `media_type`.
    pub(crate) fn of(media_type: &MediaType) -> Kind {
        match media_type {
            MediaType::ImageIndex => Kind::Index,
            MediaType::ImageManifest => Kind::Manifest,
            MediaType::Other(m) if m == DOCKER_LIST => Kind::Index,
            MediaType::Other(m) if m == DOCKER_MANIFEST => Kind::Manifest,
            _ => Kind::Leaf,
        }
    }
}

impl Document {
    /// Parses `blob` as the manifest or index its media type says it is.
    pub fn parse(blob: &Blob) -> Result<Document, StoreError> {
        let invalid = |e: oci_spec::OciSpecError| StoreError::Invalid {
            digest: blob.digest().to_string(),
            reason: e.to_string(),
        };
        match Kind::of(blob.media_type()) {
            Kind::Index => ImageIndex::from_reader(blob.bytes())
                .map(|i| Document::Index(Box::new(i)))
                .map_err(invalid),
            Kind::Manifest => ImageManifest::from_reader(blob.bytes())
                .map(|m| Document::Manifest(Box::new(m)))
                .map_err(invalid),
            Kind::Leaf => Err(StoreError::NotAManifest {
                digest: blob.digest().to_string(),
                media_type: blob.media_type().to_string(),
            }),
        }
    }

    /// What it points at: an index's manifests, a manifest's config and layers.
    pub fn children(&self) -> Vec<&Descriptor> {
        match self {
            Document::Index(index) => index.manifests().iter().collect(),
            Document::Manifest(m) => std::iter::once(m.config()).chain(m.layers()).collect(),
        }
    }
}

/// Tagged manifests and indexes with every blob below them.
#[derive(Debug, Clone, Default)]
pub struct Store {
    manifests: Vec<Descriptor>,
    blobs: BTreeMap<String, Blob>,
}

/// What a push sends, in order: the blobs, then every manifest and index children first, then
/// their signatures, then the tags (each naming one of those manifests).
#[derive(Debug)]
pub struct Plan<'a> {
    /// Configs and layers, each once.
    pub blobs: Vec<&'a Blob>,
    /// Manifests and indexes, children before parents.
    pub manifests: Vec<&'a Blob>,
    /// Signature manifests of those, each under its tag (`sha256-<hex>.sig`): put after the
    /// manifests and before the tags.
    pub signatures: Vec<(&'a str, &'a Blob)>,
    /// Tags and the manifest or index each names.
    pub tags: Vec<(&'a str, &'a Blob)>,
}

impl Store {
    /// An empty store.
    pub fn new() -> Store {
        Store::default()
    }

    /// Adds `blob` (once, by digest).
    pub fn insert(&mut self, blob: Blob) {
        self.blobs.entry(blob.digest().to_string()).or_insert(blob);
    }

    /// Lists `descriptor` at the top, named `tag` (checked against the distribution spec and
    /// against the tags already listed).
    pub fn tag(&mut self, tag: &str, descriptor: Descriptor) -> Result<()> {
        check_tag(tag)?;
        if self.tags().any(|(t, _)| t == tag) {
            return Err(Error::Usage(format!(
                "tag '{tag}' is given twice: drop the extra --tag"
            )));
        }
        let mut descriptor = descriptor;
        descriptor.set_annotations(Some(HashMap::from([(REF_NAME.to_string(), tag.into())])));
        self.manifests.push(descriptor);
        Ok(())
    }

    /// Lists `descriptor` at the top as it is (tagged or not), as read from a layout.
    pub(crate) fn list(&mut self, descriptor: Descriptor) {
        self.manifests.push(descriptor);
    }

    /// The top-level descriptors, in order, as `index.json` lists them.
    pub fn manifests(&self) -> &[Descriptor] {
        &self.manifests
    }

    /// The tagged top-level descriptors, in order.
    pub fn tags(&self) -> impl Iterator<Item = (&str, &Descriptor)> {
        self.manifests.iter().filter_map(|d| Some((tag_of(d)?, d)))
    }

    /// Every blob, by digest.
    pub fn blobs(&self) -> impl Iterator<Item = &Blob> {
        self.blobs.values()
    }

    /// The blob `descriptor` names.
    pub fn blob(&self, descriptor: &Descriptor) -> Result<&Blob, StoreError> {
        self.blobs
            .get(descriptor.digest().as_ref())
            .ok_or_else(|| StoreError::Missing(descriptor.digest().to_string()))
    }

    /// The manifest or index `descriptor` names, parsed.
    pub fn document(&self, descriptor: &Descriptor) -> Result<Document, StoreError> {
        let blob = self.blob(descriptor)?;
        if Kind::of(descriptor.media_type()) == Kind::Leaf {
            return Err(StoreError::NotAManifest {
                digest: blob.digest().to_string(),
                media_type: descriptor.media_type().to_string(),
            });
        }
        Document::parse(blob)
    }

    /// The OCI layout `index.json`: the top-level descriptors, without annotations of its own.
    pub fn layout_index(&self) -> Vec<u8> {
        let mut index = ImageIndexBuilder::default()
            .schema_version(2u32)
            .media_type(MediaType::ImageIndex)
            .manifests(self.manifests.clone())
            .build()
            .expect("index of valid descriptors");
        index.set_annotations(None);
        Blob::json(MediaType::ImageIndex, &index).bytes().to_vec()
    }

    /// What pushing every tag sends, in order, each blob once.
    pub fn plan(&self) -> Result<Plan<'_>, StoreError> {
        let mut plan = Plan {
            blobs: Vec::new(),
            manifests: Vec::new(),
            signatures: Vec::new(),
            tags: Vec::new(),
        };
        let mut seen = BTreeSet::new();
        for (tag, descriptor) in self.tags() {
            self.visit(descriptor, &mut plan, &mut seen)?;
            plan.tags.push((tag, self.blob(descriptor)?));
        }
        Ok(plan)
    }

    /// Adds the manifest or index `descriptor` and everything below it to `plan`, children
    /// first.
    fn visit<'a>(
        &'a self,
        descriptor: &Descriptor,
        plan: &mut Plan<'a>,
        seen: &mut BTreeSet<String>,
    ) -> Result<(), StoreError> {
        if !seen.insert(descriptor.digest().to_string()) {
            return Ok(());
        }
        let document = self.document(descriptor)?;
        for child in document.children() {
            match document {
                Document::Index(_) => self.visit(child, plan, seen)?,
                Document::Manifest(_) => {
                    if seen.insert(child.digest().to_string()) {
                        plan.blobs.push(self.blob(child)?);
                    }
                }
            }
        }
        plan.manifests.push(self.blob(descriptor)?);
        Ok(())
    }
}

/// The tag a top-level descriptor carries, if any.
pub fn tag_of(descriptor: &Descriptor) -> Option<&str> {
    descriptor
        .annotations()
        .as_ref()?
        .get(REF_NAME)
        .map(String::as_str)
}

/// Checks a tag against the distribution spec: `[A-Za-z0-9_][A-Za-z0-9._-]{0,127}`.
pub fn check_tag(tag: &str) -> Result<()> {
    let ok = !tag.is_empty()
        && tag.len() <= 128
        && tag
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_')
        && tag
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(Error::Usage(format!(
            "'{tag}' is not a valid image tag: use letters, digits, '_', '.' and '-' (not first), at most 128 characters; check --app-type, --version and --tag"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_follow_the_distribution_spec() {
        for good in ["app-1.0.0", "amd64-app-1.0.0-abc1234", "_x", "A.b-c"] {
            check_tag(good).unwrap();
        }
        for bad in ["", "-x", ".x", "1.0+build", "a/b", &"x".repeat(129)] {
            assert!(check_tag(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_plan_sends_children_first_and_each_blob_once() {
        let layer = Blob::new(MediaType::ImageLayerGzip, b"layer".to_vec());
        let config = Blob::new(MediaType::ImageConfig, b"{}".to_vec());
        let manifest = oci_spec::image::ImageManifestBuilder::default()
            .schema_version(2u32)
            .media_type(MediaType::ImageManifest)
            .config(config.descriptor())
            .layers(vec![layer.descriptor(), layer.descriptor()])
            .build()
            .unwrap();
        let manifest = Blob::json(MediaType::ImageManifest, &manifest);
        let mut store = Store::new();
        for b in [&layer, &config, &manifest] {
            store.insert(b.clone());
        }
        store.tag("a", manifest.descriptor()).unwrap();
        store.tag("b", manifest.descriptor()).unwrap();
        assert!(store.tag("a", manifest.descriptor()).is_err());
        let plan = store.plan().unwrap();
        assert_eq!(plan.blobs, [&config, &layer]);
        assert_eq!(plan.manifests, [&manifest]);
        assert_eq!(plan.tags, [("a", &manifest), ("b", &manifest)]);
    }
}
