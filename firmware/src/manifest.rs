//! The firmware bundle: the `/firmware` tree of a flash image and its `manifest.json`.
//!
//! ```text
//! /firmware/manifest.json
//! /firmware/model.bin                          (optional, shared by all targets)
//! /firmware/<target>/artifacts/bootloader.bin
//! /firmware/<target>/artifacts/partition-table.bin
//! /firmware/<target>/artifacts/ota_data_initial.bin   (when the table has otadata)
//! /firmware/<target>/artifacts/sdkconfig
//! /firmware/<target>/artifacts/partitions.csv
//! /firmware/<target>/artifacts/<app>.bin
//! /firmware/<target>/artifacts/data/<file>            (data images the build flashes)
//! ```
//!
//! [`Manifest`] is the contract between `imagegen`, which writes it, and `flasher`, which reads
//! it: docs/manifest.md describes every field. Paths in it are relative to the bundle root.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::chip::Chip;
use crate::esp_image::FlashMode;

/// File name of the manifest at the bundle root.
pub const MANIFEST_FILE: &str = "manifest.json";
/// The manifest format this build writes and the newest it reads.
pub const MANIFEST_VERSION: u32 = 2;
/// The version written when no target has [`Role::Data`] files: readers of version 1 handle such
/// a manifest completely, so it stays what it always was.
pub const MANIFEST_VERSION_WITHOUT_DATA: u32 = 1;
/// Folder below a target's artifacts that holds its data images.
pub const DATA_DIR: &str = "data";
/// File name of the optional model at the bundle root.
pub const MODEL_FILE: &str = "model.bin";
/// Folder below a target's folder that holds its files.
pub const ARTIFACTS_DIR: &str = "artifacts";

/// What a bundle holds, with the integrity data to check it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// Format version: readers refuse versions newer than [`MANIFEST_VERSION`].
    pub manifest_version: u32,
    /// Application type the image was published as (`resnet`), if given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_type: Option<String>,
    /// Release version the image was published as, if given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Source revision (commit) the image was built from, if given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
    /// The model file shared by all targets, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<FileEntry>,
    /// One entry per build target, sorted by name.
    pub targets: Vec<Target>,
}

/// One build target of the bundle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Target {
    /// Folder name and `--chip` value, PSRAM suffix included (`esp32s3r8`).
    pub name: String,
    /// The chip the images are built for.
    pub chip: Chip,
    /// SPI flash settings the build was configured with.
    pub flash: FlashSettings,
    /// Where the bootloader goes.
    pub bootloader_offset: u32,
    /// Where the partition table goes.
    pub partition_table_offset: u32,
    /// What the app image says of itself.
    pub app: AppInfo,
    /// Every file of the target, with its role and, for flashed files, its offset.
    pub files: Vec<FileEntry>,
}

impl Target {
    /// The file with `role`, if the target has one.
    pub fn file(&self, role: Role) -> Option<&FileEntry> {
        self.files.iter().find(|f| f.role == role)
    }
}

/// SPI flash settings of a build (`CONFIG_ESPTOOLPY_FLASH*`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlashSettings {
    /// Flash mode.
    pub mode: FlashMode,
    /// Flash frequency as ESP-IDF spells it (`80m`).
    pub freq: String,
    /// Flash size as ESP-IDF spells it (`4MB`), or `detect` when left to flash time.
    pub size: String,
}

/// What an app's `esp_app_desc_t` says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppInfo {
    /// Project name.
    pub name: String,
    /// Project version.
    pub version: String,
    /// ESP-IDF version it was built with.
    #[serde(default)]
    pub idf_version: String,
}

/// What a file is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// Second-stage bootloader image.
    Bootloader,
    /// Binary partition table.
    PartitionTable,
    /// Initial OTA data (selects the boot partition).
    OtaData,
    /// Application image.
    App,
    /// Build configuration (not flashed).
    Sdkconfig,
    /// Partition table source (not flashed).
    PartitionsCsv,
    /// Model data for a `tflite_model` partition.
    Model,
    /// A data image the build flashes at its own offset (a model pack, a SPIFFS/FAT/LittleFS
    /// image, pre-built NVS): `name` says which (format version 2).
    Data,
}

/// One file of the bundle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    /// What the file is for.
    pub role: Role,
    /// Path relative to the bundle root, `/`-separated.
    pub path: String,
    /// Flash offset, for files written as they are.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<u32>,
    /// Size in bytes.
    pub size: u64,
    /// Lower-case hex SHA-256 of the contents.
    pub sha256: String,
    /// For [`Role::Data`]: the build's name for the file (its `flasher_args.json` key, else its
    /// file name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Whether the file must be written encrypted (flash encryption in development mode). No
    /// imagegen writes such a bundle; a flasher refuses one.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub encrypted: bool,
}

impl FileEntry {
    /// An entry describing `data` stored at `path`.
    pub fn new(role: Role, path: String, offset: Option<u32>, data: &[u8]) -> FileEntry {
        FileEntry {
            role,
            path,
            offset,
            size: data.len() as u64,
            sha256: sha256_hex(data),
            name: None,
            encrypted: false,
        }
    }

    /// A [`Role::Data`] entry named `name`.
    pub fn data(name: &str, path: String, offset: u32, data: &[u8]) -> FileEntry {
        FileEntry {
            name: Some(name.to_string()),
            ..FileEntry::new(Role::Data, path, Some(offset), data)
        }
    }

    /// Whether `data` is what this entry describes.
    pub fn matches(&self, data: &[u8]) -> bool {
        data.len() as u64 == self.size && sha256_hex(data) == self.sha256
    }
}

