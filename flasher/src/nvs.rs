//! Per-board data at a manufacturing station: each board gets an NVS image made from its own
//! row of a values file (ESP-IDF's mass manufacturing format, `--nvs-config`/`--nvs-values`),
//! written as the plan's region `nvs`, and each row goes to exactly one board.
//!
//! [`Rows`] is the checked batch: every row's image is made before any board is touched, so a
//! bad row refuses the run up front. [`Station`] hands rows to boards through the line's
//! database ([`linedb::Store`], `--db`: PostgreSQL for a line of stations, else an embedded
//! file beside the values file): once a board is identified, its MAC claims a row (the same
//! MAC gets the same row back), and the row is recorded done once the board's regions are
//! verified, failed when the board fails; a row whose station stopped mid-board is in doubt.
//! A failed or in-doubt row goes to no other board until the operator gives it back
//! ([`release`]). The records themselves go through the run's [`Sink`] (the same database,
//! or its spool while it is away). A journal of the earlier file-based station
//! (`VALUES.csv.journal`) is imported once.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use linedb::spool::SpoolError;
use linedb::{Claim, Claimant, DbError, Finish, ImportedState, NewRow, Store};
use mfg::RowId;
use mfg::journal::{Journal, JournalError};
use mfg::mass::{Batch, MassError};
use sha2::{Digest, Sha256};

use crate::cli::Args;
use crate::device::{Identity, PerBoard, Refusal};
use crate::error::ExitKind;
use crate::plan::{BoardData, Plan};
use crate::port;
use crate::report::Report;
use crate::sink::{self, Sink, SinkError};

/// How many refused rows an error lists before it counts the rest.
const LISTED_REFUSALS: usize = 5;

/// How long a board waits for the database when it is away, by default.
pub const DEFAULT_DB_WAIT: Duration = Duration::from_secs(60);

/// Why per-board data cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum NvsError {
    /// The config or values file is refused as a whole.
    #[error("--nvs-values {values}: {source}")]
    Batch {
        /// The values file.
        values: PathBuf,
        /// Why.
        source: Box<MassError>,
    },
    /// Rows whose values do not fit their types or the partition.
    #[error(
        "{count} of the {total} rows of {values} are refused, so no board was written: {list}; correct those rows"
    )]
    BadRows {
        /// The values file.
        values: PathBuf,
        /// Rows refused.
        count: usize,
        /// Rows in the file.
        total: usize,
        /// The first refusals, each with its row, key and reason.
        list: String,
    },
    /// The journal to import cannot be opened or read.
    #[error(transparent)]
    Journal(#[from] JournalError),
    /// The line's database refused or is away.
    #[error(transparent)]
    Db(#[from] DbError),
    /// The spool of records cannot be read or sent.
    #[error(transparent)]
    Spool(#[from] SpoolError),
    /// The records' database cannot be opened.
    #[error(transparent)]
    Sink(#[from] SinkError),
    /// `--nvs-row` on a run that writes boards.
    #[error(
        "--nvs-row is for --dry-run and --merge-out; a station takes each board's row from the database, leave --nvs-row out"
    )]
    RowWithBoards,
    /// `--nvs-release` with `--port`.
    #[error(
        "--nvs-release gives rows back and exits without writing a board; run it without --port, then start the station again"
    )]
    ReleaseWithPorts,
}

impl NvsError {
    /// The kind of failure, for the exit code.
    pub fn kind(&self) -> ExitKind {
        match self {
            NvsError::Journal(JournalError::Io { .. }) => ExitKind::Other,
            NvsError::Db(
                DbError::Url { .. }
                | DbError::RowChanged { .. }
                | DbError::NoSuchRow(_)
                | DbError::NotReleasable { .. },
            ) => ExitKind::Usage,
            NvsError::Db(_) | NvsError::Spool(_) => ExitKind::Other,
            NvsError::Sink(e) => e.kind(),
            _ => ExitKind::Usage,
        }
    }
}

/// Refuses option combinations that make no sense, before anything is read.
pub fn check_args(args: &Args) -> Result<(), NvsError> {
    if args.nvs_row.is_some() && args.uses_device() {
        return Err(NvsError::RowWithBoards);
    }
    if !args.nvs_release.is_empty() && !args.port.is_empty() {
        return Err(NvsError::ReleaseWithPorts);
    }
    Ok(())
}

