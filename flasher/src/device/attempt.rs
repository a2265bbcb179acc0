//! One attempt at writing a board, as the phases of a flash: connect, identify, check, write,
//! verify, reset.

use std::time::Instant;

use crate::plan::Plan;
use crate::port::ResolvedPort;
use firmware::chip::TargetName;

use super::boot;
use super::failure::Failure;
use super::options::{Contact, Options, Outcome};
use super::session::Session;

/// Writes `plan` to the board on `port` at `rate` on a new connection. What the board
/// reports goes into `contact` as soon as it is known.
pub(super) fn attempt(
    plan: &Plan,
    target: &TargetName,
    port: &ResolvedPort,
    opts: &Options,
    rate: u32,
    contact: &mut Contact,
) -> Result<Outcome, Failure> {
    let started = Instant::now();
    let mut session = Session::connect(port, target, opts)?;
    let mut board = session.identify(rate)?;
    let security = session.read_security(&mut board)?;
    session.check(&board, plan, contact)?;
    session.check_security(&security, plan)?;
    session.check_psram()?;
    session.set_rate(rate)?;
    let connect = started.elapsed();

    let write_started = Instant::now();
    session.erase(plan)?;
    let skipped = session.write(plan)?;
    session.verify(plan)?;
    session.verify_erased(plan)?;
    let serial = session.reset(rate)?;
    if let Some(watch) = &opts.boot {
        boot::watch(serial, watch, &port.port, &mut contact.boot).map_err(Failure::Fatal)?;
    }
    Ok(Outcome {
        skipped,
        connect,
        write: write_started.elapsed(),
    })
}
