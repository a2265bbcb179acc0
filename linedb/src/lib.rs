//! The line's database: the pool of per-board value rows and one record of every board.
//!
//! A [`Store`] is opened once from a URL ([`Store::open`]): `postgres://…` for a line of
//! stations sharing one PostgreSQL server, `sqlite:PATH` (or a plain path) for the embedded
//! default of one station. Both speak the same interface:
//!
//! * [`Store::load_rows`] loads a values file's rows, each as its id and a digest of its values
//!   (the values themselves never reach the database). Loading is idempotent; a known id that
//!   comes back with other values is refused, naming the id.
//! * [`Store::claim`] hands a free row to a board by its MAC, exactly once across every process
//!   on the store (one transaction: `FOR UPDATE SKIP LOCKED` on PostgreSQL, an `IMMEDIATE`
//!   transaction on SQLite). The MAC is bound to its row: the same MAC gets the same row back.
//! * [`Store::finish`] moves a claimed row to done, failed or in doubt; [`Store::release`] gives
//!   a failed or in-doubt row back.
//! * [`Store::record`] keeps one board's record (its fields as columns, the whole record as
//!   JSON) exactly once by the record's id; [`Store::records`] queries them.
//! * [`Store::summary`] counts the rows by state.
//!
//! [`spool`] keeps records on the station's disk while the database is away.
//! The schema is documented in docs/mfg.md.

#![warn(missing_docs)]

mod conninfo;
mod pg;
pub mod spool;
mod sqlite;

use std::path::PathBuf;

/// Why the store refused or failed an operation.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The URL cannot be used.
    #[error("--db {url}: {reason}")]
    Url {
        /// The URL, without any password.
        url: String,
        /// What is wrong and how to fix it.
        reason: String,
    },
    /// The database cannot be reached (down, restarting, network away).
    #[error("the database {target} cannot be reached: {reason}")]
    Unavailable {
        /// Where the database is.
        target: String,
        /// The client's reason.
        reason: String,
    },
    /// The server refused the connection (wrong password, unknown user or database).
    #[error("the database {target} refused the connection: {reason}")]
    Refused {
        /// Where the database is.
        target: String,
        /// The server's reason and the fix.
        reason: String,
    },
    /// The tables are missing and cannot be created, or are not the line's.
    #[error("the database {target} has no usable line tables: {reason}")]
    Schema {
        /// Where the database is.
        target: String,
        /// The server's reason.
        reason: String,
    },
    /// A row loaded again with values other than the ones it was first loaded with.
    #[error(
        "row `{id}` is already in the database with other values; a row id names one row for good: give the changed row a new id"
    )]
    RowChanged {
        /// The row's id.
        id: String,
    },
    /// A row id not in the database.
    #[error("row `{0}` is not in the database; use a row id of the loaded values")]
    NoSuchRow(String),
    /// `release` of a row that is free, done or still being written.
    #[error(
        "row `{id}` is {state}; only a failed or in-doubt row can be given back (check `flasher records --row {id}`)"
    )]
    NotReleasable {
        /// The row's id.
        id: String,
        /// Its state.
        state: String,
    },
    /// The finish of a row that is not claimed by that MAC.
    #[error("row `{id}` is not claimed by board {mac}, so its outcome was not recorded")]
    NotClaimed {
        /// The row's id.
        id: String,
        /// The board's MAC.
        mac: String,
    },
    /// Any other failure of a statement.
    #[error("the database {target} failed {doing}: {reason}")]
    Query {
        /// Where the database is.
        target: String,
        /// What was being done.
        doing: &'static str,
        /// The database's reason.
        reason: String,
    },
}

impl DbError {
    /// Whether the database was away: the operation may succeed later, unchanged.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, DbError::Unavailable { .. })
    }
}

/// A row of a values file as the database knows it: its id and a digest of its values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRow {
    /// The row's id (the values file's first column).
    pub id: String,
    /// A digest of the row's values (hex SHA-256), to refuse an id that comes back changed.
    pub digest: String,
}

/// What [`Store::load_rows`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Loaded {
    /// Rows new to the database.
    pub added: usize,
    /// Rows it had already, with the same values.
    pub known: usize,
}

/// A row handed to a board.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    /// The row's id.
    pub row: String,
    /// Whether the MAC had this row already (a board that came back).
    pub again: bool,
}

