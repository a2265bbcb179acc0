//! The flashing plan: which bytes go where, worked out from the firmware bundle and the
//! arguments without touching the board.
//!
//! A bundle with `manifest.json` is checked file by file against its SHA-256 sums. A bundle made
//! by the original esptool-based image has no manifest: then the same plan is derived from each
//! target's `sdkconfig`, partition table and file names, without an integrity check.

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

use esp_idf_part::{PartitionTable, Type};
use md5::{Digest, Md5};

use crate::bundle::{self, ARTIFACTS_DIR, MANIFEST_FILE, MODEL_FILE, Manifest, Role};
use crate::chip::{Chip, TargetName};
use crate::error::PlanError;
use crate::image::{self, FlashMode, HeaderPatch, ImageError};
use crate::layout::{self, MODEL_PARTITION, OverrideMode};
use crate::partition;
use crate::sdkconfig::Sdkconfig;
use crate::size::FlashSize;

/// What the plan is asked to do.
#[derive(Debug, Clone)]
pub struct Request {
    /// The bundle root (`/firmware`).
    pub firmware_dir: PathBuf,
    /// The `--chip` target.
    pub target: TargetName,
    /// The `--flash_size` value.
    pub flash_size: FlashSize,
    /// The `--override_pt` mode, if any.
    pub override_pt: Option<OverrideMode>,
}

/// Where a region's bytes come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A bundle file, written as it is (path relative to the bundle).
    File(String),
    /// A bundle file whose image header was rewritten (what changed).
    Patched(String, String),
    /// Made by the flasher (what it is).
    Generated(String),
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::File(path) => f.write_str(path),
            Source::Patched(path, what) => write!(f, "{path} (header patched: {what})"),
            Source::Generated(what) => write!(f, "generated: {what}"),
        }
    }
}

/// One contiguous piece of flash to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Region {
    /// Flash offset.
    pub offset: u32,
    /// The bytes, padded with 0xFF to a multiple of 4 as esptool does.
    pub bytes: Vec<u8>,
    /// Short name (`bootloader`, `partition-table`, `otadata`, `app`, `model`).
    pub label: &'static str,
    /// Where the bytes come from.
    pub source: Source,
}

impl Region {
    /// One past the last byte.
    pub fn end(&self) -> u64 {
        u64::from(self.offset) + self.bytes.len() as u64
    }

    /// Lower-case hex MD5 of the bytes, as the ROM loader reports it.
    pub fn md5_hex(&self) -> String {
        bundle::hex(&Md5::digest(&self.bytes))
    }
}

/// Whether the bundle's files were checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Integrity {
    /// Every file matched its SHA-256 in `manifest.json`.
    Verified {
        /// How many files were checked.
        files: usize,
    },
    /// No manifest: nothing to check against.
    Unchecked,
}

/// What will be written, and the table it follows.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The target folder used (`esp32s3r8`).
    pub target: String,
    /// The chip of the target.
    pub chip: Chip,
    /// The flash size the plan fills.
    pub flash_size: FlashSize,
    /// Offset of the partition table.
    pub table_offset: u32,
    /// The partition table written, from the bundle or generated.
    pub table: PartitionTable,
    /// Regions in offset order, not overlapping, all inside the flash.
    pub regions: Vec<Region>,
    /// Whether the bundle was checked.
    pub integrity: Integrity,
    /// Things the user should know (unverified bundle, files left out, ...).
    pub notes: Vec<String>,
}

impl Plan {
    /// The whole flash as the plan leaves it on an erased chip: 0xFF outside the regions.
    pub fn merged(&self) -> Vec<u8> {
        let mut flash = vec![0xFF; self.flash_size.bytes() as usize];
        for r in &self.regions {
            let at = r.offset as usize;
            flash[at..at + r.bytes.len()].copy_from_slice(&r.bytes);
        }
        flash
    }

