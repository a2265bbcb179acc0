//! A manufacturing station: one plan written to several boards at once, each on its own port,
//! connection and thread, each ending in its own record.
//!
//! [`flash_all`] writes every board of the ports selection resolved (see
//! [`port::resolve`](fn@crate::port::resolve) and [`port::expand`](crate::port::expand)) and
//! returns one [`Report`] per port, appending each to the station's log as soon as its board is
//! done; [`exit_code`] sums the records up.

use std::fs;
use std::sync::Mutex;
use std::time::Instant;

use indicatif::MultiProgress;

use crate::device::{self, Console, Contact, Options};
use crate::error::{DeviceError, ExitKind};
use crate::nvs;
use crate::plan::Plan;
use crate::port;
use crate::port::ResolvedPort;
use crate::report::{self, RangeReport, RegionReport, Report};
use crate::sink::Sink;
use firmware::chip::TargetName;

/// What a station run produced.
#[derive(Debug, Default)]
pub struct Finished {
    /// One record per port, in port order.
    pub records: Vec<Report>,
    /// Records that could not be appended to the log (one message each).
    pub log_errors: Vec<String>,
}

/// Writes `plan` to the board on each of `ports` at once, with `options` (whose console is set
/// per board). Each record starts from `base` (the plan's part of the report);
/// it is appended to `log` as soon as its board is done. `started` is when the run began.
/// With `nvs`, each board first takes its own row, and is written with that row's image.
/// With `sink`, each record also goes to the line's database.
#[allow(clippy::too_many_arguments)]
pub fn flash_all(
    plan: &Plan,
    nvs: Option<&nvs::Station>,
    sink: Option<&Sink>,
    target: &TargetName,
    ports: &[ResolvedPort],
    options: &Options,
    base: &Report,
    log: Option<&fs::File>,
    started: Instant,
) -> Finished {
    let several = ports.len() > 1;
    let bars = (several && options.console.has_bars()).then(MultiProgress::new);
    let log_errors = Mutex::new(Vec::new());
    let records = std::thread::scope(|scope| {
        let handles: Vec<_> = ports
            .iter()
            .map(|port| {
                let console = if several {
                    Console::shared(port::short_name(&port.port), bars.clone())
                } else {
                    options.console.clone()
                };
                let opts = Options {
                    console,
                    ..options.clone()
                };
                let log_errors = &log_errors;
                scope.spawn(move || {
                    let (record, log_error) =
                        board(plan, nvs, sink, target, port, &opts, base, log, started);
                    if let Some(e) = log_error {
                        lock(log_errors).push(e);
                    }
                    record
                })
            })
            .collect();
        handles
            .into_iter()
            .zip(ports)
            .map(|(h, port)| {
                h.join().unwrap_or_else(|_| {
                    let mut r = base.clone();
                    r.port = Some(port.port.clone());
                    r.time = report::utc_now();
                    r.fail(
                        ExitKind::Other,
                        "internal error: the board's thread panicked",
                    );
                    r
                })
            })
            .collect()
    });
    Finished {
        records,
        log_errors: log_errors.into_inner().unwrap_or_default(),
    }
}

/// The record of a board whose flash encryption key could not be made: nothing was done.
fn no_key(base: &Report, port: &str, e: &std::io::Error) -> Report {
    let mut record = base.clone();
    record.port = Some(port.to_string());
    record.time = report::utc_now();
    record.fail(
        ExitKind::Other,
        &format!("{port}: cannot make the board's flash encryption key ({e}); nothing was done"),
    );
    record
}

