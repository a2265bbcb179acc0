//! Writing a [`Plan`](crate::plan::Plan) to a board through espflash: connect, identify,
//! refuse the wrong board, write every region in one pass (compressed, in chunks, skipping
//! chunks already in place, verifying each by MD5), check every region's MD5 once more, reset.
//!
//! A failed attempt (lost, garbled or refused packets, a timeout, an MD5 that differs) is
//! retried a bounded number of times on a new connection; a line that fails while writing steps
//! the baud rate down first. Chunks already correct on the board are skipped by MD5, so a retry,
//! or the same run started again, writes only what is missing or wrong.
//!
//! * [`write`] (in `retry`) is the entry point: attempts, rate steps, caught panics.
//! * `attempt` is one attempt as its phases, each a method of a `Session` (one connection):
//!   `connect` (open, reset into the loader, sync, stub; the final reset), `identify` (what the
//!   board is, and whether it is the one asked for), `write` (the chunked, MD5-checked write
//!   and the final check of every region), `untouched` (`--check-untouched`: the flash outside
//!   the plan hashed before writing and after the final check).
//! * `chunk` cuts the plan into [`CHUNK`]s, `progress` shows them being written, [`Console`]
//!   is where a board's lines and bar go, `failure` says what a failure means for a retry.

mod attempt;
mod chunk;
mod connect;
mod console;
mod failure;
mod identify;
mod options;
mod progress;
mod retry;
mod session;
mod untouched;
mod write;

pub use chunk::CHUNK;
pub use connect::ROM_BAUD;
pub use console::Console;
pub use options::{Contact, Options, Outcome};
pub use retry::{AUTO_BAUDS, MAX_ATTEMPTS, write};
pub use untouched::{Gap, Untouched, gaps};
