//! Writing a [`Plan`](crate::plan::Plan) to a board through espflash: connect, identify,
//! refuse the wrong board, write every region in one pass (compressed, in chunks, skipping
//! chunks already in place, verifying each by MD5), check every region's MD5 once more, reset.
//!
//! A failed attempt (lost, garbled or refused packets, a timeout, an MD5 that differs) is
//! retried a bounded number of times on a new connection; a line that fails while writing steps
//! the baud rate down first. Chunks already correct on the board are skipped by MD5, so a retry,
//! or the same run started again, writes only what is missing or wrong.
//!
//! * [`write`](fn@write) (in `retry`) is the entry point: attempts, rate steps, caught panics.
//! * `attempt` is one attempt as its phases, each a method of a `Session` (one connection):
//!   `connect` (open, reset into the loader, sync, stub; the final reset), `identify` (what the
//!   board is, and whether it is the one asked for), `write` (the chunked, MD5-checked write
//!   and the final check of every region), `untouched` (`--check-untouched`: the flash outside
//!   the plan hashed before writing and after the final check).
//! * [`info`] reads what a board is for `--info`, writing nothing; [`psram`] reads the
//!   PSRAM eFuses and checks a PSRAM target against them.
//! * [`boot`] watches the board's output after the final reset (`--expect`, `--monitor`).
//! * `erase` erases what the plan says before writing, and checks it afterwards.
//! * `security` handles secured boards: Secure Download Mode (identified from the security
//!   info, written through the ROM), Secure Boot (unsigned images and untrusted keys refused)
//!   and flash encryption (refused), all before anything is written.
//! * `chunk` cuts the plan into [`CHUNK`]s, `progress` shows them being written, [`Console`]
//!   is where a board's lines and bar go, `failure` says what a failure means for a retry.

mod attempt;
pub mod boot;
mod chunk;
mod connect;
mod console;
mod erase;
mod failure;
mod identify;
pub mod info;
mod options;
mod progress;
pub mod psram;
mod retry;
mod security;
mod session;
mod untouched;
mod write;

pub use chunk::CHUNK;
pub use connect::ROM_BAUD;
pub use console::Console;
pub use options::{Contact, Options, Outcome};
pub use retry::{AUTO_BAUDS, MAX_ATTEMPTS, write};
pub use untouched::{Gap, Untouched, gaps};
