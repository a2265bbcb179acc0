//! Reading an image back out of an OCI layout: one platform's root filesystem, every blob checked
//! against its digest on the way. Lets users (and the demo) run an image's `/flasher` without a
//! container engine.

use std::path::Path;

use flate2::read::GzDecoder;
use oci_spec::image::{Descriptor, ImageConfiguration, ImageManifest};

use crate::atomic;
use crate::error::{Error, Result};
use crate::oci::{Document, Layout, Store, tag_of};

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
    let layout = Layout::new(layout);
    let top = select(&layout, tag)?;
    let store = layout.load([&top])?;
    let manifest = resolve(&layout, &store, &top, os, arch)?;
    if let Some(parent) = dest.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| Error::write(parent, e))?;
    }
    atomic::write(dest, |tmp| extract(&layout, &store, &manifest, tmp))
}

/// The top-level descriptor named `tag`, else the first one.
fn select(layout: &Layout, tag: Option<&str>) -> Result<Descriptor> {
    let index = layout.index()?;
    let index_path = layout.path().join("index.json");
    let found = match tag {
        Some(t) => index.manifests().iter().find(|d| tag_of(d) == Some(t)),
        None => index.manifests().first(),
    };
    found.cloned().ok_or_else(|| match tag {
        Some(t) => Error::input(
            &index_path,
            format!("has no tag '{t}'"),
            "pick one of the tags imagegen printed",
        ),
        None => Error::input(
            &index_path,
            "lists no image",
            "build the layout with imagegen build --output",
        ),
    })
}

/// Follows `descriptor` (an index or a manifest) to the manifest for `os/arch`.
fn resolve(
    layout: &Layout,
    store: &Store,
    descriptor: &Descriptor,
    os: &str,
    arch: &str,
) -> Result<ImageManifest> {
    let broken = |e: crate::oci::StoreError| {
        Error::input(layout.path(), e.to_string(), "rebuild the layout")
    };
    match store.document(descriptor).map_err(broken)? {
        Document::Index(index) => {
            let child = index
                .manifests()
                .iter()
                .find(|m| {
                    m.platform().as_ref().is_some_and(|p| {
                        p.os().to_string() == os && p.architecture().to_string() == arch
                    })
                })
                .ok_or_else(|| {
                    Error::input(
                        layout.path(),
                        format!("the image has no {os}/{arch} platform"),
                        "pick a platform the index lists (--platform)",
                    )
                })?;
            resolve(layout, store, child, os, arch)
        }
        Document::Manifest(manifest) => {
            let config = store.blob(manifest.config()).map_err(broken)?;
            let config = ImageConfiguration::from_reader(config.bytes()).map_err(|e| {
                Error::input(
                    layout.path(),
                    format!("the image config is not valid JSON ({e})"),
                    "rebuild the layout",
                )
            })?;
            let (c_os, c_arch) = (config.os().to_string(), config.architecture().to_string());
            if c_os != os || c_arch != arch {
                return Err(Error::input(
                    layout.path(),
                    format!("the tag names a {c_os}/{c_arch} image, not {os}/{arch}"),
                    "use the index tag or the matching per-platform tag",
                ));
            }
            Ok(*manifest)
        }
    }
}

/// Unpacks the layers of `manifest`, bottom first, into the new directory `dir`.
fn extract(layout: &Layout, store: &Store, manifest: &ImageManifest, dir: &Path) -> Result<()> {
    for layer in manifest.layers() {
        let blob = store
            .blob(layer)
            .map_err(|e| Error::input(layout.path(), e.to_string(), "rebuild the layout"))?;
        let mut archive = tar::Archive::new(GzDecoder::new(blob.bytes()));
        archive.set_preserve_permissions(true);
        archive.unpack(dir).map_err(|e| {
            Error::input(
                layout.path(),
                format!("a layer does not unpack ({e})"),
                "rebuild the layout",
            )
        })?;
    }
    Ok(())
}
