//! What an ESP-IDF build says it flashes: `flasher_args.json` as every release from 4.0 to 6.0
//! writes it, or, when that is absent, `flash_args`, the esptool argument file
//! `esptool write-flash $(cat build/flash_args)` reads.
//!
//! Both come down to [`BuildArgs`]: every file `idf.py flash` writes, at its offset, with the
//! build's name for it, and the flash settings given on the command line.

use std::collections::BTreeMap;
use std::path::Path;

use firmware::sdkconfig::parse_u32;
use serde::Deserialize;

use crate::error::{Error, Result, read};

/// What a file of the build is, by the name `flasher_args.json` gives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// `bootloader`.
    Bootloader,
    /// `partition-table` (`partition_table` before ESP-IDF 4.4).
    PartitionTable,
    /// `app`.
    App,
    /// `otadata`.
    OtaData,
    /// Anything else: a data image (model pack, file system, NVS).
    Data,
}

impl FileKind {
    fn from_key(key: &str) -> FileKind {
        match key.replace('_', "-").as_str() {
            "bootloader" => FileKind::Bootloader,
            "partition-table" => FileKind::PartitionTable,
            "app" => FileKind::App,
            "otadata" => FileKind::OtaData,
            _ => FileKind::Data,
        }
    }
}

/// One file the build flashes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlashFile {
    /// Flash offset.
    pub offset: u32,
    /// Path relative to the build directory.
    pub file: String,
    /// What it is.
    pub kind: FileKind,
    /// The build's name for it (its `flasher_args.json` key), else its file name.
    pub name: String,
}

/// Flash settings as a build states them (`dio`, `80m`, `4MB`, or `detect`/`keep`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlashArgs {
    /// Flash mode.
    pub mode: String,
    /// Flash frequency.
    pub freq: String,
    /// Flash size.
    pub size: String,
}

/// What the build flashes, and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildArgs {
    /// Every file, in offset order.
    pub files: Vec<FlashFile>,
    /// The flash settings, when the build gives them.
    pub flash: Option<FlashArgs>,
    /// The chip, when the build names it (`extra_esptool_args.chip`).
    pub chip: Option<String>,
}

impl BuildArgs {
    /// The file of `kind`, when the build flashes one (the first, for [`FileKind::Data`]).
    pub fn file(&self, kind: FileKind) -> Option<&FlashFile> {
        self.files.iter().find(|f| f.kind == kind)
    }

    /// The data images, in offset order.
    pub fn data(&self) -> impl Iterator<Item = &FlashFile> {
        self.files.iter().filter(|f| f.kind == FileKind::Data)
    }
}

/// `flasher_args.json`, the fields read.
#[derive(Debug, Deserialize)]
struct FlasherArgsJson {
    #[serde(default)]
    write_flash_args: Vec<String>,
    #[serde(default)]
    flash_settings: Option<FlashSettingsJson>,
    #[serde(default)]
    flash_files: BTreeMap<String, String>,
    #[serde(default)]
    extra_esptool_args: ExtraEsptoolArgs,
    /// `bootloader`, `app`, `partition-table`, `otadata` and any other named entry.
    #[serde(flatten)]
    named: BTreeMap<String, serde_json::Value>,
}

#[derive(Debug, Deserialize)]
struct FlashSettingsJson {
    #[serde(alias = "flash-mode")]
    flash_mode: Option<String>,
    #[serde(alias = "flash-freq")]
    flash_freq: Option<String>,
    #[serde(alias = "flash-size")]
    flash_size: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct ExtraEsptoolArgs {
    chip: Option<String>,
}

/// A named entry: `{"offset": "0x10000", "file": "app.bin", "encrypted": "false"}`.
#[derive(Debug, Deserialize)]
struct NamedEntry {
    offset: String,
    file: String,
    #[serde(default)]
    encrypted: Flag,
}

/// ESP-IDF writes booleans as strings (`"true"`); accept both.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Flag {
    Bool(bool),
    Text(String),
}

impl Default for Flag {
    fn default() -> Flag {
        Flag::Bool(false)
    }
}

impl Flag {
    fn is_set(&self) -> bool {
        match self {
            Flag::Bool(b) => *b,
            Flag::Text(t) => t.eq_ignore_ascii_case("true"),
        }
    }
}

const REBUILD: &str = "rebuild with idf.py build, which rewrites it";

fn encrypted_error(path: &Path, file: &str) -> Error {
    Error::input(
        path,
        format!(
            "'{file}' must be written encrypted (flash encryption in development mode), which \
             espflash cannot do"
        ),
        "flash this build with idf.py encrypted-flash, or build it without \
         CONFIG_SECURE_FLASH_ENC_ENABLED (or in release mode with pre-encrypted images)",
    )
}

