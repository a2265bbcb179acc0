//! OCI image layout directories (`oci-layout`, `index.json`, `blobs/sha256/...`): read into a
//! [`Store`], every blob checked against its digest, and written from one.

use std::fs;
use std::path::{Path, PathBuf};

use oci_spec::image::{Descriptor, ImageIndex};

use super::store::{Document, Kind, Store, tag_of};
use super::{Blob, check_tag};
use crate::atomic;
use crate::error::{Error, Result, read};

/// Contents of the `oci-layout` file.
pub const OCI_LAYOUT: &[u8] = br#"{"imageLayoutVersion":"1.0.0"}"#;

/// An OCI image layout directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    path: PathBuf,
}

impl Layout {
    /// The layout at `path` (which need not exist yet).
    pub fn new(path: impl Into<PathBuf>) -> Layout {
        Layout { path: path.into() }
    }

    /// Its directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes `store` here, replacing an older layout only once the new one is complete; refuses
    /// to replace anything that is not an OCI layout.
    pub fn write(&self, store: &Store) -> Result<()> {
        if self.path.exists() && !self.path.join("oci-layout").is_file() {
            return Err(Error::write(
                &self.path,
                std::io::Error::new(
                    std::io::ErrorKind::AlreadyExists,
                    "exists and is not an OCI layout; remove it or choose another --output",
                ),
            ));
        }
        atomic::write(&self.path, |tmp| write_into(store, tmp))
    }

    /// The top-level `index.json`.
    pub fn index(&self) -> Result<ImageIndex> {
        let path = self.path.join("index.json");
        ImageIndex::from_reader(read(&path)?.as_slice()).map_err(|e| {
            Error::input(
                &path,
                format!("not valid JSON ({e})"),
                "point --layout at an OCI image layout (imagegen build --output)",
            )
        })
    }

    /// Reads the tags `tags` (every tag when empty) and everything below them, each blob checked
    /// against its digest and size.
    pub fn read(&self, tags: &[String]) -> Result<Store> {
        let index = self.index()?;
        let tagged: Vec<(&str, &Descriptor)> = index
            .manifests()
            .iter()
            .filter_map(|d| Some((tag_of(d)?, d)))
            .collect();
        let index_path = self.path.join("index.json");
        for tag in tags {
            if !tagged.iter().any(|(t, _)| t == tag) {
                let known: Vec<&str> = tagged.iter().map(|(t, _)| *t).collect();
                return Err(Error::input(
                    &index_path,
                    format!("has no tag '{tag}'"),
                    format!("pick one of: {}", known.join(", ")),
                ));
            }
        }
        let selected: Vec<&(&str, &Descriptor)> = tagged
            .iter()
            .filter(|(t, _)| tags.is_empty() || tags.iter().any(|x| x == t))
            .collect();
        if selected.is_empty() {
            return Err(Error::input(
                &index_path,
                "names no tag",
                "build the layout with imagegen build --output or imagegen ota --output",
            ));
        }
        for (tag, _) in &selected {
            check_tag(tag)?;
        }
        self.load(selected.into_iter().map(|(_, d)| *d))
    }

    /// Reads `descriptors` (top-level entries of [`Layout::index`]) and everything below them.
    pub fn load<'a>(&self, descriptors: impl IntoIterator<Item = &'a Descriptor>) -> Result<Store> {
        let mut store = Store::new();
        for descriptor in descriptors {
            self.load_tree(descriptor, &mut store)?;
            store.list(descriptor.clone());
        }
        Ok(store)
    }

    /// Adds the blob `descriptor` names to `store` and, for a manifest or an index, everything
    /// below it.
    fn load_tree(&self, descriptor: &Descriptor, store: &mut Store) -> Result<()> {
        if store.blob(descriptor).is_ok() {
            return Ok(());
        }
        let blob = self.blob(descriptor)?;
        if Kind::of(descriptor.media_type()) != Kind::Leaf {
            let document = Document::parse(&blob)
                .map_err(|e| Error::input(&self.path, e.to_string(), "rebuild the layout"))?;
            for child in document.children() {
                self.load_tree(child, store)?;
            }
        }
        store.insert(blob);
        Ok(())
    }

    /// Reads the blob `descriptor` names and checks its digest and size.
    fn blob(&self, descriptor: &Descriptor) -> Result<Blob> {
        let hex = descriptor.as_digest_sha256().unwrap_or_default();
        let path = self.path.join("blobs/sha256").join(hex);
        let blob = Blob::new(descriptor.media_type().clone(), read(&path)?);
        if hex.is_empty() || !blob.matches(descriptor) {
            return Err(Error::input(
                &path,
                "does not match its digest or size (corrupted layout)",
                "rebuild or copy the layout again",
            ));
        }
        Ok(blob)
    }
}

/// Writes the layout's files into the new directory `dir`.
fn write_into(store: &Store, dir: &Path) -> Result<()> {
    let blob_dir = dir.join("blobs/sha256");
    fs::create_dir_all(&blob_dir).map_err(|e| Error::write(&blob_dir, e))?;
    for blob in store.blobs() {
        let path = blob_dir.join(blob.hex());
        fs::write(&path, blob.bytes()).map_err(|e| Error::write(&path, e))?;
    }
    let path = dir.join("oci-layout");
    fs::write(&path, OCI_LAYOUT).map_err(|e| Error::write(&path, e))?;
    let path = dir.join("index.json");
    fs::write(&path, store.layout_index()).map_err(|e| Error::write(&path, e))?;
    Ok(())
}
