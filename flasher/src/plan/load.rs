//! Reading a target of the bundle: from `manifest.json` (every file checked against its
//! SHA-256), or from the original image's `<target>/artifacts/` folders (no integrity data).

use std::collections::HashMap;
use std::fs;
use std::path::Path;

use firmware::chip::{Chip, TargetName};
use firmware::esp_image::FlashMode;
use firmware::legacy;
use firmware::manifest::{
    self, ARTIFACTS_DIR, FileEntry, MANIFEST_FILE, MODEL_FILE, Manifest, Role,
};
use firmware::sdkconfig::Sdkconfig;

use super::Integrity;
use crate::error::PlanError;

/// A file of the bundle, read.
#[derive(Debug)]
pub(super) struct BundleFile {
    pub path: String,
    pub bytes: Vec<u8>,
}

/// A data image the build flashes at its own offset.
#[derive(Debug)]
pub(super) struct DataFile {
    pub name: String,
    pub offset: u32,
    pub file: BundleFile,
}

/// What a target of the bundle provides, whichever way it was found.
#[derive(Debug)]
pub(super) struct Loaded {
    pub target: String,
    pub chip: Chip,
    pub bootloader_offset: u32,
    pub table_offset: u32,
    pub mode: Option<FlashMode>,
    pub freq: Option<String>,
    pub bootloader: BundleFile,
    pub table: BundleFile,
    pub otadata: Option<BundleFile>,
    pub app: BundleFile,
    pub model: Option<BundleFile>,
    pub data: Vec<DataFile>,
    pub integrity: Integrity,
}

fn read(root: &Path, rel: &str) -> Result<BundleFile, PlanError> {
    let path = root.join(rel);
    let bytes = fs::read(&path).map_err(|source| PlanError::Read { path, source })?;
    Ok(BundleFile {
        path: rel.to_string(),
        bytes,
    })
}

/// The target `target` of a bundle with a manifest, every file of the bundle checked.
pub(super) fn from_manifest(root: &Path, target: &TargetName) -> Result<Loaded, PlanError> {
    let json = read(root, MANIFEST_FILE)?;
    let manifest = Manifest::from_json(&json.bytes)?;
    let entry = manifest
        .target(target.as_str())
        .ok_or_else(|| PlanError::TargetNotInImage {
            asked: target.to_string(),
            available: manifest
                .targets
                .iter()
                .map(|t| t.name.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        })?;
    if let Some(f) = entry.files.iter().find(|f| f.encrypted) {
        return Err(PlanError::Encrypted {
            path: f.path.clone(),
        });
    }
    let (mut kept, checked) = verify_bundle(root, &manifest)?;
    let model = manifest.model.as_ref().and_then(|f| kept.remove(&f.path));
    let data = data_files(entry, &mut kept)?;
    let mut take = |role: Role| entry.file(role).and_then(|f| kept.remove(&f.path));
    let missing = |what: &'static str| PlanError::MissingFile {
        what,
        target: entry.name.clone(),
    };
    if entry.chip != target.chip() {
        return Err(PlanError::ImageChip {
            file: MANIFEST_FILE.into(),
            built: entry.chip.to_string(),
            asked: target.to_string(),
            chip: target.chip(),
        });
    }
    Ok(Loaded {
        target: entry.name.clone(),
        chip: entry.chip,
        bootloader_offset: entry.bootloader_offset,
        table_offset: entry.partition_table_offset,
        mode: Some(entry.flash.mode),
        freq: Some(entry.flash.freq.clone()),
        bootloader: take(Role::Bootloader).ok_or_else(|| missing("bootloader"))?,
        table: take(Role::PartitionTable).ok_or_else(|| missing("partition table"))?,
        otadata: take(Role::OtaData),
        app: take(Role::App).ok_or_else(|| missing("app"))?,
        model,
        data,
        integrity: Integrity::Verified { files: checked },
    })
}

/// The target's data images, taken from the checked files.
fn data_files(
    entry: &manifest::Target,
    kept: &mut HashMap<String, BundleFile>,
) -> Result<Vec<DataFile>, PlanError> {
    entry
        .files
        .iter()
        .filter(|f| f.role == Role::Data)
        .map(|f| {
            let missing = || PlanError::MissingFile {
                what: "data image (or its offset)",
                target: entry.name.clone(),
            };
            Ok(DataFile {
                name: f.name.clone().unwrap_or_else(|| f.path.clone()),
                offset: f.offset.ok_or_else(missing)?,
                file: kept.remove(&f.path).ok_or_else(missing)?,
            })
        })
        .collect()
}

