//! The records of a run, one per board, for manufacturing logs: the JSON report
//! (`--report FILE`), the JSON Lines log appended to (`--report-append FILE`), and the
//! write-to-temporary-then-rename helper every output file goes through.

use std::fs;
use std::io::{self, Write};
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

use crate::plan::{Erase, Integrity, Plan, Region};

/// The report of a whole run: one record per board (one record without a port when no board
/// was asked for).
#[derive(Debug, Clone, Default, Serialize)]
pub struct RunReport {
    /// `ok` when every board succeeded, else `failed`.
    pub outcome: String,
    /// The process exit code.
    pub exit_code: u8,
    /// The records, in `--port` order.
    pub boards: Vec<Report>,
}

impl RunReport {
    /// The report as pretty JSON.
    pub fn to_json(&self) -> Vec<u8> {
        let mut bytes = serde_json::to_vec_pretty(self).unwrap_or_default();
        bytes.push(b'\n');
        bytes
    }
}

/// Everything a run found and did with one board.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    /// `ok` or `failed`.
    pub outcome: String,
    /// The exit code this board alone would give.
    pub exit_code: u8,
    /// The error, when the board failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The `--port` of the board (absent when no board was asked for).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<String>,
    /// When the record was made, UTC, RFC 3339.
    pub time: String,
    /// Attempts made on the board (absent when none was made).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attempts: Option<u32>,
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
    /// The `--nvs-values` row written to the board (its id, never its values).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nvs_row: Option<String>,
    /// What the board reported, when one was connected.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device: Option<DeviceReport>,
    /// What the plan erases before writing (absent when nothing).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub erased: Vec<EraseReport>,
    /// The regions of the plan.
    pub regions: Vec<RegionReport>,
    /// With `--security`, what was burned into the board's eFuses and which regions were
    /// written encrypted (never a key).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secure: Option<crate::device::SecureRecord>,
    /// What the board printed after its reset, when `--expect` watched it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub boot: Option<crate::device::boot::BootRecord>,
    /// Ranges outside the plan that changed while the board was written
    /// (`--check-untouched`; absent when none did).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub changed_outside: Vec<RangeReport>,
    /// What the outcome does not say alone: a reset that failed after the flash was verified,
    /// retries whose stray writes were not checked (absent when there is none).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// What the line cost, when it cost anything: blocks sent again, streams taken up again,
    /// rate steps.
    #[serde(skip_serializing_if = "LineReport::is_clean")]
    pub line: LineReport,
    /// Durations of the stages, in milliseconds.
    pub timings_ms: Timings,
}

impl Report {
    /// Marks the record failed with `kind` and `message` (one line).
    pub fn fail(&mut self, kind: crate::error::ExitKind, message: &str) {
        self.outcome = "failed".into();
        self.exit_code = kind.code();
        self.error = Some(message.replace('\n', " "));
    }
}

/// What errors on the line cost a board.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct LineReport {
    /// Blocks the board refused (a garbled packet) and that were sent again at the same rate.
    pub resent_blocks: u32,
    /// Streams that broke (a lost or garbled reply) and were taken up again where the board
    /// held them, at the same rate.
    pub resumed_streams: u32,
    /// Attempts that failed on the line and were repeated at the same rate.
    pub same_rate_retries: u32,
    /// The rates stepped down to, in order, after errors persisted at a rate.
    pub stepped_down_to: Vec<u32>,
}

impl LineReport {
    /// Whether the line cost nothing.
    pub fn is_clean(&self) -> bool {
        *self == LineReport::default()
    }
}

/// A range of flash.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct RangeReport {
    /// First byte.
    pub offset: u32,
    /// Length in bytes.
    pub size: u32,
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
    /// Detected flash size in bytes (absent when it was not detected: `--before
    /// no-reset-no-sync`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flash_size: Option<u64>,
    /// Baud rate the regions were written at.
    pub baud: u32,
    /// Whether the ROM ran in Secure Download Mode (only flash writes allowed).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub secure_download: bool,
    /// Whether Secure Boot is enabled, if the board tells.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secure_boot: Option<bool>,
    /// Whether flash encryption is enabled, if the board tells.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flash_encryption: Option<bool>,
    /// What the board would not let be read or checked (`mac`, `flash_id`, `flash_size`,
    /// `md5`, ...); `flash_size` is then 0.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unchecked: Vec<String>,
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

/// A part of the flash erased before writing.
#[derive(Debug, Clone, Default, Serialize)]
pub struct EraseReport {
    /// The partition's label, or `whole flash`.
    pub label: String,
    /// Flash offset.
    pub offset: u32,
    /// Length in bytes (absent for the whole flash: the chip's whole size).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size: Option<u32>,
}

impl RegionReport {
    /// The record of `region`, before it is written.
    pub fn of(region: &Region) -> RegionReport {
        RegionReport {
            label: region.label.to_string(),
            offset: region.offset,
            size: region.bytes.len(),
            md5: region.md5_hex(),
            source: region.source.to_string(),
            skipped: None,
        }
    }
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
        self.regions = plan.regions.iter().map(RegionReport::of).collect();
        self.erased = plan
            .erases
            .iter()
            .map(|e| EraseReport {
                label: e.label().to_string(),
                offset: e.range(0).0,
                size: match e {
                    Erase::Chip => None,
                    Erase::Partition { size, .. } => Some(*size),
                },
            })
            .collect();
    }

    /// The record as one line of JSON, newline included.
    pub fn to_line(&self) -> Vec<u8> {
        let mut bytes = serde_json::to_vec(self).unwrap_or_default();
        bytes.push(b'\n');
        bytes
    }
}

/// The current time, UTC, as RFC 3339 (`2025-01-31T08:00:00Z`).
pub fn utc_now() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    firmware::time::rfc3339(i64::try_from(secs).unwrap_or(i64::MAX))
}

/// Opens `path` for appending records, creating it if needed.
pub fn open_log(path: &Path) -> io::Result<fs::File> {
    fs::OpenOptions::new().create(true).append(true).open(path)
}

/// Appends `line` to `log` in a single write, so that records of boards finishing at the same
/// time, or of several stations sharing the file, never interleave; then syncs it.
pub fn append_line(log: &fs::File, line: &[u8]) -> io::Result<()> {
    let mut file = log;
    let written = file.write(line)?;
    if written != line.len() {
        return Err(io::Error::new(
            io::ErrorKind::WriteZero,
            format!(
                "only {written} of {} bytes of the record were written",
                line.len()
            ),
        ));
    }
    file.sync_data()
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

    #[test]
    fn records_append_as_whole_lines() {
        let dir = tempfile_dir("append");
        let path = dir.join("shift.jsonl");
        let log = open_log(&path).unwrap();
        let threads: Vec<_> = (0..8)
            .map(|i| {
                let log = log.try_clone().unwrap();
                std::thread::spawn(move || {
                    let record = Report {
                        port: Some(format!("/dev/ttyUSB{i}")),
                        error: Some("x".repeat(3000)),
                        ..Report::default()
                    };
                    for _ in 0..20 {
                        append_line(&log, &record.to_line()).unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let text = fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 160);
        for line in text.lines() {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            assert!(v["port"].as_str().unwrap().starts_with("/dev/ttyUSB"));
        }
        fs::remove_dir_all(&dir).unwrap();
    }

    fn tempfile_dir(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("flasher-{name}-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        dir
    }
}
