//! Image archives: an OCI layout in one tar file, plus the `manifest.json` of Docker's own
//! archive format, so both `docker load` (any version) and OCI tools (`oci-archive:`) read it.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use oci_spec::image::{Descriptor, ImageConfiguration, ImageManifest};
use serde_json::json;

use super::layout::OCI_LAYOUT;
use super::store::{Document, Store, StoreError};
use crate::atomic;
use crate::error::{Error, Result};

/// Which image `docker load` tags with the index tags, and the repository for every tag.
#[derive(Debug, Clone)]
pub struct DockerNames {
    /// Repository, with registry if any (`registry.example.com/acme/app-flash`).
    pub repository: String,
    /// Architecture of the image that receives the index tags (Docker's store keeps one
    /// platform per tag); the others get their per-platform tags only.
    pub default_arch: String,
}

/// One single-platform image of the store, as Docker's `manifest.json` lists it.
struct DockerImage {
    digest: String,
    architecture: String,
    manifest: ImageManifest,
}

/// Writes `store` as an archive at `path` (temporary file, then rename). Every index tag must
/// have an image for [`DockerNames::default_arch`] (see [`check`]).
pub fn write(store: &Store, path: &Path, names: &DockerNames) -> Result<()> {
    let manifest_json = docker_manifest(store, names)?;
    atomic::write(path, |tmp| write_to(store, &manifest_json, tmp))
}

/// Checks that every index tag of `store` has an image for `names.default_arch`, so that
/// `docker load` gives it a tag.
pub fn check(store: &Store, names: &DockerNames) -> Result<()> {
    docker_manifest(store, names).map(drop)
}

fn write_to(store: &Store, manifest_json: &[u8], path: &Path) -> Result<()> {
    let io = |e: std::io::Error| Error::write(path, e);
    let file = File::create(path).map_err(io)?;
    let mut tar = tar::Builder::new(BufWriter::new(file));
    let mut add = |name: &str, data: &[u8], dir: bool| -> std::io::Result<()> {
        let mut header = tar::Header::new_ustar();
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(0);
        header.set_size(data.len() as u64);
        if dir {
            header.set_entry_type(tar::EntryType::Directory);
            header.set_mode(0o755);
        } else {
            header.set_mode(0o644);
        }
        tar.append_data(&mut header, name, data)
    };
    add("blobs/", &[], true).map_err(io)?;
    add("blobs/sha256/", &[], true).map_err(io)?;
    for blob in store.blobs() {
        add(&format!("blobs/sha256/{}", blob.hex()), blob.bytes(), false).map_err(io)?;
    }
    add("index.json", &store.layout_index(), false).map_err(io)?;
    add("manifest.json", manifest_json, false).map_err(io)?;
    add("oci-layout", OCI_LAYOUT, false).map_err(io)?;
    let mut out = tar.into_inner().map_err(io)?;
    out.flush().map_err(io)?;
    out.get_ref().sync_all().map_err(io)
}

/// Docker's `manifest.json`: one entry per single-platform image with its tags: the tags naming
/// it, and the tags naming an index over it when it is of the default architecture.
fn docker_manifest(store: &Store, names: &DockerNames) -> Result<Vec<u8>> {
    let images = images(store).map_err(bug)?;
    for (tag, descriptor) in store.tags() {
        if let Document::Index(index) = store.document(descriptor).map_err(bug)? {
            let has_default = images.iter().any(|i| {
                i.architecture == names.default_arch && lists(index.manifests(), &i.digest)
            });
            if !has_default {
                return Err(Error::Usage(format!(
                    "the archive's default platform linux/{} is not in the image, so docker load would give no '{tag}' image: add --flasher linux/{}=PATH, or pass --archive-platform with a platform the image has",
                    names.default_arch, names.default_arch
                )));
            }
        }
    }
    let mut entries = Vec::new();
    for image in &images {
        let mut tags = Vec::new();
        for (tag, descriptor) in store.tags() {
            let names_it = match store.document(descriptor).map_err(bug)? {
                Document::Index(index) => {
                    image.architecture == names.default_arch
                        && lists(index.manifests(), &image.digest)
                }
                Document::Manifest(_) => descriptor.digest().as_ref() == image.digest,
            };
            if names_it {
                tags.push(format!("{}:{tag}", names.repository));
            }
        }
        let blob_path = |d: &Descriptor| format!("blobs/sha256/{}", d.digest().digest());
        entries.push(json!({
            "Config": blob_path(image.manifest.config()),
            "RepoTags": tags,
            "Layers": image.manifest.layers().iter().map(blob_path).collect::<Vec<_>>(),
        }));
    }
    Ok(serde_json::to_vec(&entries).expect("JSON serializes"))
}

/// Whether `descriptors` list the manifest `digest`.
fn lists(descriptors: &[Descriptor], digest: &str) -> bool {
    descriptors.iter().any(|d| d.digest().as_ref() == digest)
}

/// Every single-platform image of the store once, in the order the tags reach them.
fn images(store: &Store) -> Result<Vec<DockerImage>, StoreError> {
    let mut images: Vec<DockerImage> = Vec::new();
    for top in store.manifests() {
        let manifests = match store.document(top)? {
            Document::Index(index) => index.manifests().clone(),
            Document::Manifest(_) => vec![top.clone()],
        };
        for descriptor in manifests {
            let digest = descriptor.digest().to_string();
            if images.iter().any(|i| i.digest == digest) {
                continue;
            }
            let Document::Manifest(manifest) = store.document(&descriptor)? else {
                continue;
            };
            let config = store.blob(manifest.config())?;
            let architecture = ImageConfiguration::from_reader(config.bytes())
                .map_err(|e| StoreError::Invalid {
                    digest: config.digest().to_string(),
                    reason: e.to_string(),
                })?
                .architecture()
                .to_string();
            images.push(DockerImage {
                digest,
                architecture,
                manifest: *manifest,
            });
        }
    }
    Ok(images)
}

/// A store built in memory always holds together; one that does not is a bug.
fn bug(e: StoreError) -> Error {
    Error::Usage(format!(
        "the image does not hold together ({e}): this is a bug in imagegen, please report it"
    ))
}
