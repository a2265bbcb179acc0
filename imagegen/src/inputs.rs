//! Reading what a build produced: ESP-IDF build directories (`flasher_args.json` or
//! `flash_args`, `project_description.json`, `sdkconfig`, the partition table) or explicitly
//! named files.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use firmware::chip::TargetName;
use firmware::sdkconfig::Sdkconfig;
use serde::Deserialize;

pub use crate::build_args::FlashArgs;
use crate::build_args::{self, BuildArgs, FileKind};
use crate::error::{Error, Result, read};

/// A file read from disk, with the path it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceFile {
    /// Where it was read from.
    pub path: PathBuf,
    /// Its contents.
    pub bytes: Vec<u8>,
}

impl SourceFile {
    /// Reads `path`.
    pub fn read(path: &Path) -> Result<SourceFile> {
        Ok(SourceFile {
            path: path.to_path_buf(),
            bytes: read(path)?,
        })
    }

    /// The file name.
    pub fn file_name(&self) -> String {
        self.path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    }
}

/// A data image the build flashes (a model pack, a file-system image, pre-built NVS).
#[derive(Debug, Clone)]
pub struct DataInput {
    /// The build's name for it (its `flasher_args.json` key, else its file name).
    pub name: String,
    /// Where it goes.
    pub offset: u32,
    /// The file.
    pub file: SourceFile,
}

/// One target's inputs, before any check.
#[derive(Debug, Clone)]
pub struct TargetInput {
    /// The target name (folder name in the image).
    pub name: TargetName,
    /// Where the inputs came from (a build directory or the first explicit file).
    pub origin: PathBuf,
    /// `bootloader.bin`.
    pub bootloader: SourceFile,
    /// `partition-table.bin`.
    pub partition_table: SourceFile,
    /// `ota_data_initial.bin`, when the build made one.
    pub ota_data: Option<SourceFile>,
    /// The app image.
    pub app: SourceFile,
    /// `sdkconfig`.
    pub sdkconfig: SourceFile,
    /// `partitions.csv`, when found.
    pub partitions_csv: Option<SourceFile>,
    /// Offsets the build gave, by role: bootloader, table, app, otadata.
    pub offsets: BuildOffsets,
    /// Flash settings the build gave.
    pub flash: Option<FlashArgs>,
    /// The data images the build flashes besides bootloader, table, OTA data and app.
    pub data: Vec<DataInput>,
}

/// Offsets named by `flasher_args.json` or `flash_args` (explicit files have none).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BuildOffsets {
    /// Bootloader offset.
    pub bootloader: Option<u32>,
    /// Partition table offset.
    pub partition_table: Option<u32>,
    /// App offset.
    pub app: Option<u32>,
    /// OTA data offset.
    pub ota_data: Option<u32>,
}

impl TargetInput {
    /// The parsed sdkconfig.
    pub fn parse_sdkconfig(&self) -> Result<Sdkconfig> {
        let text = String::from_utf8_lossy(&self.sdkconfig.bytes);
        Sdkconfig::parse(&text).map_err(|e| {
            Error::input(
                &self.sdkconfig.path,
                format!("not an sdkconfig ({e})"),
                "pass the sdkconfig ESP-IDF wrote for this build",
            )
        })
    }

    /// Reads a target from an ESP-IDF build directory (or the project directory above it):
    /// `flasher_args.json`, else `flash_args`. `name` overrides the target name, which otherwise
    /// is the build's IDF target.
    pub fn from_build_dir(name: Option<&str>, dir: &Path) -> Result<TargetInput> {
        let (build, args_path) = locate_build_dir(dir)?;
        let description = ProjectDescription::read(&build)?;
        let args = if args_path.ends_with(FLASHER_ARGS) {
            build_args::read_flasher_args(&args_path)?
        } else {
            build_args::read_flash_args(&args_path, description.app_bin.as_deref())?
        };
        let name = target_name(name, dir, &args_path, &description, &args)?;
        let required = |kind: FileKind, key: &str| -> Result<(u32, SourceFile)> {
            let file = args.file(kind).ok_or_else(|| {
                Error::input(
                    &args_path,
                    format!("has no \"{key}\" entry"),
                    "build the whole project with idf.py build (not only the app)",
                )
            })?;
            Ok((file.offset, SourceFile::read(&build.join(&file.file))?))
        };
        let (boot_off, bootloader) = required(FileKind::Bootloader, "bootloader")?;
        let (table_off, partition_table) = required(FileKind::PartitionTable, "partition-table")?;
        let (app_off, app) = required(FileKind::App, "app")?;
        let ota = args
            .file(FileKind::OtaData)
            .map(|f| Ok::<_, Error>((f.offset, SourceFile::read(&build.join(&f.file))?)))
            .transpose()?;
        let data = args
            .data()
            .map(|f| {
                Ok(DataInput {
                    name: f.name.clone(),
                    offset: f.offset,
                    file: SourceFile::read(&build.join(&f.file))?,
                })
            })
            .collect::<Result<_>>()?;
        Ok(TargetInput {
            name,
            origin: build.clone(),
            bootloader,
            partition_table,
            ota_data: ota.as_ref().map(|(_, f)| f.clone()),
            app,
            sdkconfig: SourceFile::read(&find_sdkconfig(&build)?)?,
            partitions_csv: find_partitions_csv(&build)
                .as_deref()
                .map(SourceFile::read)
                .transpose()?,
            offsets: BuildOffsets {
                bootloader: Some(boot_off),
                partition_table: Some(table_off),
                app: Some(app_off),
                ota_data: ota.map(|(o, _)| o),
            },
            flash: args.flash,
            data,
        })
    }

