//! The firmware bundle: every target's files checked and laid out as `/firmware`, with the
//! manifest that describes them (see [`flasher::bundle`] for the format).

use std::collections::BTreeMap;
use std::path::Path;

use flasher::bundle::{
    ARTIFACTS_DIR, AppInfo, FileEntry, FlashSettings, MANIFEST_FILE, MANIFEST_VERSION, MODEL_FILE,
    Manifest, Role, Target,
};
use flasher::chip::Chip;
use flasher::image::{self, FlashMode};
use flasher::partition::{self, MAX_TABLE_LEN};
use flasher::sdkconfig::Sdkconfig;

use crate::error::{Error, Result};
use crate::inputs::{SourceFile, TargetInput};

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
            manifest_version: MANIFEST_VERSION,
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
        let tmp = crate::sink::temp_sibling(dest)?;
        let result = self
            .write_into(&tmp)
            .and_then(|()| std::fs::rename(&tmp, dest).map_err(|e| Error::write(dest, e)));
        if result.is_err() {
            let _ = std::fs::remove_dir_all(&tmp);
        }
        result
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

/// A region of flash a target's files occupy.
struct Region<'a> {
    what: &'a str,
    start: u64,
    end: u64,
}

fn check_target(input: TargetInput, files: &mut BTreeMap<String, Vec<u8>>) -> Result<Target> {
    let chip = input.name.chip();
    let sdkconfig = input.parse_sdkconfig()?;
    let config_offset = |key: &str| -> Result<Option<u32>> {
        sdkconfig.number(key).transpose().map_err(|v| {
            Error::input(
                &input.sdkconfig.path,
                format!("{key}={v} is not a number"),
                "fix the value in sdkconfig and rebuild",
            )
        })
    };
    let boot_offset = match input.offsets.bootloader {
        Some(o) => o,
        None => {
            config_offset("CONFIG_BOOTLOADER_OFFSET_IN_FLASH")?.unwrap_or(chip.bootloader_offset())
        }
    };
    if boot_offset != chip.bootloader_offset() {
        return Err(Error::input(
            &input.bootloader.path,
            format!(
                "is placed at {boot_offset:#x}, but the {chip} ROM loads the bootloader from {:#x}",
                chip.bootloader_offset()
            ),
            "check that the build is really for this chip",
        ));
    }
    let table_offset = match input.offsets.partition_table {
        Some(o) => o,
        None => config_offset("CONFIG_PARTITION_TABLE_OFFSET")?.unwrap_or(0x8000),
    };

    let boot = check_image(&input.bootloader, chip, "bootloader")?;
    check_image(&input.app, chip, "app")?;
    let app_desc = image::app_descriptor(&input.app.bytes);

    let table = partition::parse_table(&input.partition_table.bytes).map_err(|e| {
        Error::input(
            &input.partition_table.path,
            format!("not a valid partition table ({e})"),
            "pass build/partition_table/partition-table.bin from the same build",
        )
    })?;
    let app_part = match input.offsets.app {
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
        None => partition::boot_app_partition(&table).ok_or_else(|| {
            Error::input(
                &input.partition_table.path,
                "has no app partition",
                "add a factory or ota_0 partition to partitions.csv",
            )
        })?,
    };
    if input.app.bytes.len() as u64 > u64::from(app_part.size()) {
        return Err(Error::input(
            &input.app.path,
            format!(
                "is {} bytes, larger than its partition '{}' ({} bytes at {:#x})",
                input.app.bytes.len(),
                app_part.name(),
                app_part.size(),
                app_part.offset()
            ),
            "enlarge the partition in partitions.csv or make the app smaller",
        ));
    }
    let ota_offset = match &input.ota_data {
        None => None,
        Some(ota) => {
            let part = partition::otadata_partition(&table).ok_or_else(|| {
                Error::input(
                    &ota.path,
                    "is given, but the partition table has no otadata partition",
                    "drop the OTA data or add an otadata partition",
                )
            })?;
            if ota.bytes.len() as u64 > u64::from(part.size()) {
                return Err(Error::input(
                    &ota.path,
                    format!(
                        "is larger than the otadata partition ({} bytes)",
                        part.size()
                    ),
                    "pass build/ota_data_initial.bin from the same build",
                ));
            }
            Some(input.offsets.ota_data.unwrap_or(part.offset()))
        }
    };

    let flash = flash_settings(&input, &sdkconfig, &boot, chip)?;
    let table_start = u64::from(table_offset);
    for p in table.partitions() {
        if u64::from(p.offset()) < table_start + 0x1000 {
            return Err(Error::input(
                &input.partition_table.path,
                format!(
                    "partition '{}' at {:#x} overlaps the partition table at {table_offset:#x}",
                    p.name(),
                    p.offset()
                ),
                "move the partition, or CONFIG_PARTITION_TABLE_OFFSET, so they do not overlap",
            ));
        }
    }
    if let Ok(size) = flash.size.parse::<flasher::size::FlashSize>() {
        let end = partition::table_end(&table);
        if end > size.bytes() {
            return Err(Error::input(
                &input.partition_table.path,
                format!("ends at {end:#x}, beyond the {size} flash the build is configured for"),
                "shrink the partitions or set a larger CONFIG_ESPTOOLPY_FLASHSIZE",
            ));
        }
    }

    let mut regions = vec![
        Region {
            what: "bootloader",
            start: boot_offset.into(),
            end: u64::from(boot_offset) + input.bootloader.bytes.len() as u64,
        },
        Region {
            what: "partition table",
            start: table_start,
            end: table_start + MAX_TABLE_LEN as u64,
        },
        Region {
            what: "app",
            start: app_part.offset().into(),
            end: u64::from(app_part.offset()) + input.app.bytes.len() as u64,
        },
    ];
    if let (Some(offset), Some(ota)) = (ota_offset, &input.ota_data) {
        regions.push(Region {
            what: "OTA data",
            start: offset.into(),
            end: u64::from(offset) + ota.bytes.len() as u64,
        });
    }
    regions.sort_by_key(|r| r.start);
    for pair in regions.windows(2) {
        if pair[0].end > pair[1].start {
            return Err(Error::input(
                &input.origin,
                format!(
                    "the {} ({:#x}..{:#x}) overlaps the {} at {:#x}",
                    pair[0].what, pair[0].start, pair[0].end, pair[1].what, pair[1].start
                ),
                "fix the offsets in sdkconfig / partitions.csv and rebuild",
            ));
        }
    }

    let name = input.name.to_string();
    let dir = format!("{name}/{ARTIFACTS_DIR}");
    let app_file = app_file_name(
        &input.app,
        app_desc.as_ref().map(|d| d.project_name.as_str()),
    );
    let csv = match &input.partitions_csv {
        Some(f) => f.bytes.clone(),
        None => table
            .to_csv()
            .map_err(|e| {
                Error::input(
                    &input.partition_table.path,
                    format!("cannot be written as CSV ({e})"),
                    "pass partitions.csv with --target-files partitions-csv=PATH",
                )
            })?
            .into_bytes(),
    };
    let mut entries = Vec::new();
    let mut add = |role: Role, file: &str, offset: Option<u32>, bytes: Vec<u8>| {
        let path = format!("{dir}/{file}");
        entries.push(FileEntry::new(role, path.clone(), offset, &bytes));
        files.insert(path, bytes);
    };
    add(
        Role::Bootloader,
        "bootloader.bin",
        Some(boot_offset),
        input.bootloader.bytes,
    );
    add(
        Role::PartitionTable,
        "partition-table.bin",
        Some(table_offset),
        input.partition_table.bytes,
    );
    if let (Some(offset), Some(ota)) = (ota_offset, input.ota_data) {
        add(
            Role::OtaData,
            "ota_data_initial.bin",
            Some(offset),
            ota.bytes,
        );
    }
    add(
        Role::App,
        &app_file,
        Some(app_part.offset()),
        input.app.bytes,
    );
    add(Role::Sdkconfig, "sdkconfig", None, input.sdkconfig.bytes);
    add(Role::PartitionsCsv, "partitions.csv", None, csv);

    Ok(Target {
        name,
        chip,
        flash,
        bootloader_offset: boot_offset,
        partition_table_offset: table_offset,
        app: AppInfo {
            name: app_desc
                .as_ref()
                .map(|d| d.project_name.clone())
                .unwrap_or_else(|| app_file.trim_end_matches(".bin").to_string()),
            version: app_desc
                .as_ref()
                .map(|d| d.version.clone())
                .unwrap_or_default(),
            idf_version: app_desc.map(|d| d.idf_version).unwrap_or_default(),
        },
        files: entries,
    })
}

