//! The phases of writing a board, reported to whoever listens (a station's view): the device
//! code says where it is and knows nothing of who listens.

use std::fmt;
use std::sync::Arc;

/// Where the writing of a board is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Opening the port, resetting the board into its loader, syncing.
    Connecting,
    /// Erasing what the plan erases before writing.
    Erasing,
    /// Writing; `percent` of the plan's bytes are on the board.
    Writing {
        /// 0 to 100.
        percent: u8,
    },
    /// Checking every region's MD5.
    Verifying,
    /// Watching the board start after its reset.
    BootCheck,
}

/// Who listens to a board's phases.
pub trait PhaseObserver: Send + Sync {
    /// The board entered `phase`.
    fn phase(&self, phase: Phase);
    /// The board said what it is.
    fn identified(&self, chip: &str, mac: &str);
}

/// The observer a [`Console`](super::Console) passes phases to.
#[derive(Clone)]
pub(super) struct Observer(pub(super) Arc<dyn PhaseObserver>);

impl fmt::Debug for Observer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Observer")
    }
}
