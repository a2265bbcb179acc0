//! OCI images built in memory: layers, configs, manifests and indexes, byte-for-byte
//! reproducible, ready for any sink ([`crate::sink`]).
//!
//! Reproducibility: tar entries sorted with mtime 0, uid/gid 0 and fixed modes; gzip with mtime 0
//! at a fixed level; JSON compact with sorted keys (through `serde_json::Value`); a fixed
//! creation time (SOURCE_DATE_EPOCH or the epoch).

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::str::FromStr;

use flate2::{Compression, GzBuilder};
use oci_spec::image::{
    Arch, ConfigBuilder, Descriptor, HistoryBuilder, ImageConfigurationBuilder, ImageIndexBuilder,
    ImageManifestBuilder, MediaType, Os, Platform, PlatformBuilder, RootFsBuilder, Sha256Digest,
};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// Annotation carrying a tag in an OCI layout's `index.json`.
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";

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
}

/// A file or directory in a layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// A directory (path without trailing slash).
    Dir(String),
    /// A regular file with its mode.
    File {
        /// Path without leading slash.
        path: String,
        /// Contents.
        bytes: Vec<u8>,
        /// Permission bits.
        mode: u32,
    },
}

impl Entry {
    fn path(&self) -> &str {
        match self {
            Entry::Dir(p) | Entry::File { path: p, .. } => p,
        }
    }
}

/// A gzip-compressed layer and the digest of its uncompressed tar.
#[derive(Debug, Clone)]
pub struct Layer {
    /// The `tar+gzip` blob.
    pub blob: Blob,
    /// `sha256:` of the uncompressed tar.
    pub diff_id: String,
}

impl Layer {
    /// A layer of `entries`, sorted by path.
    pub fn new(mut entries: Vec<Entry>) -> Result<Layer> {
        entries.sort_by(|a, b| a.path().cmp(b.path()));
        let mut tar = tar::Builder::new(Vec::new());
        for entry in &entries {
            let mut header = tar::Header::new_ustar();
            header.set_uid(0);
            header.set_gid(0);
            header.set_mtime(0);
            let (path, data, mode, kind): (String, &[u8], u32, _) = match entry {
                Entry::Dir(p) => (format!("{p}/"), &[], 0o755, tar::EntryType::Directory),
                Entry::File { path, bytes, mode } => (
                    path.clone(),
                    bytes.as_slice(),
                    *mode,
                    tar::EntryType::Regular,
                ),
            };
            header.set_entry_type(kind);
            header.set_mode(mode);
            header.set_size(data.len() as u64);
            tar.append_data(&mut header, &path, data).map_err(|e| {
                Error::Usage(format!(
                    "cannot put '{path}' into a layer ({e}): shorten the path"
                ))
            })?;
        }
        let tar = tar.into_inner().expect("in-memory tar");
        let diff_id = format!("sha256:{}", firmware::manifest::hex(&Sha256::digest(&tar)));
        let mut gz = GzBuilder::new()
            .mtime(0)
            .write(Vec::with_capacity(tar.len() / 2), Compression::best());
        gz.write_all(&tar).expect("in-memory gzip");
        let gz = gz.finish().expect("in-memory gzip");
        Ok(Layer {
            blob: Blob::new(MediaType::ImageLayerGzip, gz),
            diff_id,
        })
    }
}

/// `entries` plus every directory above them, so a tree unpacks with sane modes.
pub fn with_parent_dirs(files: Vec<Entry>) -> Vec<Entry> {
    let mut dirs = std::collections::BTreeSet::new();
    for f in &files {
        let mut path = f.path();
        while let Some((parent, _)) = path.rsplit_once('/') {
            dirs.insert(parent.to_string());
            path = parent;
        }
    }
    dirs.into_iter().map(Entry::Dir).chain(files).collect()
}

/// Everything about one image's config that is not its layers.
#[derive(Debug, Clone)]
pub struct ImageSpec {
    /// Platform of the image (`linux/amd64`, `custom/esp32s3`).
    pub os: String,
    /// Architecture.
    pub architecture: String,
    /// Entrypoint, if the image is runnable.
    pub entrypoint: Option<Vec<String>>,
    /// Labels in the config and annotations on the manifest.
    pub annotations: BTreeMap<String, String>,
    /// Creation time, RFC 3339.
    pub created: String,
    /// One description per layer for the history.
    pub history: Vec<String>,
}