/// Checks every file of the bundle (each target's on its own thread) and keeps them by path,
/// so that the plan reads nothing twice. Also returns how many files were checked.
fn verify_bundle(
    root: &Path,
    manifest: &Manifest,
) -> Result<(HashMap<String, BundleFile>, usize), PlanError> {
    let groups: Vec<Vec<&FileEntry>> = manifest
        .targets
        .iter()
        .map(|t| t.files.iter().collect())
        .chain(manifest.model.iter().map(|m| vec![m]))
        .collect();
    let checked_groups = std::thread::scope(|scope| {
        let handles: Vec<_> = groups
            .iter()
            .map(|group| scope.spawn(|| verify_all(root, group)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("verification thread"))
            .collect::<Result<Vec<_>, PlanError>>()
    })?;
    let checked = checked_groups.iter().map(Vec::len).sum();
    let kept = checked_groups
        .into_iter()
        .flatten()
        .map(|f| (f.path.clone(), f))
        .collect();
    Ok((kept, checked))
}

/// Reads every file of `group` and checks it against its manifest entry.
fn verify_all(root: &Path, group: &[&FileEntry]) -> Result<Vec<BundleFile>, PlanError> {
    group
        .iter()
        .map(|file| {
            let data = read(root, &file.path)?;
            if file.matches(&data.bytes) {
                Ok(data)
            } else {
                Err(PlanError::Tampered {
                    path: file.path.clone(),
                    expected: file.sha256.clone(),
                    found: manifest::sha256_hex(&data.bytes),
                })
            }
        })
        .collect()
}

fn legacy_targets(root: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(root)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.path().join(ARTIFACTS_DIR).is_dir())
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    names.sort();
    names
}

/// The target `target` of a bundle without manifest, found by the original image's rules.
pub(super) fn from_legacy_folders(root: &Path, target: &TargetName) -> Result<Loaded, PlanError> {
    let available = legacy_targets(root);
    if available.is_empty() {
        return Err(PlanError::NoBundle(root.to_path_buf()));
    }
    let name = available
        .iter()
        .find(|n| n.eq_ignore_ascii_case(target.as_str()))
        .ok_or_else(|| PlanError::TargetNotInImage {
            asked: target.to_string(),
            available: available.join(", "),
        })?;
    let folder = LegacyFolder::new(root, name);
    let sdk_file = folder.read(legacy::SDKCONFIG)?;
    let sdk = parse_sdkconfig(&sdk_file)?;
    let chip = target.chip();
    let sdk_err = |e: firmware::sdkconfig::BadNumber| PlanError::Sdkconfig {
        path: sdk_file.path.clone(),
        reason: e.to_string(),
    };
    let bootloader_offset = sdk.bootloader_offset(chip).map_err(sdk_err)?;
    let table_offset = sdk.partition_table_offset().map_err(sdk_err)?;
    let bootloader_name = legacy::BOOTLOADER_FILES
        .into_iter()
        .find(|f| folder.has(f))
        .unwrap_or(legacy::BOOTLOADER_FILES[0]);
    let table = if folder.has(legacy::TABLE_BIN) || !folder.has(legacy::TABLE_CSV) {
        folder.read(legacy::TABLE_BIN)?
    } else {
        folder.read(legacy::TABLE_CSV)?
    };
    let otadata = folder
        .has(legacy::OTA_DATA)
        .then(|| folder.read(legacy::OTA_DATA))
        .transpose()?;
    let app = folder.read(&folder.find_app()?)?;
    let model = root
        .join(MODEL_FILE)
        .is_file()
        .then(|| read(root, MODEL_FILE))
        .transpose()?;
    Ok(Loaded {
        target: name.clone(),
        chip,
        bootloader_offset,
        table_offset,
        mode: sdk
            .get("CONFIG_ESPTOOLPY_FLASHMODE")
            .and_then(FlashMode::parse),
        freq: sdk.get("CONFIG_ESPTOOLPY_FLASHFREQ").map(str::to_string),
        bootloader: folder.read(bootloader_name)?,
        table,
        otadata,
        app,
        model,
        data: Vec::new(),
        integrity: Integrity::Unchecked,
    })
}

fn parse_sdkconfig(file: &BundleFile) -> Result<Sdkconfig, PlanError> {
    let sdk_err = |reason: String| PlanError::Sdkconfig {
        path: file.path.clone(),
        reason,
    };
    let text = std::str::from_utf8(&file.bytes).map_err(|_| sdk_err("not UTF-8 text".into()))?;
    Sdkconfig::parse(text).map_err(|e| sdk_err(e.to_string()))
}

/// One `<target>/artifacts/` folder of a bundle without manifest.
struct LegacyFolder<'a> {
    root: &'a Path,
    rel: String,
}

impl<'a> LegacyFolder<'a> {
    fn new(root: &'a Path, target: &str) -> LegacyFolder<'a> {
        LegacyFolder {
            root,
            rel: format!("{target}/{ARTIFACTS_DIR}"),
        }
    }

    fn has(&self, file: &str) -> bool {
        self.root.join(&self.rel).join(file).is_file()
    }

    fn read(&self, file: &str) -> Result<BundleFile, PlanError> {
        read(self.root, &format!("{}/{file}", self.rel))
    }

    /// The app, by the original image's discovery rule.
    fn find_app(&self) -> Result<String, PlanError> {
        let dir = self.root.join(&self.rel);
        let names: Vec<String> = fs::read_dir(&dir)
            .map_err(|source| PlanError::Read {
                path: dir.clone(),
                source,
            })?
            .flatten()
            .filter(|e| e.path().is_file())
            .filter_map(|e| e.file_name().into_string().ok())
            .collect();
        legacy::pick_app(&names)
            .map(str::to_string)
            .map_err(|found| PlanError::NoApp {
                dir,
                found: if found.is_empty() {
                    "none".into()
                } else {
                    found.join(", ")
                },
            })
    }
}
