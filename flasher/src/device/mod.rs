//! Writing a [`Plan`](crate::plan::Plan) to a board through espflash: connect, identify,
//! refuse the wrong board, write each region as one compressed stream (skipping a region
//! already in place, starting one after the part of it already there), check every region's
//! MD5 once after the last, reset.
//!
//! A line error while writing costs as little as it can: a block the board refuses is sent
//! again, a stream that breaks is taken up where the board holds it (one MD5 says so), all at
//! the same rate and on the same connection. When that does not help, the attempt fails and
//! is retried a bounded number of times on a new connection, once at the same rate, then a
//! rate lower; what the board holds already is not written again.
//!
//! * [`write`](fn@write) (in `retry`) is the entry point: attempts, rates, caught panics.
//! * `attempt` is one attempt as its phases, each a method of a `Session` (one connection):
//!   `connect` (open, reset into the loader, sync, stub; the final reset), `identify` (what the
//!   board is, and whether it is the one asked for), `write` (the streams, their recoveries
//!   and the final check of every region), `untouched` (`--check-untouched`: the flash outside
//!   the plan hashed before writing and after the final check).
//! * `stream` compresses a region into the blocks sent ([`Streams`] keeps them for every board
//!   and attempt); `progress` shows them going out; [`Console`] is where a board's lines and
//!   bar go; `failure` says what a failure means for a retry.
//! * [`info`] reads what a board is for `--info`, writing nothing; [`psram`] reads the
//!   PSRAM eFuses and checks a PSRAM target against them.
//! * [`boot`] watches the board's output after the final reset (`--expect`, `--monitor`).
//! * `erase` erases what the plan says before writing, and checks it afterwards.
//! * `security` handles secured boards: Secure Download Mode (identified from the security
//!   info, written through the ROM), Secure Boot (unsigned images and untrusted keys refused)
//!   and flash encryption (refused), all before anything is written.
//! * `secure` is secure production (`--security`): keys and digests burned into the eFuses
//!   (`efuse`), the regions encrypted on the host, the crypt counter and release fuses last.

mod attempt;
pub mod boot;
mod connect;
mod console;
mod efuse;
mod erase;
mod failure;
mod identify;
pub mod info;
mod options;
mod phase;
mod progress;
pub mod psram;
mod retry;
mod secure;
mod security;
mod session;
mod stream;
mod untouched;
mod write;

pub use connect::ROM_BAUD;
pub use console::Console;
pub use options::{
    Contact, Gap, Identity, Options, Outcome, PerBoard, PlanFor, Refusal, Untouched,
};
pub use phase::{Phase, PhaseObserver};
pub use retry::{AUTO_BAUDS, MAX_ATTEMPTS, write};
pub use secure::{
    EncryptedRegion, FuseRecord, KeyBlockRecord, Secure, SecureProgress, SecureRecord,
};
pub use stream::Streams;
pub use untouched::gaps;
