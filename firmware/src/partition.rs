//! Partition tables, binary and CSV, read without the panics `esp-idf-part` has on unknown
//! values and out-of-range numbers.

use std::str::FromStr;

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
        if entry.iter().all(|&b| b == 0xFF) {
            break;
        }
        if entry[..2] != ENTRY_MAGIC {
            // esp-idf-part reads on after the MD5 entry, up to the end marker: so do the checks.
            if entry[..2] == MD5_MAGIC {
                continue;
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

/// Whether ESP-IDF defines `subtype` for `ty` (any subtype of a custom type is fine).
fn known_subtype(ty: u8, subtype: u8) -> bool {
    match ty {
        0x00 => matches!(subtype, 0x00 | 0x10..=0x1F | 0x20),
        0x01 => matches!(subtype, 0x00..=0x06 | 0x80..=0x83),
        _ => true,
    }
}

fn check_entry(index: usize, entry: &[u8]) -> Result<(), TableError> {
    let (ty, subtype) = (entry[2], entry[3]);
    if !known_subtype(ty, subtype) {
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

/// Parses a CSV partition table (`partitions.csv`, as `gen_esp32part.py` reads it) and
/// validates it. What would make `esp-idf-part` panic is refused first: negative or too large
/// numbers, subtypes ESP-IDF does not define for the type, partitions beyond 4 GiB.
pub fn parse_csv(text: &str) -> Result<PartitionTable, TableError> {
    let mut reader = csv::ReaderBuilder::new()
        .comment(Some(b'#'))
        .flexible(true)
        .has_headers(false)
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    // esp-idf-part places partitions without an offset from here, as ESP-IDF does.
    let mut next: u64 = 0x9000;
    for (index, record) in reader.records().enumerate() {
        let record = record.map_err(|e| TableError::Invalid(e.to_string()))?;
        let bad = |what: &str, value: &str| {
            TableError::Invalid(format!(
                "partition entry {index} has a bad {what} '{}'",
                value.chars().take(40).collect::<String>()
            ))
        };
        // Every field present is checked, since esp-idf-part reads them in order before it
        // notices missing ones.
        let ty = match record.get(1) {
            None => continue,
            Some("app") => 0x00,
            Some("data") => 0x01,
            Some(s) => number(s, 0xFF).ok_or_else(|| bad("type", s))? as u8,
        };
        let Some(sub) = record.get(2) else { continue };
        let subtype = AppType::from_str(sub)
            .map(|t| u8::from(SubType::App(t)))
            .or_else(|_| DataType::from_str(sub).map(|t| u8::from(SubType::Data(t))))
            .ok()
            .or_else(|| number(sub, 0xFF).map(|v| v as u8))
            .ok_or_else(|| bad("subtype", sub))?;
        if !known_subtype(ty, subtype) {
            return Err(TableError::UnknownValue {
                index,
                what: "subtype",
                value: subtype.into(),
            });
        }
        let offset = match record.get(3) {
            None => continue,
            Some("") if ty == 0x00 => next.next_multiple_of(0x1_0000),
            Some("") => next.next_multiple_of(4),
            Some(s) => size_or_offset(s).ok_or_else(|| bad("offset", s))?,
        };
        let Some(size) = record.get(4) else { continue };
        let size = size_or_offset(size).ok_or_else(|| bad("size", size))?;
        next = offset + size;
        if next > u64::from(u32::MAX) {
            return Err(TableError::Invalid(format!(
                "partition entry {index} ends at {next:#x}, beyond 4 GiB"
            )));
        }
    }
    let table =
        PartitionTable::try_from_str(text).map_err(|e| TableError::Invalid(e.to_string()))?;
    table
        .validate()
        .map_err(|e| TableError::Invalid(e.to_string()))?;
    Ok(table)
}

/// A non-negative integer as `gen_esp32part.py` writes them (decimal, `0x`, `0o`, `0b`,
/// underscores allowed), if it is at most `max`.
fn number(s: &str, max: u64) -> Option<u64> {
    let (digits, radix) = match s.get(..2) {
        Some("0x" | "0X") => (&s[2..], 16),
        Some("0o" | "0O") => (&s[2..], 8),
        Some("0b" | "0B") => (&s[2..], 2),
        _ => (s, 10),
    };
    let mut value: u64 = 0;
    let mut any = false;
    for c in digits.chars().filter(|&c| c != '_') {
        let d = c.to_digit(radix)?;
        value = value
            .checked_mul(u64::from(radix))?
            .checked_add(u64::from(d))?;
        any = true;
        if value > max {
            return None;
        }
    }
    any.then_some(value)
}

/// A size or offset: a [`number`], or decimal digits with `k` or `M` (any case).
fn size_or_offset(s: &str) -> Option<u64> {
    let max = u64::from(u32::MAX);
    let unit = match s.chars().last()? {
        'k' | 'K' => 1 << 10,
        'm' | 'M' => 1 << 20,
        _ => return number(s, max),
    };
    let digits = &s[..s.len() - 1];
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    number(digits, max).map(|v| v * unit).filter(|&v| v <= max)
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

    #[test]
    fn csv_numbers_out_of_range_are_refused() {
        assert_eq!(number("0x9000", 0xFFFF_FFFF), Some(0x9000));
        assert_eq!(number("1_000", 0xFFFF_FFFF), Some(1000));
        assert_eq!(number("-1", 0xFFFF_FFFF), None);
        assert_eq!(number("0x", 0xFFFF_FFFF), None);
        assert_eq!(number("256", 0xFF), None);
        assert_eq!(size_or_offset("24K"), Some(24 << 10));
        assert_eq!(size_or_offset("1M"), Some(1 << 20));
        assert_eq!(size_or_offset("4096M"), None);
        assert_eq!(size_or_offset("99999999999k"), None);
        assert_eq!(size_or_offset("\u{661}k"), None);
        for bad in [
            "init,data,phy,-11000,0x1000",
            "ota_1,app,1,0x220000,0x100000",
            "x,app,nvs,0x10000,0x1000",
            "x,data,phy,0xFFFFF000,0x2000",
            "x,app,factory,,0xFFFF0000\ny,app,ota_0,,0x20000",
            "x,-1,factory,0x10000,0x1000",
            "nvs,-1",
            "nvs,data,nvs,-5",
        ] {
            assert!(parse_csv(bad).is_err(), "{bad}");
        }
        let ok = "nvs,data,nvs,0x9000,24K,\nfactory,app,factory,0x10000,1M,\n";
        assert_eq!(parse_csv(ok).unwrap().partitions().len(), 2);
    }
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
        // An entry after the MD5 entry, with unknown flags (found by fuzzing).
        let mut bin = table().to_bin().unwrap();
        let md5_at = bin.chunks(32).position(|e| e[..2] == MD5_MAGIC).unwrap() * 32;
        let extra = md5_at + 32;
        bin.copy_within(0..32, extra);
        bin[extra + 28] = 0x98;
        assert!(matches!(
            parse_table(&bin),
            Err(TableError::UnknownValue { what: "flags", .. })
        ));
    }
}
