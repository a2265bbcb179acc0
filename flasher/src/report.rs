//! The JSON report of a run (`--report FILE`), for manufacturing logs, and the
//! write-to-temporary-then-rename helper every output file goes through.

use std::fs;
use std::io::{self, Write};
use std::path::Path;

use serde::Serialize;

use crate::plan::{Integrity, Plan};

/// Everything a run found and did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    /// `ok` or `failed`.
    pub outcome: String,
    /// The process exit code.
    pub exit_code: u8,
    /// The error, when the run failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The `--chip` target.
    pub target: String,
    /// The `--flash_size` value.
    pub flash_size: String,
    /// The `--override_pt` mode, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub override_pt: Option<String>,
    /// Whether the bundle was checked against its manifest (absent when no plan was made).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bundle_verified: Option<bool>,
    /// What the board reported, when one was connected.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device: Option<DeviceReport>,
    /// The regions of the plan.
    pub regions: Vec<RegionReport>,
    /// Durations of the stages, in milliseconds.
    pub timings_ms: Timings,
}

/// What the board reported.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DeviceReport {
    /// Serial port used.
    pub port: String,
    /// Detected chip.
    pub chip: String,
    /// Chip revision (`v0.2`), if read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
    /// Base MAC address, if read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
    /// JEDEC id of the SPI flash (manufacturer, type, capacity), hex, if read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flash_id: Option<String>,
    /// Detected flash size in bytes.
    pub flash_size: u64,
    /// Baud rate the regions were written at.
    pub baud: u32,
}

/// One region of the plan and what happened to it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RegionReport {
    /// Short name.
    pub label: String,
    /// Flash offset.
    pub offset: u32,
    /// Length in bytes.
    pub size: usize,
    /// Lower-case hex MD5 of the bytes.
    pub md5: String,
    /// Where the bytes come from.
    pub source: String,
    /// Whether the board already held these bytes (absent when no board was written).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skipped: Option<bool>,
}

/// Stage durations in milliseconds.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Timings {
    /// Reading and checking the bundle, making the plan.
    pub plan: u64,
    /// Opening the port, syncing, loading the stub, reading the board.
    pub connect: u64,
    /// Writing and verifying the regions.
    pub write: u64,
    /// The whole run.
    pub total: u64,
}

impl Report {
    /// Records the plan's regions and integrity.
    pub fn set_plan(&mut self, plan: &Plan) {
        self.bundle_verified = Some(matches!(plan.integrity, Integrity::Verified { .. }));
        self.regions = plan
            .regions
            .iter()
            .map(|r| RegionReport {
                label: r.label.to_string(),
                offset: r.offset,
                size: r.bytes.len(),
                md5: r.md5_hex(),
                source: r.source.to_string(),
                skipped: None,
            })
            .collect();
    }

    /// The report as pretty JSON.
    pub fn to_json(&self) -> Vec<u8> {
        let mut bytes = serde_json::to_vec_pretty(self).unwrap_or_default();
        bytes.push(b'\n');
        bytes
    }
}

/// Writes `bytes` to `path` through a temporary file in the same folder and a rename, so
/// readers never see a partial file.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "not a file path"))?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(".tmp{}", std::process::id()));
    let tmp = path.with_file_name(tmp_name);
    let result = (|| {
        let mut file = fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_writes_replace_and_leave_no_temporary() {
        let dir = std::env::temp_dir().join(format!("flasher-report-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("out.json");
        write_atomic(&path, b"one").unwrap();
        write_atomic(&path, b"two").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two");
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 1);
        assert!(write_atomic(&dir.join("missing/x"), b"").is_err());
        fs::remove_dir_all(&dir).unwrap();
    }
}
