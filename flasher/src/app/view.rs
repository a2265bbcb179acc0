//! The views of a `--station`: the terminal (a table on a terminal, else a line per event)
//! and, with `--listen`, the HTTP server.

use std::io::IsTerminal;
use std::sync::Arc;

use station::Hub;
use station::view::term::Terminal;

use crate::cli::Args;

/// The views running while they live.
pub(super) struct Views {
    _terminal: Terminal,
}

/// Starts the views of `args` on `hub`.
pub(super) fn start(_args: &Args, hub: &Arc<Hub>) -> anyhow::Result<Views> {
    let table = std::io::stderr().is_terminal();
    Ok(Views {
        _terminal: Terminal::start(hub.clone(), table),
    })
}
