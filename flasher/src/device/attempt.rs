//! One attempt at writing a board, as the phases of a flash: connect, identify, check, write,
//! verify, reset.

use std::time::Instant;

use crate::plan::Plan;
use crate::port::ResolvedPort;
use firmware::chip::TargetName;

use super::boot;
use super::failure::Failure;
use super::options::{Contact, Options, Outcome};
use super::phase::Phase;
use super::session::Session;
use super::untouched::Gap;

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
    contact.recoveries = 0;
    // Compressing runs while the board is connected.
    opts.streams.prepare(plan);
    opts.console.phase(Phase::Connecting);
    let mut session = Session::connect(port, target, opts, rate)?;
    let mut board = session.identify(rate)?;
    let security = session.read_security(&mut board)?;
    session.check(&board, plan, contact)?;
    session.check_security(&security, plan)?;
    session.check_psram()?;
    session.set_rate(rate)?;
    let connect = started.elapsed();

    let write_started = Instant::now();
    let gaps = untouched_before(&mut session, plan, opts, contact)?;
    if !plan.erases.is_empty() {
        opts.console.phase(Phase::Erasing);
    }
    session.erase(plan)?;
    let written = session.write(plan, contact)?;
    opts.console.phase(Phase::Verifying);
    session.verify(plan, &written)?;
    session.verify_erased(plan)?;
    if let Some(gaps) = &gaps {
        session.check_untouched(gaps)?;
    }
    let write = write_started.elapsed();
    // The final check is done: nothing that can change the flash is sent from here on.
    let (serial, mut warnings) = session.reset(rate)?;
    warnings.extend(retry_warning(opts, contact));
    if let Some(watch) = &opts.boot {
        opts.console.phase(Phase::BootCheck);
        boot::watch(serial, watch, &port.port, &mut contact.boot).map_err(Failure::Fatal)?;
    }
    Ok(Outcome {
        skipped: written.skipped,
        connect,
        write,
        warnings,
    })
}

/// With `--check-untouched`, the gaps of the plan and the MD5 each must keep: taken once per
/// board, before the first write, and kept across attempts.
fn untouched_before(
    session: &mut Session,
    plan: &Plan,
    opts: &Options,
    contact: &mut Contact,
) -> Result<Option<Vec<Gap>>, Failure> {
    let Some(expect) = opts.check_untouched else {
        return Ok(None);
    };
    if contact.untouched.is_none() {
        contact.untouched = Some(session.untouched_before(plan, expect)?);
    }
    Ok(contact.untouched.clone())
}

/// After a retry without `--check-untouched`, the warning that a garbled command of a failed
/// attempt may have written outside the plan, where nothing was checked.
fn retry_warning(opts: &Options, contact: &Contact) -> Option<String> {
    (contact.attempts > 1 && opts.check_untouched.is_none()).then(|| {
        format!(
            "{} attempts were needed: a garbled command of a failed attempt may have written \
             outside the plan, which was not checked; pass --check-untouched to check it",
            contact.attempts
        )
    })
}
