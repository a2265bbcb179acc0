//! The firmware bundle: every target's files checked and laid out as `/firmware`, with the
//! manifest that describes them (see [`firmware::manifest`] for the format).

use std::collections::BTreeMap;
use std::path::Path;

use esp_idf_part::PartitionTable;
use firmware::chip::Chip;
use firmware::esp_image::{self, AppDescriptor, FlashMode, ImageInfo};
use firmware::flash_size::FlashSize;
use firmware::legacy;
use firmware::manifest::{
    ARTIFACTS_DIR, AppInfo, DATA_DIR, FileEntry, FlashSettings, MANIFEST_FILE, MODEL_FILE,
    Manifest, Role, Target,
};
use firmware::partition::{self, MAX_TABLE_LEN};
use firmware::placement::{self, DataViolation, Extent, ImageViolation, TableViolation};
use firmware::sdkconfig::{BadNumber, Sdkconfig};

use crate::error::{Error, Result};
use crate::inputs::{DataInput, SourceFile, TargetInput};

/// Release metadata recorded in the manifest and the image.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Metadata {
    /// Application type (`resnet`).
    pub app_type: Option<String>,
    /// Release version.
    pub version: Option<String>,
    /// Source revision (commit).
    pub revision: Option<String>,
}

/// A checked bundle: the manifest and the bytes of every file, by path below `/firmware`.
#[derive(Debug, Clone)]
pub struct Bundle {
    manifest: Manifest,
    files: BTreeMap<String, Vec<u8>>,
}

impl Bundle {
    /// Checks every target and lays the bundle out. Nothing is written.
    pub fn new(
        targets: Vec<TargetInput>,
        model: Option<SourceFile>,
        metadata: &Metadata,
    ) -> Result<Bundle> {
        if targets.is_empty() {
            return Err(Error::Usage(
                "no target given: add --target DIR (an ESP-IDF build) or --target-files".into(),
            ));
        }
        let mut files = BTreeMap::new();
        let mut entries = Vec::new();
        for input in targets {
            let name = input.name.to_string();
            if entries.iter().any(|t: &Target| t.name == name) {
                return Err(Error::DuplicateTarget(name));
            }
            entries.push(check_target(input, &mut files)?);
        }
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        let model = model.map(|m| {
            let entry = FileEntry::new(Role::Model, MODEL_FILE.into(), None, &m.bytes);
            files.insert(MODEL_FILE.to_string(), m.bytes);
            entry
        });
        let manifest = Manifest {
            manifest_version: Manifest::version_for(&entries),
            app_type: metadata.app_type.clone(),
            version: metadata.version.clone(),
            revision: metadata.revision.clone(),
            model,
            targets: entries,
        };
        files.insert(MANIFEST_FILE.to_string(), manifest.to_json());
        Ok(Bundle { manifest, files })
    }

    /// The manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// Every file (manifest included), by path relative to the bundle root, sorted.
    pub fn files(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.files.iter().map(|(p, b)| (p.as_str(), b.as_slice()))
    }

    /// Writes the tree as a new directory `dest` (e.g. the build context of
    /// Dockerfiles/Dockerfile.flash): into a temporary sibling first, renamed when complete.
    pub fn write_dir(&self, dest: &Path) -> Result<()> {
        if dest.exists() {
            return Err(Error::input(
                dest,
                "already exists",
                "remove it or choose another directory",
            ));
        }
        crate::atomic::write(dest, |tmp| self.write_into(tmp))
    }

    fn write_into(&self, dir: &Path) -> Result<()> {
        for (path, bytes) in self.files() {
            let dest = dir.join(path);
            if let Some(parent) = dest.parent() {
                std::fs::create_dir_all(parent).map_err(|e| Error::write(parent, e))?;
            }
            std::fs::write(&dest, bytes).map_err(|e| Error::write(&dest, e))?;
        }
        Ok(())
    }
}

