//! A manufacturing station that runs all shift: boards are written as they are plugged in
//! (or as a jig closes on them), each through the one-board pipeline of a one-shot run, and
//! the line sees each port's state live.
//!
//! The crate is generic over that pipeline: the flasher implements [`Pipeline`] (scan the
//! ports, run one board while reporting its [`Phase`]s to an [`Observer`], identify a board
//! without writing, the rows left), so the station knows nothing of devices, and the device
//! code nothing of stations.
//!
//! * [`run()`] is the loop: it polls the ports, starts each board that appears on its own
//!   thread, waits for it to be taken away (or, on a jig, for another board), and stops on
//!   [`Stop`] (SIGTERM, SIGINT).
//! * [`Hub`] holds the state the views show: a [`Tile`] per port, the shift's [`Counts`],
//!   the last records.
//! * [`view`] shows a [`Snapshot`] of it: an HTTP server (`view::http`: the page, server-sent
//!   events, `/api/state`, `/metrics`) and the terminal (`view::term`).
#![warn(missing_docs)]

mod model;
mod pipeline;
mod run;
mod stop;
pub mod view;

pub use model::{Counts, Hub, LAST_RECORDS, PortState, Snapshot, Tile};
pub use pipeline::{BoardRecord, Observer, Outcome, Phase, Pipeline};
pub use run::{Config, Shift, run};
pub use stop::Stop;
