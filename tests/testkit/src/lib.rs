//! Test firmware the project generates itself, and paths the tests share.
//!
//! Everything here is synthetic but valid: ESP images with correct headers, chip ids, checksums,
//! appended SHA-256 and an `esp_app_desc_t`; partition tables from `esp-idf-part`; ESP-IDF build
//! directories shaped as `idf.py build` leaves them. No third-party binary is involved.
#![warn(missing_docs)]

pub mod elf;
pub mod firmware;
pub mod idf_build;
pub mod pg;
pub mod tools;

use std::path::PathBuf;

/// The workspace root (the folder holding the top `Cargo.toml`).
pub fn workspace_root() -> PathBuf {
    let here = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    here.ancestors()
        .nth(2)
        .expect("tests/testkit sits two levels below the workspace root")
        .to_path_buf()
}

/// The shared real ESP-IDF build outputs: `$ESP_FIXTURES_DIR` if set (a checkout that is not
/// beside `shared/`, such as a second git worktree), else `../shared/fixtures` from the
/// workspace root.
pub fn fixtures_dir() -> PathBuf {
    match std::env::var_os("ESP_FIXTURES_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => workspace_root().join("../shared/fixtures"),
    }
}
