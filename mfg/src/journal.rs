//! Exactly-once allocation of value rows to boards.
//!
//! A journal is an append-only text file, one record a line, each written and fsync'd before
//! the call that makes it returns:
//!
//! ```text
//! assigned ROW to PORT at TIME   (before the board on PORT is written with ROW's values)
//! done ROW MAC                   (the board was written and verified)
//! failed ROW REASON              (the board could not be written; the row is kept)
//! released ROW                   (the operator gives a failed or in-doubt row back)
//! ```
//!
//! ROW, PORT and MAC are single tokens (`%`, spaces and control characters written as `%XX`),
//! TIME is RFC 3339 UTC, REASON is the rest of the line (`%` and control characters escaped).
//! Records hold row ids, ports, MACs, times and reasons, never the rows' values.
//!
//! Opening a journal replays it. A row assigned but neither done nor failed (the station
//! stopped mid-board) is *in doubt*: it is never handed out again until the operator releases
//! it. A failed row is kept; a released row is free again. A last line without its newline (the
//! station stopped mid-write) is the record that was not made: it is cut off and reported.
//! One process at a time holds a journal (an exclusive lock on `JOURNAL.lock`, which names the
//! holder's process id); behind a `Mutex`, one [`Journal`] serves every board thread.

use std::collections::{HashMap, HashSet};
use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use thiserror::Error;

use crate::RowId;

/// Why a journal cannot be opened or written.
#[derive(Debug, Error)]
pub enum JournalError {
    /// Reading, writing or syncing the journal failed.
    #[error("journal {path}: {source}; check the disk and the file's permissions")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Another process holds the journal.
    #[error(
        "journal {path} is in use by {holder}; run one station per journal, or stop the other one first"
    )]
    Locked {
        /// The journal.
        path: PathBuf,
        /// Who holds it, as far as its lock file tells.
        holder: String,
    },
    /// A complete line that is not a journal record.
    #[error(
        "journal {path} line {line} is not a journal record ({reason}): `{text}`; restore the journal or correct that line"
    )]
    Corrupt {
        /// The journal.
        path: PathBuf,
        /// Line number.
        line: usize,
        /// The line.
        text: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A record names a row that is not in the values file.
    #[error(
        "journal {path} line {line} names row `{row}`, which is not among the rows given; open the journal with the values file it was made for"
    )]
    UnknownRow {
        /// The journal.
        path: PathBuf,
        /// Line number.
        line: usize,
        /// The row.
        row: RowId,
    },
    /// A row id, port or MAC that is empty.
    #[error("the {0} is empty; give a non-empty {0}")]
    Empty(&'static str),
    /// The same row id given twice to [`Journal::open`].
    #[error("row `{0}` is given twice; row ids must be unique")]
    DuplicateRow(RowId),
    /// [`Journal::release`] on a row that cannot be released.
    #[error("row `{row}` {why}")]
    NotReleasable {
        /// The row.
        row: RowId,
        /// Its state.
        why: String,
    },
    /// A row not among the journal's rows.
    #[error("row `{0}` is not among the journal's rows; use a row id of its values file")]
    NoSuchRow(RowId),
}

/// Where one row stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RowState {
    /// Never assigned, or released.
    Free,
    /// Assigned to a board and not yet done or failed.
    Assigned {
        /// The port of the board.
        port: String,
        /// When (RFC 3339 UTC).
        at: String,
    },
    /// Written to the board with this MAC.
    Done {
        /// The board's MAC.
        mac: String,
    },
    /// Writing the board failed.
    Failed {
        /// Why.
        reason: String,
    },
}

/// A row handed to one board; finish it with [`Journal::complete`] or [`Journal::fail`].
#[derive(Debug)]
#[must_use = "a row handed out stays assigned until completed or failed"]
pub struct Allocation {
    row: RowId,
    index: usize,
    port: String,
}

impl Allocation {
    /// The row to write to the board.
    pub fn row(&self) -> &RowId {
        &self.row
    }

    /// The port it was handed to.
    pub fn port(&self) -> &str {
        &self.port
    }
}

/// A row assigned before this process opened the journal and never finished.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InDoubt {
    /// The row.
    pub row: RowId,
    /// The port it was assigned to.
    pub port: String,
    /// When.
    pub at: String,
}

/// Counts and lists of rows by state.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Summary {
    /// Rows written, with their board's MAC.
    pub done: Vec<(RowId, String)>,
    /// Rows that failed, with the reason.
    pub failed: Vec<(RowId, String)>,
    /// Rows assigned and not finished before this process: the operator checks those boards
    /// and releases the rows that were not written.
    pub in_doubt: Vec<InDoubt>,
    /// Rows being written by this process now.
    pub in_progress: Vec<RowId>,
    /// Rows still free.
    pub free: usize,
}

