//! Reading an image back out of an OCI layout: one platform's root filesystem, every blob checked
//! against its digest on the way. Lets users (and the demo) run an image's `/flasher` without a
//! container engine.

use std::fs;
use std::path::Path;

use flate2::read::GzDecoder;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::error::{Error, Result, read};
use crate::image::REF_NAME;

/// Extracts the image `tag` (any, if the layout holds a single tag) for `os/arch` from the
/// layout at `layout` into `dest`, which must not exist yet.
pub fn unpack(layout: &Path, tag: Option<&str>, os: &str, arch: &str, dest: &Path) -> Result<()> {
    if dest.exists() {
        return Err(Error::input(
            dest,
            "already exists",
            "choose a new directory for --to",
        ));
    }
    let index_path = layout.join("index.json");
    let index = json(&index_path, &read(&index_path)?)?;
    let refs = index["manifests"].as_array().cloned().unwrap_or_default();
    let named = |d: &&Value| d["annotations"][REF_NAME].as_str() == tag;
    let desc = match tag {
        Some(t) => refs.iter().find(named).ok_or_else(|| {
            Error::input(
                &index_path,
                format!("has no tag '{t}'"),
                "pick one of the tags imagegen printed",
            )
        })?,
        None => refs.first().ok_or_else(|| {
            Error::input(
                &index_path,
                "lists no image",
                "build the layout with imagegen build --output",
            )
        })?,
    };
    let manifest = resolve(layout, desc, os, arch)?;
    let tmp = dest.with_file_name(format!(
        ".{}.tmp-{}",
        dest.file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default(),
        std::process::id()
    ));
    let result = (|| {
        for layer in manifest["layers"].as_array().into_iter().flatten() {
            let bytes = blob(layout, layer)?;
            let mut archive = tar::Archive::new(GzDecoder::new(bytes.as_slice()));
            archive.set_preserve_permissions(true);
            archive.unpack(&tmp).map_err(|e| {
                Error::input(
                    layout,
                    format!("a layer does not unpack ({e})"),
                    "rebuild the layout",
                )
            })?;
        }
        fs::rename(&tmp, dest).map_err(|e| Error::write(dest, e))
    })();
    if result.is_err() {
        let _ = fs::remove_dir_all(&tmp);
    }
    result
}

/// Follows `desc` (an index or a manifest) to the manifest for `os/arch`.
fn resolve(layout: &Path, desc: &Value, os: &str, arch: &str) -> Result<Value> {
    let doc = json(layout, &blob(layout, desc)?)?;
    match desc["mediaType"].as_str() {
        Some("application/vnd.oci.image.index.v1+json") => {
            let child = doc["manifests"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|m| m["platform"]["os"] == os && m["platform"]["architecture"] == arch)
                .ok_or_else(|| {
                    Error::input(
                        layout,
                        format!("the image has no {os}/{arch} platform"),
                        "pick a platform the index lists (--platform)",
                    )
                })?;
            resolve(layout, child, os, arch)
        }
        _ => {
            let config = json(layout, &blob(layout, &doc["config"])?)?;
            if config["os"] != os || config["architecture"] != arch {
                return Err(Error::input(
                    layout,
                    format!(
                        "the tag names a {}/{} image, not {os}/{arch}",
                        config["os"].as_str().unwrap_or("?"),
                        config["architecture"].as_str().unwrap_or("?")
                    ),
                    "use the index tag or the matching per-platform tag",
                ));
            }
            Ok(doc)
        }
    }
}

/// Reads the blob `desc` points at and checks its digest and size.
pub(crate) fn blob(layout: &Path, desc: &Value) -> Result<Vec<u8>> {
    let digest = desc["digest"].as_str().unwrap_or_default();
    let hex = digest.strip_prefix("sha256:").unwrap_or_default();
    let path = layout.join("blobs/sha256").join(hex);
    let bytes = read(&path)?;
    let actual = firmware::manifest::hex(&Sha256::digest(&bytes));
    if actual != hex || desc["size"].as_u64() != Some(bytes.len() as u64) {
        return Err(Error::input(
            &path,
            "does not match its digest or size (corrupted layout)",
            "rebuild or copy the layout again",
        ));
    }
    Ok(bytes)
}

fn json(path: &Path, bytes: &[u8]) -> Result<Value> {
    serde_json::from_slice(bytes).map_err(|e| {
        Error::input(
            path,
            format!("not valid JSON ({e})"),
            "point --layout at an OCI image layout",
        )
    })
}
