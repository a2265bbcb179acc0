//! OCI images built in memory: layers, configs, manifests and indexes, byte-for-byte
//! reproducible, handed to the sinks as a [`Store`].
//!
//! Reproducibility: tar entries sorted with mtime 0, uid/gid 0 and fixed modes; gzip with mtime 0
//! at a fixed level; JSON compact with sorted keys (through `serde_json::Value`); a fixed
//! creation time (SOURCE_DATE_EPOCH or the epoch).

use std::collections::{BTreeMap, HashMap};
use std::io::Write;

use flate2::{Compression, GzBuilder};
use oci_spec::image::{
    Arch, ConfigBuilder, Descriptor, HistoryBuilder, ImageConfigurationBuilder, ImageIndexBuilder,
    ImageManifestBuilder, MediaType, Os, Platform, PlatformBuilder, RootFsBuilder,
};
use sha2::{Digest, Sha256};

use super::{Blob, Store};
use crate::error::{Error, Result};

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

/// A multi-platform image: an index over single-platform images, with its tags.
#[derive(Debug, Clone)]
pub struct Index {
    /// The index blob.
    pub index: Blob,
    /// The images it lists, in order.
    pub images: Vec<Image>,
    /// The index and its images as a store, tagged.
    store: Store,
}

impl Index {
    /// An index over `images` with `annotations`; `index_tags` name the index and
    /// `image_tags[i]` name `images[i]`.
    pub fn new(
        images: Vec<Image>,
        annotations: &BTreeMap<String, String>,
        index_tags: &[String],
        image_tags: &[Option<String>],
    ) -> Result<Index> {
        let index = ImageIndexBuilder::default()
            .schema_version(2u32)
            .media_type(MediaType::ImageIndex)
            .manifests(images.iter().map(Image::descriptor).collect::<Vec<_>>())
            .annotations(annotations.clone().into_iter().collect::<HashMap<_, _>>())
            .build()
            .map_err(|e| Error::Usage(format!("invalid image index: {e}")))?;
        let index = Blob::json(MediaType::ImageIndex, &index);
        let mut store = Store::new();
        for image in &images {
            for layer in &image.layers {
                store.insert(layer.blob.clone());
            }
            store.insert(image.config.clone());
            store.insert(image.manifest.clone());
        }
        store.insert(index.clone());
        for tag in index_tags {
            store.tag(tag, index.descriptor())?;
        }
        for (image, tag) in images.iter().zip(image_tags) {
            if let Some(tag) = tag {
                store.tag(tag, image.descriptor())?;
            }
        }
        Ok(Index {
            index,
            images,
            store,
        })
    }

    /// The tagged index, its images and every blob, for the sinks.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Tags and the digest each names, in order.
    pub fn tags(&self) -> impl Iterator<Item = (&str, String)> {
        self.store.tags().map(|(t, d)| (t, d.digest().to_string()))
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