    /// A human-readable description, for `--dry-run`.
    pub fn describe(&self) -> String {
        let mut s = String::new();
        let integrity = match self.integrity {
            Integrity::Verified { files } => {
                format!("{files} files verified against manifest.json")
            }
            Integrity::Unchecked => "not verified (no manifest.json)".to_string(),
        };
        let _ = writeln!(
            s,
            "target {} ({}), flash {}, bundle {integrity}",
            self.target, self.chip, self.flash_size
        );
        let _ = writeln!(s, "partition table at {:#x}:", self.table_offset);
        for p in self.table.partitions() {
            let _ = writeln!(
                s,
                "  {:<16} {:<5} {:<8} {:#09x} {:#09x}",
                p.name(),
                p.ty().to_string(),
                p.subtype().to_string(),
                p.offset(),
                p.size()
            );
        }
        let _ = writeln!(s, "regions:");
        for r in &self.regions {
            let _ = writeln!(
                s,
                "  {:#09x} {:<16} {:>9} bytes  md5 {}  {}",
                r.offset,
                r.label,
                r.bytes.len(),
                r.md5_hex(),
                r.source
            );
        }
        for note in &self.notes {
            let _ = writeln!(s, "note: {note}");
        }
        s
    }
}

/// A file of the bundle, read.
#[derive(Debug)]
struct BundleFile {
    path: String,
    bytes: Vec<u8>,
}

/// What a target of the bundle provides, whichever way it was found.
#[derive(Debug)]
struct Loaded {
    target: String,
    chip: Chip,
    bootloader_offset: u32,
    table_offset: u32,
    mode: Option<FlashMode>,
    freq: Option<String>,
    bootloader: BundleFile,
    table: BundleFile,
    otadata: Option<BundleFile>,
    app: BundleFile,
    model: Option<BundleFile>,
    integrity: Integrity,
}

fn read(root: &Path, rel: &str) -> Result<BundleFile, PlanError> {
    let path = root.join(rel);
    let bytes = fs::read(&path).map_err(|source| PlanError::Read { path, source })?;
    Ok(BundleFile {
        path: rel.to_string(),
        bytes,
    })
}

/// Works out the plan for `req`.
pub fn make(req: &Request) -> Result<Plan, PlanError> {
    let root = req.firmware_dir.as_path();
    let loaded = if root.join(MANIFEST_FILE).is_file() {
        load_manifest(root, &req.target)?
    } else {
        load_legacy(root, &req.target)?
    };
    build(req, loaded)
}

fn load_manifest(root: &Path, target: &TargetName) -> Result<Loaded, PlanError> {
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
    // Every file of the bundle is checked (each target's on its own thread); the selected
    // target's files and the model are kept for the plan, so nothing is read twice.
    let groups: Vec<Vec<&bundle::FileEntry>> = manifest
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
    let mut kept: std::collections::HashMap<String, BundleFile> = checked_groups
        .into_iter()
        .flatten()
        .map(|f| (f.path.clone(), f))
        .collect();
    let model = manifest.model.as_ref().and_then(|f| kept.remove(&f.path));
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
        integrity: Integrity::Verified { files: checked },
    })
}

/// Reads every file of `group` and checks it against its manifest entry.
fn verify_all(root: &Path, group: &[&bundle::FileEntry]) -> Result<Vec<BundleFile>, PlanError> {
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
                    found: bundle::sha256_hex(&data.bytes),
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

fn load_legacy(root: &Path, target: &TargetName) -> Result<Loaded, PlanError> {
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
    let dir_rel = format!("{name}/{ARTIFACTS_DIR}");
    let dir = root.join(&dir_rel);
    let in_dir = |file: &str| format!("{dir_rel}/{file}");
    let exists = |file: &str| dir.join(file).is_file();

    let sdk_file = read(root, &in_dir("sdkconfig"))?;
    let sdk_err = |reason: String| PlanError::Sdkconfig {
        path: sdk_file.path.clone(),
        reason,
    };
    let text =
        String::from_utf8(sdk_file.bytes.clone()).map_err(|_| sdk_err("not UTF-8 text".into()))?;
    let sdk = Sdkconfig::parse(&text).map_err(|e| sdk_err(e.to_string()))?;
    let number = |key: &str, default: u32| -> Result<u32, PlanError> {
        sdk.number(key)
            .unwrap_or(Ok(default))
            .map_err(|v| sdk_err(format!("{key}={v} is not a number")))
    };
    let chip = target.chip();
    let bootloader_offset = number(
        "CONFIG_BOOTLOADER_OFFSET_IN_FLASH",
        chip.bootloader_offset(),
    )?;
    let table_offset = number("CONFIG_PARTITION_TABLE_OFFSET", 0x8000)?;

    let bootloader_name = ["bootloader.bin", "bootloader.bin-unsigned"]
        .into_iter()
        .find(|f| exists(f))
        .unwrap_or("bootloader.bin");
    let table = if exists("partition-table.bin") || !exists("partitions.csv") {
        read(root, &in_dir("partition-table.bin"))?
    } else {
        read(root, &in_dir("partitions.csv"))?
    };
    let otadata = exists("ota_data_initial.bin")
        .then(|| read(root, &in_dir("ota_data_initial.bin")))
        .transpose()?;
    let app = read(root, &in_dir(&find_legacy_app(&dir)?))?;
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
        bootloader: read(root, &in_dir(bootloader_name))?,
        table,
        otadata,
        app,
        model,
        integrity: Integrity::Unchecked,
    })
}