/// Checks one target against the placement rules and adds its files to the bundle.
fn check_target(input: TargetInput, files: &mut BTreeMap<String, Vec<u8>>) -> Result<Target> {
    let chip = input.name.chip();
    let sdkconfig = input.parse_sdkconfig()?;
    let (boot_offset, table_offset) = offsets(&input, &sdkconfig)?;
    let boot = check_image(&input.bootloader, chip, "bootloader")?;
    check_image(&input.app, chip, "app")?;
    let app_desc = esp_image::app_descriptor(&input.app.bytes);
    let table = parse_table(&input.partition_table)?;
    let app_offset = app_partition(&input, &table)?;
    let ota_offset = ota_data_offset(&input, &table)?;
    let flash = flash_settings(&input, &sdkconfig, &boot, chip)?;
    let flash_bytes = flash
        .size
        .parse::<FlashSize>()
        .map(FlashSize::bytes)
        .ok()
        .or(boot.flash_size());
    check_table(&input.partition_table, &table, table_offset, flash_bytes)?;
    check_data_files(&input.data, &table)?;
    let offsets = Offsets {
        bootloader: boot_offset,
        table: table_offset,
        app: app_offset,
        ota: ota_offset,
    };
    check_overlaps(&input, &offsets)?;

    let name = input.name.to_string();
    let app_file = app_file_name(
        &input.app,
        app_desc.as_ref().map(|d| d.project_name.as_str()),
    );
    let csv = partitions_csv(&input, &table)?;
    Ok(Target {
        name: name.clone(),
        chip,
        flash,
        bootloader_offset: boot_offset,
        partition_table_offset: table_offset,
        app: app_info(app_desc, &app_file),
        files: add_files(input, &name, &app_file, &offsets, csv, files)?,
    })
}

/// Where the target's images go.
struct Offsets {
    bootloader: u32,
    table: u32,
    app: u32,
    ota: Option<u32>,
}

/// Adds the target's files to the bundle under `<name>/artifacts/` and returns their entries.
fn add_files(
    input: TargetInput,
    name: &str,
    app_file: &str,
    offsets: &Offsets,
    csv: Vec<u8>,
    files: &mut BTreeMap<String, Vec<u8>>,
) -> Result<Vec<FileEntry>> {
    let dir = format!("{name}/{ARTIFACTS_DIR}");
    let mut entries = Vec::new();
    let mut add = |role: Role, file: &str, offset: Option<u32>, bytes: Vec<u8>| {
        let path = format!("{dir}/{file}");
        entries.push(FileEntry::new(role, path.clone(), offset, &bytes));
        files.insert(path, bytes);
    };
    add(
        Role::Bootloader,
        legacy::BOOTLOADER_FILES[0],
        Some(offsets.bootloader),
        input.bootloader.bytes,
    );
    add(
        Role::PartitionTable,
        legacy::TABLE_BIN,
        Some(offsets.table),
        input.partition_table.bytes,
    );
    if let (Some(offset), Some(ota)) = (offsets.ota, input.ota_data) {
        add(Role::OtaData, legacy::OTA_DATA, Some(offset), ota.bytes);
    }
    add(Role::App, app_file, Some(offsets.app), input.app.bytes);
    add(
        Role::Sdkconfig,
        legacy::SDKCONFIG,
        None,
        input.sdkconfig.bytes,
    );
    add(Role::PartitionsCsv, legacy::TABLE_CSV, None, csv);
    for data in input.data {
        let path = format!("{dir}/{DATA_DIR}/{}", data.file.file_name());
        if files.contains_key(&path) {
            return Err(Error::input(
                &data.file.path,
                "has the same file name as another data image of the build",
                "give each data image its own file name",
            ));
        }
        entries.push(FileEntry::data(
            &data.name,
            path.clone(),
            data.offset,
            &data.file.bytes,
        ));
        files.insert(path, data.file.bytes);
    }
    Ok(entries)
}

/// Each data image inside the partition it lands in.
fn check_data_files(data: &[DataInput], table: &PartitionTable) -> Result<()> {
    for d in data {
        let len = d.file.bytes.len() as u64;
        placement::check_data_lands(table, d.offset, len).map_err(|v| match v {
            DataViolation::NoPartition { offset } => Error::input(
                &d.file.path,
                format!(
                    "('{}') is flashed at {offset:#x}, where the partition table has no partition",
                    d.name
                ),
                "add a partition for it to partitions.csv, or correct its offset, and rebuild",
            ),
            DataViolation::TooLarge(e) => Error::input(
                &d.file.path,
                format!(
                    "('{}') is {} bytes, larger than the {} bytes partition '{}' has from {:#x}",
                    d.name, e.len, e.size, e.partition, e.offset
                ),
                "enlarge the partition in partitions.csv or make the data image smaller",
            ),
        })?;
    }
    Ok(())
}

