//! The partition table `--override_pt` generates: the layout rules of the original image's
//! `ptmaker`, computed from the table offset and spread across the whole flash.
//!
//! Rows, in order: `nvs` (table + 0x1000, 24 KiB), `phy_init` (table + 0x7000, 4 KiB), `otadata`
//! (table + 0x8000, 8 KiB), then equal 64 KiB-aligned app slots from 0x20000 (`factory`, `ota_0`,
//! `ota_1`, or just the two OTA slots), and with a model a `tflite_model` data/spiffs partition
//! at the end of the flash, sized to the model rounded up to 4 KiB.

use std::fmt;
use std::str::FromStr;

use esp_idf_part::{AppType, DataType, Flags, Partition, PartitionTable, SubType, Type};

/// Where the first app slot starts.
pub const APP_START: u32 = 0x2_0000;
/// Alignment of app slots.
pub const APP_ALIGN: u32 = 0x1_0000;
/// Largest app partition ESP-IDF accepts; larger slots are capped to it.
pub const MAX_APP_SLOT: u32 = 0x100_0000;
/// Name of the partition the model goes into.
pub const MODEL_PARTITION: &str = "tflite_model";
/// Space the fixed rows need after the table offset (`otadata` ends at table + 0xA000).
const FIXED_ROWS_END: u32 = 0xA000;

/// How `--override_pt` lays out the flash.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OverrideMode {
    /// `factory`, `ota_0`, `ota_1`.
    Normal,
    /// As [`OverrideMode::Normal`], plus a `tflite_model` partition holding the model.
    NormalWithModel,
    /// `ota_0`, `ota_1`; the app goes into `ota_0`.
    NoFactory,
    /// As [`OverrideMode::NoFactory`], plus a `tflite_model` partition holding the model.
    NoFactoryWithModel,
}

impl OverrideMode {
    /// Every mode, in the order the help lists them.
    pub const ALL: [OverrideMode; 4] = [
        OverrideMode::Normal,
        OverrideMode::NormalWithModel,
        OverrideMode::NoFactory,
        OverrideMode::NoFactoryWithModel,
    ];

    /// The spelling the original image used (`no_factory_with_model`).
    pub fn name(self) -> &'static str {
        match self {
            OverrideMode::Normal => "normal",
            OverrideMode::NormalWithModel => "normal_with_model",
            OverrideMode::NoFactory => "no_factory",
            OverrideMode::NoFactoryWithModel => "no_factory_with_model",
        }
    }

    /// Whether the layout has a `tflite_model` partition and the model is written.
    pub fn with_model(self) -> bool {
        matches!(
            self,
            OverrideMode::NormalWithModel | OverrideMode::NoFactoryWithModel
        )
    }

    /// Whether the layout has a `factory` slot.
    pub fn has_factory(self) -> bool {
        matches!(self, OverrideMode::Normal | OverrideMode::NormalWithModel)
    }

    /// The same layout without the model partition.
    pub fn without_model(self) -> OverrideMode {
        if self.has_factory() {
            OverrideMode::Normal
        } else {
            OverrideMode::NoFactory
        }
    }
}

impl fmt::Display for OverrideMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A `--override_pt` value that is not one of the four modes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown --override_pt mode '{0}': use normal, normal_with_model, no_factory or no_factory_with_model"
)]
pub struct UnknownMode(pub String);

impl FromStr for OverrideMode {
    type Err = UnknownMode;

    /// Accepts the original spellings and kebab-case (`no-factory`), in any case.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let wanted = s.trim().to_ascii_lowercase().replace('-', "_");
        OverrideMode::ALL
            .into_iter()
            .find(|m| m.name() == wanted)
            .ok_or_else(|| UnknownMode(s.to_string()))
    }
}

/// Why no table can be generated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OverrideTableError {
    /// The fixed rows after the table would run into the first app slot.
    #[error(
        "partition table offset {0:#x} leaves no room for nvs, phy_init and otadata below 0x20000: \
         --override_pt needs CONFIG_PARTITION_TABLE_OFFSET at most 0x16000; flash without --override_pt"
    )]
    TableOffset(u32),
    /// The flash cannot hold one 64 KiB slot per app partition (and the model).
    #[error(
        "{flash_mb} MB of flash cannot hold the --override_pt {mode} layout{model}: \
         pass the board's real --flash_size or a layout with fewer partitions"
    )]
    NoRoom {
        /// The flash size in MB.
        flash_mb: u64,
        /// The mode asked for.
        mode: OverrideMode,
        /// Describes the model, if there is one.
        model: String,
    },
    /// `esp-idf-part` rejected the generated table.
    #[error("the generated partition table is invalid: {0}")]
    Invalid(String),
}