/// Lower-case hex SHA-256.
pub fn sha256_hex(data: &[u8]) -> String {
    hex(&Sha256::digest(data))
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// Why a manifest cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// Not valid JSON for the manifest type.
    #[error("manifest.json is malformed: {0}")]
    Malformed(#[from] serde_json::Error),
    /// Written by a newer imagegen than this reader knows.
    #[error(
        "manifest.json has format version {0}, newer than this flasher reads ({MANIFEST_VERSION}): use the flasher shipped in the same image"
    )]
    TooNew(u32),
    /// A path that escapes the bundle or is not relative.
    #[error(
        "manifest.json names an unsafe path '{0}': paths must be relative and stay inside the bundle"
    )]
    UnsafePath(String),
}

impl Manifest {
    /// The lowest format version that describes `targets` completely: 2 when any target has a
    /// [`Role::Data`] file (a version-1 reader would not write it), else 1.
    pub fn version_for(targets: &[Target]) -> u32 {
        let has_data = targets
            .iter()
            .flat_map(|t| &t.files)
            .any(|f| f.role == Role::Data);
        if has_data {
            MANIFEST_VERSION
        } else {
            MANIFEST_VERSION_WITHOUT_DATA
        }
    }

    /// Parses and checks a manifest: version and path safety.
    pub fn from_json(bytes: &[u8]) -> Result<Manifest, ManifestError> {
        let manifest: Manifest = serde_json::from_slice(bytes)?;
        if manifest.manifest_version > MANIFEST_VERSION {
            return Err(ManifestError::TooNew(manifest.manifest_version));
        }
        let paths = manifest
            .targets
            .iter()
            .flat_map(|t| &t.files)
            .chain(&manifest.model)
            .map(|f| &f.path);
        for path in paths {
            if !is_safe_relative(path) {
                return Err(ManifestError::UnsafePath(path.clone()));
            }
        }
        Ok(manifest)
    }

    /// The manifest as written into the bundle: pretty JSON, fields in a fixed order.
    pub fn to_json(&self) -> Vec<u8> {
        let mut bytes = serde_json::to_vec_pretty(self).expect("manifest serializes");
        bytes.push(b'\n');
        bytes
    }

    /// The target named `name` (case-insensitive).
    pub fn target(&self, name: &str) -> Option<&Target> {
        self.targets
            .iter()
            .find(|t| t.name.eq_ignore_ascii_case(name.trim()))
    }
}

fn is_safe_relative(path: &str) -> bool {
    !path.is_empty()
        && !path.starts_with('/')
        && path
            .split('/')
            .all(|c| !c.is_empty() && c != "." && c != ".." && !c.contains('\\'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest() -> Manifest {
        Manifest {
            manifest_version: MANIFEST_VERSION_WITHOUT_DATA,
            app_type: Some("demo".into()),
            version: Some("1.0.0".into()),
            revision: None,
            model: None,
            targets: vec![Target {
                name: "esp32s3r8".into(),
                chip: Chip::Esp32s3,
                flash: FlashSettings {
                    mode: FlashMode::Dio,
                    freq: "80m".into(),
                    size: "8MB".into(),
                },
                bootloader_offset: 0,
                partition_table_offset: 0x8000,
                app: AppInfo {
                    name: "demo".into(),
                    version: "1.0.0".into(),
                    idf_version: "v5.4".into(),
                },
                files: vec![FileEntry::new(
                    Role::Bootloader,
                    "esp32s3r8/artifacts/bootloader.bin".into(),
                    Some(0),
                    b"boot",
                )],
            }],
        }
    }

    #[test]
    fn round_trips_through_json() {
        let m = manifest();
        let json = m.to_json();
        assert_eq!(Manifest::from_json(&json).unwrap(), m);
        let text = String::from_utf8(json).unwrap();
        assert!(text.contains("\"role\": \"bootloader\""));
        assert!(text.contains("\"chip\": \"esp32s3\""));
        assert!(m.target("ESP32S3R8").is_some());
        assert!(
            m.targets[0]
                .file(Role::Bootloader)
                .unwrap()
                .matches(b"boot")
        );
    }

    #[test]
    fn data_files_need_version_2_and_others_keep_version_1() {
        let mut m = manifest();
        assert_eq!(Manifest::version_for(&m.targets), 1);
        let text = String::from_utf8(m.to_json()).unwrap();
        assert!(!text.contains("\"name\": null") && !text.contains("encrypted"));
        m.targets[0].files.push(FileEntry::data(
            "model",
            "esp32s3r8/artifacts/data/srmodels.bin".into(),
            0x10000,
            b"pack",
        ));
        assert_eq!(Manifest::version_for(&m.targets), 2);
        m.manifest_version = 2;
        let back = Manifest::from_json(&m.to_json()).unwrap();
        assert_eq!(back.targets[0].files[1].name.as_deref(), Some("model"));
        assert_eq!(back.targets[0].files[1].role, Role::Data);
    }

    #[test]
    fn refuses_newer_versions_and_unsafe_paths() {
        let mut m = manifest();
        m.manifest_version = MANIFEST_VERSION + 1;
        assert!(matches!(
            Manifest::from_json(&m.to_json()),
            Err(ManifestError::TooNew(_))
        ));
        for bad in ["../etc/passwd", "/abs", "a//b", "a/./b", ""] {
            let mut m = manifest();
            m.targets[0].files[0].path = bad.into();
            assert!(
                matches!(
                    Manifest::from_json(&m.to_json()),
                    Err(ManifestError::UnsafePath(_))
                ),
                "{bad}"
            );
        }
        assert!(matches!(
            Manifest::from_json(b"{"),
            Err(ManifestError::Malformed(_))
        ));
    }
}
