//! What the station needs from the one-board pipeline: the ports there are now, one board run
//! on a port while its phases are reported, a board's identity read without writing, and the
//! rows left. The flasher implements [`Pipeline`]; the station knows nothing of devices.

use std::sync::Arc;

use serde::Serialize;

/// A phase of one board's run, as the pipeline reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "phase", rename_all = "snake_case")]
pub enum Phase {
    /// Opening the port, resetting the board into its loader, syncing.
    Connecting,
    /// Erasing what the plan erases before writing.
    Erasing,
    /// Writing the plan; `percent` of its bytes are on the board.
    Writing {
        /// 0 to 100.
        percent: u8,
    },
    /// Checking every region's MD5.
    Verifying,
    /// Watching the board start after its reset (`--expect`).
    BootCheck,
}

/// Who listens to one board's run.
pub trait Observer: Send + Sync {
    /// The board entered `phase`.
    fn phase(&self, phase: Phase);
    /// The board said what it is: its chip and MAC.
    fn identified(&self, chip: &str, mac: &str);
}

/// Whether a board ended written and checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Written, verified (and booted, when that was checked).
    Pass,
    /// Not written, or written wrong: the record's error says why.
    Fail,
}

/// The record of one board's run, as the pipeline made it (and logged it).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BoardRecord {
    /// The port the board was on.
    pub port: String,
    /// Pass or fail.
    pub outcome: Outcome,
    /// The exit code this board alone would give (0 when it passed).
    pub exit_code: u8,
    /// The one-line reason and fix, when it failed.
    pub error: Option<String>,
    /// The chip, once identified.
    pub chip: Option<String>,
    /// The board's MAC, once identified.
    pub mac: Option<String>,
    /// The per-board data row written to it, if any.
    pub row: Option<String>,
    /// When the record was made, UTC, RFC 3339.
    pub time: String,
    /// Seconds from the board's start to its record.
    pub seconds: f64,
}

impl BoardRecord {
    /// Whether the board passed.
    pub fn passed(&self) -> bool {
        self.outcome == Outcome::Pass
    }
}

/// The one-board pipeline the station runs on each board that appears.
pub trait Pipeline: Send + Sync {
    /// The ports that match the station's `--port` values now, in a stable order.
    fn scan(&self) -> Vec<String>;
    /// Runs one board on `port` through the whole one-shot pipeline, reporting its phases to
    /// `observer`, and returns its record (already logged by the pipeline).
    fn run(&self, port: &str, observer: Arc<dyn Observer>) -> BoardRecord;
    /// The MAC of the board on `port`, read without writing anything, or `None` when no board
    /// answers (an empty jig).
    fn identify(&self, port: &str) -> Option<String>;
    /// The per-board data rows still free, when the station hands rows out.
    fn rows_left(&self) -> Option<u64>;
}
