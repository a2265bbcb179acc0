//! Image archives: an OCI layout in one tar file, plus the `manifest.json` of Docker's own
//! archive format, so both `docker load` (any version) and OCI tools (`oci-archive:`) read it.

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::Path;

use serde_json::json;

use crate::error::{Error, Result};
use crate::image::ImageIndex;
use crate::sink::layout::OCI_LAYOUT;

/// Which image `docker load` tags with the index tags, and the repository for every tag.
#[derive(Debug, Clone)]
pub struct DockerNames {
    /// Repository, with registry if any (`registry.example.com/acme/app-flash`).
    pub repository: String,
    /// Architecture of the image that receives the index tags (Docker's store keeps one
    /// platform per tag); the others get their per-platform tags only.
    pub default_arch: String,
}

/// Writes `image` as an archive at `path` (temporary file, then rename).
pub fn write(image: &ImageIndex, path: &Path, names: &DockerNames) -> Result<()> {
    let tmp = super::temp_sibling(path)?;
    let result = write_to(image, &tmp, names)
        .and_then(|()| fs::rename(&tmp, path).map_err(|e| Error::write(path, e)));
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

fn write_to(image: &ImageIndex, path: &Path, names: &DockerNames) -> Result<()> {
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
    for blob in image.blobs().values() {
        add(&format!("blobs/sha256/{}", blob.hex()), blob.bytes(), false).map_err(io)?;
    }
    add("index.json", &image.layout_index(), false).map_err(io)?;
    add("manifest.json", &docker_manifest(image, names), false).map_err(io)?;
    add("oci-layout", OCI_LAYOUT, false).map_err(io)?;
    let mut out = tar.into_inner().map_err(io)?;
    out.flush().map_err(io)?;
    out.get_ref().sync_all().map_err(io)
}

/// Docker's `manifest.json`: one entry per platform image with its tags.
fn docker_manifest(image: &ImageIndex, names: &DockerNames) -> Vec<u8> {
    let index_digest = image.index.digest();
    let entries: Vec<_> = image
        .images
        .iter()
        .map(|img| {
            let arch = img.platform.architecture().to_string();
            let tags = image.refs.iter().filter(|(_, d)| {
                let digest = d.digest().to_string();
                digest == img.manifest.digest()
                    || (digest == index_digest && arch == names.default_arch)
            });
            json!({
                "Config": format!("blobs/sha256/{}", img.config.hex()),
                "RepoTags": tags.map(|(t, _)| format!("{}:{t}", names.repository)).collect::<Vec<_>>(),
                "Layers": img.layers.iter().map(|l| format!("blobs/sha256/{}", l.blob.hex())).collect::<Vec<_>>(),
            })
        })
        .collect();
    serde_json::to_vec(&entries).expect("JSON serializes")
}
