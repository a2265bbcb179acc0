//! ESP-IDF build directories as `idf.py build` leaves them, generated from a [`BuildSpec`].

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use ::firmware::chip::Chip;
use esp_idf_part::{AppType, DataType, Flags, Partition, PartitionTable, SubType, Type};
use serde_json::json;

use crate::firmware::{self, HeaderFlash};

/// Which partitions the generated table has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableKind {
    /// nvs, otadata, phy_init, factory, ota_0, ota_1.
    FactoryAndOta,
    /// nvs, otadata, phy_init, ota_0, ota_1.
    OtaOnly,
    /// nvs, phy_init, factory (no OTA data).
    FactoryOnly,
}

/// How the build describes what it flashes, as the ESP-IDF releases write it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArgsFormat {
    /// ESP-IDF 4.4-5.x: `partition-table`, `flash_files` in offset order, underscored options.
    Idf5,
    /// ESP-IDF 4.3 and older: `partition_table`, `flash_files` out of offset order.
    Idf43,
    /// esptool 5 spellings (ESP-IDF 6): hyphenated options in `write_flash_args`, no
    /// `flash_settings`.
    Hyphenated,
    /// Only `flash_args`, the esptool argument file (no `flasher_args.json`).
    FlashArgsOnly,
}

/// A data image the build flashes into a partition of its own (a model pack, a SPIFFS image).
#[derive(Debug, Clone)]
pub struct DataImage {
    /// The `flasher_args.json` key naming it (`model`); `None` lists it in `flash_files` only.
    pub key: Option<String>,
    /// Its path in the build directory.
    pub file: String,
    /// The partition (type data, subtype spiffs) it goes into.
    pub partition: String,
    /// The partition's size.
    pub partition_size: u32,
    /// The image's length (any, not necessarily a multiple of 4).
    pub len: usize,
}

/// What to generate.
#[derive(Debug, Clone)]
pub struct BuildSpec {
    /// The chip built for.
    pub chip: Chip,
    /// Project name (also the app file name).
    pub project: String,
    /// App version (`PROJECT_VER`).
    pub version: String,
    /// Approximate app size in bytes.
    pub app_len: usize,
    /// Flash size the build is configured for.
    pub flash_size: u64,
    /// Partition table offset (`CONFIG_PARTITION_TABLE_OFFSET`).
    pub table_offset: u32,
    /// Table shape.
    pub table: TableKind,
    /// Size of each app partition.
    pub app_slot: u32,
    /// Seed for the payload bytes.
    pub seed: u64,
    /// How the build describes its files.
    pub format: ArgsFormat,
    /// The flash size the arguments give instead of the configured one (`detect`, `keep`).
    pub size_arg: Option<String>,
    /// Data images, in partitions after the app slots.
    pub data: Vec<DataImage>,
    /// Whether the named entries say `"encrypted": "true"` (flash encryption, development mode).
    pub encrypted: bool,
}

impl BuildSpec {
    /// A 4 MB build of a `demo` app with factory and two OTA slots of 1 MB.
    pub fn new(chip: Chip) -> BuildSpec {
        BuildSpec {
            chip,
            project: "demo".into(),
            version: "1.0.0".into(),
            app_len: 256 * 1024,
            flash_size: 4 << 20,
            table_offset: 0x8000,
            table: TableKind::FactoryAndOta,
            app_slot: 0x10_0000,
            seed: 1,
            format: ArgsFormat::Idf5,
            size_arg: None,
            data: Vec::new(),
            encrypted: false,
        }
    }

    /// A model pack of `len` bytes named `model` in a 1 MB partition `model`, as ESP-SR builds
    /// flash it, on a flash of at least 8 MB.
    pub fn with_model_pack(mut self, len: usize) -> BuildSpec {
        self.flash_size = self.flash_size.max(8 << 20);
        self.data.push(DataImage {
            key: Some("model".into()),
            file: "srmodels/srmodels.bin".into(),
            partition: "model".into(),
            partition_size: 0x10_0000,
            len,
        });
        self
    }

