//! The views on a station: [`http`] serves the page, its events, `/api/state` and `/metrics`
//! ([`metrics`]); [`term`] draws the ports on a terminal, or prints one line per event.

pub mod http;
pub mod metrics;
pub mod term;

use crate::model::{PortState, Tile};
use crate::pipeline::Phase;

/// A tile's state in words: `waiting`, `writing 45 %`, `PASS`, `FAIL: reason`.
pub fn state_text(tile: &Tile) -> String {
    match &tile.state {
        PortState::Busy(Phase::Writing { percent }) => format!("writing {percent} %"),
        PortState::Busy(Phase::BootCheck) => "boot check".into(),
        PortState::Pass => "PASS".into(),
        PortState::Fail { reason } => format!("FAIL: {reason}"),
        other => other.word().into(),
    }
}

/// The last path component of a port (`ttyUSB0`).
pub fn short_name(port: &str) -> &str {
    port.rsplit('/').next().unwrap_or(port)
}
