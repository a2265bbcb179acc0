//! The lifecycle of a flashing run: open the log, resolve the ports, make the plan, carry it
//! out (the plan on the terminal, a merged image, the boards), and end in the records.

use std::fs::File;
use std::time::Instant;

use anyhow::Context;

use crate::cli::Args;
use crate::device::{self, Console};
use crate::error::{ExitKind, UsageError};
use crate::nvs;
use crate::plan::{self, Plan, Request};
use crate::port::{self, ResolvedPort};
use crate::report::{self, Report};
use crate::station::{self, Finished};

use super::outcome;

/// Runs `args` to the end and returns the exit code.
pub(super) fn flash(args: &Args) -> u8 {
    let started = Instant::now();
    let mut base = Report {
        target: args.chip.to_string(),
        flash_size: args.flash_size.to_string(),
        override_pt: args.override_pt.map(|m| m.to_string()),
        ..Report::default()
    };
    // The log is opened before any board is touched, so that no board goes unrecorded.
    let log = match &args.report_append {
        Some(path) => match report::open_log(path) {
            Ok(file) => Some(file),
            Err(e) => {
                eprintln!(
                    "error: cannot open --report-append {}: {e}; pass a writable file",
                    path.display()
                );
                return ExitKind::Other.code();
            }
        },
        None => None,
    };
    let mut ports = Vec::new();
    let finished = match carry_out(args, &mut base, &mut ports, log.as_ref(), started) {
        Ok(finished) => finished,
        Err(e) => {
            let names: Vec<String> = ports.iter().map(|p| p.port.clone()).collect();
            outcome::failed_before_boards(&e, &base, &names, log.as_ref(), started)
        }
    };
    // Network ports' connections end with the boards, before the summary.
    drop(ports);
    outcome::finish(finished, args.report.as_deref())
}

/// Makes the plan and carries it out. Errors are those before any board is written; the
/// boards' own failures are in their records. `ports` gets the boards' ports as soon as they
/// are known, for the records of a run that stops before the boards.
fn carry_out(
    args: &Args,
    base: &mut Report,
    ports: &mut Vec<ResolvedPort>,
    log: Option<&File>,
    started: Instant,
) -> anyhow::Result<Finished> {
    nvs::check_args(args)?;
    if args.uses_device() && args.nvs_release.is_empty() {
        if args.port.is_empty() {
            return Err(UsageError::MissingPort.into());
        }
        // Selectors, `auto` and network URLs become device paths and bridges, then patterns
        // become the devices they match.
        *ports = port::expand(port::resolve_all(&args.port)?)?;
    }
    let plan = make_plan(args, base, started)?;
    let rows = nvs::Rows::open(args, &plan)?;
    if let Some(rows) = &rows
        && !args.nvs_release.is_empty()
    {
        nvs::release(rows, args.nvs_journal.as_deref(), &args.nvs_release)?;
        return Ok(Finished::default());
    }
    let plan = with_row(args, rows.as_ref(), plan, base)?;
    if args.dry_run {
        print!("{}", plan.describe());
    }
    if let Some(path) = &args.merge_out {
        report::write_atomic(path, &plan.merged())
            .with_context(|| format!("cannot write the merged image to {}", path.display()))?;
        eprintln!(
            "wrote {} ({}, {} regions)",
            path.display(),
            plan.flash_size,
            plan.regions.len()
        );
    }
    if ports.is_empty() {
        return Ok(without_boards(base, log, started));
    }
    let station = match rows {
        Some(rows) => Some(nvs::Station::open(rows, args.nvs_journal.as_deref())?),
        None => None,
    };
    let finished = write_boards(args, &plan, station.as_ref(), ports, base, log, started);
    if let Some(station) = &station {
        eprintln!("{}", station.summary());
    }
    Ok(finished)
}

/// The plan of `--nvs-row`'s board for `--dry-run` and `--merge-out` (no journal entry), else
/// `plan` with a note on the rows it leaves out.
fn with_row(
    args: &Args,
    rows: Option<&nvs::Rows>,
    plan: Plan,
    base: &mut Report,
) -> anyhow::Result<Plan> {
    let Some(rows) = rows else {
        return Ok(plan);
    };
    let Some(id) = &args.nvs_row else {
        if !args.uses_device() {
            eprintln!("note: {}", rows.note());
        }
        return Ok(plan);
    };
    let plan = rows.board_plan(&plan, &mfg::RowId::new(id))?;
    base.set_plan(&plan);
    base.nvs_row = Some(id.clone());
    Ok(plan)
}

/// The plan, its notes printed; the plan's part of the records goes into `base`.
fn make_plan(args: &Args, base: &mut Report, started: Instant) -> anyhow::Result<Plan> {
    let plan = plan::make(&Request {
        firmware_dir: args.firmware_dir.clone(),
        target: args.chip.clone(),
        flash_size: args.flash_size,
        override_pt: args.override_pt,
    })?;
    base.set_plan(&plan);
    base.timings_ms.plan = started.elapsed().as_millis() as u64;
    for note in &plan.notes {
        eprintln!("note: {note}");
    }
    Ok(plan)
}

/// The one record of a run that writes no board (`--dry-run`, `--merge-out`), logged.
fn without_boards(base: &Report, log: Option<&File>, started: Instant) -> Finished {
    let mut record = base.clone();
    record.outcome = "ok".into();
    record.time = report::utc_now();
    record.timings_ms.total = started.elapsed().as_millis() as u64;
    let mut finished = Finished::default();
    if let Some(log) = log
        && let Err(e) = report::append_line(log, &record.to_line())
    {
        finished.log_errors.push(format!("the record: {e}"));
    }
    finished.records.push(record);
    finished
}

/// Writes `plan` to the boards on `ports` and prints the error of each board that failed
/// (prefixed with its port when there are several).
fn write_boards(
    args: &Args,
    plan: &Plan,
    nvs: Option<&nvs::Station>,
    ports: &[ResolvedPort],
    base: &Report,
    log: Option<&File>,
    started: Instant,
) -> Finished {
    let options = device::Options {
        baud: args.baud,
        before: args.before,
        after: args.after,
        verify: !args.no_verify,
        skip: !args.no_skip,
        console: Console::single(),
    };
    let finished = station::flash_all(plan, nvs, &args.chip, ports, &options, base, log, started);
    for record in &finished.records {
        if let Some(error) = &record.error {
            match (&record.port, finished.records.len()) {
                (Some(port), 2..) => eprintln!("error: [{}] {error}", station::short_name(port)),
                _ => eprintln!("error: {error}"),
            }
        }
    }
    finished
}