    /// The partition table this spec describes.
    pub fn partition_table(&self) -> PartitionTable {
        let data = |name: &str, sub: DataType, offset: u32, size: u32| {
            Partition::new(
                name,
                Type::Data,
                SubType::Data(sub),
                offset,
                size,
                Flags::empty(),
            )
        };
        let app = |name: &str, sub: AppType, offset: u32| {
            Partition::new(
                name,
                Type::App,
                SubType::App(sub),
                offset,
                self.app_slot,
                Flags::empty(),
            )
        };
        let base = self.table_offset + 0x1000;
        let mut parts = vec![data("nvs", DataType::Nvs, base, 0x6000)];
        if self.table != TableKind::FactoryOnly {
            parts.push(data("otadata", DataType::Ota, base + 0x6000, 0x2000));
        }
        parts.push(data("phy_init", DataType::Phy, base + 0x8000, 0x1000));
        let mut offset = (base + 0x9000).next_multiple_of(0x1_0000);
        let apps: &[(&str, AppType)] = match self.table {
            TableKind::FactoryAndOta => &[
                ("factory", AppType::Factory),
                ("ota_0", AppType::Ota_0),
                ("ota_1", AppType::Ota_1),
            ],
            TableKind::OtaOnly => &[("ota_0", AppType::Ota_0), ("ota_1", AppType::Ota_1)],
            TableKind::FactoryOnly => &[("factory", AppType::Factory)],
        };
        for &(name, sub) in apps {
            parts.push(app(name, sub, offset));
            offset += self.app_slot;
        }
        for d in &self.data {
            parts.push(data(
                &d.partition,
                DataType::Spiffs,
                offset,
                d.partition_size,
            ));
            offset += d.partition_size;
        }
        PartitionTable::new(parts)
    }

    /// Offset of the app: the first app partition.
    pub fn app_offset(&self) -> u32 {
        (self.table_offset + 0xA000).next_multiple_of(0x1_0000)
    }
}

/// Paths and bytes of a generated build.
#[derive(Debug, Clone)]
pub struct Build {
    /// The build directory (holds `flasher_args.json`).
    pub dir: PathBuf,
    /// Files written to flash, by offset: (offset, relative path, bytes).
    pub flash_files: Vec<(u32, String, Vec<u8>)>,
}

/// Writes a build directory for `spec` into `dir` (created if needed).
pub fn write_build(dir: &Path, spec: &BuildSpec) -> io::Result<Build> {
    let chip = spec.chip;
    let flash = HeaderFlash::dio(chip, spec.flash_size);
    let size_str = format!("{}MB", spec.flash_size >> 20);
    let app_name = format!("{}.bin", spec.project);
    let boot = firmware::bootloader(chip, flash, spec.seed);
    let app = firmware::app(
        chip,
        flash,
        &spec.project,
        &spec.version,
        spec.app_len,
        spec.seed,
    );
    let table = spec.partition_table();
    table.validate().map_err(io::Error::other)?;
    let table_bin = table.to_bin().map_err(io::Error::other)?;
    let csv = table.to_csv().map_err(io::Error::other)?;

    let mut flash_files = vec![
        (
            chip.bootloader_offset(),
            "bootloader/bootloader.bin".to_string(),
            boot,
        ),
        (
            spec.table_offset,
            "partition_table/partition-table.bin".to_string(),
            table_bin,
        ),
        (spec.app_offset(), app_name.clone(), app),
    ];
    let otadata = ::firmware::partition::otadata_partition(&table).map(|p| p.offset());
    if let Some(offset) = otadata {
        flash_files.push((
            offset,
            "ota_data_initial.bin".into(),
            firmware::ota_data_initial(),
        ));
    }
    for (i, d) in spec.data.iter().enumerate() {
        let part = table
            .find(&d.partition)
            .expect("data partition in the table");
        let bytes = firmware::code_like(d.len, spec.seed ^ (0xDA7A + i as u64));
        flash_files.push((part.offset(), d.file.clone(), bytes));
    }

    for (_, path, bytes) in &flash_files {
        let path = dir.join(path);
        fs::create_dir_all(path.parent().expect("a file in the build"))?;
        fs::write(path, bytes)?;
    }
    fs::write(dir.join("partitions.csv"), csv)?;
    fs::write(dir.join("sdkconfig"), sdkconfig(spec, &size_str))?;

    let size_arg = spec.size_arg.clone().unwrap_or(size_str.clone());
    fs::write(
        dir.join("flash_args"),
        flash_args(&flash_files, flash.freq, &size_arg),
    )?;
    if spec.format != ArgsFormat::FlashArgsOnly {
        let args = flasher_args(spec, &flash_files, flash.freq, &size_arg, otadata);
        fs::write(
            dir.join("flasher_args.json"),
            serde_json::to_vec_pretty(&args)?,
        )?;
    }
    let description = json!({
        "version": "1.2",
        "project_name": spec.project,
        "project_version": spec.version,
        "target": chip.name(),
        "app_elf": format!("{}.elf", spec.project),
        "app_bin": app_name,
        "build_type": "flash_app",
        "git_revision": "v5.4.1",
    });
    fs::write(
        dir.join("project_description.json"),
        serde_json::to_vec_pretty(&description)?,
    )?;
    Ok(Build {
        dir: dir.to_path_buf(),
        flash_files,
    })
}