/// Reads `flasher_args.json`.
pub fn read_flasher_args(path: &Path) -> Result<BuildArgs> {
    let json: FlasherArgsJson = serde_json::from_slice(&read(path)?).map_err(|e| {
        let what = if e.is_data() {
            "not a flasher_args.json"
        } else {
            "not valid JSON"
        };
        Error::input(path, format!("{what} ({e})"), REBUILD)
    })?;
    let named = named_entries(path, &json.named)?;
    let files = flashed_files(path, &json.flash_files, &named)?;
    let flash = match &json.flash_settings {
        Some(s) => Some(FlashArgs {
            mode: s.flash_mode.clone().unwrap_or_else(|| "keep".into()),
            freq: s.flash_freq.clone().unwrap_or_else(|| "keep".into()),
            size: s.flash_size.clone().unwrap_or_else(|| "keep".into()),
        }),
        None => flash_options(&json.write_flash_args),
    };
    Ok(BuildArgs {
        files,
        flash,
        chip: json.extra_esptool_args.chip,
    })
}

/// The entries that name a file (`{"offset", "file"}` objects), by key; refuses encrypted ones.
fn named_entries(
    path: &Path,
    named: &BTreeMap<String, serde_json::Value>,
) -> Result<Vec<(String, u32, String)>> {
    let mut entries = Vec::new();
    for (key, value) in named {
        let names_a_file = value.get("file").is_some() || value.get("offset").is_some();
        if !names_a_file {
            continue;
        }
        let bad = |what: &str| {
            Error::input(
                path,
                format!("entry \"{key}\" has no valid {what}"),
                "rebuild with idf.py build, or name the files with --target-files",
            )
        };
        let entry: NamedEntry =
            serde_json::from_value(value.clone()).map_err(|_| bad("offset and file"))?;
        let offset = parse_u32(&entry.offset).ok_or_else(|| bad("offset"))?;
        if entry.encrypted.is_set() {
            return Err(encrypted_error(path, &entry.file));
        }
        entries.push((key.clone(), offset, entry.file));
    }
    Ok(entries)
}

/// Every file `idf.py flash` writes: `flash_files` (any order), named after the entry at the same
/// offset; the named entries themselves when a build has no `flash_files`.
fn flashed_files(
    path: &Path,
    flash_files: &BTreeMap<String, String>,
    named: &[(String, u32, String)],
) -> Result<Vec<FlashFile>> {
    let listed: Vec<(u32, String)> = if flash_files.is_empty() {
        named.iter().map(|(_, o, f)| (*o, f.clone())).collect()
    } else {
        flash_files
            .iter()
            .map(|(offset, file)| {
                parse_u32(offset).map(|o| (o, file.clone())).ok_or_else(|| {
                    Error::input(
                        path,
                        format!("flash_files offset \"{offset}\" is not a number"),
                        REBUILD,
                    )
                })
            })
            .collect::<Result<_>>()?
    };
    let mut files: Vec<FlashFile> = listed
        .into_iter()
        .map(|(offset, file)| {
            let key = named.iter().find(|(_, o, f)| *o == offset && *f == file);
            let (kind, name) = match key {
                Some((k, _, _)) => (FileKind::from_key(k), k.clone()),
                None => (FileKind::Data, file_name(&file)),
            };
            FlashFile {
                offset,
                file,
                kind,
                name,
            }
        })
        .collect();
    files.sort_by_key(|f| f.offset);
    Ok(files)
}

fn file_name(file: &str) -> String {
    file.rsplit(['/', '\\']).next().unwrap_or(file).to_string()
}