/// The rows of a values file, every one checked against the partition its image goes to.
#[derive(Debug)]
pub struct Rows {
    batch: Batch,
    partition: String,
    values: PathBuf,
}

impl Rows {
    /// The batch of `--nvs-config`/`--nvs-values` for `plan`'s `--nvs-partition` (`None`
    /// without them). Every row's image is made here: one bad row refuses them all.
    pub fn open(args: &Args, plan: &Plan) -> anyhow::Result<Option<Rows>> {
        let (Some(values), Some(config)) = (&args.nvs_values, &args.nvs_config) else {
            return Ok(None);
        };
        let part = plan.nvs_partition(&args.nvs_partition)?;
        let batch = Batch::open(config, values, part.size()).map_err(|source| NvsError::Batch {
            values: values.clone(),
            source: Box::new(source),
        })?;
        let refused = batch.check();
        if !refused.is_empty() {
            let mut list: Vec<String> = refused
                .iter()
                .take(LISTED_REFUSALS)
                .map(ToString::to_string)
                .collect();
            if refused.len() > LISTED_REFUSALS {
                list.push(format!("and {} more", refused.len() - LISTED_REFUSALS));
            }
            return Err(NvsError::BadRows {
                values: values.clone(),
                count: refused.len(),
                total: batch.row_ids().len(),
                list: list.join("; "),
            }
            .into());
        }
        Ok(Some(Rows {
            batch,
            partition: args.nvs_partition.clone(),
            values: values.clone(),
        }))
    }

    /// `plan` with row `id`'s NVS image as its region `nvs`.
    pub fn board_plan(&self, plan: &Plan, id: &RowId) -> anyhow::Result<Plan> {
        let bytes = self.batch.image(id).map_err(|source| NvsError::Batch {
            values: self.values.clone(),
            source: Box::new(source),
        })?;
        let data = BoardData {
            partition: self.partition.clone(),
            bytes,
            what: format!("NVS row {id}"),
        };
        Ok(plan.for_board(data)?)
    }

    /// What a plan without a row leaves out, for `--dry-run` and `--merge-out`.
    pub fn note(&self) -> String {
        format!(
            "{} rows of {} checked for partition {}; each board gets its row's NVS image there (pass --nvs-row ID to see one)",
            self.batch.row_ids().len(),
            self.values.display(),
            self.partition
        )
    }

    /// Every row as the database knows it: its id and the SHA-256 of its per-row CSV (keys,
    /// types and values), never the values themselves.
    pub fn new_rows(&self) -> Result<Vec<NewRow>, NvsError> {
        self.batch
            .row_ids()
            .iter()
            .map(|id| {
                let csv = self.batch.row_csv(id).map_err(|source| NvsError::Batch {
                    values: self.values.clone(),
                    source: Box::new(source),
                })?;
                Ok(NewRow {
                    id: id.to_string(),
                    digest: sink::hex(&Sha256::digest(csv.as_bytes())),
                })
            })
            .collect()
    }

    /// The values file.
    pub fn values(&self) -> &std::path::Path {
        &self.values
    }

    /// Loads the rows into `store` (idempotent: a row id that comes back with other values
    /// is refused).
    fn load_into(&self, store: &Store) -> Result<(), NvsError> {
        let loaded = store.load_rows(&self.new_rows()?)?;
        if loaded.added > 0 {
            eprintln!(
                "nvs: {} rows of {} loaded into {} ({} there already)",
                loaded.added,
                self.values.display(),
                store.target(),
                loaded.known
            );
        }
        Ok(())
    }

