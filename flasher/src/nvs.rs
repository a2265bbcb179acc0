//! Per-board data at a manufacturing station: each board gets an NVS image made from its own
//! row of a values file (ESP-IDF's mass manufacturing format, `--nvs-config`/`--nvs-values`),
//! written as the plan's region `nvs`, and each row goes to exactly one board.
//!
//! [`Rows`] is the checked batch: every row's image is made before any board is touched, so a
//! bad row refuses the run up front. [`Station`] hands rows to boards through the
//! [`mfg::journal`]: a row is recorded as assigned (on disk) before its board is written, done
//! (with the board's MAC) once its regions are verified, failed when the board fails; a failed
//! or in-doubt row goes to no other board until the operator gives it back ([`release`]).

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use mfg::RowId;
use mfg::journal::{Journal, JournalError};
use mfg::mass::{Batch, MassError};

use crate::boards;
use crate::cli::Args;
use crate::error::ExitKind;
use crate::plan::{BoardData, Plan};
use crate::report::{self, RegionReport, Report};

/// How many refused rows an error lists before it counts the rest.
const LISTED_REFUSALS: usize = 5;

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
    /// The journal cannot be opened, read or written.
    #[error(transparent)]
    Journal(#[from] JournalError),
    /// `--nvs-row` on a run that writes boards.
    #[error(
        "--nvs-row is for --dry-run and --merge-out; a station takes each board's row from the journal, leave --nvs-row out"
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

    fn journal_path(&self, asked: Option<&Path>) -> PathBuf {
        asked.map_or_else(|| Journal::default_path(&self.values), Path::to_path_buf)
    }
}

/// `--nvs-release`: gives `ids` back in the journal (each a failed or in-doubt row), printing
/// one line each.
pub fn release(rows: &Rows, journal: Option<&Path>, ids: &[String]) -> Result<(), NvsError> {
    let path = rows.journal_path(journal);
    let mut journal = Journal::open(&path, &rows.batch.row_ids())?;
    for id in ids {
        journal.release(&RowId::new(id))?;
        eprintln!("released row {id} in {}", path.display());
    }
    Ok(())
}

/// The rows of a station run and the journal that hands them out, shared by the board threads.
#[derive(Debug)]
pub struct Station {
    rows: Rows,
    journal: Mutex<Journal>,
}

impl Station {
    /// Opens (locks and replays) the journal of `rows`: `asked`, else beside the values file.
    /// Rows a previous run left in doubt are printed, as is an interrupted last record.
    pub fn open(rows: Rows, asked: Option<&Path>) -> Result<Station, NvsError> {
        let path = rows.journal_path(asked);
        let journal = Journal::open(&path, &rows.batch.row_ids())?;
        if let Some(torn) = journal.torn_tail() {
            eprintln!(
                "warning: journal {}: an interrupted last record was cut off: `{}`",
                path.display(),
                torn.text.trim_end()
            );
        }
        for row in journal.summary().in_doubt {
            eprintln!(
                "warning: row {} was assigned to {} at {} and never finished: it goes to no board \
                 until you check that board and pass --nvs-release {}",
                row.row, row.port, row.at, row.row
            );
        }
        Ok(Station {
            rows,
            journal: Mutex::new(journal),
        })
    }

    /// The record of one board on `port`: takes the next free row (recorded before the board
    /// is touched), has `write` write `plan` plus the row's image, then records the row done
    /// or failed. A board without a free row is not started.
    pub fn board(
        &self,
        plan: &Plan,
        port: &str,
        base: &Report,
        write: impl FnOnce(&Plan, &Report) -> Report,
    ) -> Report {
        let allocation = match self.journal().next(port) {
            Ok(Some(allocation)) => allocation,
            Ok(None) => return self.no_row(base, port),
            Err(e) => return refused(base, port, ExitKind::Other, &e.to_string()),
        };
        let row = allocation.row().clone();
        let board_plan = match self.rows.board_plan(plan, &row) {
            Ok(board_plan) => board_plan,
            Err(e) => {
                let message = format!("{e:#}");
                let mut record = refused(base, port, ExitKind::Usage, &message);
                record.nvs_row = Some(row.to_string());
                self.finish(allocation, &mut record);
                return record;
            }
        };
        let mut record = write(&board_plan, &board_base(base, &board_plan, &row));
        self.finish(allocation, &mut record);
        record
    }

    /// The rows still free.
    pub fn rows_left(&self) -> u64 {
        self.journal().summary().free as u64
    }

    /// The line summing up the rows after a run.
    pub fn summary(&self) -> String {
        let summary = self.journal().summary();
        let ids = |rows: Vec<String>| {
            if rows.is_empty() {
                String::new()
            } else {
                format!(" ({})", rows.join(", "))
            }
        };
        let failed = summary.failed.iter().map(|(r, _)| r.to_string()).collect();
        let in_doubt = summary.in_doubt.iter().map(|d| d.row.to_string()).collect();
        let mut line = format!(
            "nvs: {} rows done, {} failed{}, {} in doubt{}, {} free",
            summary.done.len(),
            summary.failed.len(),
            ids(failed),
            summary.in_doubt.len(),
            ids(in_doubt),
            summary.free
        );
        if !summary.failed.is_empty() || !summary.in_doubt.is_empty() {
            line.push_str("; check those boards, then give a row back with --nvs-release ID");
        }
        line
    }