/// One single-platform image: its manifest blob, config blob and layers.
#[derive(Debug, Clone)]
pub struct Image {
    /// The manifest.
    pub manifest: Blob,
    /// The config.
    pub config: Blob,
    /// The layers, bottom first.
    pub layers: Vec<Layer>,
    /// The platform it runs on.
    pub platform: Platform,
}

impl Image {
    /// Assembles an image from layers (bottom first).
    pub fn new(spec: &ImageSpec, layers: Vec<Layer>) -> Result<Image> {
        let oci = |e: oci_spec::OciSpecError| Error::Usage(format!("invalid image metadata: {e}"));
        let labels: HashMap<String, String> = spec.annotations.clone().into_iter().collect();
        let mut config = ConfigBuilder::default()
            .labels(labels.clone())
            .working_dir("/");
        if let Some(entrypoint) = &spec.entrypoint {
            config = config
                .entrypoint(entrypoint.clone())
                .env(vec!["PATH=/".to_string()]);
        }
        let history = spec
            .history
            .iter()
            .map(|h| {
                HistoryBuilder::default()
                    .created(spec.created.clone())
                    .created_by(h.clone())
                    .build()
                    .map_err(oci)
            })
            .collect::<Result<Vec<_>>>()?;
        let config = ImageConfigurationBuilder::default()
            .created(spec.created.clone())
            .architecture(Arch::from(spec.architecture.as_str()))
            .os(Os::from(spec.os.as_str()))
            .config(config.build().map_err(oci)?)
            .rootfs(
                RootFsBuilder::default()
                    .typ("layers")
                    .diff_ids(layers.iter().map(|l| l.diff_id.clone()).collect::<Vec<_>>())
                    .build()
                    .map_err(oci)?,
            )
            .history(history)
            .build()
            .map_err(oci)?;
        let config = Blob::json(MediaType::ImageConfig, &config);
        let manifest = ImageManifestBuilder::default()
            .schema_version(2u32)
            .media_type(MediaType::ImageManifest)
            .config(config.descriptor())
            .layers(
                layers
                    .iter()
                    .map(|l| l.blob.descriptor())
                    .collect::<Vec<_>>(),
            )
            .annotations(labels)
            .build()
            .map_err(oci)?;
        let platform = PlatformBuilder::default()
            .os(Os::from(spec.os.as_str()))
            .architecture(Arch::from(spec.architecture.as_str()))
            .build()
            .map_err(oci)?;
        Ok(Image {
            manifest: Blob::json(MediaType::ImageManifest, &manifest),
            config,
            layers,
            platform,
        })
    }

    /// The manifest's descriptor, with the platform, as an index lists it.
    pub fn descriptor(&self) -> Descriptor {
        let mut d = self.manifest.descriptor();
        d.set_platform(Some(self.platform.clone()));
        d
    }
}

/// A multi-platform image: a nested index over single-platform images, with tags.
#[derive(Debug, Clone)]
pub struct ImageIndex {
    /// The index blob.
    pub index: Blob,
    /// The images it lists, in order.
    pub images: Vec<Image>,
    /// Tags and what they point at (the index or one image's manifest).
    pub refs: Vec<(String, Descriptor)>,
}

impl ImageIndex {
    /// An index over `images` with `annotations`; `index_tags` name the index and
    /// `image_tags[i]` name `images[i]`.
    pub fn new(
        images: Vec<Image>,
        annotations: &BTreeMap<String, String>,
        index_tags: &[String],
        image_tags: &[Option<String>],
    ) -> Result<ImageIndex> {
        let index = ImageIndexBuilder::default()
            .schema_version(2u32)
            .media_type(MediaType::ImageIndex)
            .manifests(images.iter().map(Image::descriptor).collect::<Vec<_>>())
            .annotations(annotations.clone().into_iter().collect::<HashMap<_, _>>())
            .build()
            .map_err(|e| Error::Usage(format!("invalid image index: {e}")))?;
        let index = Blob::json(MediaType::ImageIndex, &index);
        let mut refs = Vec::new();
        for tag in index_tags {
            refs.push((tag.clone(), index.descriptor()));
        }
        for (image, tag) in images.iter().zip(image_tags) {
            if let Some(tag) = tag {
                refs.push((tag.clone(), image.descriptor()));
            }
        }
        for (tag, _) in &refs {
            check_tag(tag)?;
        }
        let mut seen = std::collections::BTreeSet::new();
        if let Some((dup, _)) = refs.iter().find(|(t, _)| !seen.insert(t.clone())) {
            return Err(Error::Usage(format!(
                "tag '{dup}' is given twice: drop the extra --tag"
            )));
        }
        Ok(ImageIndex {
            index,
            images,
            refs,
        })
    }

