//! `flasher`: the entrypoint of a flash image. Parses the command line, makes the plan, and
//! writes it to the boards (several at once), a merged image or the terminal; records every
//! board; maps failures to exit codes.

use std::fs::File;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use clap::Parser;
use clap::error::ErrorKind;
use flasher::cli::{Args, ListPorts};
use flasher::device::{self, Console};
use flasher::error::{DeviceError, ExitKind, PlanError, PortError, UsageError};
use flasher::plan::{self, Request};
use flasher::port;
use flasher::report::{self, Report, RunReport};
use flasher::station::{self, Finished};

fn main() -> ExitCode {
    let started = Instant::now();
    // One line per panic; the serial library's panics on garbled replies are caught and retried.
    std::panic::set_hook(Box::new(|info| {
        eprintln!("warning: {}", info.to_string().replace('\n', " "));
    }));
    let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if let Some(list) = ListPorts::requested(&argv) {
        return list_ports(list);
    }
    let args = match Args::try_parse() {
        Ok(args) => args,
        Err(e) if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) => {
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("error: {}", one_line_clap(&e));
            return ExitCode::from(ExitKind::Usage.code());
        }
    };
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
                return ExitCode::from(ExitKind::Other.code());
            }
        },
        None => None,
    };
    let mut ports = Vec::new();
    let finished = match run(&args, &mut base, &mut ports, log.as_ref(), started) {
        Ok(finished) => finished,
        Err(e) => failed_before_boards(&e, &base, &ports, log.as_ref(), started),
    };
    let mut code = station::exit_code(&finished.records);
    if finished.records.len() > 1 {
        summarize(&finished.records);
    }
    for e in &finished.log_errors {
        eprintln!(
            "error: cannot append {e}; check the disk and the --report-append file, the report \
             and the lines above have the outcome"
        );
        code = code.max(ExitKind::Other.code());
    }
    if let Some(path) = &args.report {
        let run_report = RunReport {
            outcome: if code == 0 { "ok" } else { "failed" }.into(),
            exit_code: code,
            boards: finished.records,
        };
        if let Err(e) = report::write_atomic(path, &run_report.to_json()) {
            eprintln!(
                "error: cannot write the report to {}: {e}; pass a writable path",
                path.display()
            );
            code = code.max(ExitKind::Other.code());
        }
    }
    ExitCode::from(code)
}

/// Prints the failure of one board on one line, or one line per failed board and a summary.
fn summarize(records: &[Report]) {
    let ok = records.iter().filter(|r| r.exit_code == 0).count();
    let failed: Vec<String> = records
        .iter()
        .filter(|r| r.exit_code != 0)
        .map(|r| {
            let port = r.port.as_deref().unwrap_or("?");
            format!("{} (exit {})", station::short_name(port), r.exit_code)
        })
        .collect();
    if failed.is_empty() {
        eprintln!("station: all {ok} boards written");
    } else {
        eprintln!(
            "station: {ok} of {} boards written; failed: {}",
            records.len(),
            failed.join(", ")
        );
    }
}

/// The records of a run that stopped before any board was written: one per port (or one when
/// none was given), each with the error, which is printed once.
fn failed_before_boards(
    e: &anyhow::Error,
    base: &Report,
    ports: &[String],
    log: Option<&File>,
    started: Instant,
) -> Finished {
    let kind = exit_kind(e);
    let message = format!("{e:#}").replace('\n', " ");
    eprintln!("error: {message}");
    let ports: Vec<Option<String>> = if ports.is_empty() {
        vec![None]
    } else {
        ports.iter().cloned().map(Some).collect()
    };
    let mut finished = Finished::default();
    for port in ports {
        let mut record = base.clone();
        record.port = port;
        record.time = report::utc_now();
        record.timings_ms.total = started.elapsed().as_millis() as u64;
        station::failed(&mut record, kind, &message);
        if let Some(log) = log
            && let Err(e) = report::append_line(log, &record.to_line())
        {
            finished.log_errors.push(format!("a record: {e}"));
        }
        finished.records.push(record);
    }
    finished
}

fn exit_kind(e: &anyhow::Error) -> ExitKind {
    if let Some(e) = e.downcast_ref::<PlanError>() {
        e.kind()
    } else if let Some(e) = e.downcast_ref::<DeviceError>() {
        e.kind()
    } else if let Some(e) = e.downcast_ref::<PortError>() {
        e.kind()
    } else if e.downcast_ref::<UsageError>().is_some() {
        ExitKind::Usage
    } else {
        ExitKind::Other
    }
}

/// `--list-ports [--json]`: prints the serial ports sysfs shows.
fn list_ports(list: Result<ListPorts, clap::Error>) -> ExitCode {
    let list = match list {
        Ok(list) => list,
        Err(e) if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) => {
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("error: {}", one_line_clap(&e));
            return ExitCode::from(ExitKind::Usage.code());
        }
    };
    match port::list(&port::sysfs::Roots::system()) {
        Ok(ports) if list.json => {
            println!("{:#}", port::to_json(&ports));
            ExitCode::SUCCESS
        }
        Ok(ports) => {
            print!("{}", port::table(&ports));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(e.kind().code())
        }
    }
}

/// clap's message without the usage block, on one line.
fn one_line_clap(e: &clap::Error) -> String {
    let text = e.render().to_string();
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .take_while(|l| !l.starts_with("Usage:") && !l.starts_with("For more information"))
        .filter(|l| !l.is_empty())
        .collect();
    let line = lines.join(" ");
    format!(
        "{} (see --help)",
        line.strip_prefix("error: ").unwrap_or(&line)
    )
}

/// Makes the plan and carries it out. Errors are those before any board is written; the
/// boards' own failures are in their records.
fn run(
    args: &Args,
    base: &mut Report,
    ports: &mut Vec<String>,
    log: Option<&File>,
    started: Instant,
) -> anyhow::Result<Finished> {
    let resolved: Vec<port::ResolvedPort>;
    if args.uses_device() {
        if args.port.is_empty() {
            return Err(UsageError::MissingPort.into());
        }
        // Selectors, `auto` and network URLs become device paths and bridges; globs stay.
        resolved = port::resolve_all(&args.port)?;
        let specs: Vec<String> = resolved.iter().map(|r| r.port.clone()).collect();
        *ports = station::expand_ports(&specs)?;
    }
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
        return Ok(finished);
    }
    let options = device::Options {
        port: String::new(),
        baud: args.baud,
        before: args.before,
        after: args.after,
        verify: !args.no_verify,
        skip: !args.no_skip,
        console: Console::single(),
    };
    let finished = station::flash_all(&plan, &args.chip, ports, &options, base, log, started);
    for record in &finished.records {
        if let Some(error) = &record.error {
            match (&record.port, finished.records.len()) {
                (Some(port), 2..) => eprintln!("error: [{}] {error}", station::short_name(port)),
                _ => eprintln!("error: {error}"),
            }
        }
    }
    Ok(finished)
}