/// Who claims a row: the station and the port of the board.
#[derive(Debug, Clone, Default)]
pub struct Claimant {
    /// The station's name.
    pub station: String,
    /// The board's port.
    pub port: String,
}

/// How a claimed row ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finish {
    /// Written and verified.
    Done,
    /// Writing failed; the row goes to no other board until released.
    Failed(String),
    /// The board may or may not hold the row; the row goes to no other board until released.
    InDoubt(String),
}

/// One board's record: the fields asked most often as columns, and the whole record as JSON.
/// Records hold row ids, never row values.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Record {
    /// A random id made once per record ([`new_record_id`]): a record sent twice is kept once.
    pub id: String,
    /// When the board finished (RFC 3339 UTC).
    pub time: String,
    /// The board's MAC.
    pub mac: Option<String>,
    /// The chip.
    pub chip: Option<String>,
    /// The chip revision.
    pub revision: Option<String>,
    /// The flash chip's id.
    pub flash_id: Option<String>,
    /// The value row written to the board.
    pub row: Option<String>,
    /// The station's name.
    pub station: Option<String>,
    /// The board's port.
    pub port: Option<String>,
    /// `ok` or `failed`.
    pub outcome: String,
    /// The board's exit code.
    pub exit_code: i32,
    /// Why it failed.
    pub reason: Option<String>,
    /// The digest of the image the firmware came from.
    pub image_digest: Option<String>,
    /// Every region's MD5, as a JSON object from region label to hex MD5.
    pub regions_md5: String,
    /// The whole record as JSON (what `--report-append` writes).
    pub json: String,
}

/// Which records [`Store::records`] returns, oldest first (by time, then in the order they
/// were stored).
#[derive(Debug, Clone, Default)]
pub struct Query {
    /// Only this MAC's.
    pub mac: Option<String>,
    /// Only this row's.
    pub row: Option<String>,
    /// Only records from this time on (RFC 3339, or a date `YYYY-MM-DD`).
    pub since: Option<String>,
}

/// The rows by state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    /// Rows written to their board.
    pub done: usize,
    /// Rows whose board failed.
    pub failed: Vec<String>,
    /// Rows claimed by a station that went away, or finished in doubt.
    pub in_doubt: Vec<String>,
    /// Rows claimed and being written now.
    pub writing: usize,
    /// Rows no board has.
    pub free: usize,
}

/// Where a row of an imported journal stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImportedState {
    /// Not assigned.
    Free,
    /// Written to the board with this MAC.
    Done(String),
    /// Failed, with the reason.
    Failed(String),
    /// Assigned and never finished.
    InDoubt,
}

/// The store: one database, embedded or PostgreSQL, behind one interface. Shared by the
/// station's board threads (`Send + Sync`).
pub struct Store {
    backend: Box<dyn Backend>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("target", &self.backend.target())
            .finish()
    }
}

/// What each database implements; [`Store`] dispatches to it.
trait Backend: Send + Sync {
    fn target(&self) -> String;
    fn load_rows(&self, rows: &[NewRow]) -> Result<Loaded, DbError>;
    fn claim(&self, mac: &str, who: &Claimant) -> Result<Option<Claim>, DbError>;
    fn finish(&self, row: &str, mac: &str, how: &Finish) -> Result<(), DbError>;
    fn release(&self, row: &str) -> Result<(), DbError>;
    fn record(&self, record: &Record) -> Result<bool, DbError>;
    fn records(&self, query: &Query) -> Result<Vec<Record>, DbError>;
    fn summary(&self) -> Result<Summary, DbError>;
    fn import(&self, key: &str, rows: &[(String, ImportedState)]) -> Result<bool, DbError>;
}

impl Store {
    /// Opens the database at `url` and makes its tables if they are missing:
    /// `postgres://[user@]host[:port]/db[?sslmode=verify-full&sslrootcert=FILE]` (the password
    /// from `PGPASSWORD` or `~/.pgpass`, never the URL), `postgresql://…` alike, or
    /// `sqlite:PATH` / a plain path for the embedded database.
    pub fn open(url: &str) -> Result<Store, DbError> {
        let backend: Box<dyn Backend> = match conninfo::parse(url)? {
            conninfo::Target::Sqlite(path) => Box::new(sqlite::Sqlite::open(&path)?),
            conninfo::Target::Postgres(info) => Box::new(pg::Postgres::open(*info)?),
        };
        Ok(Store { backend })
    }

