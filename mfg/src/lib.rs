//! Per-board manufacturing data for the flashing station.
//!
//! - [`nvs`]: NVS partition images, byte-identical to ESP-IDF's `nvs_partition_gen.py`.
//! - [`mass`]: ESP-IDF's mass manufacturing inputs (`mfg_gen.py`: a config CSV and a values
//!   CSV with one row per board) turned into one row's NVS image.
//! - [`journal`]: exactly-once allocation of value rows to boards, in an append-only journal.
//!
//! The formats and the journal's guarantees are described in `docs/mfg.md`.

#![warn(missing_docs)]

mod csv;
pub mod nvs;

pub use csv::CsvError;
pub mod journal;
pub mod mass;

use std::fmt;

/// The id of one board's row in a values file (its first column).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RowId(String);

impl RowId {
    /// A row id from its text.
    pub fn new(id: &str) -> RowId {
        RowId(id.to_string())
    }

    /// The id's text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RowId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for RowId {
    fn from(id: &str) -> RowId {
        RowId::new(id)
    }
}
