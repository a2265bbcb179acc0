//! Attempts until the board is written: a failed attempt is retried on a new connection a
//! bounded number of times, a line that fails while writing steps the baud rate down first,
//! and a panic of the serial library on a garbled reply counts as a bad line.

use crate::error::DeviceError;
use crate::plan::Plan;
use crate::port::ResolvedPort;
use firmware::chip::TargetName;

use super::attempt::attempt;
use super::connect::ROM_BAUD;
use super::failure::Failure;
use super::options::{Contact, Options, Outcome};

/// Rates tried, fastest first, when `--baud` is not given.
pub const AUTO_BAUDS: [u32; 3] = [921_600, 460_800, ROM_BAUD];
/// Attempts per board, each on a new connection, before giving up.
pub const MAX_ATTEMPTS: u32 = 5;

/// Writes `plan` to the board on `port`, which must be a `target` board with at least the
/// plan's flash size. Nothing is written to a board that is not. What the board reports goes
/// into `contact` as soon as it is known, so that it is there on failure too.
pub fn write(
    plan: &Plan,
    target: &TargetName,
    port: &ResolvedPort,
    opts: &Options,
    contact: &mut Contact,
) -> Result<Outcome, DeviceError> {
    let rates = rates(port, opts);
    let mut rate = 0;
    let mut previous: Option<DeviceError> = None;
    loop {
        contact.attempts += 1;
        let e = match guarded_attempt(plan, target, port, opts, rates[rate], contact) {
            Ok(outcome) => return Ok(outcome),
            // A port gone after a failure: the board was lost then, say what happened.
            Err(Failure::Fatal(DeviceError::NotFound(port))) => {
                return Err(previous.unwrap_or(DeviceError::NotFound(port)));
            }
            Err(Failure::Fatal(e)) => return Err(e),
            Err(Failure::Line(e)) if rate + 1 < rates.len() && contact.attempts < MAX_ATTEMPTS => {
                opts.console.say(&format!(
                    "the line is unreliable at {} baud ({e}); retrying at {} baud",
                    rates[rate],
                    rates[rate + 1]
                ));
                rate += 1;
                previous = Some(e);
                continue;
            }
            Err(Failure::Line(e) | Failure::Connect(e) | Failure::Verify(e)) => e,
        };
        if contact.attempts >= MAX_ATTEMPTS {
            return Err(e);
        }
        opts.console.say(&format!(
            "attempt {} of {MAX_ATTEMPTS} failed ({e}); retrying",
            contact.attempts
        ));
        previous = Some(e);
    }
}

/// The rates to try: `--baud`, or the ROM's rate on a port that cannot change it, or
/// [`AUTO_BAUDS`].
fn rates<'a>(port: &ResolvedPort, opts: &'a Options) -> &'a [u32] {
    match &opts.baud {
        Some(b) => std::slice::from_ref(b),
        None if port.keeps_rate() => &[ROM_BAUD],
        None => &AUTO_BAUDS,
    }
}

/// One attempt, with a panic of espflash (which indexes replies by their length field and
/// panics on some garbled ones) caught as a bad line, so that it cannot take the other boards
/// of a station down.
fn guarded_attempt(
    plan: &Plan,
    target: &TargetName,
    port: &ResolvedPort,
    opts: &Options,
    rate: u32,
    contact: &mut Contact,
) -> Result<Outcome, Failure> {
    let run = || attempt(plan, target, port, opts, rate, contact);
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(run)).unwrap_or_else(|panic| {
        Err(Failure::Line(DeviceError::Line {
            port: port.port.clone(),
            doing: "reading a reply",
            reason: format!(
                "a garbled reply broke the serial library: {}",
                panic_text(&panic)
            ),
        }))
    })
}

/// The message of a caught panic.
fn panic_text(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "unknown failure".into())
}
