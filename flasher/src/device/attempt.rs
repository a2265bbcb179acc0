//! One attempt at writing a board, as the phases of a flash: connect, identify, check, write,
//! verify, reset.

use std::sync::Arc;
use std::time::Instant;

use crate::error::DeviceError;
use crate::report::DeviceReport;

use crate::plan::Plan;
use crate::port::ResolvedPort;
use firmware::chip::TargetName;

use super::boot;
use super::failure::Failure;
use super::options::{Contact, Gap, Identity, Options, Outcome};
use super::phase::Phase;
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
    contact.recoveries = 0;
    // Compressing runs while the board is connected (with --security, once the plan is
    // encrypted).
    if opts.secure.is_none() {
        opts.streams.prepare(plan);
    }
    opts.console.phase(Phase::Connecting);
    let mut session = Session::connect(port, target, opts, rate)?;
    let mut board = session.identify(rate)?;
    let security = session.read_security(&mut board)?;
    session.check(&board, plan, contact)?;
    let board_plan = plan_for_board(plan, &board.report, opts, contact)?;
    let plan: &Plan = board_plan.as_deref().unwrap_or(plan);
    // Every check of the board comes before secure production burns anything.
    session.check_psram()?;
    let secured;
    let plan = match &opts.secure {
        // Secure production checks the board's security fuses itself, and writes the plan
        // encrypted where ESP-IDF encrypts it.
        Some(secure) => {
            secured = session.secure_prepare(&board, secure, plan, &mut contact.secure)?;
            opts.streams.prepare(&secured);
            &secured
        }
        None => {
            session.check_security(&security, plan)?;
            plan
        }
    };
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
    if let Some(secure) = &opts.secure {
        session.secure_finish(&board, secure, &mut contact.secure)?;
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

/// The plan of this board from [`Options::per_board`] (`None`: the plan given), its streams
/// prepared; a refusal ends the attempts with nothing written.
fn plan_for_board(
    plan: &Plan,
    device: &DeviceReport,
    opts: &Options,
    contact: &mut Contact,
) -> Result<Option<Arc<Plan>>, Failure> {
    let Some(hook) = &opts.per_board else {
        return Ok(None);
    };
    let identity = Identity {
        mac: device.mac.clone(),
        chip: device.chip.clone(),
    };
    let board_plan = hook.plan_for(&identity).map_err(|refusal| {
        Failure::Fatal(DeviceError::Refused {
            kind: refusal.kind,
            message: refusal.message,
        })
    })?;
    debug_assert_eq!(board_plan.target, plan.target);
    // With --security the streams are of the encrypted plan, made once it is.
    if opts.secure.is_none() {
        opts.streams.prepare(&board_plan);
    }
    contact.plan = Some(Arc::clone(&board_plan));
    Ok(Some(board_plan))
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
