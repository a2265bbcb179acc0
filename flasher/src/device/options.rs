//! What the caller says about writing a board, and what it gets back.

use std::time::Duration;

use std::sync::Arc;

use crate::cli::{After, Before};
use crate::error::ExitKind;
use crate::plan::Plan;
use crate::report::{DeviceReport, LineReport};

use super::boot::{BootRecord, BootWatch};
use super::console::Console;
use super::secure::{Secure, SecureProgress};
use super::stream::Streams;

/// What the flash outside the plan is expected to hold after the write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Untouched {
    /// What it held before: each gap is hashed before writing, then after.
    Unchanged,
    /// All 0xFF (the whole flash was erased first): only the pass after writing is needed.
    Erased,
}

/// A range of flash no region of the plan covers, with the MD5 it must have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gap {
    /// First byte.
    pub offset: u32,
    /// Length in bytes.
    pub len: u32,
    /// The MD5 it must still have.
    pub md5: u128,
}

/// How to talk to the board.
#[derive(Debug, Clone)]
pub struct Options {
    /// Pinned baud rate, or `None` to step down from 921600 as needed.
    pub baud: Option<u32>,
    /// How to enter download mode.
    pub before: Before,
    /// What to do after writing.
    pub after: After,
    /// Verify each region by MD5 after writing.
    pub verify: bool,
    /// Skip regions whose MD5 already matches (and start a region after the part of it that
    /// is on the board already).
    pub skip: bool,
    /// Where progress goes.
    pub console: Console,
    /// What to watch after the final reset (`--expect`, `--monitor`).
    pub boot: Option<BootWatch>,
    /// Check that the flash outside the plan is as expected after writing
    /// (`--check-untouched`), or `None`.
    pub check_untouched: Option<Untouched>,
    /// The regions' compressed streams, made once and shared by every board and attempt.
    pub streams: Arc<Streams>,
    /// Secure production (`--security`): the profile and this board's key, or `None`.
    pub secure: Option<Secure>,
    /// The plan of this board, asked for once it is identified (per-board data); `None`
    /// writes the plan given to [`write`](fn@super::write).
    pub per_board: Option<PerBoard>,
}

/// What a board is, once identified: what a [`PerBoard`] hook is given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The board's MAC (`aa:bb:cc:dd:ee:ff`), when it tells it.
    pub mac: Option<String>,
    /// The chip, as recorded (`esp32s3`).
    pub chip: String,
}

/// Why a [`PerBoard`] hook refuses a board: nothing is written to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The exit code's kind.
    pub kind: ExitKind,
    /// One line: what is wrong and what to do.
    pub message: String,
}

/// The function that gives each board its own plan once the board is identified (connected,
/// chip and MAC read, checked against the plan given to [`write`](fn@super::write)), before
/// anything is written. It is called again on each retry attempt and must then give the same
/// board the same plan. The device code knows nothing of what makes the plans differ.
pub type PlanFor = dyn Fn(&Identity) -> Result<Arc<Plan>, Refusal> + Send + Sync;

/// A shared [`PlanFor`] hook.
#[derive(Clone)]
pub struct PerBoard(pub Arc<PlanFor>);

impl PerBoard {
    /// The hook `f`.
    pub fn new(
        f: impl Fn(&Identity) -> Result<Arc<Plan>, Refusal> + Send + Sync + 'static,
    ) -> Self {
        PerBoard(Arc::new(f))
    }

    /// The plan of the board `identity`.
    pub fn plan_for(&self, identity: &Identity) -> Result<Arc<Plan>, Refusal> {
        (self.0)(identity)
    }
}

impl std::fmt::Debug for PerBoard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PerBoard(..)")
    }
}

impl Options {
    /// Whether the board is taken as synced already (`--before no-reset-no-sync`): no stub,
    /// no flash detection.
    pub fn no_sync(&self) -> bool {
        self.before == Before::NoResetNoSync
    }

    /// Whether espflash loads its flasher stub (every mode but `no-reset-no-sync`).
    pub fn use_stub(&self) -> bool {
        !self.no_sync()
    }
}

/// What a successful write did.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// Per region of the plan, whether it was already on the board (nothing sent).
    pub skipped: Vec<bool>,
    /// Time to connect and identify the board (last attempt).
    pub connect: Duration,
    /// Time to write and verify (last attempt).
    pub write: Duration,
    /// What the board's record should warn about (a failed reset, retries not checked for
    /// stray writes).
    pub warnings: Vec<String>,
}

/// What is known about a board so far, kept across attempts and on failure.
#[derive(Debug, Clone, Default)]
pub struct Contact {
    /// What the board reported, once identified.
    pub device: Option<DeviceReport>,
    /// Attempts made.
    pub attempts: u32,
    /// What the board printed after its reset, when it was watched.
    pub boot: Option<BootRecord>,
    /// With `--check-untouched`, the gaps between regions and the MD5 each must keep, taken
    /// before the first write of the first attempt that got that far.
    pub untouched: Option<Vec<Gap>>,
    /// What the line cost: blocks sent again, streams taken up again, rate steps.
    pub line: LineReport,
    /// Per region, the bytes the board has received so far (where a later attempt may take the
    /// region up, once an MD5 says they are there).
    pub received: Vec<usize>,
    /// Line errors recovered from in the current attempt.
    pub recoveries: u32,
    /// With `--security`, what was burned so far and the key being burned.
    pub secure: SecureProgress,
    /// The plan [`Options::per_board`] gave this board (the one written), once asked.
    pub plan: Option<Arc<Plan>>,
}
