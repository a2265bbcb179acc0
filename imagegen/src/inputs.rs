//! Reading what a build produced: ESP-IDF build directories (`flasher_args.json`,
//! `project_description.json`, `sdkconfig`, the partition table) or explicitly named files.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use firmware::chip::TargetName;
use firmware::sdkconfig::{Sdkconfig, parse_u32};
use serde_json::Value;

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

/// Flash settings as a build states them (`dio`, `80m`, `4MB` or `detect`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlashArgs {
    /// Flash mode.
    pub mode: String,
    /// Flash frequency.
    pub freq: String,
    /// Flash size.
    pub size: String,
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
}

/// Offsets named by `flasher_args.json` (explicit files have none).
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

    /// Reads a target from an ESP-IDF build directory (or the project directory above it).
    /// `name` overrides the target name, which otherwise is the build's IDF target.
    pub fn from_build_dir(name: Option<&str>, dir: &Path) -> Result<TargetInput> {
        let build = locate_build_dir(dir)?;
        let args_path = build.join("flasher_args.json");
        let args: Value = serde_json::from_slice(&read(&args_path)?).map_err(|e| {
            Error::input(
                &args_path,
                format!("not valid JSON ({e})"),
                "rebuild with idf.py build, which rewrites it",
            )
        })?;
        let desc_path = build.join("project_description.json");
        let description: Option<Value> = match std::fs::read(&desc_path) {
            Ok(bytes) => Some(serde_json::from_slice(&bytes).map_err(|e| {
                Error::input(
                    &desc_path,
                    format!("not valid JSON ({e})"),
                    "rebuild with idf.py build, which rewrites it",
                )
            })?),
            Err(_) => None,
        };
        let entry = |key: &str| -> Result<Option<(u32, PathBuf)>> {
            let Some(item) = args.get(key) else {
                return Ok(None);
            };
            let bad = |what: &str| {
                Error::input(
                    &args_path,
                    format!("entry \"{key}\" has no valid {what}"),
                    "rebuild with idf.py build, or name the files with --target-files",
                )
            };
            let offset = item
                .get("offset")
                .and_then(Value::as_str)
                .and_then(parse_u32)
                .ok_or_else(|| bad("offset"))?;
            let file = item
                .get("file")
                .and_then(Value::as_str)
                .ok_or_else(|| bad("file"))?;
            Ok(Some((offset, build.join(file))))
        };
        let required = |key: &str| -> Result<(u32, PathBuf)> {
            entry(key)?.ok_or_else(|| {
                Error::input(
                    &args_path,
                    format!("has no \"{key}\" entry"),
                    "build the whole project with idf.py build (not only the app)",
                )
            })
        };
        let (boot_off, boot_path) = required("bootloader")?;
        let (table_off, table_path) = required("partition-table")?;
        let (app_off, app_path) = required("app")?;
        let ota = entry("otadata")?;

        let idf_target = description
            .as_ref()
            .and_then(|d| d.get("target"))
            .or_else(|| args.pointer("/extra_esptool_args/chip"))
            .and_then(Value::as_str)
            .map(str::to_string);
        let name = match (name, idf_target.as_deref()) {
            (Some(n), _) => n.to_string(),
            (None, Some(t)) => t.to_string(),
            (None, None) => {
                return Err(Error::input(
                    &args_path,
                    "does not say which chip the build is for",
                    "name the target explicitly with --target NAME=DIR",
                ));
            }
        };
        let name = TargetName::from_str(&name)
            .map_err(|e| Error::input(dir, e.to_string(), "fix the target name"))?;
        if let Some(t) = idf_target
            .as_deref()
            .and_then(|t| t.parse::<firmware::chip::Chip>().ok())
            && t != name.chip()
        {
            return Err(Error::input(
                dir,
                format!("is a build for {t}, but the target is named {name}"),
                format!("name it {t} or a PSRAM variant of it (e.g. {t}r8)"),
            ));
        }

        let sdkconfig_path = [build.join("sdkconfig"), build.join("../sdkconfig")]
            .into_iter()
            .find(|p| p.is_file())
            .ok_or_else(|| {
                Error::input(
                    &build,
                    "has no sdkconfig (looked in the build directory and its parent)",
                    "copy the project's sdkconfig next to flasher_args.json",
                )
            })?;
        let csv = [
            build.join("partitions.csv"),
            build.join("../partitions.csv"),
        ]
        .into_iter()
        .find(|p| p.is_file());
        let flash = args.get("flash_settings").map(|s| FlashArgs {
            mode: s["flash_mode"].as_str().unwrap_or("keep").to_string(),
            freq: s["flash_freq"].as_str().unwrap_or("keep").to_string(),
            size: s["flash_size"].as_str().unwrap_or("keep").to_string(),
        });
        Ok(TargetInput {
            name,
            origin: build.clone(),
            bootloader: SourceFile::read(&boot_path)?,
            partition_table: SourceFile::read(&table_path)?,
            ota_data: ota.as_ref().map(|(_, p)| SourceFile::read(p)).transpose()?,
            app: SourceFile::read(&app_path)?,
            sdkconfig: SourceFile::read(&sdkconfig_path)?,
            partitions_csv: csv.as_deref().map(SourceFile::read).transpose()?,
            offsets: BuildOffsets {
                bootloader: Some(boot_off),
                partition_table: Some(table_off),
                app: Some(app_off),
                ota_data: ota.map(|(o, _)| o),
            },
            flash,
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
        })
    }
}

/// The directory holding `flasher_args.json`: `dir` itself or `dir/build`.
fn locate_build_dir(dir: &Path) -> Result<PathBuf> {
    if !dir.is_dir() {
        return Err(Error::input(
            dir,
            "is not a directory",
            "pass an ESP-IDF build directory (the one holding flasher_args.json) or its project",
        ));
    }
    [dir.to_path_buf(), dir.join("build")]
        .into_iter()
        .find(|d| d.join("flasher_args.json").is_file())
        .ok_or_else(|| {
            Error::input(
                &dir.join("flasher_args.json"),
                "not found (nor in build/)",
                "run idf.py build first, or name the files with --target-files",
            )
        })
}
