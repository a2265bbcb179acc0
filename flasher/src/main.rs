//! `flasher`: the entrypoint of a flash image. Parses the command line, makes the plan, and
//! writes it to the board, a merged image or the terminal; maps failures to exit codes.

use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use clap::Parser;
use clap::error::ErrorKind;
use flasher::cli::Args;
use flasher::device;
use flasher::error::{DeviceError, ExitKind, PlanError, UsageError};
use flasher::plan::{self, Request};
use flasher::report::{self, Report};

fn main() -> ExitCode {
    let started = Instant::now();
    let args = match Args::try_parse() {
        Ok(args) => args,
        Err(e) if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) => {
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => return fail(&UsageError::Arguments(one_line_clap(&e)).into(), None),
    };
    let mut report = Report {
        target: args.chip.to_string(),
        flash_size: args.flash_size.to_string(),
        override_pt: args.override_pt.map(|m| m.to_string()),
        ..Report::default()
    };
    let result = run(&args, &mut report, started);
    report.timings_ms.total = started.elapsed().as_millis() as u64;
    match result {
        Ok(()) => {
            report.outcome = "ok".into();
            match write_report(&args, &report) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => fail(&e, None),
            }
        }
        Err(e) => fail(&e, Some((&args, &mut report))),
    }
}

/// Prints the error on one line, records it in the report, and gives the exit code.
fn fail(e: &anyhow::Error, report: Option<(&Args, &mut Report)>) -> ExitCode {
    let kind = exit_kind(e);
    let message = format!("{e:#}").replace('\n', " ");
    eprintln!("error: {message}");
    if let Some((args, report)) = report {
        report.outcome = "failed".into();
        report.exit_code = kind.code();
        report.error = Some(message);
        if let Err(e) = write_report(args, report) {
            eprintln!("error: {e:#}");
        }
    }
    ExitCode::from(kind.code())
}

fn exit_kind(e: &anyhow::Error) -> ExitKind {
    if let Some(e) = e.downcast_ref::<PlanError>() {
        e.kind()
    } else if let Some(e) = e.downcast_ref::<DeviceError>() {
        e.kind()
    } else if e.downcast_ref::<UsageError>().is_some() {
        ExitKind::Usage
    } else {
        ExitKind::Other
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

fn write_report(args: &Args, report: &Report) -> anyhow::Result<()> {
    if let Some(path) = &args.report {
        report::write_atomic(path, &report.to_json())
            .with_context(|| format!("cannot write the report to {}", path.display()))?;
    }
    Ok(())
}

fn run(args: &Args, report: &mut Report, started: Instant) -> anyhow::Result<()> {
    let port = match (&args.port, args.uses_device()) {
        (Some(port), true) => Some(port.clone()),
        (None, true) => return Err(UsageError::MissingPort.into()),
        (_, false) => None,
    };
    let plan = plan::make(&Request {
        firmware_dir: args.firmware_dir.clone(),
        target: args.chip.clone(),
        flash_size: args.flash_size,
        override_pt: args.override_pt,
    })?;
    report.set_plan(&plan);
    report.timings_ms.plan = started.elapsed().as_millis() as u64;
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
    let Some(port) = port else {
        return Ok(());
    };
    let outcome = device::write(
        &plan,
        &args.chip,
        &device::Options {
            port,
            baud: args.baud,
            before: args.before,
            after: args.after,
            verify: !args.no_verify,
            skip: !args.no_skip,
        },
        &mut report.device,
    )?;
    for (region, skipped) in report.regions.iter_mut().zip(&outcome.skipped) {
        region.skipped = Some(*skipped);
    }
    report.timings_ms.connect = outcome.connect.as_millis() as u64;
    report.timings_ms.write = outcome.write.as_millis() as u64;
    let written = outcome.skipped.iter().filter(|s| !**s).count();
    eprintln!(
        "done: {written} of {} regions written, {} already in place, in {:.1} s",
        outcome.skipped.len(),
        outcome.skipped.len() - written,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