    /// Imports the journal of the file-based station (`--nvs-journal`, else
    /// `VALUES.csv.journal`) into `store` once, if there is one.
    fn import_journal(&self, store: &Store, args: &Args) -> Result<(), NvsError> {
        let path = args
            .nvs_journal
            .clone()
            .unwrap_or_else(|| Journal::default_path(&self.values));
        if !path.is_file() {
            return Ok(());
        }
        let journal = Journal::open(&path, &self.batch.row_ids())?;
        let summary = journal.summary();
        let mut rows: Vec<(String, ImportedState)> = Vec::new();
        rows.extend(
            summary
                .done
                .iter()
                .map(|(r, mac)| (r.to_string(), ImportedState::Done(mac.clone()))),
        );
        rows.extend(
            summary
                .failed
                .iter()
                .map(|(r, why)| (r.to_string(), ImportedState::Failed(why.clone()))),
        );
        rows.extend(
            summary
                .in_doubt
                .iter()
                .map(|d| (d.row.to_string(), ImportedState::InDoubt)),
        );
        let key = format!(
            "journal:{}",
            std::fs::canonicalize(&path)
                .unwrap_or(path.clone())
                .display()
        );
        if store.import_journal(&key, &rows)? {
            eprintln!(
                "nvs: imported journal {} into {} ({} done, {} failed, {} in doubt); it is not read again",
                path.display(),
                store.target(),
                summary.done.len(),
                summary.failed.len(),
                summary.in_doubt.len()
            );
        }
        Ok(())
    }
}

/// `--nvs-release`: gives `ids` back in the database (each a failed or in-doubt row),
/// printing one line each.
pub fn release(rows: &Rows, args: &Args, ids: &[String]) -> Result<(), NvsError> {
    let url = sink::db_url(args, Some(&rows.values)).unwrap_or_default();
    let store = Store::open(&url)?;
    rows.load_into(&store)?;
    rows.import_journal(&store, args)?;
    for id in ids {
        store.release(id)?;
        eprintln!("released row {id} in {}", store.target());
    }
    Ok(())
}

/// The rows of a station run and the database that hands them out, shared by the board
/// threads.
#[derive(Debug)]
pub struct Station {
    shared: Arc<Shared>,
}

/// What the board threads and their hooks share.
#[derive(Debug)]
struct Shared {
    rows: Rows,
    sink: Arc<Sink>,
    wait: Duration,
}

/// The row a board claimed, and its plan.
struct Claimed {
    row: String,
    mac: String,
    plan: Arc<Plan>,
}

impl Station {
    /// Loads the rows into the database of `sink` (opened with `rows`' values file, see
    /// [`Sink::open`]), imports a journal of the file-based station once, and prints the
    /// rows in doubt. Any failure here is one line, before any board is touched.
    pub fn open(rows: Rows, sink: Arc<Sink>, args: &Args) -> Result<Station, NvsError> {
        let store = sink.store();
        rows.load_into(store)?;
        rows.import_journal(store, args)?;
        for row in store.summary()?.in_doubt {
            eprintln!(
                "warning: row {row} is in doubt: its station stopped before its board was \
                 finished; it goes to no board until you check that board (flasher records \
                 --db URL --row {row}) and pass --nvs-release {row}"
            );
        }
        let wait = args.db_wait.map_or(DEFAULT_DB_WAIT, Duration::from_secs);
        Ok(Station {
            shared: Arc::new(Shared { rows, sink, wait }),
        })
    }

    /// The record of one board on `port`, and whether the database was away when its row
    /// was finished (then its record goes to the spool only, and finishes the row when the
    /// database is back). `write` writes the board with the [`PerBoard`] hook it is given:
    /// once the board is identified, the hook claims the board's row by its MAC and gives
    /// `plan` with the row's image (a board left without a row is refused, nothing written).
    /// Then the row is recorded done or failed; the caller keeps the record ([`Sink::keep`]).
    pub fn board(
        &self,
        plan: &Plan,
        port: &str,
        write: impl FnOnce(PerBoard) -> Report,
    ) -> (Report, bool) {
        let claimed = Arc::new(Mutex::new(None));
        let mut record = write(self.hook(plan, port, &claimed));
        let claimed = lock(&claimed).take();
        let mut db_away = false;
        if let Some(claimed) = &claimed {
            record.nvs_row = Some(claimed.row.clone());
            db_away = self.finish(claimed, &mut record);
        }
        (record, db_away)
    }

    /// The hook that gives the board on `port` its row's plan, remembering the claim in
    /// `claimed` (a retry gets the same plan without asking the database).
    fn hook(&self, plan: &Plan, port: &str, claimed: &Arc<Mutex<Option<Claimed>>>) -> PerBoard {
        let shared = Arc::clone(&self.shared);
        let plan = plan.clone();
        let port = port.to_string();
        let claimed = Arc::clone(claimed);
        PerBoard::new(move |identity| shared.plan_for(identity, &plan, &port, &claimed))
    }