/// Generates the table for `mode` on a flash of `flash_size` bytes, the table sitting at
/// `table_offset`. `model_len` is the model's size; it is used only by the `*_with_model` modes,
/// which need it (the caller checks that it is there).
pub fn generate(
    table_offset: u32,
    flash_size: u64,
    mode: OverrideMode,
    model_len: Option<u64>,
) -> Result<PartitionTable, OverrideTableError> {
    if table_offset
        .checked_add(FIXED_ROWS_END)
        .is_none_or(|end| end > APP_START)
    {
        return Err(OverrideTableError::TableOffset(table_offset));
    }
    let no_room = || OverrideTableError::NoRoom {
        flash_mb: flash_size >> 20,
        mode,
        model: match model_len.filter(|_| mode.with_model()) {
            Some(len) => format!(" with a {len}-byte model"),
            None => String::new(),
        },
    };
    let flash = u32::try_from(flash_size).map_err(|_| no_room())?;
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
    let mut rows = vec![
        data("nvs", DataType::Nvs, table_offset + 0x1000, 0x6000),
        data("phy_init", DataType::Phy, table_offset + 0x7000, 0x1000),
        data("otadata", DataType::Ota, table_offset + 0x8000, 0x2000),
    ];
    let mut model_row = None;
    let mut app_end = flash;
    if mode.with_model() {
        let len = model_len.unwrap_or(0);
        let size = u32::try_from(len.div_ceil(0x1000) * 0x1000).map_err(|_| no_room())?;
        let offset = flash.checked_sub(size).ok_or_else(no_room)?;
        model_row = Some(data(MODEL_PARTITION, DataType::Spiffs, offset, size));
        app_end = offset;
    }
    let apps: &[(&str, AppType)] = if mode.has_factory() {
        &[
            ("factory", AppType::Factory),
            ("ota_0", AppType::Ota_0),
            ("ota_1", AppType::Ota_1),
        ]
    } else {
        &[("ota_0", AppType::Ota_0), ("ota_1", AppType::Ota_1)]
    };
    let avail = app_end.checked_sub(APP_START).ok_or_else(no_room)?;
    let slot = (avail / apps.len() as u32 / APP_ALIGN * APP_ALIGN).min(MAX_APP_SLOT);
    if slot == 0 {
        return Err(no_room());
    }
    for (i, &(name, sub)) in apps.iter().enumerate() {
        rows.push(Partition::new(
            name,
            Type::App,
            SubType::App(sub),
            APP_START + i as u32 * slot,
            slot,
            Flags::empty(),
        ));
    }
    rows.extend(model_row);
    let table = PartitionTable::new(rows);
    table
        .validate()
        .map_err(|e| OverrideTableError::Invalid(e.to_string()))?;
    Ok(table)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MB: u64 = 1 << 20;

    fn rows(table: &PartitionTable) -> Vec<(String, u32, u32)> {
        table
            .partitions()
            .iter()
            .map(|p| (p.name(), p.offset(), p.size()))
            .collect()
    }

    #[test]
    fn modes_parse_in_both_spellings() {
        for mode in OverrideMode::ALL {
            assert_eq!(mode.name().parse::<OverrideMode>(), Ok(mode));
            let kebab = mode.name().replace('_', "-").to_uppercase();
            assert_eq!(kebab.parse::<OverrideMode>(), Ok(mode));
        }
        assert!("factory".parse::<OverrideMode>().is_err());
    }

    #[test]
    fn fixed_rows_follow_the_table() {
        let t = generate(0x8000, 4 * MB, OverrideMode::Normal, None).unwrap();
        assert_eq!(
            rows(&t)[..3],
            [
                ("nvs".into(), 0x9000, 0x6000),
                ("phy_init".into(), 0xF000, 0x1000),
                ("otadata".into(), 0x10000, 0x2000),
            ]
        );
        assert_eq!(
            generate(0x17000, 4 * MB, OverrideMode::Normal, None),
            Err(OverrideTableError::TableOffset(0x17000))
        );
    }

    #[test]
    fn too_small_flashes_and_huge_ones() {
        assert!(matches!(
            generate(0x8000, MB, OverrideMode::NormalWithModel, Some(MB)),
            Err(OverrideTableError::NoRoom { .. })
        ));
        let t = generate(0x8000, 128 * MB, OverrideMode::NoFactory, None).unwrap();
        assert!(t.partitions().iter().all(|p| p.size() <= MAX_APP_SLOT));
    }
}
