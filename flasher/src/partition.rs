//! Binary partition tables, read without the panics `esp-idf-part` has on unknown values.

use esp_idf_part::{AppType, DataType, Partition, PartitionTable, SubType, Type};

const ENTRY_LEN: usize = 32;
const ENTRY_MAGIC: [u8; 2] = [0xAA, 0x50];
const MD5_MAGIC: [u8; 2] = [0xEB, 0xEB];
/// Largest binary table ESP-IDF writes (`MAX_PARTITION_LENGTH`).
pub const MAX_TABLE_LEN: usize = 0xC00;

/// Why bytes are not a usable partition table.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TableError {
    /// An entry uses a type, subtype or flag value no ESP-IDF release defines.
    #[error("partition entry {index} has an unknown {what} value {value:#04x}")]
    UnknownValue {
        /// 0-based entry number.
        index: usize,
        /// `subtype` or `flags`.
        what: &'static str,
        /// The value found.
        value: u32,
    },
    /// The table has no entries or no end marker where one is needed.
    #[error("not a partition table (no entry starts with 0xAA 0x50)")]
    Empty,
    /// `esp-idf-part` rejected it (bad MD5, overlaps, misalignment, duplicates...).
    #[error("{0}")]
    Invalid(String),
}

/// Parses a binary partition table, checks its MD5 entry and validates it.
pub fn parse_table(bytes: &[u8]) -> Result<PartitionTable, TableError> {
    let bytes = &bytes[..bytes.len().min(MAX_TABLE_LEN)];
    let mut entries = 0;
    for (index, entry) in bytes.chunks_exact(ENTRY_LEN).enumerate() {
        if entry[..2] != ENTRY_MAGIC {
            if entry[..2] == MD5_MAGIC || entry.iter().all(|&b| b == 0xFF) {
                break;
            }
            return Err(TableError::Invalid(format!(
                "partition entry {index} has a bad magic {:#04x} {:#04x}",
                entry[0], entry[1]
            )));
        }
        check_entry(index, entry)?;
        entries += 1;
    }
    if entries == 0 {
        return Err(TableError::Empty);
    }
    let table = PartitionTable::try_from_bytes(bytes.to_vec())
        .map_err(|e| TableError::Invalid(e.to_string()))?;
    table
        .validate()
        .map_err(|e| TableError::Invalid(e.to_string()))?;
    Ok(table)
}

fn check_entry(index: usize, entry: &[u8]) -> Result<(), TableError> {
    let (ty, subtype) = (entry[2], entry[3]);
    let known = match ty {
        0x00 => matches!(subtype, 0x00 | 0x10..=0x1F | 0x20),
        0x01 => matches!(subtype, 0x00..=0x06 | 0x80..=0x83),
        _ => true,
    };
    if !known {
        return Err(TableError::UnknownValue {
            index,
            what: "subtype",
            value: subtype.into(),
        });
    }
    let flags = u32::from_le_bytes([entry[28], entry[29], entry[30], entry[31]]);
    if flags & !0b11 != 0 {
        return Err(TableError::UnknownValue {
            index,
            what: "flags",
            value: flags,
        });
    }
    Ok(())
}

/// The partition a freshly flashed app belongs in: `factory` when there is one, else `ota_0`,
/// else the first app partition.
pub fn boot_app_partition(table: &PartitionTable) -> Option<&Partition> {
    let apps = || table.partitions().iter().filter(|p| p.ty() == Type::App);
    apps()
        .find(|p| p.subtype() == SubType::App(AppType::Factory))
        .or_else(|| apps().find(|p| p.subtype() == SubType::App(AppType::Ota_0)))
        .or_else(|| apps().next())
}

/// The `otadata` partition, if the table has one.
pub fn otadata_partition(table: &PartitionTable) -> Option<&Partition> {
    table
        .partitions()
        .iter()
        .find(|p| p.ty() == Type::Data && p.subtype() == SubType::Data(DataType::Ota))
}

/// Where a table's partitions end (the flash it needs at least).
pub fn table_end(table: &PartitionTable) -> u64 {
    table
        .partitions()
        .iter()
        .map(|p| u64::from(p.offset()) + u64::from(p.size()))
        .max()
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use esp_idf_part::Flags;

    fn table() -> PartitionTable {
        PartitionTable::new(vec![
            Partition::new(
                "nvs",
                Type::Data,
                SubType::Data(DataType::Nvs),
                0x9000,
                0x4000,
                Flags::empty(),
            ),
            Partition::new(
                "otadata",
                Type::Data,
                SubType::Data(DataType::Ota),
                0xd000,
                0x2000,
                Flags::empty(),
            ),
            Partition::new(
                "ota_0",
                Type::App,
                SubType::App(AppType::Ota_0),
                0x10000,
                0x100000,
                Flags::empty(),
            ),
        ])
    }

    #[test]
    fn reads_what_esp_idf_part_writes() {
        let bin = table().to_bin().unwrap();
        let parsed = parse_table(&bin).unwrap();
        assert_eq!(boot_app_partition(&parsed).unwrap().name(), "ota_0");
        assert_eq!(otadata_partition(&parsed).unwrap().offset(), 0xd000);
        assert_eq!(table_end(&parsed), 0x110000);
    }

    #[test]
    fn rejects_unknown_values_instead_of_panicking() {
        let mut bin = table().to_bin().unwrap();
        bin[3 + 32] = 0x7F;
        assert!(matches!(
            parse_table(&bin),
            Err(TableError::UnknownValue { index: 1, .. })
        ));
        assert_eq!(parse_table(&[0xFF; 64]), Err(TableError::Empty));
        assert_eq!(parse_table(&[]), Err(TableError::Empty));
        assert!(parse_table(&[0xAA]).is_err());
        let mut bin = table().to_bin().unwrap();
        bin[40] ^= 1;
        assert!(matches!(parse_table(&bin), Err(TableError::Invalid(_))));
    }
}
