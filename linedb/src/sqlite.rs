//! The embedded database: one SQLite file (WAL, synchronous=FULL: a claim is on disk before
//! its board is written). Claims run in `IMMEDIATE` transactions, so processes sharing the
//! file take turns. A row claimed by a process that no longer runs is in doubt.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use crate::{
    Backend, Claim, Claimant, DbError, Finish, ImportedState, Loaded, NewRow, Query, Record,
    Summary, state,
};

/// The tables (docs/mfg.md), the same as PostgreSQL's in SQLite's types.
const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS line_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS line_rows (
    id TEXT PRIMARY KEY,
    seq INTEGER NOT NULL,
    digest TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'free'
        CHECK (state IN ('free', 'assigned', 'done', 'failed', 'in_doubt')),
    mac TEXT UNIQUE,
    station TEXT,
    port TEXT,
    holder TEXT,
    reason TEXT,
    updated_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS line_rows_free ON line_rows (seq) WHERE state = 'free';
CREATE TABLE IF NOT EXISTS line_records (
    id TEXT PRIMARY KEY,
    at TEXT NOT NULL,
    mac TEXT,
    chip TEXT,
    revision TEXT,
    flash_id TEXT,
    row_id TEXT,
    station TEXT,
    port TEXT,
    outcome TEXT NOT NULL,
    exit_code INTEGER NOT NULL,
    reason TEXT,
    image_digest TEXT,
    regions_md5 TEXT NOT NULL,
    record TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS line_records_mac ON line_records (mac);
CREATE INDEX IF NOT EXISTS line_records_row ON line_records (row_id);
CREATE INDEX IF NOT EXISTS line_records_at ON line_records (at);
";

/// A failure inside an operation: SQLite's, or the operation's own refusal.
enum Fail {
    Sql(rusqlite::Error),
    Refuse(DbError),
}

impl From<rusqlite::Error> for Fail {
    fn from(e: rusqlite::Error) -> Fail {
        Fail::Sql(e)
    }
}

/// The embedded store.
pub(crate) struct Sqlite {
    path: PathBuf,
    conn: Mutex<Connection>,
}

impl Sqlite {
    /// Opens (creating) the file at `path` and makes the tables if they are missing.
    pub(crate) fn open(path: &Path) -> Result<Sqlite, DbError> {
        let fail = |e: rusqlite::Error| DbError::Schema {
            target: format!("sqlite:{}", path.display()),
            reason: e.to_string(),
        };
        let conn = Connection::open(path).map_err(fail)?;
        conn.busy_timeout(Duration::from_secs(30)).map_err(fail)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(fail)?;
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(fail)?;
        conn.execute_batch(SCHEMA).map_err(fail)?;
        Ok(Sqlite {
            path: path.to_path_buf(),
            conn: Mutex::new(conn),
        })
    }

    fn run<T>(
        &self,
        doing: &'static str,
        op: impl FnOnce(&mut Connection) -> Result<T, Fail>,
    ) -> Result<T, DbError> {
        let mut conn = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        op(&mut conn).map_err(|e| match e {
            Fail::Refuse(e) => e,
            Fail::Sql(e) => DbError::Query {
                target: self.target(),
                doing,
                reason: e.to_string(),
            },
        })
    }
}

/// This process, as the holder of the rows it claims.
fn me() -> String {
    std::process::id().to_string()
}

/// Whether the process that claimed a row still runs.
fn holder_alive(holder: Option<&str>) -> bool {
    let Some(pid) = holder.and_then(|h| h.parse::<libc::pid_t>().ok()) else {
        return false;
    };
    // SAFETY: signal 0 only checks that the process exists.
    let r = unsafe { libc::kill(pid, 0) };
    r == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// A row's state with a claim whose process is gone shown as in doubt.
fn effective(state: String, holder: Option<&str>) -> String {
    if state == state::ASSIGNED && !holder_alive(holder) {
        state::IN_DOUBT.into()
    } else {
        state
    }
}

impl Backend for Sqlite {
    fn target(&self) -> String {
        format!("sqlite:{}", self.path.display())
    }

    fn load_rows(&self, rows: &[NewRow]) -> Result<Loaded, DbError> {
        self.run("loading rows", |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let mut loaded = Loaded::default();
            let mut next: i64 =
                tx.query_row("SELECT coalesce(max(seq), 0) + 1 FROM line_rows", [], |r| {
                    r.get(0)
                })?;
            for row in rows {
                let known: Option<String> = tx
                    .query_row(
                        "SELECT digest FROM line_rows WHERE id = ?1",
                        [&row.id],
                        |r| r.get(0),
                    )
                    .optional()?;
                match known {
                    Some(d) if d == row.digest => loaded.known += 1,
                    Some(_) => return Err(Fail::Refuse(DbError::RowChanged { id: row.id.clone() })),
                    None => {
                        tx.execute(
                            "INSERT INTO line_rows (id, seq, digest, updated_at) VALUES (?1, ?2, ?3, ?4)",
                            params![row.id, next, row.digest, crate::utc_now()],
                        )?;
                        next += 1;
                        loaded.added += 1;
                    }
                }
            }
            tx.commit()?;
            Ok(loaded)
        })
    }

    fn claim(&self, mac: &str, who: &Claimant) -> Result<Option<Claim>, DbError> {
        self.run("claiming a row", |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let bound: Option<String> = tx
                .query_row("SELECT id FROM line_rows WHERE mac = ?1", [mac], |r| {
                    r.get(0)
                })
                .optional()?;
            let (row, again) = match bound {
                Some(row) => (row, true),
                None => {
                    let free: Option<String> = tx
                        .query_row(
                            "SELECT id FROM line_rows WHERE state = 'free' ORDER BY seq LIMIT 1",
                            [],
                            |r| r.get(0),
                        )
                        .optional()?;
                    match free {
                        Some(row) => (row, false),
                        None => return Ok(None),
                    }
                }
            };
            tx.execute(
                "UPDATE line_rows SET state = 'assigned', mac = ?2, station = ?3, port = ?4, \
                 holder = ?5, reason = NULL, updated_at = ?6 WHERE id = ?1",
                params![row, mac, who.station, who.port, me(), crate::utc_now()],
            )?;
            tx.commit()?;
            Ok(Some(Claim { row, again }))
        })
    }

    fn finish(&self, row: &str, mac: &str, how: &Finish) -> Result<(), DbError> {
        let (state, reason) = how.state_and_reason();
        self.run("recording a row's outcome", |c| {
            let n = c.execute(
                "UPDATE line_rows SET state = ?3, reason = ?4, holder = NULL, updated_at = ?5 \
                 WHERE id = ?1 AND mac = ?2",
                params![row, mac, state, reason, crate::utc_now()],
            )?;
            if n == 0 {
                return Err(Fail::Refuse(DbError::NotClaimed {
                    id: row.into(),
                    mac: mac.into(),
                }));
            }
            Ok(())
        })
    }

    fn release(&self, row: &str) -> Result<(), DbError> {
        self.run("releasing a row", |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let found: Option<(String, Option<String>)> = tx
                .query_row(
                    "SELECT state, holder FROM line_rows WHERE id = ?1",
                    [row],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?;
            let Some((current, holder)) = found else {
                return Err(Fail::Refuse(DbError::NoSuchRow(row.into())));
            };
            let current = effective(current, holder.as_deref());
            if current != state::FAILED && current != state::IN_DOUBT {
                return Err(Fail::Refuse(crate::pg::not_releasable(row, &current)));
            }
            tx.execute(
                "UPDATE line_rows SET state = 'free', mac = NULL, station = NULL, port = NULL, \
                 holder = NULL, reason = NULL, updated_at = ?2 WHERE id = ?1",
                params![row, crate::utc_now()],
            )?;
            tx.commit()?;
            Ok(())
        })
    }

    fn record(&self, r: &Record) -> Result<bool, DbError> {
        self.run("storing a record", |c| {
            let n = c.execute(
                "INSERT INTO line_records (id, at, mac, chip, revision, flash_id, row_id, \
                 station, port, outcome, exit_code, reason, image_digest, regions_md5, record) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15) \
                 ON CONFLICT (id) DO NOTHING",
                params![
                    r.id,
                    r.time,
                    r.mac,
                    r.chip,
                    r.revision,
                    r.flash_id,
                    r.row,
                    r.station,
                    r.port,
                    r.outcome,
                    r.exit_code,
                    r.reason,
                    r.image_digest,
                    r.regions_md5,
                    r.json
                ],
            )?;
            Ok(n == 1)
        })
    }

    fn records(&self, q: &Query) -> Result<Vec<Record>, DbError> {
        self.run("querying records", |c| {
            let mut stmt = c.prepare(
                "SELECT id, at, mac, chip, revision, flash_id, row_id, station, port, outcome, \
                 exit_code, reason, image_digest, regions_md5, record FROM line_records \
                 WHERE (?1 IS NULL OR mac = ?1) AND (?2 IS NULL OR row_id = ?2) \
                 AND (?3 IS NULL OR at >= ?3) ORDER BY at, rowid",
            )?;
            let rows = stmt.query_map(params![q.mac, q.row, q.since], record_of)?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
    }

    fn summary(&self) -> Result<Summary, DbError> {
        self.run("counting rows", |c| {
            let mut stmt = c.prepare("SELECT id, state, holder FROM line_rows ORDER BY seq")?;
            let rows = stmt.query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, Option<String>>(2)?,
                ))
            })?;
            let mut summary = Summary::default();
            for row in rows {
                let (id, state, holder) = row?;
                match effective(state, holder.as_deref()).as_str() {
                    state::FREE => summary.free += 1,
                    state::DONE => summary.done += 1,
                    state::ASSIGNED => summary.writing += 1,
                    state::FAILED => summary.failed.push(id),
                    _ => summary.in_doubt.push(id),
                }
            }
            Ok(summary)
        })
    }

    fn import(&self, key: &str, rows: &[(String, ImportedState)]) -> Result<bool, DbError> {
        self.run("importing the journal", |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let seen: Option<i64> = tx
                .query_row("SELECT 1 FROM line_meta WHERE key = ?1", [key], |r| {
                    r.get(0)
                })
                .optional()?;
            if seen.is_some() {
                return Ok(false);
            }
            let now = crate::utc_now();
            for (id, imported) in rows {
                let (state, mac, reason) = imported.state_mac_reason();
                tx.execute(
                    "UPDATE line_rows SET state = ?2, mac = ?3, reason = ?4, station = 'journal', \
                     updated_at = ?5 WHERE id = ?1 AND state = 'free'",
                    params![id, state, mac, reason, now],
                )?;
            }
            tx.execute(
                "INSERT INTO line_meta (key, value) VALUES (?1, ?2)",
                params![key, now],
            )?;
            tx.commit()?;
            Ok(true)
        })
    }
}

fn record_of(r: &rusqlite::Row) -> rusqlite::Result<Record> {
    Ok(Record {
        id: r.get(0)?,
        time: r.get(1)?,
        mac: r.get(2)?,
        chip: r.get(3)?,
        revision: r.get(4)?,
        flash_id: r.get(5)?,
        row: r.get(6)?,
        station: r.get(7)?,
        port: r.get(8)?,
        outcome: r.get(9)?,
        exit_code: r.get(10)?,
        reason: r.get(11)?,
        image_digest: r.get(12)?,
        regions_md5: r.get(13)?,
        json: r.get(14)?,
    })
}
