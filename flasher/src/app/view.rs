//! The views of a `--station`: the terminal (a table on a terminal, else a line per event)
//! and, with `--listen`, the HTTP server.

use std::io::IsTerminal;
use std::sync::Arc;

use anyhow::Context;
use station::Hub;
use station::view::http::Server;
use station::view::term::Terminal;

use crate::cli::Args;

/// The views running while they live.
pub(super) struct Views {
    _server: Option<Server>,
    _terminal: Terminal,
}

/// Starts the views of `args` on `hub`: the HTTP server first, so that a port that cannot be
/// listened on stops the station before any board.
pub(super) fn start(args: &Args, hub: &Arc<Hub>) -> anyhow::Result<Views> {
    let server = match args.station.listen {
        Some(addr) => {
            let server = Server::start(addr, hub.clone()).with_context(|| {
                format!("cannot listen on {addr} (--listen); pass a free HOST:PORT")
            })?;
            eprintln!("station: the live view is at http://{}/", server.addr());
            Some(server)
        }
        None => None,
    };
    let table = std::io::stderr().is_terminal();
    Ok(Views {
        _server: server,
        _terminal: Terminal::start(hub.clone(), table),
    })
}
