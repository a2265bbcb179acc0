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
