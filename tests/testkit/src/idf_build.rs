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
        }
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

    fs::create_dir_all(dir.join("bootloader"))?;
    fs::create_dir_all(dir.join("partition_table"))?;
    for (_, path, bytes) in &flash_files {
        fs::write(dir.join(path), bytes)?;
    }
    fs::write(dir.join("partitions.csv"), csv)?;
    fs::write(dir.join("sdkconfig"), sdkconfig(spec, &size_str))?;

    let hex = |v: u32| format!("{v:#x}");
    let entry = |offset: u32, file: &str| json!({"offset": hex(offset), "file": file, "encrypted": "false"});
    let mut args = json!({
        "write_flash_args": ["--flash_mode", "dio", "--flash_size", size_str, "--flash_freq", flash.freq],
        "flash_settings": {"flash_mode": "dio", "flash_size": size_str, "flash_freq": flash.freq},
        "flash_files": flash_files.iter().map(|(o, p, _)| (hex(*o), json!(p))).collect::<serde_json::Map<_, _>>(),
        "bootloader": entry(chip.bootloader_offset(), "bootloader/bootloader.bin"),
        "app": entry(spec.app_offset(), &app_name),
        "partition-table": entry(spec.table_offset, "partition_table/partition-table.bin"),
        "extra_esptool_args": {"after": "hard_reset", "before": "default_reset", "stub": true, "chip": chip.name()},
    });
    if let Some(offset) = otadata {
        args["otadata"] = entry(offset, "ota_data_initial.bin");
    }
    fs::write(
        dir.join("flasher_args.json"),
        serde_json::to_vec_pretty(&args)?,
    )?;
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