/// The flash options of an esptool command line (`--flash_mode dio` or `--flash-mode dio`).
fn flash_options(args: &[String]) -> Option<FlashArgs> {
    let value = |option: &str| {
        args.iter()
            .position(|a| a.replace('_', "-") == option)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let (mode, freq, size) = (
        value("--flash-mode"),
        value("--flash-freq"),
        value("--flash-size"),
    );
    if (&mode, &freq, &size) == (&None, &None, &None) {
        return None;
    }
    let keep = |v: Option<String>| v.unwrap_or_else(|| "keep".into());
    Some(FlashArgs {
        mode: keep(mode),
        freq: keep(freq),
        size: keep(size),
    })
}

/// Reads `flash_args`: esptool options, then `OFFSET FILE` pairs. What each file is comes from
/// its name as ESP-IDF writes it (`bootloader/bootloader.bin`, `partition-table.bin`,
/// `ota_data_initial.bin`) and, for the app, from `app_bin` (`project_description.json`).
pub fn read_flash_args(path: &Path, app_bin: Option<&str>) -> Result<BuildArgs> {
    let text = String::from_utf8(read(path)?)
        .map_err(|_| Error::input(path, "is not text", "rebuild with idf.py build"))?;
    let words: Vec<String> = text.split_whitespace().map(str::to_string).collect();
    if let Some(at) = words.iter().position(|w| w.starts_with("--encrypt")) {
        let file = words.get(at + 2).map_or("a file", String::as_str);
        return Err(encrypted_error(path, file));
    }
    let mut files = Vec::new();
    let mut rest = words.iter().peekable();
    while let Some(word) = rest.next() {
        if word.starts_with("--") {
            continue;
        }
        let Some(offset) = parse_u32(word) else {
            continue;
        };
        let file = rest.next().ok_or_else(|| {
            Error::input(
                path,
                format!("offset {word} names no file"),
                "rebuild with idf.py build",
            )
        })?;
        files.push(FlashFile {
            offset,
            kind: kind_by_name(file, app_bin),
            name: file_name(file),
            file: file.clone(),
        });
    }
    files.sort_by_key(|f| f.offset);
    Ok(BuildArgs {
        files,
        flash: flash_options(&words),
        chip: None,
    })
}

fn kind_by_name(file: &str, app_bin: Option<&str>) -> FileKind {
    let name = file_name(file);
    match name.as_str() {
        "bootloader.bin" => FileKind::Bootloader,
        "partition-table.bin" => FileKind::PartitionTable,
        "ota_data_initial.bin" => FileKind::OtaData,
        _ if app_bin.is_some_and(|a| file_name(a) == name) => FileKind::App,
        _ => FileKind::Data,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args_from(json: &str) -> Result<BuildArgs> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("flasher_args.json");
        std::fs::write(&path, json).unwrap();
        read_flasher_args(&path)
    }

    #[test]
    fn idf_4_3_spelling_order_and_detect() {
        let args = args_from(
            r#"{"write_flash_args": ["--flash_mode", "dio", "--flash_size", "detect"],
                "flash_settings": {"flash_mode": "dio", "flash_size": "detect", "flash_freq": "80m"},
                "flash_files": {"0x8000": "pt/partition-table.bin", "0x0": "bl/bootloader.bin", "0x10000": "a.bin"},
                "partition_table": {"offset": "0x8000", "file": "pt/partition-table.bin", "encrypted": "false"},
                "bootloader": {"offset": "0x0", "file": "bl/bootloader.bin", "encrypted": "false"},
                "app": {"offset": "0x10000", "file": "a.bin", "encrypted": "false"},
                "extra_esptool_args": {"chip": "esp32c3", "stub": true}}"#,
        )
        .unwrap();
        let offsets: Vec<u32> = args.files.iter().map(|f| f.offset).collect();
        assert_eq!(offsets, [0, 0x8000, 0x10000]);
        assert_eq!(
            args.file(FileKind::PartitionTable).unwrap().file,
            "pt/partition-table.bin"
        );
        assert_eq!(args.flash.unwrap().size, "detect");
        assert_eq!(args.chip.as_deref(), Some("esp32c3"));
    }

    #[test]
    fn extra_files_are_data_named_by_their_entry() {
        let args = args_from(
            r#"{"flash_files": {"0x0": "b/bootloader.bin", "0x8000": "p.bin", "0x20000": "a.bin",
                                "0x10000": "srmodels/srmodels.bin", "0x300000": "storage.bin"},
                "bootloader": {"offset": "0x0", "file": "b/bootloader.bin"},
                "partition-table": {"offset": "0x8000", "file": "p.bin"},
                "app": {"offset": "0x20000", "file": "a.bin"},
                "model": {"offset": "0x10000", "file": "srmodels/srmodels.bin", "encrypted": false},
                "write_flash_args": ["--flash-mode", "qio", "--flash-freq", "80m", "--flash-size", "keep"]}"#,
        )
        .unwrap();
        let data: Vec<(&str, u32)> = args.data().map(|f| (f.name.as_str(), f.offset)).collect();
        assert_eq!(data, [("model", 0x10000), ("storage.bin", 0x300000)]);
        let flash = args.flash.unwrap();
        assert_eq!((flash.mode.as_str(), flash.size.as_str()), ("qio", "keep"));
    }

    #[test]
    fn encrypted_entries_are_refused() {
        let err = args_from(
            r#"{"flash_files": {"0x10000": "a.bin"},
                "app": {"offset": "0x10000", "file": "a.bin", "encrypted": "true"}}"#,
        )
        .unwrap_err();
        assert!(err.to_string().contains("encrypted-flash"), "{err}");
    }

    #[test]
    fn flash_args_files_are_recognised_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("flash_args");
        std::fs::write(
            &path,
            "--flash_mode dio --flash_freq 40m --flash_size 4MB\n0x1000 bootloader/bootloader.bin\n\
             0x10000 demo.bin\n0x8000 partition_table/partition-table.bin\n0x200000 spiffs.bin\n",
        )
        .unwrap();
        let args = read_flash_args(&path, Some("demo.bin")).unwrap();
        let kinds: Vec<FileKind> = args.files.iter().map(|f| f.kind).collect();
        assert_eq!(
            kinds,
            [
                FileKind::Bootloader,
                FileKind::PartitionTable,
                FileKind::App,
                FileKind::Data
            ]
        );
        assert_eq!(args.flash.unwrap().freq, "40m");
        std::fs::write(&path, "--encrypt-files 0x10000 demo.bin\n").unwrap();
        assert!(read_flash_args(&path, None).is_err());
    }
}
