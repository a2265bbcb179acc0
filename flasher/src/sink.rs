//! Where every board's record goes besides `--report-append`: the line's database (`--db`),
//! or, while it is away, the spool on the station's disk, sent when it is back.
//!
//! A [`Sink`] is opened once at the edge, before any board is touched (a bad URL or a wrong
//! password is one line then), and shared by the boards of a run, with or without per-board
//! rows ([`crate::nvs::Station`] claims its rows in the sink's database). Without `--db` and
//! without `--nvs-values` there is no sink and no database is made.

use std::path::{Path, PathBuf};

use linedb::spool::{Spool, SpoolError};
use linedb::{DbError, Store};
use sha2::{Digest, Sha256};

use crate::cli::Args;
use crate::error::ExitKind;
use crate::port;
use crate::report::Report;

/// The spool of a run without a values file and without `--report-append`, in the working
/// directory.
pub const DEFAULT_SPOOL: &str = "flasher-spool";

/// Why the records cannot be kept.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// The line's database refused or is away.
    #[error(transparent)]
    Db(#[from] DbError),
    /// The spool of records cannot be read or sent.
    #[error(transparent)]
    Spool(#[from] SpoolError),
}

impl SinkError {
    /// The kind of failure, for the exit code.
    pub fn kind(&self) -> ExitKind {
        match self {
            SinkError::Db(DbError::Url { .. }) => ExitKind::Usage,
            _ => ExitKind::Other,
        }
    }
}

/// The records' way to the line's database: the store, the spool, the station's name and the
/// digest of the firmware written.
#[derive(Debug)]
pub struct Sink {
    store: Store,
    spool: Spool,
    name: String,
    image_digest: Option<String>,
}

/// The database of `--db`, else the embedded one beside `values` (`None` without either).
pub fn db_url(args: &Args, values: Option<&Path>) -> Option<String> {
    args.db.clone().or_else(|| {
        values.map(|values| format!("sqlite:{}", Store::default_path(values).display()))
    })
}

/// The spool of `--spool`, else `VALUES.csv.spool` beside the values file, else
/// `FILE.spool` beside `--report-append FILE`, else [`DEFAULT_SPOOL`].
pub fn spool_dir(args: &Args, values: Option<&Path>) -> PathBuf {
    let beside = |file: &Path| {
        let mut name = file.file_name().unwrap_or_default().to_os_string();
        name.push(".spool");
        file.with_file_name(name)
    };
    if let Some(dir) = &args.spool {
        return dir.clone();
    }
    match values.or(args.report_append.as_deref()) {
        Some(file) => beside(file),
        None => PathBuf::from(DEFAULT_SPOOL),
    }
}

impl Sink {
    /// Opens the database of `--db` (else the embedded one beside `values`, the values file)
    /// and sends the records spooled while it was away. `None` without `--db` and without a
    /// values file. Any failure here is one line, before any board is touched.
    pub fn open(args: &Args, values: Option<&Path>) -> Result<Option<Sink>, SinkError> {
        let Some(url) = db_url(args, values) else {
            return Ok(None);
        };
        let sink = Sink {
            store: Store::open(&url)?,
            spool: Spool::new(&spool_dir(args, values)),
            name: args.station_name.clone().unwrap_or_else(host_name),
            image_digest: bundle_digest(&args.firmware_dir),
        };
        let sent = sink.spool.send(&sink.store)?;
        sink.say_sent(sent);
        Ok(Some(sink))
    }

    /// The line's database.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// This station's name in the records.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Sends the records spooled while the database was away, if any (quietly: what is not
    /// sent now is sent later).
    pub fn send_spool(&self) {
        if let Ok(sent) = self.spool.send(&self.store) {
            self.say_sent(sent);
        }
    }

    fn say_sent(&self, sent: usize) {
        if sent > 0 {
            eprintln!(
                "db: {sent} records kept in {} while the database was away are now in {}",
                self.spool.dir().display(),
                self.store.target()
            );
        }
    }

    /// Stores the record of the board on `port` in the database, else keeps it in the spool
    /// (`spool_only`: the database was away when the board's row was finished, so the spooled
    /// record finishes it when the database is back).
    pub fn keep(&self, record: &Report, port: &str, spool_only: bool) {
        let mut entry = db_record(record, &self.name);
        entry.image_digest = self.image_digest.clone();
        if !spool_only {
            match self.store.record(&entry) {
                Ok(_) => return,
                Err(e) if e.is_unavailable() => {}
                Err(e) => eprintln!(
                    "warning: [{}] the record was refused by the database ({e}); it is kept in the spool",
                    port::short_name(port)
                ),
            }
        }
        match self.spool.keep(&entry) {
            Ok(path) => eprintln!(
                "[{}] the database is away: the board's record is kept in {} and sent when it is back",
                port::short_name(port),
                path.display()
            ),
            Err(e) => eprintln!(
                "error: [{}] the board's record is in neither the database nor the spool: {e}",
                port::short_name(port)
            ),
        }
    }
}

/// The database's record of a board: its fields as columns, the whole record as JSON.
pub fn db_record(r: &Report, station: &str) -> linedb::Record {
    let device = r.device.as_ref();
    let md5: serde_json::Map<String, serde_json::Value> = r
        .regions
        .iter()
        .map(|g| (g.label.clone(), g.md5.clone().into()))
        .collect();
    let json = r.to_line();
    linedb::Record {
        id: linedb::new_record_id(),
        time: if r.time.is_empty() {
            crate::report::utc_now()
        } else {
            r.time.clone()
        },
        mac: device.and_then(|d| d.mac.clone()),
        chip: device.map(|d| d.chip.clone()),
        revision: device.and_then(|d| d.revision.clone()),
        flash_id: device.and_then(|d| d.flash_id.clone()),
        row: r.nvs_row.clone(),
        station: Some(station.to_string()),
        port: r.port.clone(),
        outcome: r.outcome.clone(),
        exit_code: i32::from(r.exit_code),
        reason: r.error.clone(),
        image_digest: None,
        regions_md5: serde_json::Value::Object(md5).to_string(),
        json: String::from_utf8_lossy(json.trim_ascii_end()).into_owned(),
    }
}

/// Lower-case hex of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The digest that names the firmware written: the SHA-256 of the bundle's `manifest.json`
/// (which holds every file's SHA-256), `None` for a bundle without one.
fn bundle_digest(firmware_dir: &Path) -> Option<String> {
    let manifest = std::fs::read(firmware_dir.join("manifest.json")).ok()?;
    Some(format!("sha256:{}", hex(&Sha256::digest(&manifest))))
}

/// This machine's name, for the records (`--station-name` overrides it).
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "station".into())
}