    /// The embedded database's default path for a values file: beside it, `VALUES.db`.
    pub fn default_path(values: &std::path::Path) -> PathBuf {
        let mut name = values.file_name().unwrap_or_default().to_os_string();
        name.push(".db");
        values.with_file_name(name)
    }

    /// Where the database is, without any password (for messages).
    pub fn target(&self) -> String {
        self.backend.target()
    }

    /// Loads `rows` (idempotent); a known id with another digest is refused with its id, and
    /// then nothing is loaded.
    pub fn load_rows(&self, rows: &[NewRow]) -> Result<Loaded, DbError> {
        self.backend.load_rows(rows)
    }

    /// The row of the board with `mac`: the one it has already, else the first free row (in
    /// load order), claimed in one transaction. `None` when no row is left.
    pub fn claim(&self, mac: &str, who: &Claimant) -> Result<Option<Claim>, DbError> {
        self.backend.claim(mac, who)
    }

    /// Moves `row`, claimed by `mac`, to done, failed or in doubt.
    pub fn finish(&self, row: &str, mac: &str, how: &Finish) -> Result<(), DbError> {
        self.backend.finish(row, mac, how)
    }

    /// Gives a failed or in-doubt `row` back: free again, bound to no MAC.
    pub fn release(&self, row: &str) -> Result<(), DbError> {
        self.backend.release(row)
    }

    /// Keeps `record`; `false` when a record with its id is there already.
    pub fn record(&self, record: &Record) -> Result<bool, DbError> {
        self.backend.record(record)
    }

    /// The records that match `query`, oldest first.
    pub fn records(&self, query: &Query) -> Result<Vec<Record>, DbError> {
        self.backend.records(query)
    }

    /// The rows by state.
    pub fn summary(&self) -> Result<Summary, DbError> {
        self.backend.summary()
    }

    /// Imports the row states of a journal once: `key` names the journal, and a second import
    /// under the same key changes nothing (`false`). Rows must be loaded first.
    pub fn import_journal(
        &self,
        key: &str,
        rows: &[(String, ImportedState)],
    ) -> Result<bool, DbError> {
        self.backend.import(key, rows)
    }
}

/// A new random record id (128 bits, as a UUID version 4 in text).
pub fn new_record_id() -> String {
    let mut b = [0u8; 16];
    getrandom::getrandom(&mut b).expect("the system's random source works");
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

/// Now, as RFC 3339 UTC.
fn utc_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    firmware::time::rfc3339(i64::try_from(secs).unwrap_or(i64::MAX))
}

/// The state names the tables use.
mod state {
    pub const FREE: &str = "free";
    pub const ASSIGNED: &str = "assigned";
    pub const DONE: &str = "done";
    pub const FAILED: &str = "failed";
    pub const IN_DOUBT: &str = "in_doubt";
}

impl Finish {
    fn state_and_reason(&self) -> (&'static str, Option<&str>) {
        match self {
            Finish::Done => (state::DONE, None),
            Finish::Failed(r) => (state::FAILED, Some(r)),
            Finish::InDoubt(r) => (state::IN_DOUBT, Some(r)),
        }
    }
}

impl ImportedState {
    fn state_mac_reason(&self) -> (&'static str, Option<&str>, Option<&str>) {
        match self {
            ImportedState::Free => (state::FREE, None, None),
            ImportedState::Done(mac) => (state::DONE, Some(mac), None),
            ImportedState::Failed(r) => (state::FAILED, None, Some(r)),
            ImportedState::InDoubt => (
                state::IN_DOUBT,
                None,
                Some("assigned in the journal and never finished"),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_ids_are_version_4_uuids_and_differ() {
        let (a, b) = (new_record_id(), new_record_id());
        assert_ne!(a, b);
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "4");
    }

    #[test]
    fn the_embedded_default_sits_beside_the_values() {
        assert_eq!(
            Store::default_path(std::path::Path::new("/line/values.csv")),
            PathBuf::from("/line/values.csv.db")
        );
    }
}