/// Parses an image and checks its chip.
fn check_image(file: &SourceFile, chip: Chip, what: &str) -> Result<image::ImageInfo> {
    let info = image::parse(&file.bytes).map_err(|e| {
        Error::input(
            &file.path,
            format!("is not a valid {what} image ({e})"),
            format!("pass the {what} .bin that ESP-IDF built, not an ELF or a merged image"),
        )
    })?;
    match info.chip() {
        Some(c) if c == chip => Ok(info),
        found => Err(Error::input(
            &file.path,
            format!(
                "is built for {}, but the target is {chip}",
                found.map_or_else(|| format!("chip id {}", info.chip_id), |c| c.to_string())
            ),
            format!("pass the {what} of the {chip} build, or name the target after its chip"),
        )),
    }
}

/// The app's name in the bundle: its own file name, unless the original image's discovery rule
/// (the one `.bin` without bootloader/ota_data/partition in its name) would not find it.
fn app_file_name(app: &SourceFile, project: Option<&str>) -> String {
    let name = app.file_name();
    let findable = name.ends_with(".bin")
        && !["bootloader", "ota_data", "partition"]
            .iter()
            .any(|w| name.contains(w));
    if findable {
        return name;
    }
    match project.filter(|p| !p.is_empty() && !p.contains(['/', '\\'])) {
        Some(p)
            if !["bootloader", "ota_data", "partition"]
                .iter()
                .any(|w| p.contains(w)) =>
        {
            format!("{p}.bin")
        }
        _ => "app.bin".to_string(),
    }
}

fn flash_settings(
    input: &TargetInput,
    sdkconfig: &Sdkconfig,
    boot: &image::ImageInfo,
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
    if freq != "keep" && image::flash_freq_code(chip, &freq).is_none() {
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
