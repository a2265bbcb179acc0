//! Flash sizes as users and ESP-IDF write them (`4MB`, `16mb`, `8M`).

use std::fmt;
use std::str::FromStr;

/// A flash size from 1 MB to 128 MB, a power of two.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FlashSize(u64);

impl FlashSize {
    /// The size in bytes.
    pub fn bytes(self) -> u64 {
        self.0
    }

    /// A flash size from a byte count, if it is a supported one.
    pub fn from_bytes(bytes: u64) -> Option<FlashSize> {
        crate::esp_image::flash_size_code(bytes).map(|_| FlashSize(bytes))
    }
}

impl fmt::Display for FlashSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}MB", self.0 >> 20)
    }
}

/// A flash size string that is not 1MB, 2MB, 4MB, 8MB, 16MB, 32MB, 64MB or 128MB.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad flash size '{0}': use one of 1MB, 2MB, 4MB, 8MB, 16MB, 32MB, 64MB, 128MB")]
pub struct BadFlashSize(pub String);

impl FromStr for FlashSize {
    type Err = BadFlashSize;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || BadFlashSize(s.to_string());
        let t = s.trim().to_ascii_uppercase();
        let t = t.strip_suffix('B').unwrap_or(&t);
        let digits = t.strip_suffix('M').ok_or_else(bad)?;
        let mb: u64 = digits.parse().map_err(|_| bad())?;
        FlashSize::from_bytes(mb.checked_mul(1 << 20).ok_or_else(bad)?).ok_or_else(bad)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_usual_spellings() {
        for s in ["4MB", "4mb", "4M", "4m", " 4Mb "] {
            assert_eq!(s.parse::<FlashSize>().unwrap().bytes(), 4 << 20, "{s}");
        }
        assert_eq!("128MB".parse::<FlashSize>().unwrap().to_string(), "128MB");
        for s in [
            "",
            "3MB",
            "256MB",
            "4",
            "4KB",
            "MB",
            "-4MB",
            "99999999999999999MB",
        ] {
            assert!(s.parse::<FlashSize>().is_err(), "{s}");
        }
    }
}