    /// Reads a target from explicit files: `name=T,bootloader=P,partition-table=P,app=P,
    /// sdkconfig=P[,ota-data=P][,partitions-csv=P]`. Offsets then come from the sdkconfig and
    /// the partition table.
    pub fn from_spec(spec: &str) -> Result<TargetInput> {
        let usage = |problem: String| {
            Error::Usage(format!(
                "--target-files '{spec}': {problem}; expected name=T,bootloader=P,partition-table=P,app=P,sdkconfig=P[,ota-data=P][,partitions-csv=P]"
            ))
        };
        let mut fields = std::collections::BTreeMap::new();
        for part in spec.split(',').filter(|p| !p.is_empty()) {
            let (k, v) = part
                .split_once('=')
                .ok_or_else(|| usage(format!("'{part}' is not key=value")))?;
            let known = [
                "name",
                "bootloader",
                "partition-table",
                "app",
                "sdkconfig",
                "ota-data",
                "partitions-csv",
            ];
            if !known.contains(&k) {
                return Err(usage(format!("unknown key '{k}'")));
            }
            if fields.insert(k, v).is_some() {
                return Err(usage(format!("'{k}' given twice")));
            }
        }
        let get = |k: &str| {
            fields
                .get(k)
                .copied()
                .ok_or_else(|| usage(format!("'{k}' missing")))
        };
        let name = TargetName::from_str(get("name")?).map_err(|e| usage(e.to_string()))?;
        let file = |k: &str| -> Result<SourceFile> { SourceFile::read(Path::new(get(k)?)) };
        let optional = |k: &str| -> Result<Option<SourceFile>> {
            fields
                .get(k)
                .map(|p| SourceFile::read(Path::new(p)))
                .transpose()
        };
        let app = file("app")?;
        Ok(TargetInput {
            name,
            origin: app.path.clone(),
            bootloader: file("bootloader")?,
            partition_table: file("partition-table")?,
            ota_data: optional("ota-data")?,
            app,
            sdkconfig: file("sdkconfig")?,
            partitions_csv: optional("partitions-csv")?,
            offsets: BuildOffsets::default(),
            flash: None,
            data: Vec::new(),
        })
    }
}

/// The build's argument files, in the order they are looked for.
const FLASHER_ARGS: &str = "flasher_args.json";
const FLASH_ARGS: &str = "flash_args";

/// The build directory (`dir` itself or `dir/build`) and its argument file: `flasher_args.json`,
/// else `flash_args`.
fn locate_build_dir(dir: &Path) -> Result<(PathBuf, PathBuf)> {
    if !dir.is_dir() {
        return Err(Error::input(
            dir,
            "is not a directory",
            "pass an ESP-IDF build directory (the one holding flasher_args.json) or its project",
        ));
    }
    let candidates = [dir.to_path_buf(), dir.join("build")];
    [FLASHER_ARGS, FLASH_ARGS]
        .into_iter()
        .flat_map(|file| candidates.iter().map(move |d| (d.clone(), d.join(file))))
        .find(|(_, args)| args.is_file())
        .ok_or_else(|| {
            Error::input(
                &dir.join(FLASHER_ARGS),
                "not found, nor flash_args (looked in it and in build/)",
                "run idf.py build first, or name the files with --target-files",
            )
        })
}

/// `project_description.json`, the fields read.
#[derive(Debug, Default, Deserialize)]
struct ProjectDescription {
    target: Option<String>,
    app_bin: Option<String>,
}

impl ProjectDescription {
    /// The build's description, or an empty one when it has none.
    fn read(build: &Path) -> Result<ProjectDescription> {
        let path = build.join("project_description.json");
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                Error::input(
                    &path,
                    format!("not valid JSON ({e})"),
                    "rebuild with idf.py build, which rewrites it",
                )
            }),
            Err(_) => Ok(ProjectDescription::default()),
        }
    }
}

/// The target's name: `name` when given, else the build's IDF target; either way it must be the
/// chip the build is for.
fn target_name(
    name: Option<&str>,
    dir: &Path,
    args_path: &Path,
    description: &ProjectDescription,
    args: &BuildArgs,
) -> Result<TargetName> {
    let idf_target = description.target.as_deref().or(args.chip.as_deref());
    let name = name.or(idf_target).ok_or_else(|| {
        Error::input(
            args_path,
            "does not say which chip the build is for",
            "name the target explicitly with --target NAME=DIR",
        )
    })?;
    let name = TargetName::from_str(name)
        .map_err(|e| Error::input(dir, e.to_string(), "fix the target name"))?;
    if let Some(t) = idf_target.and_then(|t| t.parse::<firmware::chip::Chip>().ok())
        && t != name.chip()
    {
        return Err(Error::input(
            dir,
            format!("is a build for {t}, but the target is named {name}"),
            format!("name it {t} or a PSRAM variant of it (e.g. {t}r8)"),
        ));
    }
    Ok(name)
}

/// The build's sdkconfig: in the build directory or the project above it.
fn find_sdkconfig(build: &Path) -> Result<PathBuf> {
    [build.join("sdkconfig"), build.join("../sdkconfig")]
        .into_iter()
        .find(|p| p.is_file())
        .ok_or_else(|| {
            Error::input(
                build,
                "has no sdkconfig (looked in the build directory and its parent)",
                "copy the project's sdkconfig next to flasher_args.json",
            )
        })
}

/// The table's CSV source, when the build directory or the project above it has one.
fn find_partitions_csv(build: &Path) -> Option<PathBuf> {
    [
        build.join("partitions.csv"),
        build.join("../partitions.csv"),
    ]
    .into_iter()
    .find(|p| p.is_file())
}