/// The bootloader and partition table offsets: the build's own, else sdkconfig's, else the
/// defaults; the bootloader must be where the chip's ROM loads it from.
fn offsets(input: &TargetInput, sdkconfig: &Sdkconfig) -> Result<(u32, u32)> {
    let chip = input.name.chip();
    let bad_number = |e: BadNumber| {
        Error::input(
            &input.sdkconfig.path,
            e.to_string(),
            "fix the value in sdkconfig and rebuild",
        )
    };
    let boot_offset = match input.offsets.bootloader {
        Some(o) => o,
        None => sdkconfig.bootloader_offset(chip).map_err(bad_number)?,
    };
    placement::check_bootloader_offset(chip, boot_offset).map_err(|e| {
        Error::input(
            &input.bootloader.path,
            format!("is {e}"),
            "check that the build is really for this chip",
        )
    })?;
    let table_offset = match input.offsets.partition_table {
        Some(o) => o,
        None => sdkconfig.partition_table_offset().map_err(bad_number)?,
    };
    Ok((boot_offset, table_offset))
}

fn parse_table(file: &SourceFile) -> Result<PartitionTable> {
    partition::parse_table(&file.bytes).map_err(|e| {
        Error::input(
            &file.path,
            format!("not a valid partition table ({e})"),
            "pass build/partition_table/partition-table.bin from the same build",
        )
    })
}

/// The app's partition: the one at the build's app offset, else the one the bootloader boots;
/// the app must fit it.
fn app_partition(input: &TargetInput, table: &PartitionTable) -> Result<u32> {
    let part = match input.offsets.app {
        Some(offset) => table
            .partitions()
            .iter()
            .find(|p| p.ty() == esp_idf_part::Type::App && p.offset() == offset)
            .ok_or_else(|| {
                Error::input(
                    &input.app.path,
                    format!(
                        "is placed at {offset:#x}, where the partition table has no app partition"
                    ),
                    "rebuild so that flasher_args.json and the partition table agree",
                )
            })?,
        None => partition::boot_app_partition(table).ok_or_else(|| {
            Error::input(
                &input.partition_table.path,
                "has no app partition",
                "add a factory or ota_0 partition to partitions.csv",
            )
        })?,
    };
    placement::check_fits(input.app.bytes.len() as u64, part).map_err(|e| {
        Error::input(
            &input.app.path,
            format!(
                "is {} bytes, larger than its partition '{}' ({} bytes at {:#x})",
                e.len, e.partition, e.size, e.offset
            ),
            "enlarge the partition in partitions.csv or make the app smaller",
        )
    })?;
    Ok(part.offset())
}

/// Where the OTA data goes, when the build made some: the otadata partition, which it must fit.
fn ota_data_offset(input: &TargetInput, table: &PartitionTable) -> Result<Option<u32>> {
    let Some(ota) = &input.ota_data else {
        return Ok(None);
    };
    let part = partition::otadata_partition(table).ok_or_else(|| {
        Error::input(
            &ota.path,
            "is given, but the partition table has no otadata partition",
            "drop the OTA data or add an otadata partition",
        )
    })?;
    placement::check_fits(ota.bytes.len() as u64, part).map_err(|e| {
        Error::input(
            &ota.path,
            format!("is larger than the otadata partition ({} bytes)", e.size),
            "pass build/ota_data_initial.bin from the same build",
        )
    })?;
    Ok(Some(input.offsets.ota_data.unwrap_or(part.offset())))
}

/// The table's own sector free, and the table inside the flash the build is configured for.
fn check_table(
    file: &SourceFile,
    table: &PartitionTable,
    table_offset: u32,
    flash: Option<u64>,
) -> Result<()> {
    placement::check_table(table, table_offset, flash).map_err(|v| match v {
        TableViolation::InTableSector {
            partition, offset, ..
        } => Error::input(
            &file.path,
            format!(
                "partition '{partition}' at {offset:#x} overlaps the partition table at {table_offset:#x}"
            ),
            "move the partition, or CONFIG_PARTITION_TABLE_OFFSET, so they do not overlap",
        ),
        TableViolation::BeyondFlash { end, flash } => Error::input(
            &file.path,
            format!(
                "ends at {end:#x}, beyond the {}MB flash the build is configured for",
                flash >> 20
            ),
            "shrink the partitions or set a larger CONFIG_ESPTOOLPY_FLASHSIZE",
        ),
    })
}

/// No two of the target's flashed files share flash (the table counted at its largest).
fn check_overlaps(input: &TargetInput, offsets: &Offsets) -> Result<()> {
    let mut extents = vec![
        Extent::new(
            "bootloader",
            offsets.bootloader,
            input.bootloader.bytes.len() as u64,
        ),
        Extent::new("partition table", offsets.table, MAX_TABLE_LEN as u64),
        Extent::new("app", offsets.app, input.app.bytes.len() as u64),
    ];
    if let (Some(offset), Some(ota)) = (offsets.ota, &input.ota_data) {
        extents.push(Extent::new("OTA data", offset, ota.bytes.len() as u64));
    }
    extents.extend(input.data.iter().map(|d| {
        Extent::new(
            format!("data image '{}'", d.name),
            d.offset,
            d.file.bytes.len().next_multiple_of(4) as u64,
        )
    }));
    placement::check_extents(&mut extents, None).map_err(|v| {
        Error::input(
            &input.origin,
            v.to_string(),
            "fix the offsets in sdkconfig / partitions.csv and rebuild",
        )
    })
}

