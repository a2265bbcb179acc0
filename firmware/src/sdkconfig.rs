//! ESP-IDF `sdkconfig` files: `CONFIG_NAME=value` lines, `# CONFIG_NAME is not set` comments.

use std::collections::BTreeMap;

use crate::chip::Chip;

/// The key that moves the bootloader (ESP-IDF 5.3 and later, some chips).
pub const BOOTLOADER_OFFSET_KEY: &str = "CONFIG_BOOTLOADER_OFFSET_IN_FLASH";

/// The key that moves the partition table.
pub const TABLE_OFFSET_KEY: &str = "CONFIG_PARTITION_TABLE_OFFSET";

/// Where the partition table sits when the build does not say.
pub const DEFAULT_TABLE_OFFSET: u32 = 0x8000;

/// A numeric option whose value is not a number.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}={value} is not a number")]
pub struct BadNumber {
    /// The key.
    pub key: &'static str,
    /// The value found.
    pub value: String,
}

/// A line that is neither a comment, blank, nor `CONFIG_NAME=value`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: expected CONFIG_NAME=value, found '{text}'")]
pub struct SdkconfigError {
    /// 1-based line number.
    pub line: usize,
    /// The line, shortened.
    pub text: String,
}

/// The values an sdkconfig sets, by full key (`CONFIG_PARTITION_TABLE_OFFSET`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sdkconfig {
    values: BTreeMap<String, String>,
}

impl Sdkconfig {
    /// Parses sdkconfig text. String values lose their quotes and escapes.
    pub fn parse(text: &str) -> Result<Sdkconfig, SdkconfigError> {
        let mut values = BTreeMap::new();
        for (i, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let error = || SdkconfigError {
                line: i + 1,
                text: line.chars().take(60).collect(),
            };
            let (key, value) = line.split_once('=').ok_or_else(error)?;
            if !key.starts_with("CONFIG_")
                || !key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
            {
                return Err(error());
            }
            let value = match value.strip_prefix('"') {
                Some(quoted) => unquote(quoted.strip_suffix('"').ok_or_else(error)?),
                None => value.to_string(),
            };
            values.insert(key.to_string(), value);
        }
        Ok(Sdkconfig { values })
    }

    /// The value of `key`, if set.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.values.get(key).map(String::as_str)
    }

    /// Whether a boolean option is `y`.
    pub fn enabled(&self, key: &str) -> bool {
        self.get(key) == Some("y")
    }

    /// Where the build places the bootloader: its own setting, else the chip's ROM offset.
    pub fn bootloader_offset(&self, chip: Chip) -> Result<u32, BadNumber> {
        self.number_or(BOOTLOADER_OFFSET_KEY, chip.bootloader_offset())
    }

    /// Where the build places the partition table: its own setting, else 0x8000.
    pub fn partition_table_offset(&self) -> Result<u32, BadNumber> {
        self.number_or(TABLE_OFFSET_KEY, DEFAULT_TABLE_OFFSET)
    }

    fn number_or(&self, key: &'static str, default: u32) -> Result<u32, BadNumber> {
        self.number(key)
            .unwrap_or(Ok(default))
            .map_err(|value| BadNumber { key, value })
    }

    /// A numeric value (`0x8000` or decimal). `Some(Err(value))` when it is set but not a number.
    pub fn number(&self, key: &str) -> Option<Result<u32, String>> {
        self.get(key)
            .map(|v| parse_u32(v).ok_or_else(|| v.to_string()))
    }
}

fn unquote(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(next) = chars.next() {
                out.push(next);
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Parses `0x…` hex or decimal.
pub fn parse_u32(s: &str) -> Option<u32> {
    let s = s.trim();
    match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => u32::from_str_radix(hex, 16).ok(),
        None => s.parse().ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_values_and_skips_comments() {
        let cfg = Sdkconfig::parse(
            "#\n# CONFIG_SPIRAM is not set\nCONFIG_PARTITION_TABLE_OFFSET=0x8000\n\
             CONFIG_ESPTOOLPY_FLASHMODE=\"dio\"\nCONFIG_X=\"a\\\"b\"\nCONFIG_PARTITION_TABLE_CUSTOM=y\n",
        )
        .unwrap();
        assert_eq!(
            cfg.number("CONFIG_PARTITION_TABLE_OFFSET"),
            Some(Ok(0x8000))
        );
        assert_eq!(cfg.get("CONFIG_ESPTOOLPY_FLASHMODE"), Some("dio"));
        assert_eq!(cfg.get("CONFIG_X"), Some("a\"b"));
        assert!(cfg.enabled("CONFIG_PARTITION_TABLE_CUSTOM"));
        assert!(!cfg.enabled("CONFIG_SPIRAM"));
    }

    #[test]
    fn rejects_garbage() {
        assert_eq!(Sdkconfig::parse("CONFIG_A=1\nhello\n").unwrap_err().line, 2);
        assert!(Sdkconfig::parse("CONFIG_A=\"open\n").is_err());
        assert!(Sdkconfig::parse("OTHER=1\n").is_err());
    }
}