/// `flash_args`: the esptool options, then one `OFFSET FILE` line per file in offset order.
fn flash_args(files: &[(u32, String, Vec<u8>)], freq: &str, size: &str) -> String {
    let mut sorted: Vec<_> = files.iter().map(|(o, p, _)| (*o, p.as_str())).collect();
    sorted.sort();
    let mut text = format!("--flash_mode dio --flash_freq {freq} --flash_size {size}\n");
    for (offset, path) in sorted {
        text.push_str(&format!("{offset:#x} {path}\n"));
    }
    text
}

/// `flasher_args.json` in the spec's format.
fn flasher_args(
    spec: &BuildSpec,
    files: &[(u32, String, Vec<u8>)],
    freq: &str,
    size: &str,
    otadata: Option<u32>,
) -> serde_json::Value {
    let chip = spec.chip;
    let hex = |v: u32| format!("{v:#x}");
    let encrypted = if spec.encrypted { "true" } else { "false" };
    let entry = |offset: u32, file: &str| json!({"offset": hex(offset), "file": file, "encrypted": encrypted});
    let mut listed: Vec<_> = files.iter().map(|(o, p, _)| (*o, p.clone())).collect();
    if spec.format == ArgsFormat::Idf43 {
        // As ESP-IDF 4.3 lists them: partition table, bootloader, app, the rest.
        listed.swap(0, 1);
    }
    let flash_files: serde_json::Map<_, _> =
        listed.iter().map(|(o, p)| (hex(*o), json!(p))).collect();
    let (table_key, option) = match spec.format {
        ArgsFormat::Idf43 => ("partition_table", "--flash_"),
        ArgsFormat::Hyphenated => ("partition-table", "--flash-"),
        _ => ("partition-table", "--flash_"),
    };
    let mut args = json!({
        "write_flash_args": [format!("{option}mode"), "dio", format!("{option}size"), size, format!("{option}freq"), freq],
        "flash_files": flash_files,
        "bootloader": entry(chip.bootloader_offset(), "bootloader/bootloader.bin"),
        "app": entry(spec.app_offset(), &format!("{}.bin", spec.project)),
        table_key: entry(spec.table_offset, "partition_table/partition-table.bin"),
        "extra_esptool_args": {"after": "hard_reset", "before": "default_reset", "stub": true, "chip": chip.name()},
    });
    if spec.format != ArgsFormat::Hyphenated {
        args["flash_settings"] =
            json!({"flash_mode": "dio", "flash_size": size, "flash_freq": freq});
    }
    if let Some(offset) = otadata {
        args["otadata"] = entry(offset, "ota_data_initial.bin");
    }
    for (d, (offset, _, _)) in spec
        .data
        .iter()
        .zip(files.iter().rev().take(spec.data.len()).rev())
    {
        if let Some(key) = &d.key {
            args[key.as_str()] = entry(*offset, &d.file);
        }
    }
    args
}

fn sdkconfig(spec: &BuildSpec, size: &str) -> String {
    let chip = spec.chip;
    let upper = chip.name().to_ascii_uppercase();
    format!(
        "#\n# Automatically generated file. DO NOT EDIT.\n#\n\
         CONFIG_IDF_TARGET=\"{name}\"\nCONFIG_IDF_TARGET_{upper}=y\n\
         CONFIG_BOOTLOADER_OFFSET_IN_FLASH={boot:#x}\n\
         CONFIG_ESPTOOLPY_FLASHMODE_DIO=y\nCONFIG_ESPTOOLPY_FLASHMODE=\"dio\"\n\
         CONFIG_ESPTOOLPY_FLASHFREQ=\"{freq}\"\nCONFIG_ESPTOOLPY_FLASHSIZE=\"{size}\"\n\
         CONFIG_PARTITION_TABLE_CUSTOM=y\nCONFIG_PARTITION_TABLE_CUSTOM_FILENAME=\"partitions.csv\"\n\
         CONFIG_PARTITION_TABLE_FILENAME=\"partitions.csv\"\n\
         CONFIG_PARTITION_TABLE_OFFSET={table:#x}\nCONFIG_PARTITION_TABLE_MD5=y\n\
         # CONFIG_SECURE_BOOT is not set\n",
        name = chip.name(),
        boot = chip.bootloader_offset(),
        freq = firmware::default_freq(chip),
        table = spec.table_offset,
    )
}