    fn journal(&self) -> std::sync::MutexGuard<'_, Journal> {
        self.journal.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records the row of `record`'s board done or failed; a record that cannot be made
    /// fails the board (the row stays in doubt).
    fn finish(&self, allocation: mfg::journal::Allocation, record: &mut Report) {
        let result = if record.exit_code == 0 {
            let mac = record.device.as_ref().and_then(|d| d.mac.clone());
            self.journal()
                .complete(allocation, mac.as_deref().unwrap_or("unknown"))
        } else {
            let reason = record.error.clone().unwrap_or_else(|| "failed".into());
            self.journal().fail(allocation, &reason)
        };
        if let Err(e) = result {
            let message = match &record.error {
                Some(error) => format!("{error}; and the row's outcome was not recorded: {e}"),
                None => format!("the board was written but its row was not recorded done: {e}"),
            };
            boards::failed(record, ExitKind::Other, &message);
        }
    }

    /// The record of a board left without a row.
    fn no_row(&self, base: &Report, port: &str) -> Report {
        let message = format!(
            "no row of {} is left for this board, so it was not started; add rows to the values \
             file (with a new journal) or give failed rows back with --nvs-release ID",
            self.rows.values.display()
        );
        refused(base, port, ExitKind::NoRow, &message)
    }
}

/// The record of a board that was not started.
fn refused(base: &Report, port: &str, kind: ExitKind, message: &str) -> Report {
    let mut record = base.clone();
    record.port = Some(port.to_string());
    record.time = report::utc_now();
    boards::failed(&mut record, kind, message);
    record
}

/// `base` with the board's row and its `nvs` region, in the board plan's region order.
fn board_base(base: &Report, board_plan: &Plan, row: &RowId) -> Report {
    let mut base = base.clone();
    base.nvs_row = Some(row.to_string());
    if let Some(at) = board_plan.regions.iter().position(|r| r.label == "nvs") {
        base.regions
            .insert(at, RegionReport::of(&board_plan.regions[at]));
    }
    base
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{Integrity, Region, Source};
    use crate::report::DeviceReport;
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

    fn labels(regions: impl Iterator<Item = String>) -> Vec<String> {
        regions.collect()
    }

    #[test]
    fn boards_get_their_rows_between_the_shared_regions_and_the_journal_keeps_the_outcome() {
        let dir = tempfile::tempdir().unwrap();
        let rows = Rows {
            batch: Batch::new(CONFIG, VALUES, 0x6000, dir.path()).unwrap(),
            partition: "nvs".into(),
            values: dir.path().join("values.csv"),
        };
        let station = Station::open(rows, None).unwrap();
        let (plan, mut base) = (plan(), Report::default());
        base.set_plan(&plan);
        let expected = ["partition-table", "nvs", "app"].map(String::from).to_vec();
        let write = |code: u8| {
            let expected = expected.clone();
            move |board: &Plan, base: &Report| {
                assert_eq!(
                    labels(board.regions.iter().map(|r| r.label.into())),
                    expected
                );
                assert_eq!(
                    labels(base.regions.iter().map(|r| r.label.clone())),
                    expected
                );
                let mut record = base.clone();
                record.device = Some(DeviceReport {
                    mac: Some("02:00:00:00:00:01".into()),
                    ..DeviceReport::default()
                });
                if code != 0 {
                    boards::failed(&mut record, ExitKind::Write, "verify failed");
                }
                record
            }
        };
        let ok = station.board(&plan, "/dev/ttyUSB0", &base, write(0));
        assert_eq!((ok.exit_code, ok.nvs_row.as_deref()), (0, Some("A1")));
        let bad = station.board(&plan, "/dev/ttyUSB1", &base, write(6));
        assert_eq!((bad.exit_code, bad.nvs_row.as_deref()), (6, Some("A2")));
        let none = station.board(&plan, "/dev/ttyUSB2", &base, |_: &Plan, _: &Report| {
            panic!("a board without a row is not started")
        });
        assert_eq!((none.exit_code, none.nvs_row), (10, None));
        assert!(none.error.unwrap().contains("no row of"));
        assert_eq!(
            station.summary(),
            "nvs: 1 rows done, 1 failed (A2), 0 in doubt, 0 free; check those boards, then give a row back with --nvs-release ID"
        );
        let journal = std::fs::read_to_string(dir.path().join("values.csv.journal")).unwrap();
        assert!(journal.contains("done A1 02:00:00:00:00:01\n"), "{journal}");
        assert!(journal.contains("failed A2 verify failed\n"), "{journal}");
    }
}