    /// Every blob (layers, configs, manifests, index) once, by digest.
    pub fn blobs(&self) -> BTreeMap<&str, &Blob> {
        let mut blobs = BTreeMap::new();
        for image in &self.images {
            for layer in &image.layers {
                blobs.insert(layer.blob.digest(), &layer.blob);
            }
            blobs.insert(image.config.digest(), &image.config);
            blobs.insert(image.manifest.digest(), &image.manifest);
        }
        blobs.insert(self.index.digest(), &self.index);
        blobs
    }

    /// The OCI layout `index.json`: one descriptor per tag, carrying `ref.name`.
    pub fn layout_index(&self) -> Vec<u8> {
        layout_index(&self.refs)
    }
}

/// An OCI layout `index.json` for `refs`: one descriptor per tag, carrying `ref.name`.
pub fn layout_index(refs: &[(String, Descriptor)]) -> Vec<u8> {
    let manifests: Vec<Descriptor> = refs
        .iter()
        .map(|(tag, d)| {
            let mut d = d.clone();
            d.set_annotations(Some(HashMap::from([(REF_NAME.to_string(), tag.clone())])));
            d
        })
        .collect();
    let mut index = ImageIndexBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageIndex)
        .manifests(manifests)
        .build()
        .expect("index of valid descriptors");
    index.set_annotations(None);
    Blob::json(MediaType::ImageIndex, &index).bytes
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

/// An image creation time: RFC 3339 UTC, second precision (`2026-01-31T12:00:00Z`).
/// The default is the Unix epoch, so that builds without a time are reproducible.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timestamp(String);

impl Timestamp {
    /// The time `secs` after the Unix epoch.
    pub fn from_unix(secs: i64) -> Timestamp {
        Timestamp(firmware::time::rfc3339(secs))
    }

    /// Parses Unix seconds or RFC 3339 UTC (`YYYY-MM-DDTHH:MM:SSZ`).
    pub fn parse(value: &str) -> Option<Timestamp> {
        let value = value.trim();
        if let Ok(secs) = value.parse::<i64>() {
            return Some(Timestamp::from_unix(secs));
        }
        let b = value.as_bytes();
        let shape = b.len() == 20
            && b.iter().enumerate().all(|(i, c)| match i {
                4 | 7 => *c == b'-',
                10 => *c == b'T',
                13 | 16 => *c == b':',
                19 => *c == b'Z',
                _ => c.is_ascii_digit(),
            });
        shape.then(|| Timestamp(value.to_string()))
    }

    /// The RFC 3339 text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for Timestamp {
    fn default() -> Timestamp {
        Timestamp::from_unix(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_times() {
        assert_eq!(Timestamp::default().as_str(), "1970-01-01T00:00:00Z");
        assert_eq!(
            Timestamp::parse("1700000000").unwrap().as_str(),
            "2023-11-14T22:13:20Z"
        );
        assert_eq!(
            Timestamp::parse("2026-01-31T12:00:00Z").unwrap().as_str(),
            "2026-01-31T12:00:00Z"
        );
        assert!(Timestamp::parse("").is_none());
        assert!(Timestamp::parse("yesterday").is_none());
        assert!(Timestamp::parse("2026-01-31 12:00:00").is_none());
    }

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
    fn layers_are_reproducible() {
        let files = || {
            with_parent_dirs(vec![Entry::File {
                path: "firmware/esp32/artifacts/app.bin".into(),
                bytes: vec![1, 2, 3],
                mode: 0o644,
            }])
        };
        let a = Layer::new(files()).unwrap();
        let b = Layer::new(files()).unwrap();
        assert_eq!(a.blob, b.blob);
        assert_eq!(a.diff_id, b.diff_id);
    }
}