/// The record of the board on `port`, written as one board of a run: with `nvs`, it first
/// takes its own row and is written with that row's image; with `sink`, the record goes to
/// the line's database (or its spool); it is appended to `log` (with the message of a
/// record that could not be, second).
#[allow(clippy::too_many_arguments)]
pub fn board(
    plan: &Plan,
    nvs: Option<&nvs::Station>,
    sink: Option<&Sink>,
    target: &TargetName,
    port: &ResolvedPort,
    opts: &Options,
    base: &Report,
    log: Option<&fs::File>,
    started: Instant,
) -> (Report, Option<String>) {
    let (record, db_away) = record_of(plan, nvs, target, port, opts, base, started);
    if let Some(sink) = sink {
        sink.keep(&record, &port.port, db_away);
    }
    let log_error = match log.map(|log| report::append_line(log, &record.to_line())) {
        Some(Err(e)) => Some(format!("the record of {}: {e}", port.port)),
        _ => None,
    };
    (record, log_error)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// One board on one port, to its record: `plan` written to the board on `port` with `opts`,
/// the record starting from `base`. With `nvs`, the board first takes its own row (claimed by
/// its MAC once it is identified) and is written with that row's image; then the second
/// value tells whether the database was away when the row was finished. `started` is when
/// the run began.
fn record_of(
    plan: &Plan,
    nvs: Option<&nvs::Station>,
    target: &TargetName,
    port: &ResolvedPort,
    opts: &Options,
    base: &Report,
    started: Instant,
) -> (Report, bool) {
    // A per-board key is made here, once per board, for all its attempts.
    let opts = match with_board_key(opts) {
        Ok(opts) => opts,
        Err(e) => return (no_key(base, &port.port, &e), false),
    };
    let opts = &opts;
    let Some(nvs) = nvs else {
        return (flash_one(plan, target, port, opts, base, started), false);
    };
    nvs.board(plan, &port.port, |per_board| {
        let opts = Options {
            per_board: Some(per_board),
            ..opts.clone()
        };
        flash_one(plan, target, port, &opts, base, started)
    })
}

/// `options` with secure production's key for one board: its own key when the profile makes
/// one per board, with its own encrypted streams (kept with the board, not for the whole run).
fn with_board_key(options: &Options) -> std::io::Result<Options> {
    let Some(secure) = &options.secure else {
        return Ok(options.clone());
    };
    let secure = secure.for_board()?;
    let streams = if secure.per_board_key() {
        Default::default()
    } else {
        options.streams.clone()
    };
    Ok(Options {
        secure: Some(secure),
        streams,
        ..options.clone()
    })
}

/// The record of writing `plan` to the board on `port`.
fn flash_one(
    plan: &Plan,
    target: &TargetName,
    port: &ResolvedPort,
    opts: &Options,
    base: &Report,
    started: Instant,
) -> Report {
    let board_started = Instant::now();
    let mut contact = Contact::default();
    let result = device::write(plan, target, port, opts, &mut contact);
    let mut record = base.clone();
    record.port = Some(port.port.clone());
    record.attempts = Some(contact.attempts);
    record.device = contact.device;
    record.line = contact.line.clone();
    record.boot = contact.boot;
    record.secure = contact.secure.record;
    if let Some(board_plan) = &contact.plan {
        record.regions = board_plan.regions.iter().map(RegionReport::of).collect();
    }
    match result {
        Ok(outcome) => {
            record.outcome = "ok".into();
            record.exit_code = 0;
            for (region, skipped) in record.regions.iter_mut().zip(&outcome.skipped) {
                region.skipped = Some(*skipped);
            }
            record.timings_ms.connect = outcome.connect.as_millis() as u64;
            record.timings_ms.write = outcome.write.as_millis() as u64;
            for warning in &outcome.warnings {
                opts.console.say(&format!("warning: {warning}"));
            }
            record.warnings = outcome.warnings;
            let written = outcome.skipped.iter().filter(|s| !**s).count();
            opts.console.say(&format!(
                "done: {written} of {} regions written, {} already in place, in {:.1} s",
                outcome.skipped.len(),
                outcome.skipped.len() - written,
                board_started.elapsed().as_secs_f64()
            ));
        }
        Err(e) => {
            if let DeviceError::Untouched { changed } = &e {
                record.changed_outside = changed
                    .iter()
                    .map(|&(offset, size)| RangeReport { offset, size })
                    .collect();
            }
            record.fail(e.kind(), &e.to_string());
        }
    }
    record.timings_ms.total = started.elapsed().as_millis() as u64;
    record.time = report::utc_now();
    record
}

/// The exit code of a run from its records: 0 when all succeeded, the code of the failures
/// when they agree, else 7 (several boards failed for different reasons).
pub fn exit_code(records: &[Report]) -> u8 {
    let mut codes = records.iter().map(|r| r.exit_code).filter(|&c| c != 0);
    match codes.next() {
        None => 0,
        Some(first) if codes.all(|c| c == first) => first,
        Some(_) => ExitKind::Mixed.code(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_sum_up_the_boards() {
        let rec = |code| Report {
            exit_code: code,
            ..Report::default()
        };
        assert_eq!(exit_code(&[rec(0), rec(0)]), 0);
        assert_eq!(exit_code(&[rec(0), rec(6), rec(6)]), 6);
        assert_eq!(exit_code(&[rec(5), rec(0), rec(4)]), 7);
    }
}