/// The app of an artifacts folder: the single `.bin` that is not the bootloader, OTA data or
/// partition table; unsigned builds may only have `<app>.bin-unsigned`.
fn find_legacy_app(dir: &Path) -> Result<String, PlanError> {
    let names: Vec<String> = fs::read_dir(dir)
        .map_err(|source| PlanError::Read {
            path: dir.to_path_buf(),
            source,
        })?
        .flatten()
        .filter(|e| e.path().is_file())
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| {
            !["bootloader", "ota_data", "partition"]
                .iter()
                .any(|x| n.contains(x))
        })
        .collect();
    let pick =
        |suffix: &str| -> Vec<&String> { names.iter().filter(|n| n.ends_with(suffix)).collect() };
    let mut apps = pick(".bin");
    if apps.is_empty() {
        apps = pick(".bin-unsigned");
    }
    match apps.as_slice() {
        [one] => Ok((*one).clone()),
        found => Err(PlanError::NoApp {
            dir: dir.to_path_buf(),
            found: if found.is_empty() {
                "none".into()
            } else {
                found
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            },
        }),
    }
}

fn check_image(file: &BundleFile, target: &TargetName) -> Result<(), PlanError> {
    let info = image::parse(&file.bytes).map_err(|source| PlanError::BadImage {
        file: file.path.clone(),
        source,
    })?;
    if info.chip() != Some(target.chip()) {
        return Err(PlanError::ImageChip {
            file: file.path.clone(),
            built: info
                .chip()
                .map_or_else(|| format!("chip id {}", info.chip_id), |c| c.to_string()),
            asked: target.to_string(),
            chip: target.chip(),
        });
    }
    Ok(())
}

fn read_table(file: &BundleFile) -> Result<PartitionTable, PlanError> {
    let bad = |reason: String| PlanError::BadTable {
        file: file.path.clone(),
        reason,
    };
    if file.path.ends_with(".csv") {
        let text = std::str::from_utf8(&file.bytes).map_err(|_| bad("not UTF-8 text".into()))?;
        partition::parse_csv(text).map_err(|e| bad(e.to_string()))
    } else {
        partition::parse_table(&file.bytes).map_err(|e| bad(e.to_string()))
    }
}

fn pad4(mut bytes: Vec<u8>) -> Vec<u8> {
    bytes.resize(bytes.len().next_multiple_of(4), 0xFF);
    bytes
}