/// The bytes cut off the end of the journal on open: a record whose write was interrupted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TornTail {
    /// Where the cut line started.
    pub offset: u64,
    /// What it held.
    pub text: String,
}

/// The journal of one values file, held by this process.
#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    file: File,
    _lock: File,
    rows: Vec<RowId>,
    index: HashMap<RowId, usize>,
    states: Vec<RowState>,
    in_flight: HashSet<usize>,
    torn: Option<TornTail>,
}

impl Journal {
    /// The journal beside a values file: `VALUES.journal` (`values.csv.journal`).
    pub fn default_path(values: &Path) -> PathBuf {
        let mut name = values.as_os_str().to_owned();
        name.push(".journal");
        PathBuf::from(name)
    }

    /// Locks and replays the journal at `path` (created when missing) for `rows`, in the order
    /// rows are handed out.
    pub fn open(path: &Path, rows: &[RowId]) -> Result<Journal, JournalError> {
        let index = row_index(rows)?;
        let lock = lock(path)?;
        let io = |source| JournalError::Io {
            path: path.to_path_buf(),
            source,
        };
        let existed = path.exists();
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(path)
            .map_err(io)?;
        if !existed {
            sync_parent(path).map_err(io)?;
        }
        let mut journal = Journal {
            path: path.to_path_buf(),
            file: file.try_clone().map_err(io)?,
            _lock: lock,
            rows: rows.to_vec(),
            index,
            states: vec![RowState::Free; rows.len()],
            in_flight: HashSet::new(),
            torn: None,
        };
        let text = journal.read_and_trim(&mut file)?;
        journal.replay(&text)?;
        Ok(journal)
    }

    /// The record cut off the end on open, if the last write was interrupted.
    pub fn torn_tail(&self) -> Option<&TornTail> {
        self.torn.as_ref()
    }

    /// Where `row` stands.
    pub fn state(&self, row: &RowId) -> Option<&RowState> {
        self.index.get(row).map(|&i| &self.states[i])
    }

    /// Hands the first free row to the board on `port`, recording it before returning;
    /// `None` when no row is free.
    pub fn next(&mut self, port: &str) -> Result<Option<Allocation>, JournalError> {
        if port.is_empty() {
            return Err(JournalError::Empty("port"));
        }
        let Some(index) = self.states.iter().position(|s| *s == RowState::Free) else {
            return Ok(None);
        };
        let row = self.rows[index].clone();
        let at = rfc3339(SystemTime::now());
        self.append(&format!(
            "assigned {} to {} at {}",
            token(row.as_str()),
            token(port),
            at
        ))?;
        self.states[index] = RowState::Assigned {
            port: port.to_string(),
            at,
        };
        self.in_flight.insert(index);
        Ok(Some(Allocation {
            row,
            index,
            port: port.to_string(),
        }))
    }

    /// Records that the board got its row, with the board's MAC. On an error the row stays
    /// assigned and is listed in doubt.
    pub fn complete(&mut self, allocation: Allocation, mac: &str) -> Result<(), JournalError> {
        let record = format!("done {} {}", token(allocation.row.as_str()), token(mac));
        let state = RowState::Done {
            mac: mac.to_string(),
        };
        if mac.is_empty() {
            self.in_flight.remove(&allocation.index);
            return Err(JournalError::Empty("MAC"));
        }
        self.finish(allocation, &record, state)
    }

    /// Records that writing the board failed; the row stays used until released. On an
    /// error the row stays assigned and is listed in doubt.
    pub fn fail(&mut self, allocation: Allocation, reason: &str) -> Result<(), JournalError> {
        let record = format!(
            "failed {} {}",
            token(allocation.row.as_str()),
            escape(reason, false)
        );
        self.finish(
            allocation,
            &record,
            RowState::Failed {
                reason: reason.to_string(),
            },
        )
    }

    /// Gives a failed or in-doubt row back, to be handed out again. Done rows and rows being
    /// written now are refused.
    pub fn release(&mut self, row: &RowId) -> Result<(), JournalError> {
        let index = *self
            .index
            .get(row)
            .ok_or_else(|| JournalError::NoSuchRow(row.clone()))?;
        let refuse = |why: String| {
            Err(JournalError::NotReleasable {
                row: row.clone(),
                why,
            })
        };
        match &self.states[index] {
            _ if self.in_flight.contains(&index) => {
                return refuse("is being written now; finish that board first".into());
            }
            RowState::Free => return refuse("is free already".into()),
            RowState::Done { mac } => {
                return refuse(format!(
                    "is done on board {mac}; releasing it would give its values to a second board"
                ));
            }
            RowState::Assigned { .. } | RowState::Failed { .. } => {}
        }
        self.append(&format!("released {}", token(row.as_str())))?;
        self.states[index] = RowState::Free;
        Ok(())
    }

