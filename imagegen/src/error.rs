//! Typed errors. Each message names the file at fault and how to fix it, on one line.

use std::io;
use std::path::{Path, PathBuf};

/// Everything that can stop an image build.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file that cannot be read.
    #[error("{}: cannot read it ({source}): check the path and its permissions", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// An input that is present but wrong.
    #[error("{}: {problem}: {fix}", path.display())]
    Input {
        /// The file (or directory) at fault.
        path: PathBuf,
        /// What is wrong with it.
        problem: String,
        /// What to do about it.
        fix: String,
    },
    /// Two targets with the same name.
    #[error(
        "duplicate target '{0}': each target needs its own name; name them with --target NAME=DIR (e.g. esp32s3=... and esp32s3r8=...)"
    )]
    DuplicateTarget(String),
    /// Options that do not make sense together or are missing.
    #[error("{0}")]
    Usage(String),
    /// A registry refused or could not be reached.
    #[error("{registry}: {problem}: {fix}")]
    Registry {
        /// The registry (`host[:port]`), with the repository when it matters.
        registry: String,
        /// What went wrong.
        problem: String,
        /// What to do about it.
        fix: String,
    },
    /// Signatures that are missing or do not verify (exit code 3).
    #[error("{0}")]
    Unverified(String),
    /// The output cannot be written.
    #[error("{}: cannot write ({source}): check that the parent directory exists and is writable", path.display())]
    Write {
        /// The output path.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
}

impl Error {
    /// An [`Error::Input`] for `path`.
    pub fn input(path: &Path, problem: impl Into<String>, fix: impl Into<String>) -> Error {
        Error::Input {
            path: path.to_path_buf(),
            problem: problem.into(),
            fix: fix.into(),
        }
    }

    /// The process exit code for this error: 3 for [`Error::Unverified`], else 1.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Unverified(_) => 3,
            _ => 1,
        }
    }

    /// An [`Error::Write`] for `path`.
    pub fn write(path: &Path, source: io::Error) -> Error {
        Error::Write {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// Result with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Reads a whole file, naming it on failure.
pub fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|source| Error::Read {
        path: path.to_path_buf(),
        source,
    })
}
