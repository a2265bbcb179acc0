//! The flash image: a multi-arch index whose per-platform images hold the static `/flasher`
//! (one layer per platform) over the `/firmware` bundle (one layer, shared by every platform).

use std::collections::BTreeMap;

use crate::bundle::Bundle;
use crate::error::{Error, Result};
use crate::image::{Entry, Image, ImageIndex, ImageSpec, Layer, Timestamp, with_parent_dirs};
use crate::platform::Platform;

/// Prefix of this project's own annotations.
pub const ANNOTATION_PREFIX: &str = "io.esp-flash";

/// Release details that go into tags and annotations.
#[derive(Debug, Clone, Default)]
pub struct Release {
    /// Creation time.
    pub created: Timestamp,
    /// Source repository URL.
    pub source: Option<String>,
    /// Extra tags for the index.
    pub extra_tags: Vec<String>,
}

/// The `<app_type>` and `<version>` of tags: as given, else the first target's app name and
/// version.
pub fn tag_parts(bundle: &Bundle) -> (String, String) {
    let m = bundle.manifest();
    let first = m.targets.first().map(|t| &t.app);
    let app_type = m
        .app_type
        .clone()
        .or_else(|| first.map(|a| a.name.clone()))
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "app".into());
    let version = m
        .version
        .clone()
        .or_else(|| first.map(|a| a.version.clone()))
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "0.0.0".into());
    (app_type, version)
}

/// The first seven characters of the revision, if there is one.
pub fn sha7(bundle: &Bundle) -> Option<String> {
    bundle
        .manifest()
        .revision
        .as_deref()
        .map(|r| r.chars().take(7).collect())
}

/// Builds the flash image for `flashers` (one static executable per platform).
pub fn build(
    bundle: &Bundle,
    flashers: &[(Platform, Vec<u8>)],
    release: &Release,
) -> Result<ImageIndex> {
    if flashers.is_empty() {
        return Err(Error::Usage(
            "no flasher given: add --flasher linux/amd64=PATH and --flasher linux/arm64=PATH"
                .into(),
        ));
    }
    let manifest = bundle.manifest();
    let (app_type, version) = tag_parts(bundle);
    let targets: Vec<&str> = manifest.targets.iter().map(|t| t.name.as_str()).collect();
    let app_name = manifest
        .targets
        .first()
        .map_or("app", |t| t.app.name.as_str());

    let mut annotations = BTreeMap::new();
    let oci = |k: &str| format!("org.opencontainers.image.{k}");
    annotations.insert(oci("created"), release.created.as_str().to_string());
    annotations.insert(oci("version"), version.clone());
    annotations.insert(oci("title"), format!("{app_name}-flash"));
    annotations.insert(
        oci("description"),
        format!(
            "First-flash image for {}: docker run --device=PORT IMAGE --port PORT --chip CHIP --flash_size SIZE",
            targets.join(", ")
        ),
    );
    if let Some(rev) = &manifest.revision {
        annotations.insert(oci("revision"), rev.clone());
    }
    if let Some(src) = &release.source {
        annotations.insert(oci("source"), src.clone());
    }
    annotations.insert(format!("{ANNOTATION_PREFIX}.targets"), targets.join(","));
    annotations.insert(format!("{ANNOTATION_PREFIX}.app-type"), app_type.clone());

    let firmware_files = bundle
        .files()
        .map(|(path, bytes)| Entry::File {
            path: format!("firmware/{path}"),
            bytes: bytes.to_vec(),
            mode: 0o644,
        })
        .collect();
    let (firmware, flasher_layers) = std::thread::scope(|s| {
        let firmware = s.spawn(|| Layer::new(with_parent_dirs(firmware_files)));
        let flashers: Vec<_> = flashers
            .iter()
            .map(|(_, exe)| {
                s.spawn(move || {
                    Layer::new(vec![Entry::File {
                        path: "flasher".into(),
                        bytes: exe.clone(),
                        mode: 0o755,
                    }])
                })
            })
            .collect();
        let flashers: Result<Vec<Layer>> = flashers
            .into_iter()
            .map(|h| h.join().expect("layer thread"))
            .collect();
        (firmware.join().expect("layer thread"), flashers)
    });
    let (firmware, flasher_layers) = (firmware?, flasher_layers?);

    let mut images = Vec::new();
    let mut image_tags = Vec::new();
    for ((platform, _), flasher) in flashers.iter().zip(flasher_layers) {
        let spec = ImageSpec {
            os: "linux".into(),
            architecture: platform.arch().into(),
            entrypoint: Some(vec!["/flasher".into()]),
            annotations: annotations.clone(),
            created: release.created.as_str().to_string(),
            history: vec![
                format!("imagegen: /flasher for {platform}"),
                format!("imagegen: /firmware for {}", targets.join(", ")),
            ],
        };
        images.push(Image::new(&spec, vec![flasher, firmware.clone()])?);
        let mut tag = format!("{}-{app_type}-{version}", platform.arch());
        if let Some(sha) = sha7(bundle) {
            tag = format!("{tag}-{sha}");
        }
        image_tags.push(Some(tag));
    }
    let mut index_tags = vec![format!("{app_type}-{version}")];
    index_tags.extend(release.extra_tags.iter().cloned());
    ImageIndex::new(images, &annotations, &index_tags, &image_tags)
}