/// The partition table and its region: the bundle's, or generated across the whole flash.
fn partition_table(req: &Request, loaded: &Loaded) -> Result<(PartitionTable, Region), PlanError> {
    let from_csv = loaded.table.path.ends_with(".csv");
    let (table, bytes, source) = match req.override_pt {
        Some(mode) => {
            if mode.with_model() && loaded.model.is_none() {
                return Err(PlanError::NoModel { mode });
            }
            let model_len = loaded.model.as_ref().map(|m| m.bytes.len() as u64);
            let table =
                layout::generate(loaded.table_offset, req.flash_size.bytes(), mode, model_len)?;
            let bin = table
                .to_bin()
                .map_err(|e| layout::LayoutError::Invalid(e.to_string()))?;
            let what = format!("--override_pt {mode} for {}", req.flash_size);
            (table, bin, Source::Generated(what))
        }
        None if from_csv => {
            let table = read_table(&loaded.table)?;
            let bin = table.to_bin().map_err(|e| PlanError::BadTable {
                file: loaded.table.path.clone(),
                reason: e.to_string(),
            })?;
            let what = format!("compiled from {}", loaded.table.path);
            (table, bin, Source::Generated(what))
        }
        None => (
            read_table(&loaded.table)?,
            loaded.table.bytes.clone(),
            Source::File(loaded.table.path.clone()),
        ),
    };
    let region = Region {
        offset: loaded.table_offset,
        bytes,
        label: "partition-table",
        source,
    };
    Ok((table, region))
}

/// No partition in the table's own sector, and the table inside the flash.
fn check_table(
    table: &PartitionTable,
    region: &Region,
    table_offset: u32,
    flash: FlashSize,
) -> Result<(), PlanError> {
    let sector_end = u64::from(table_offset) + 0x1000;
    if let Some(p) = table
        .partitions()
        .iter()
        .find(|p| u64::from(p.offset()) < sector_end)
    {
        return Err(PlanError::BadTable {
            file: region.source.to_string(),
            reason: format!(
                "partition {} at {:#x} lies inside the partition table sector \
                 ({table_offset:#x}..{sector_end:#x})",
                p.name(),
                p.offset(),
            ),
        });
    }
    let end = partition::table_end(table);
    if end > flash.bytes() {
        return Err(PlanError::FlashTooSmall {
            what: "the partition table".into(),
            end,
            need_mb: end as f64 / f64::from(1 << 20),
            size: flash.to_string(),
        });
    }
    Ok(())
}

