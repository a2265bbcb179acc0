//! OTA images: only the application binary of every target, for devices that update themselves.
//!
//! Two forms:
//! - [`build`]: one multi-platform index whose per-target images (platform `custom/<target>`)
//!   hold a single layer with `/firmware/<app>.bin`, the only tar entry whose path contains
//!   `firmware`, as esp32-flashjob pulls it by platform;
//! - [`build_artifacts`]: one artifact per target whose single layer is the raw app binary
//!   ([`FIRMWARE_MEDIA_TYPE`]), tagged with the app's semantic version, as otaflux-style OTA
//!   servers read it (first layer's bytes, highest semver tag).

use std::collections::BTreeMap;

use firmware::manifest::{Role, Target};
use oci_spec::image::{Descriptor, MediaType};
use serde_json::json;

use crate::bundle::Bundle;
use crate::error::{Error, Result};
use crate::flash_image::{ANNOTATION_PREFIX, Release, sha7, tag_parts};
use crate::image::{Blob, Entry, Image, ImageIndex, ImageSpec, Layer, check_tag, layout_index};

/// Media type of a raw application binary layer.
pub const FIRMWARE_MEDIA_TYPE: &str = "application/vnd.espressif.esp32.firmware.v1+binary";

/// Media type and contents of the empty config of artifacts (OCI image spec 1.1).
const EMPTY_CONFIG: (&str, &[u8]) = ("application/vnd.oci.empty.v1+json", b"{}");

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

/// Annotations shared by every OTA image of a release.
fn annotations(bundle: &Bundle, release: &Release, version: &str) -> BTreeMap<String, String> {
    let manifest = bundle.manifest();
    let (app_type, _) = tag_parts(bundle);
    let app_name = manifest
        .targets
        .first()
        .map_or("app", |t| t.app.name.as_str());
    let oci = |k: &str| format!("org.opencontainers.image.{k}");
    let mut a = BTreeMap::new();
    a.insert(oci("created"), release.created.as_str().to_string());
    a.insert(oci("version"), version.to_string());
    a.insert(oci("title"), format!("{app_name}-ota"));
    if let Some(rev) = &manifest.revision {
        a.insert(oci("revision"), rev.clone());
    }
    if let Some(src) = &release.source {
        a.insert(oci("source"), src.clone());
    }
    a.insert(format!("{ANNOTATION_PREFIX}.app-type"), app_type);
    a
}

/// Builds the OTA index: one `custom/<target>` image per target, each with a single layer
/// holding `firmware/<app>.bin`. Tags: `<app_type>-<version>` (and the extra tags) for the index,
/// `<target>-<app_type>-<version>[-<sha7>]` for each target's image.
pub fn build(bundle: &Bundle, release: &Release) -> Result<ImageIndex> {
    let manifest = bundle.manifest();
    let (app_type, version) = tag_parts(bundle);
    let mut annotations = annotations(bundle, release, &version);
    let targets: Vec<&str> = manifest.targets.iter().map(|t| t.name.as_str()).collect();
    annotations.insert(format!("{ANNOTATION_PREFIX}.targets"), targets.join(","));

    let mut images = Vec::new();
    let mut image_tags = Vec::new();
    for target in &manifest.targets {
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
        let mut tag = format!("{}-{app_type}-{version}", target.name);
        if let Some(sha) = sha7(bundle) {
            tag = format!("{tag}-{sha}");
        }
        image_tags.push(Some(tag));
    }
    let mut index_tags = vec![format!("{app_type}-{version}")];
    index_tags.extend(release.extra_tags.iter().cloned());
    ImageIndex::new(images, &annotations, &index_tags, &image_tags)
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
    /// Every blob of the artifact.
    pub fn blobs(&self) -> [&Blob; 3] {
        [&self.firmware, &self.config, &self.manifest]
    }

    /// The OCI layout `index.json` naming the manifest with the tag.
    pub fn layout_index(&self) -> Vec<u8> {
        layout_index(&[(self.tag.clone(), self.manifest.descriptor())])
    }
}

/// Builds one raw-binary artifact per target, tagged with the release version (`--version`) or
/// else the app's own version, which must be a semantic version (`1.2.3`, `1.2.3-rc.1`).
pub fn build_artifacts(bundle: &Bundle, release: &Release) -> Result<Vec<Artifact>> {
    let manifest = bundle.manifest();
    let config = Blob::new(
        MediaType::Other(EMPTY_CONFIG.0.into()),
        EMPTY_CONFIG.1.to_vec(),
    );
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
        let mut annotations = annotations(bundle, release, &version);
        annotations.insert(format!("{ANNOTATION_PREFIX}.target"), target.name.clone());
        let mut layer = descriptor_json(&firmware.descriptor());
        layer["annotations"] = json!({ "org.opencontainers.image.title": name });
        let body = json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "artifactType": FIRMWARE_MEDIA_TYPE,
            "config": descriptor_json(&config.descriptor()),
            "layers": [layer],
            "annotations": annotations,
        });
        let manifest = Blob::json(MediaType::ImageManifest, &body);
        artifacts.push(Artifact {
            target: target.name.clone(),
            tag: version,
            manifest,
            config: config.clone(),
            firmware,
        });
    }
    Ok(artifacts)
}

fn descriptor_json(d: &Descriptor) -> serde_json::Value {
    serde_json::to_value(d).expect("descriptors serialize")
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
