//! Records kept on the station's disk while the database is away, sent when it is back.
//!
//! Each record is one file `<id>.json` in the spool directory, written to a temporary file,
//! synced, renamed and the directory synced: a record is either whole on disk or not there.
//! [`Spool::send`] stores each (the store keeps a record id once, so a record sent twice, or
//! sent and then found again after a crash, is kept once) and then removes its file. A record
//! with a row also finishes that row (done when the board is ok, else failed), since the
//! database was away when its board finished.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::{DbError, Finish, Record, Store};

/// A directory of records not yet in the database.
#[derive(Debug, Clone)]
pub struct Spool {
    dir: PathBuf,
}

/// Why the spool failed.
#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    /// The spool directory or a file in it.
    #[error("spool {path}: {source}; check that the directory is writable")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// A spooled file that is not a record.
    #[error("spool {path}: not a record ({reason}); move it away")]
    Bad {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The database refused or was away.
    #[error(transparent)]
    Db(#[from] DbError),
}

impl Spool {
    /// The spool in `dir` (made when the first record is kept).
    pub fn new(dir: &Path) -> Spool {
        Spool {
            dir: dir.to_path_buf(),
        }
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Keeps `record` on disk (synced) and returns its file.
    pub fn keep(&self, record: &Record) -> Result<PathBuf, SpoolError> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| SpoolError::Io { path, source }
        };
        fs::create_dir_all(&self.dir).map_err(io(&self.dir))?;
        let path = self.dir.join(format!("{}.json", record.id));
        let tmp = self.dir.join(format!(".{}.tmp", record.id));
        let bytes = serde_json::to_vec(record).expect("a record serializes");
        let mut file = fs::File::create(&tmp).map_err(io(&tmp))?;
        file.write_all(&bytes).map_err(io(&tmp))?;
        file.sync_all().map_err(io(&tmp))?;
        fs::rename(&tmp, &path).map_err(io(&path))?;
        fs::File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(io(&self.dir))?;
        Ok(path)
    }

    /// The records waiting, oldest file name first.
    pub fn pending(&self) -> Result<Vec<(PathBuf, Record)>, SpoolError> {
        let entries = match fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => {
                return Err(SpoolError::Io {
                    path: self.dir.clone(),
                    source,
                });
            }
        };
        let mut paths: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| {
                p.extension().is_some_and(|x| x == "json")
                    && !p
                        .file_name()
                        .is_some_and(|n| n.to_string_lossy().starts_with('.'))
            })
            .collect();
        paths.sort();
        paths
            .into_iter()
            .map(|path| {
                let text = fs::read(&path).map_err(|source| SpoolError::Io {
                    path: path.clone(),
                    source,
                })?;
                let record = serde_json::from_slice(&text).map_err(|e| SpoolError::Bad {
                    path: path.clone(),
                    reason: e.to_string(),
                })?;
                Ok((path, record))
            })
            .collect()
    }

    /// Sends every waiting record to `store`, removing each file once stored; returns how many
    /// were sent. Stops at the first failure (the rest stay for the next time).
    pub fn send(&self, store: &Store) -> Result<usize, SpoolError> {
        let mut sent = 0;
        for (path, record) in self.pending()? {
            finish_row(store, &record)?;
            store.record(&record)?;
            fs::remove_file(&path).map_err(|source| SpoolError::Io {
                path: path.clone(),
                source,
            })?;
            sent += 1;
        }
        Ok(sent)
    }
}

/// Finishes the row of a spooled record, unless the row has moved on since (released, or
/// claimed again by its board).
fn finish_row(store: &Store, record: &Record) -> Result<(), DbError> {
    let (Some(row), Some(mac)) = (&record.row, &record.mac) else {
        return Ok(());
    };
    let how = if record.exit_code == 0 {
        Finish::Done
    } else {
        Finish::Failed(record.reason.clone().unwrap_or_else(|| "failed".into()))
    };
    match store.finish(row, mac, &how) {
        Err(DbError::NotClaimed { .. }) => Ok(()),
        other => other,
    }
}
