//! The lifecycle of a flashing run: open the log, resolve the ports, make the plan, carry it
//! out (the plan on the terminal, a merged image, the boards), and end in the records.

use std::fs::File;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;

use crate::boards::{self, Finished};
use crate::cli::{After, Args, Before};
use crate::device::boot::BootWatch;
use crate::device::{self, Console};
use crate::error::{ExitKind, UsageError};
use crate::nvs;
use crate::plan::{self, Plan, Request};
use crate::port::{self, ResolvedPort};
use crate::profile::Profile;
use crate::report::{self, Report};
use crate::sink::Sink;
use firmware::esp_image;
use regex::Regex;

use super::outcome;

/// Runs `args` to the end and returns the exit code.
pub(super) fn flash(args: &Args) -> u8 {
    if args.station.station {
        return super::station::station(args);
    }
    let started = Instant::now();
    let mut base = Report {
        target: args.target().to_string(),
        flash_size: args.size().to_string(),
        override_pt: args.override_pt.map(|m| m.to_string()),
        ..Report::default()
    };
    // The log is opened before any board is touched, so that no board goes unrecorded.
    let Ok(log) = open_log(args) else {
        return ExitKind::Other.code();
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

/// The `--report-append` log, opened; an error is printed.
pub(super) fn open_log(args: &Args) -> Result<Option<File>, ()> {
    let Some(path) = &args.report_append else {
        return Ok(None);
    };
    report::open_log(path).map(Some).map_err(|e| {
        eprintln!(
            "error: cannot open --report-append {}: {e}; pass a writable file",
            path.display()
        );
    })
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
        if args.before == Before::NoResetNoSync && !args.desk.erase().is_empty() {
            return Err(UsageError::EraseNeedsStub.into());
        }
        // Selectors, `auto` and network URLs become device paths and bridges, then patterns
        // become the devices they match.
        *ports = port::expand(port::resolve_all(&args.port)?)?;
        check_watch(args, ports.len())?;
    }
    let plan = make_plan(args, base, started)?;
    if args.desk.expect.as_ref().is_some_and(Vec::is_empty) && app_banner(&plan).is_empty() {
        return Err(UsageError::NoAppBanner.into());
    }
    let rows = nvs::Rows::open(args, &plan)?;
    if let Some(rows) = &rows
        && !args.nvs_release.is_empty()
    {
        nvs::release(rows, args, &args.nvs_release)?;
        return Ok(Finished::default());
    }
    let plan = with_row(args, rows.as_ref(), plan, base)?;
    let secure = security_profile(args, &plan)?;
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
    let (sink, station) = open_line(args, rows)?;
    let finished = write_boards(
        args,
        &plan,
        secure,
        (station.as_ref(), sink.as_deref()),
        ports,
        base,
        log,
        started,
    );
    if let Some(station) = &station {
        eprintln!("{}", station.summary());
    }
    Ok(finished)
}

/// The sink of the boards' records (`--db`, else the embedded database of `--nvs-values`)
/// and, with `rows`, the station that hands them out: both opened before any board is
/// touched. Neither without `--db` and `--nvs-values`.
pub(super) fn open_line(
    args: &Args,
    rows: Option<nvs::Rows>,
) -> anyhow::Result<(Option<Arc<Sink>>, Option<nvs::Station>)> {
    let values = rows.as_ref().map(|rows| rows.values().to_path_buf());
    let Some(sink) = Sink::open(args, values.as_deref())? else {
        return Ok((None, None));
    };
    let sink = Arc::new(sink);
    let station = rows
        .map(|rows| nvs::Station::open(rows, Arc::clone(&sink), args))
        .transpose()?;
    Ok((Some(sink), station))
}

/// `--security`: the profile, read and checked against the chip and the plan's build before
/// any board is touched.
pub(super) fn security_profile(args: &Args, plan: &Plan) -> anyhow::Result<Option<device::Secure>> {
    let Some(path) = &args.security else {
        return Ok(None);
    };
    let profile = Profile::load(path, plan.chip)?;
    profile.check_build(path, plan)?;
    Ok(Some(device::Secure::new(profile)))
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
pub(super) fn make_plan(args: &Args, base: &mut Report, started: Instant) -> anyhow::Result<Plan> {
    let plan = plan::make(&Request {
        firmware_dir: args.firmware_dir.clone(),
        target: args.target().clone(),
        flash_size: args.size(),
        override_pt: args.override_pt,
    })?
    .with_erases(&args.desk.erase())?;
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
/// (prefixed with its port when there are several). With `secure`, each board is secured as
/// its profile says; with `line`'s station, each board takes its row, and with its sink, each
/// record goes to the line's database.
#[allow(clippy::too_many_arguments)]
fn write_boards(
    args: &Args,
    plan: &Plan,
    secure: Option<device::Secure>,
    (nvs, sink): (Option<&nvs::Station>, Option<&Sink>),
    ports: &[ResolvedPort],
    base: &Report,
    log: Option<&File>,
    started: Instant,
) -> Finished {
    let options = device::Options {
        secure,
        ..options(args, plan)
    };
    let finished = boards::flash_all(
        plan,
        nvs,
        sink,
        args.target(),
        ports,
        &options,
        base,
        log,
        started,
    );
    for record in &finished.records {
        if let Some(error) = &record.error {
            match (&record.port, finished.records.len()) {
                (Some(port), 2..) => eprintln!("error: [{}] {error}", port::short_name(port)),
                _ => eprintln!("error: {error}"),
            }
        }
    }
    finished
}

/// How the boards of `args` are written (on a console of their own).
pub(super) fn options(args: &Args, plan: &Plan) -> device::Options {
    device::Options {
        baud: args.baud,
        before: args.before,
        after: args.after,
        verify: !args.no_verify,
        skip: !args.no_skip,
        console: Console::single(),
        boot: boot_watch(args, plan),
        check_untouched: args.check_untouched.then_some(device::Untouched::Unchanged),
        streams: Default::default(),
        secure: None,
        per_board: None,
    }
}

/// Refuses `--monitor` with several boards, and `--monitor` or `--expect` with an `--after`
/// that does not start the firmware.
fn check_watch(args: &Args, boards: usize) -> Result<(), UsageError> {
    let desk = &args.desk;
    let monitor = desk.monitor || desk.monitor_for.is_some();
    if monitor && boards > 1 {
        return Err(UsageError::MonitorOneBoard);
    }
    let starts_firmware = matches!(args.after, After::HardReset | After::WatchdogReset);
    if (monitor || desk.expect.is_some()) && !starts_firmware {
        return Err(UsageError::WatchNeedsReset);
    }
    Ok(())
}

/// What to watch after the reset: `--expect`'s patterns (by default the app descriptor's
/// project name and version lines, as ESP-IDF's `app_init` prints them) and `--monitor`.
pub(super) fn boot_watch(args: &Args, plan: &Plan) -> Option<BootWatch> {
    let desk = &args.desk;
    let monitor = match (desk.monitor, desk.monitor_for) {
        (_, Some(d)) => Some(Some(d)),
        (true, None) => Some(None),
        (false, None) => None,
    };
    let expect = match &desk.expect {
        Some(given) if !given.is_empty() => given.clone(),
        Some(_) => app_banner(plan),
        None => Vec::new(),
    };
    (monitor.is_some() || !expect.is_empty()).then_some(BootWatch {
        expect,
        within: desk.expect_within,
        monitor,
    })
}

/// The lines an ESP-IDF app prints with its name and version at start-up.
pub(super) fn app_banner(plan: &Plan) -> Vec<Regex> {
    let desc = plan
        .regions
        .iter()
        .find(|r| r.label == "app")
        .and_then(|r| esp_image::app_descriptor(&r.bytes));
    let Some(desc) = desc else {
        return Vec::new();
    };
    [
        ("Project name", &desc.project_name),
        ("App version", &desc.version),
    ]
    .iter()
    .map(|(what, value)| {
        Regex::new(&format!(r"app_init: {what}:\s+{}$", regex::escape(value)))
            .expect("an escaped value makes a valid pattern")
    })
    .collect()
}