/// The table's CSV source: the build's, else written from the binary table.
fn partitions_csv(input: &TargetInput, table: &PartitionTable) -> Result<Vec<u8>> {
    if let Some(f) = &input.partitions_csv {
        return Ok(f.bytes.clone());
    }
    table.to_csv().map(String::into_bytes).map_err(|e| {
        Error::input(
            &input.partition_table.path,
            format!("cannot be written as CSV ({e})"),
            "pass partitions.csv with --target-files partitions-csv=PATH",
        )
    })
}

fn app_info(desc: Option<AppDescriptor>, app_file: &str) -> AppInfo {
    match desc {
        Some(d) => AppInfo {
            name: d.project_name,
            version: d.version,
            idf_version: d.idf_version,
        },
        None => AppInfo {
            name: app_file.trim_end_matches(".bin").to_string(),
            version: String::new(),
            idf_version: String::new(),
        },
    }
}

/// Parses an image and checks its chip.
fn check_image(file: &SourceFile, chip: Chip, what: &str) -> Result<ImageInfo> {
    placement::check_image(&file.bytes, chip).map_err(|v| match v {
        ImageViolation::Invalid(e) => Error::input(
            &file.path,
            format!("is not a valid {what} image ({e})"),
            format!("pass the {what} .bin that ESP-IDF built, not an ELF or a merged image"),
        ),
        ImageViolation::WrongChip { built, .. } => Error::input(
            &file.path,
            format!("is built for {built}, but the target is {chip}"),
            format!("pass the {what} of the {chip} build, or name the target after its chip"),
        ),
    })
}

/// The app's name in the bundle: its own file name, unless the original image's discovery rule
/// (the one `.bin` without bootloader/ota_data/partition in its name) would not find it.
fn app_file_name(app: &SourceFile, project: Option<&str>) -> String {
    let name = app.file_name();
    if legacy::is_app_file(&name) {
        return name;
    }
    match project.filter(|p| !p.is_empty() && !p.contains(['/', '\\'])) {
        Some(p) if legacy::may_name_app(p) => format!("{p}.bin"),
        _ => "app.bin".to_string(),
    }
}

fn flash_settings(
    input: &TargetInput,
    sdkconfig: &Sdkconfig,
    boot: &ImageInfo,
    chip: Chip,
) -> Result<FlashSettings> {
    let header_mode = FlashMode::from_code(boot.flash_mode).unwrap_or(FlashMode::Dio);
    let from_args = input.flash.as_ref();
    let pick = |arg: Option<&str>, key: &str| {
        arg.filter(|v| *v != "keep")
            .map(str::to_string)
            .or_else(|| sdkconfig.get(key).map(str::to_string))
    };
    let mode = pick(
        from_args.map(|f| f.mode.as_str()),
        "CONFIG_ESPTOOLPY_FLASHMODE",
    );
    let mode = match mode {
        None => header_mode,
        Some(m) => FlashMode::parse(&m).ok_or_else(|| {
            Error::input(
                &input.sdkconfig.path,
                format!("flash mode '{m}' is not qio, qout, dio or dout"),
                "fix CONFIG_ESPTOOLPY_FLASHMODE and rebuild",
            )
        })?,
    };
    let freq = pick(
        from_args.map(|f| f.freq.as_str()),
        "CONFIG_ESPTOOLPY_FLASHFREQ",
    )
    .unwrap_or_else(|| "keep".into());
    if freq != "keep" && esp_image::flash_freq_code(chip, &freq).is_none() {
        return Err(Error::input(
            &input.sdkconfig.path,
            format!("flash frequency '{freq}' is not one {chip} supports"),
            "fix CONFIG_ESPTOOLPY_FLASHFREQ and rebuild",
        ));
    }
    let size = pick(
        from_args.map(|f| f.size.as_str()),
        "CONFIG_ESPTOOLPY_FLASHSIZE",
    )
    .or_else(|| boot.flash_size().map(|b| format!("{}MB", b >> 20)))
    .unwrap_or_else(|| "detect".into());
    Ok(FlashSettings { mode, freq, size })
}
