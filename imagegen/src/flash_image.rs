//! The flash image: a multi-arch index whose per-platform images hold the static `/flasher`
//! (one layer per platform) over the `/firmware` bundle (one layer, shared by every platform).

use std::collections::BTreeMap;

use crate::bundle::Bundle;
use crate::error::{Error, Result};
use crate::oci::{Entry, Image, ImageSpec, Index, Layer, with_parent_dirs};
use crate::platform::Platform;
use crate::release::{Naming, Release, TARGETS};

/// Builds the flash image for `flashers` (one static executable per platform).
pub fn build(
    bundle: &Bundle,
    flashers: &[(Platform, Vec<u8>)],
    release: &Release,
) -> Result<Index> {
    if flashers.is_empty() {
        return Err(Error::Usage(
            "no flasher given: add --flasher linux/amd64=PATH and --flasher linux/arm64=PATH"
                .into(),
        ));
    }
    let naming = Naming::of(bundle);
    let annotations = annotations(&naming, release);
    let (firmware, flasher_layers) = layers(bundle, flashers)?;
    let mut images = Vec::new();
    let mut image_tags = Vec::new();
    for ((platform, _), flasher) in flashers.iter().zip(flasher_layers) {
        let spec = image_spec(*platform, &naming, &annotations, release);
        images.push(Image::new(&spec, vec![flasher, firmware.clone()])?);
        image_tags.push(Some(naming.image_tag(platform.arch())));
    }
    Index::new(
        images,
        &annotations,
        &naming.index_tags(release),
        &image_tags,
    )
}

/// The annotations of the index and of every image: the release's, plus how to run it and the
/// targets.
fn annotations(naming: &Naming, release: &Release) -> BTreeMap<String, String> {
    let mut annotations = naming.annotations(release, "flash", &naming.version);
    annotations.insert(
        "org.opencontainers.image.description".into(),
        format!(
            "First-flash image for {}: docker run --device=PORT IMAGE --port PORT --chip CHIP --flash_size SIZE",
            naming.targets.join(", ")
        ),
    );
    annotations.insert(TARGETS.into(), naming.targets.join(","));
    annotations
}

/// The `/firmware` layer and one `/flasher` layer per flasher, compressed in parallel.
fn layers(bundle: &Bundle, flashers: &[(Platform, Vec<u8>)]) -> Result<(Layer, Vec<Layer>)> {
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
    Ok((firmware?, flasher_layers?))
}

/// The config of the image for `platform`.
fn image_spec(
    platform: Platform,
    naming: &Naming,
    annotations: &BTreeMap<String, String>,
    release: &Release,
) -> ImageSpec {
    ImageSpec {
        os: "linux".into(),
        architecture: platform.arch().into(),
        entrypoint: Some(vec!["/flasher".into()]),
        annotations: annotations.clone(),
        created: release.created.as_str().to_string(),
        history: vec![
            format!("imagegen: /flasher for {platform}"),
            format!("imagegen: /firmware for {}", naming.targets.join(", ")),
        ],
    }
}