    /// Records the row of `record`'s board done or failed. Returns whether the database was
    /// away (the spooled record finishes the row when it is back); a refusal fails the board.
    fn finish(&self, claimed: &Claimed, record: &mut Report) -> bool {
        let how = if record.exit_code == 0 {
            Finish::Done
        } else {
            Finish::Failed(record.error.clone().unwrap_or_else(|| "failed".into()))
        };
        match self
            .shared
            .sink
            .store()
            .finish(&claimed.row, &claimed.mac, &how)
        {
            Ok(()) => false,
            Err(e) if e.is_unavailable() => true,
            Err(e) => {
                let message = match &record.error {
                    Some(error) => format!("{error}; and the row's outcome was not recorded: {e}"),
                    None => format!("the board was written but its row was not recorded done: {e}"),
                };
                record.fail(ExitKind::Other, &message);
                false
            }
        }
    }

    /// The rows no board has yet, as the database counts them now (`None` while it cannot
    /// say).
    pub fn rows_left(&self) -> Option<u64> {
        self.shared
            .sink
            .store()
            .summary()
            .ok()
            .map(|s| s.free as u64)
    }

    /// The line summing up the rows after a run.
    pub fn summary(&self) -> String {
        let summary = match self.shared.sink.store().summary() {
            Ok(summary) => summary,
            Err(e) => return format!("nvs: the rows cannot be counted now: {e}"),
        };
        let ids = |rows: &[String]| {
            if rows.is_empty() {
                String::new()
            } else {
                format!(" ({})", rows.join(", "))
            }
        };
        let mut line = format!(
            "nvs: {} rows done, {} failed{}, {} in doubt{}, {} free",
            summary.done,
            summary.failed.len(),
            ids(&summary.failed),
            summary.in_doubt.len(),
            ids(&summary.in_doubt),
            summary.free
        );
        if summary.writing > 0 {
            line.push_str(&format!(", {} being written", summary.writing));
        }
        if !summary.failed.is_empty() || !summary.in_doubt.is_empty() {
            line.push_str("; check those boards, then give a row back with --nvs-release ID");
        }
        line
    }
}

impl Shared {
    /// The plan of the board `identity` on `port`: `plan` with the image of the row its MAC
    /// claims.
    fn plan_for(
        &self,
        identity: &Identity,
        plan: &Plan,
        port: &str,
        claimed: &Mutex<Option<Claimed>>,
    ) -> Result<Arc<Plan>, Refusal> {
        let mac = identity.mac.clone().ok_or_else(|| Refusal {
            kind: ExitKind::Board,
            message: "the board does not tell its MAC, and each row is bound to its board's MAC; \
                      this board cannot take a row"
                .into(),
        })?;
        let mut slot = lock(claimed);
        if let Some(c) = slot.as_ref().filter(|c| c.mac == mac) {
            return Ok(Arc::clone(&c.plan));
        }
        let claim = self.claim(&mac, port)?.ok_or_else(|| self.no_row(&mac))?;
        let board_plan = self.board_plan(plan, &claim, &mac)?;
        if claim.again {
            eprintln!(
                "[{}] board {mac} came back: it gets its row {} again",
                port::short_name(port),
                claim.row
            );
        }
        *slot = Some(Claimed {
            row: claim.row,
            mac,
            plan: Arc::clone(&board_plan),
        });
        self.sink.send_spool();
        Ok(board_plan)
    }

    /// `plan` with the image of the claimed row.
    fn board_plan(&self, plan: &Plan, claim: &Claim, mac: &str) -> Result<Arc<Plan>, Refusal> {
        match self.rows.board_plan(plan, &RowId::new(&claim.row)) {
            Ok(board_plan) => Ok(Arc::new(board_plan)),
            Err(e) => {
                let message = format!("{e:#}");
                let _ = self
                    .sink
                    .store()
                    .finish(&claim.row, mac, &Finish::Failed(message.clone()));
                Err(Refusal {
                    kind: ExitKind::Usage,
                    message,
                })
            }
        }
    }

