//! OTA images: only the application binary of every target, for devices that update themselves.
//!
//! Two forms:
//! - [`build`]: one multi-platform index whose per-target images (platform `custom/<target>`)
//!   hold a single layer with `/firmware/<app>.bin`, the only tar entry whose path contains
//!   `firmware`, as esp32-flashjob pulls it by platform;
//! - [`build_artifacts`]: one artifact per target whose single layer is the raw app binary
//!   ([`FIRMWARE_MEDIA_TYPE`]), tagged with the app's semantic version, as otaflux-style OTA
//!   servers read it (first layer's bytes, highest semver tag).

use std::collections::HashMap;

use firmware::manifest::{Role, Target};
use oci_spec::image::{ImageManifestBuilder, MediaType};

use crate::bundle::Bundle;
use crate::error::{Error, Result};
use crate::oci::{Blob, Entry, Image, ImageSpec, Index, Layer, Store, check_tag};
use crate::release::{Naming, Release, TARGET, TARGETS};

/// Media type of a raw application binary layer.
pub const FIRMWARE_MEDIA_TYPE: &str = "application/vnd.espressif.esp32.firmware.v1+binary";

/// The application binary of `target`: its file name and bytes.
fn app<'a>(bundle: &'a Bundle, target: &Target) -> Result<(String, &'a [u8])> {
    let entry = target.file(Role::App).ok_or_else(|| {
        Error::Usage(format!(
            "target {} has no application image: pass a build with an app",
            target.name
        ))
    })?;
    let bytes = bundle
        .files()
        .find(|(p, _)| *p == entry.path)
        .map(|(_, b)| b)
        .expect("the bundle holds every file its manifest lists");
    let name = entry
        .path
        .rsplit('/')
        .next()
        .unwrap_or(&entry.path)
        .to_string();
    Ok((name, bytes))
}

/// Builds the OTA index: one `custom/<target>` image per target, each with a single layer
/// holding `firmware/<app>.bin`. Tags: `<app_type>-<version>` (and the extra tags) for the index,
/// `<target>-<app_type>-<version>[-<sha7>]` for each target's image.
pub fn build(bundle: &Bundle, release: &Release) -> Result<Index> {
    let naming = Naming::of(bundle);
    let mut annotations = naming.annotations(release, "ota", &naming.version);
    annotations.insert(TARGETS.into(), naming.targets.join(","));
    let mut images = Vec::new();
    let mut image_tags = Vec::new();
    for target in &bundle.manifest().targets {
        let (name, bytes) = app(bundle, target)?;
        // No `firmware/` directory entry: consumers take the first entry whose path contains
        // "firmware", which must be the app itself.
        let layer = Layer::new(vec![Entry::File {
            path: format!("firmware/{name}"),
            bytes: bytes.to_vec(),
            mode: 0o644,
        }])?;
        let spec = ImageSpec {
            os: "custom".into(),
            architecture: target.name.clone(),
            entrypoint: None,
            annotations: annotations.clone(),
            created: release.created.as_str().to_string(),
            history: vec![format!("imagegen: /firmware/{name} for {}", target.name)],
        };
        images.push(Image::new(&spec, vec![layer])?);
        image_tags.push(Some(naming.image_tag(&target.name)));
    }
    Index::new(
        images,
        &annotations,
        &naming.index_tags(release),
        &image_tags,
    )
}

/// One target's raw-binary OTA artifact: a manifest whose only layer is the app binary.
#[derive(Debug, Clone)]
pub struct Artifact {
    /// The target name (`esp32s3r8`).
    pub target: String,
    /// The semantic version it is tagged with.
    pub tag: String,
    /// The manifest.
    pub manifest: Blob,
    /// The empty config.
    pub config: Blob,
    /// The raw application binary.
    pub firmware: Blob,
}