    /// Rows by state.
    pub fn summary(&self) -> Summary {
        let mut summary = Summary::default();
        for (i, (row, state)) in self.rows.iter().zip(&self.states).enumerate() {
            let row = row.clone();
            match state {
                RowState::Free => summary.free += 1,
                RowState::Assigned { .. } if self.in_flight.contains(&i) => {
                    summary.in_progress.push(row)
                }
                RowState::Assigned { port, at } => summary.in_doubt.push(InDoubt {
                    row,
                    port: port.clone(),
                    at: at.clone(),
                }),
                RowState::Done { mac } => summary.done.push((row, mac.clone())),
                RowState::Failed { reason } => summary.failed.push((row, reason.clone())),
            }
        }
        summary
    }

    /// Ends an allocation: the record on disk first, then the row's new state.
    fn finish(
        &mut self,
        allocation: Allocation,
        record: &str,
        state: RowState,
    ) -> Result<(), JournalError> {
        self.in_flight.remove(&allocation.index);
        self.append(record)?;
        self.states[allocation.index] = state;
        Ok(())
    }

    /// Appends one record and syncs it to disk.
    fn append(&mut self, record: &str) -> Result<(), JournalError> {
        let line = format!("{record}\n");
        let written = self
            .file
            .write_all(line.as_bytes())
            .and_then(|()| self.file.sync_data());
        written.map_err(|source| JournalError::Io {
            path: self.path.clone(),
            source,
        })
    }

    /// Reads the journal, cutting off (and remembering) a last line without its newline.
    fn read_and_trim(&mut self, file: &mut File) -> Result<String, JournalError> {
        let io = |source| JournalError::Io {
            path: self.path.clone(),
            source,
        };
        let mut bytes = Vec::new();
        file.seek(SeekFrom::Start(0)).map_err(io)?;
        file.read_to_end(&mut bytes).map_err(io)?;
        let complete = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        if complete < bytes.len() {
            self.torn = Some(TornTail {
                offset: complete as u64,
                text: String::from_utf8_lossy(&bytes[complete..]).into_owned(),
            });
            file.set_len(complete as u64)
                .and_then(|()| file.sync_data())
                .map_err(io)?;
            bytes.truncate(complete);
        }
        String::from_utf8(bytes).map_err(|e| {
            let line = e.as_bytes()[..e.utf8_error().valid_up_to()]
                .iter()
                .filter(|&&b| b == b'\n')
                .count()
                + 1;
            JournalError::Corrupt {
                path: self.path.clone(),
                line,
                text: String::new(),
                reason: "not UTF-8 text",
            }
        })
    }

    /// Applies every record in order, checking each is a legal step for its row.
    fn replay(&mut self, text: &str) -> Result<(), JournalError> {
        for (n, line) in text.lines().enumerate() {
            let corrupt = |reason| JournalError::Corrupt {
                path: self.path.clone(),
                line: n + 1,
                text: line.to_string(),
                reason,
            };
            let (row, next) = parse_record(line).map_err(corrupt)?;
            let index = *self
                .index
                .get(&row)
                .ok_or_else(|| JournalError::UnknownRow {
                    path: self.path.clone(),
                    line: n + 1,
                    row: row.clone(),
                })?;
            let legal = matches!(
                (&self.states[index], &next),
                (RowState::Free, RowState::Assigned { .. })
                    | (
                        RowState::Assigned { .. },
                        RowState::Done { .. } | RowState::Failed { .. }
                    )
                    | (
                        RowState::Assigned { .. } | RowState::Failed { .. },
                        RowState::Free
                    )
            );
            if !legal {
                return Err(corrupt("not a possible next step for that row"));
            }
            self.states[index] = next;
        }
        Ok(())
    }
}

fn row_index(rows: &[RowId]) -> Result<HashMap<RowId, usize>, JournalError> {
    let mut index = HashMap::with_capacity(rows.len());
    for (i, row) in rows.iter().enumerate() {
        if row.as_str().is_empty() {
            return Err(JournalError::Empty("row id"));
        }
        if index.insert(row.clone(), i).is_some() {
            return Err(JournalError::DuplicateRow(row.clone()));
        }
    }
    Ok(index)
}