fn build(req: &Request, loaded: Loaded) -> Result<Plan, PlanError> {
    let target = &req.target;
    let flash = req.flash_size;
    let mut notes = Vec::new();
    if loaded.integrity == Integrity::Unchecked {
        notes.push("this image has no manifest.json: no integrity check was possible".to_string());
    }
    check_image(&loaded.bootloader, target)?;
    check_image(&loaded.app, target)?;
    let layout = req.override_pt.map(|mode| (mode, flash));

    let (table, table_region) = partition_table(req, &loaded)?;
    check_table(&table, &table_region, loaded.table_offset, flash)?;

    // The bootloader, its header patched as esptool does for --flash_size/mode/freq.
    let patch = HeaderPatch {
        mode: loaded.mode,
        freq_code: loaded
            .freq
            .as_deref()
            .and_then(|f| image::flash_freq_code(loaded.chip, f)),
        size: Some(flash.bytes()),
    };
    let mut boot = loaded.bootloader.bytes.clone();
    let boot_source = match image::patch_header(&mut boot, patch) {
        Ok(true) => Source::Patched(
            loaded.bootloader.path.clone(),
            describe_patch(&loaded.bootloader.bytes, &boot),
        ),
        Ok(false) => Source::File(loaded.bootloader.path.clone()),
        Err(ImageError::Signed) => {
            notes.push(
                "the bootloader is signed (Secure Boot): its header is written as built".into(),
            );
            Source::File(loaded.bootloader.path.clone())
        }
        Err(source) => {
            return Err(PlanError::BadImage {
                file: loaded.bootloader.path.clone(),
                source,
            });
        }
    };

    let mut regions = vec![
        Region {
            offset: loaded.bootloader_offset,
            bytes: boot,
            label: "bootloader",
            source: boot_source,
        },
        table_region,
    ];

    // OTA data: the bundle's ota_data_initial.bin, or an erased otadata partition.
    if let Some(ota) = partition::otadata_partition(&table) {
        let (bytes, source) = match &loaded.otadata {
            Some(f) => (f.bytes.clone(), Source::File(f.path.clone())),
            None => (
                vec![0xFF; ota.size() as usize],
                Source::Generated("erased otadata".into()),
            ),
        };
        fits(
            &bytes,
            "ota_data_initial.bin",
            &ota.name(),
            ota.size(),
            layout,
        )?;
        regions.push(Region {
            offset: ota.offset(),
            bytes,
            label: "otadata",
            source,
        });
    }

    // The app: factory if the table has one, else ota_0.
    let app_part = partition::boot_app_partition(&table)
        .ok_or_else(|| PlanError::NoAppPartition(loaded.target.clone()))?;
    fits(
        &loaded.app.bytes,
        &loaded.app.path,
        &app_part.name(),
        app_part.size(),
        layout,
    )?;
    regions.push(Region {
        offset: app_part.offset(),
        bytes: loaded.app.bytes.clone(),
        label: "app",
        source: Source::File(loaded.app.path.clone()),
    });

    // The model, into tflite_model when the layout has it.
    if let Some(model) = &loaded.model {
        match table.find(MODEL_PARTITION).filter(|p| p.ty() == Type::Data) {
            Some(part) => {
                fits(
                    &model.bytes,
                    &model.path,
                    MODEL_PARTITION,
                    part.size(),
                    layout,
                )?;
                regions.push(Region {
                    offset: part.offset(),
                    bytes: model.bytes.clone(),
                    label: "model",
                    source: Source::File(model.path.clone()),
                });
            }
            None => notes.push(format!(
                "{} is not written: the partition table has no {MODEL_PARTITION} partition",
                model.path
            )),
        }
    }

    for r in &mut regions {
        r.bytes = pad4(std::mem::take(&mut r.bytes));
    }
    regions.sort_by_key(|r| r.offset);
    for r in &regions {
        if r.end() > flash.bytes() {
            return Err(PlanError::FlashTooSmall {
                what: format!("the {}", r.label),
                end: r.end(),
                need_mb: r.end() as f64 / f64::from(1 << 20),
                size: flash.to_string(),
            });
        }
    }
    for pair in regions.windows(2) {
        if pair[0].end() > u64::from(pair[1].offset) {
            return Err(PlanError::Overlap {
                first: pair[0].label.to_string(),
                first_start: pair[0].offset,
                first_end: pair[0].end(),
                second: pair[1].label.to_string(),
                second_start: pair[1].offset,
            });
        }
    }
    Ok(Plan {
        target: loaded.target,
        chip: loaded.chip,
        flash_size: flash,
        table_offset: loaded.table_offset,
        table,
        regions,
        integrity: loaded.integrity,
        notes,
    })
}

/// What patching changed in header bytes 2-3 (`size 4MB -> 8MB, mode qio -> dio`).
fn describe_patch(before: &[u8], after: &[u8]) -> String {
    let mut changes = Vec::new();
    let size = |b: u8| {
        image::flash_size_from_code(b >> 4).map_or("?".into(), |s| format!("{}MB", s >> 20))
    };
    if before[3] >> 4 != after[3] >> 4 {
        changes.push(format!("size {} -> {}", size(before[3]), size(after[3])));
    }
    let mode =
        |b: u8| FlashMode::from_code(b).map_or("?".into(), |m| format!("{m:?}").to_lowercase());
    if before[2] != after[2] {
        changes.push(format!("mode {} -> {}", mode(before[2]), mode(after[2])));
    }
    if before[3] & 0xF != after[3] & 0xF {
        changes.push(format!(
            "freq code {:#x} -> {:#x}",
            before[3] & 0xF,
            after[3] & 0xF
        ));
    }
    changes.join(", ")
}

/// Checks that `bytes` fit `partition`; the error depends on whether the table was generated.
fn fits(
    bytes: &[u8],
    what: &str,
    partition: &str,
    size: u32,
    layout: Option<(OverrideMode, FlashSize)>,
) -> Result<(), PlanError> {
    if bytes.len() as u64 <= u64::from(size) {
        return Ok(());
    }
    let (what, len, partition) = (what.to_string(), bytes.len(), partition.to_string());
    Err(match layout {
        Some((mode, flash)) => PlanError::SlotTooSmall {
            what,
            len,
            partition,
            size,
            mode,
            flash: flash.to_string(),
        },
        None => PlanError::DoesNotFit {
            what,
            len,
            partition,
            size,
        },
    })
}