    /// Claims the row of `mac`, waiting (bounded) while the database is away.
    fn claim(&self, mac: &str, port: &str) -> Result<Option<Claim>, Refusal> {
        let who = Claimant {
            station: self.sink.name().to_string(),
            port: port.to_string(),
        };
        let deadline = Instant::now() + self.wait;
        let mut said = false;
        loop {
            match self.sink.store().claim(mac, &who) {
                Ok(claim) => return Ok(claim),
                Err(e) if e.is_unavailable() && Instant::now() < deadline => {
                    if !said {
                        eprintln!(
                            "[{}] {e}; board {mac} waits up to {} s for it",
                            port::short_name(port),
                            self.wait.as_secs()
                        );
                        said = true;
                    }
                    std::thread::sleep(Duration::from_secs(1));
                }
                Err(e) => {
                    return Err(Refusal {
                        kind: ExitKind::Other,
                        message: format!(
                            "{e}; board {mac} was not written: start it again once the database is back"
                        ),
                    });
                }
            }
        }
    }

    /// The refusal of a board left without a row.
    fn no_row(&self, mac: &str) -> Refusal {
        Refusal {
            kind: ExitKind::NoRow,
            message: format!(
                "no row of {} is left for board {mac}, so it was not written; add rows to the \
                 values file or give failed rows back with --nvs-release ID",
                self.rows.values.display()
            ),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{Integrity, Region, Source};
    use crate::report::{DeviceReport, RegionReport};
    use clap::Parser;
    use firmware::chip::Chip;

    const CONFIG: &str = "device,namespace,\nserial,data,string\nunit,data,u8\n";
    const VALUES: &str = "id,serial,unit\nA1,AB01,1\nA2,AB02,2\n";

    fn plan() -> Plan {
        let table = firmware::partition::parse_csv(
            "nvs,data,nvs,0x9000,0x6000\nphy_init,data,phy,0xf000,0x1000\nfactory,app,factory,0x10000,0x100000\n",
        )
        .unwrap();
        let region = |offset, label, source| Region {
            offset,
            bytes: vec![0; 16],
            label,
            source,
        };
        Plan {
            target: "esp32".into(),
            chip: Chip::Esp32,
            flash_size: "4MB".parse().unwrap(),
            table_offset: 0x8000,
            table,
            regions: vec![
                region(0x8000, "partition-table", Source::Generated("t".into())),
                region(0x10000, "app", Source::File("app.bin".into())),
            ],
            integrity: Integrity::Unchecked,
            notes: Vec::new(),
            images: Vec::new(),
            erases: Vec::new(),
        }
    }

    /// What a board `mac` written by `hook` ends with: `code` once it has its plan.
    fn write(mac: &'static str, code: u8) -> impl FnOnce(PerBoard) -> Report {
        move |hook: PerBoard| {
            let mut record = Report {
                device: Some(DeviceReport {
                    mac: Some(mac.into()),
                    ..DeviceReport::default()
                }),
                ..Report::default()
            };
            let identity = Identity {
                mac: Some(mac.into()),
                chip: "esp32".into(),
            };
            match hook.plan_for(&identity) {
                Ok(board) => {
                    let labels: Vec<&str> = board.regions.iter().map(|r| r.label).collect();
                    assert_eq!(labels, ["partition-table", "nvs", "app"]);
                    record.regions = board.regions.iter().map(RegionReport::of).collect();
                    if code != 0 {
                        record.fail(ExitKind::Write, "verify failed");
                    }
                }
                Err(refusal) => record.fail(refusal.kind, &refusal.message),
            }
            record
        }
    }

    /// A station's board as `boards::board` runs it: its row, then its record kept.
    fn run(
        station: &Station,
        sink: &Sink,
        port: &str,
        write: impl FnOnce(PerBoard) -> Report,
    ) -> Report {
        let (record, db_away) = station.board(&plan(), port, write);
        sink.keep(&record, port, db_away);
        record
    }

    /// The station of `args` on `rows`, and its sink.
    fn open(rows: Rows, args: &Args) -> (Station, Arc<Sink>) {
        let sink = Arc::new(Sink::open(args, Some(&rows.values)).unwrap().unwrap());
        (Station::open(rows, Arc::clone(&sink), args).unwrap(), sink)
    }

    #[test]
    fn boards_get_their_rows_by_mac_and_the_database_keeps_outcomes_and_records() {
        let dir = tempfile::tempdir().unwrap();
        let values = dir.path().join("values.csv");
        let rows = Rows {
            batch: Batch::new(CONFIG, VALUES, 0x6000, dir.path()).unwrap(),
            partition: "nvs".into(),
            values: values.clone(),
        };
        let args = Args::try_parse_from([
            "flasher",
            "--chip",
            "esp32",
            "--flash_size",
            "4MB",
            "--nvs-config",
            "config.csv",
            "--nvs-values",
            values.to_str().unwrap(),
            "--station-name",
            "unit",
        ])
        .unwrap();
        let (station, sink) = open(rows, &args);
        let (one, two) = ("02:00:00:00:00:01", "02:00:00:00:00:02");
        let ok = run(&station, &sink, "/dev/ttyUSB0", write(one, 0));
        assert_eq!((ok.exit_code, ok.nvs_row.as_deref()), (0, Some("A1")));
        let bad = run(&station, &sink, "/dev/ttyUSB1", write(two, 6));
        assert_eq!((bad.exit_code, bad.nvs_row.as_deref()), (6, Some("A2")));
        // The first board comes back: its own row again, not a new one.
        let again = run(&station, &sink, "/dev/ttyUSB0", write(one, 0));
        assert_eq!(again.nvs_row.as_deref(), Some("A1"));
        let none = run(
            &station,
            &sink,
            "/dev/ttyUSB2",
            write("02:00:00:00:00:03", 0),
        );
        assert_eq!((none.exit_code, none.nvs_row), (10, None));
        assert!(none.error.unwrap().contains("no row of"));
        assert_eq!(
            station.summary(),
            "nvs: 1 rows done, 1 failed (A2), 0 in doubt, 0 free; check those boards, then give a row back with --nvs-release ID"
        );
        let store = Store::open(&format!(
            "sqlite:{}",
            Store::default_path(&values).display()
        ));
        let records = store.unwrap().records(&linedb::Query::default()).unwrap();
        assert_eq!(records.len(), 4);
        assert_eq!(records[0].row.as_deref(), Some("A1"));
        assert_eq!(records[0].station.as_deref(), Some("unit"));
        assert!(
            records[0].regions_md5.contains("\"nvs\":"),
            "{:?}",
            records[0]
        );
        assert!(records.iter().all(|r| !r.json.contains("AB01")));
    }

    #[test]
    fn a_board_waits_for_the_database_then_is_refused_and_its_record_waits_in_the_spool() {
        let server = testkit::pg::PgServer::start();
        // SAFETY: only this test reads PGPASSWORD; set before its store opens.
        unsafe { std::env::set_var("PGPASSWORD", server.password()) };
        let url = server.database("wait");
        let dir = tempfile::tempdir().unwrap();
        let values = dir.path().join("values.csv");
        let rows = Rows {
            batch: Batch::new(CONFIG, VALUES, 0x6000, dir.path()).unwrap(),
            partition: "nvs".into(),
            values: values.clone(),
        };
        let args = Args::try_parse_from([
            "flasher",
            "--chip",
            "esp32",
            "--flash_size",
            "4MB",
            "--nvs-config",
            "config.csv",
            "--nvs-values",
            values.to_str().unwrap(),
            "--db",
            &url,
            "--db-wait",
            "2",
        ])
        .unwrap();
        let (station, sink) = open(rows, &args);
        server.stop();
        let started = Instant::now();
        let away = run(
            &station,
            &sink,
            "/dev/ttyUSB0",
            write("02:00:00:00:00:01", 0),
        );
        assert!(started.elapsed() >= Duration::from_secs(2));
        assert_eq!((away.exit_code, away.nvs_row.as_deref()), (1, None));
        let error = away.error.unwrap();
        assert!(error.contains("cannot be reached"), "{error}");
        assert!(error.contains("was not written"), "{error}");
        let spool = dir.path().join("values.csv.spool");
        assert_eq!(std::fs::read_dir(&spool).unwrap().count(), 1);

        server.resume();
        let back = run(
            &station,
            &sink,
            "/dev/ttyUSB0",
            write("02:00:00:00:00:01", 0),
        );
        assert_eq!((back.exit_code, back.nvs_row.as_deref()), (0, Some("A1")));
        assert_eq!(std::fs::read_dir(&spool).unwrap().count(), 0);
        let store = Store::open(&url).unwrap();
        assert_eq!(store.records(&linedb::Query::default()).unwrap().len(), 2);
    }
}