impl Artifact {
    /// The artifact as a store: its blobs, the manifest tagged with the version.
    pub fn store(&self) -> Result<Store> {
        let mut store = Store::new();
        for blob in [&self.firmware, &self.config, &self.manifest] {
            store.insert(blob.clone());
        }
        store.tag(&self.tag, self.manifest.descriptor())?;
        Ok(store)
    }
}

/// Builds one raw-binary artifact per target, tagged with the release version (`--version`) or
/// else the app's own version, which must be a semantic version (`1.2.3`, `1.2.3-rc.1`).
pub fn build_artifacts(bundle: &Bundle, release: &Release) -> Result<Vec<Artifact>> {
    let naming = Naming::of(bundle);
    let manifest = bundle.manifest();
    let config = Blob::new(MediaType::EmptyJSON, b"{}".to_vec());
    let mut artifacts = Vec::new();
    for target in &manifest.targets {
        let version = manifest
            .version
            .clone()
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| target.app.version.clone());
        check_semver(&version, &target.name)?;
        check_tag(&version)?;
        let (name, bytes) = app(bundle, target)?;
        let firmware = Blob::new(MediaType::Other(FIRMWARE_MEDIA_TYPE.into()), bytes.to_vec());
        let mut annotations = naming.annotations(release, "ota", &version);
        annotations.insert(TARGET.into(), target.name.clone());
        let mut layer = firmware.descriptor();
        layer.set_annotations(Some(HashMap::from([(
            "org.opencontainers.image.title".to_string(),
            name,
        )])));
        let body = ImageManifestBuilder::default()
            .schema_version(2u32)
            .media_type(MediaType::ImageManifest)
            .artifact_type(MediaType::Other(FIRMWARE_MEDIA_TYPE.into()))
            .config(config.descriptor())
            .layers(vec![layer])
            .annotations(annotations.into_iter().collect::<HashMap<_, _>>())
            .build()
            .map_err(|e| Error::Usage(format!("invalid artifact manifest: {e}")))?;
        artifacts.push(Artifact {
            target: target.name.clone(),
            tag: version,
            manifest: Blob::json(MediaType::ImageManifest, &body),
            config: config.clone(),
            firmware,
        });
    }
    Ok(artifacts)
}

/// Checks `version` against semantic versioning 2.0 without build metadata (a `+` cannot be in a
/// tag): `MAJOR.MINOR.PATCH[-PRERELEASE]`, no leading zeros, no leading `v`.
pub fn check_semver(version: &str, target: &str) -> Result<()> {
    let numeric = |s: &str| {
        !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) && (s == "0" || !s.starts_with('0'))
    };
    let (core, pre) = match version.split_once('-') {
        Some((c, p)) => (c, Some(p)),
        None => (version, None),
    };
    let core_ok = {
        let parts: Vec<&str> = core.split('.').collect();
        parts.len() == 3 && parts.iter().all(|p| numeric(p))
    };
    let pre_ok = pre.is_none_or(|p| {
        p.split('.').all(|id| {
            !id.is_empty()
                && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && (!id.bytes().all(|b| b.is_ascii_digit()) || numeric(id))
        })
    });
    if core_ok && pre_ok {
        Ok(())
    } else {
        Err(Error::Usage(format!(
            "target {target}: version '{version}' is not a semantic version, which OTA servers need as the tag: pass --version MAJOR.MINOR.PATCH (e.g. 1.2.0 or 1.2.0-rc.1), or set PROJECT_VER in the app"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::check_semver;

    #[test]
    fn semantic_versions() {
        for good in [
            "0.0.0",
            "1.2.3",
            "10.20.30",
            "1.0.0-rc.1",
            "1.0.0-alpha-1.0a",
        ] {
            check_semver(good, "esp32").unwrap();
        }
        for bad in [
            "", "1", "1.2", "v1.2.3", "01.2.3", "1.2.3+b1", "1.2.3-", "1.2.3-01", "1.2.x",
        ] {
            assert!(check_semver(bad, "esp32").is_err(), "{bad}");
        }
    }
}