/// Takes the exclusive lock on `JOURNAL.lock` and writes this process's id into it.
fn lock(journal: &Path) -> Result<File, JournalError> {
    let mut name = journal.as_os_str().to_owned();
    name.push(".lock");
    let path = PathBuf::from(name);
    let io = |source| JournalError::Io {
        path: path.clone(),
        source,
    };
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(io)?;
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            let holder = match holder.trim().parse::<u32>() {
                Ok(pid) => format!("process {pid} (lock file {})", path.display()),
                Err(_) => format!("another process (lock file {})", path.display()),
            };
            return Err(JournalError::Locked {
                path: journal.to_path_buf(),
                holder,
            });
        }
        Err(TryLockError::Error(source)) => return Err(io(source)),
    }
    file.set_len(0).map_err(io)?;
    file.write_all(format!("{}\n", std::process::id()).as_bytes())
        .map_err(io)?;
    Ok(file)
}

/// Makes a new file's directory entry durable.
fn sync_parent(path: &Path) -> std::io::Result<()> {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => File::open(dir)?.sync_all(),
        _ => File::open(".")?.sync_all(),
    }
}

/// Parses one record into its row and the state it moves the row to.
fn parse_record(line: &str) -> Result<(RowId, RowState), &'static str> {
    let (verb, rest) = line.split_once(' ').ok_or("no row")?;
    let (row, rest) = match rest.split_once(' ') {
        Some((row, rest)) => (row, Some(rest)),
        None => (rest, None),
    };
    let row = RowId::new(&unescape(row)?);
    let state = match (verb, rest) {
        ("assigned", Some(rest)) => {
            let fields: Vec<&str> = rest.split(' ').collect();
            match fields.as_slice() {
                ["to", port, "at", at] => RowState::Assigned {
                    port: unescape(port)?,
                    at: unescape(at)?,
                },
                _ => return Err("an assigned record is `assigned ROW to PORT at TIME`"),
            }
        }
        ("done", Some(mac)) if !mac.contains(' ') => RowState::Done {
            mac: unescape(mac)?,
        },
        ("failed", Some(reason)) => RowState::Failed {
            reason: unescape(reason)?,
        },
        ("failed", None) => RowState::Failed {
            reason: String::new(),
        },
        ("released", None) => RowState::Free,
        _ => return Err("unknown record"),
    };
    Ok((row, state))
}

/// A single-token field: spaces escaped too.
fn token(text: &str) -> String {
    escape(text, true)
}

/// `%`, control characters (and spaces, for tokens) as `%XX`.
fn escape(text: &str, spaces: bool) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c == '%' || c.is_control() || (spaces && c == ' ') {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                out.push_str(&format!("%{b:02X}"));
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn unescape(text: &str) -> Result<String, &'static str> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = text
                .get(i + 1..i + 3)
                .ok_or("a `%` not followed by two hex digits")?;
            out.push(
                u8::from_str_radix(hex, 16).map_err(|_| "a `%` not followed by two hex digits")?,
            );
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| "an escape that is not UTF-8")
}

/// `SystemTime` as RFC 3339 UTC, to the second.
fn rfc3339(time: SystemTime) -> String {
    let secs = time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil_from_days(days as i64);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to a (year, month, day) date (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip() {
        let line = format!(
            "assigned {} to {} at 2026-12-01T10:00:00Z",
            token("row 1%"),
            token("/dev/tty USB0")
        );
        assert_eq!(
            line,
            "assigned row%201%25 to /dev/tty%20USB0 at 2026-12-01T10:00:00Z"
        );
        let (row, state) = parse_record(&line).unwrap();
        assert_eq!(row.as_str(), "row 1%");
        assert_eq!(
            state,
            RowState::Assigned {
                port: "/dev/tty USB0".into(),
                at: "2026-12-01T10:00:00Z".into()
            }
        );
        let (_, failed) =
            parse_record(&format!("failed r {}", escape("timed out\nat 50%", false))).unwrap();
        assert_eq!(
            failed,
            RowState::Failed {
                reason: "timed out\nat 50%".into()
            }
        );
        assert!(parse_record("done r").is_err());
        assert!(parse_record("bogus r x").is_err());
    }

    #[test]
    fn dates() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        let t = UNIX_EPOCH + std::time::Duration::from_secs(1_795_948_582);
        assert_eq!(rfc3339(t), "2026-11-29T10:36:22Z");
        assert_eq!(civil_from_days(19_782), (2024, 2, 29));
    }
}
