//! `--station`: the `station` crate's loop over the one-board pipeline of a one-shot run.
//!
//! [`Line`] is that pipeline: the plan, the checks, the per-board NVS row, the write, the
//! verify, the boot check and the record appended to `--report-append`, exactly as
//! `boards::board` does them for one board of a one-shot run; the board's phases go to the
//! station through the device layer's [`PhaseObserver`].

use std::collections::HashMap;
use std::fs::File;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use anyhow::Context;

use crate::boards::{self, Finished};
use crate::cli::{Args, Before};
use crate::device::{self, Console, Phase, PhaseObserver};
use crate::error::{ExitKind, PortError, UsageError};
use crate::nvs;
use crate::plan::Plan;
use crate::port::spec::PortSpec;
use crate::port::sysfs::Roots;
use crate::port::{self, ResolvedPort};
use crate::report::Report;
use crate::sink::Sink;
use firmware::chip::TargetName;

use super::{flash, outcome};

/// How often the ports are listed.
const POLL: std::time::Duration = std::time::Duration::from_millis(300);

/// Runs the station of `args` until it is stopped, and returns the exit code of the shift.
pub(super) fn station(args: &Args) -> u8 {
    let started = Instant::now();
    let mut base = Report {
        target: args.target().to_string(),
        flash_size: args.size().to_string(),
        override_pt: args.override_pt.map(|m| m.to_string()),
        ..Report::default()
    };
    let Ok(log) = flash::open_log(args) else {
        return ExitKind::Other.code();
    };
    let line = match Line::open(args, &mut base, log, started) {
        Ok(line) => Arc::new(line),
        Err((e, log)) => {
            let finished = outcome::failed_before_boards(&e, &base, &[], log.as_ref(), started);
            return outcome::finish(finished, args.report.as_deref());
        }
    };
    let hub = Arc::new(station::Hub::new());
    let views = match super::view::start(args, &hub) {
        Ok(views) => views,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitKind::Usage.code();
        }
    };
    let config = station::Config {
        poll: POLL,
        jig: args.station.jig,
    };
    let shift = station::run(line.clone(), hub, &config, station::Stop::signals());
    drop(views);
    line.end(&shift, args.report.as_deref())
}

/// What a `--port` value watches.
enum Watched {
    /// A device path, or a pattern of them.
    Path(String),
    /// `auto` or a selector: resolved again at each look.
    Select(String),
    /// A network port: its bridge, connected once.
    Net(ResolvedPort),
}

/// The one-board pipeline of a one-shot run, as the station's [`station::Pipeline`].
struct Line {
    plan: Plan,
    target: TargetName,
    nvs: Option<nvs::Station>,
    sink: Option<Arc<Sink>>,
    watched: Vec<Watched>,
    options: device::Options,
    base: Report,
    log: Option<File>,
    /// Ports that selectors found, with what sysfs said of them.
    found: Mutex<HashMap<String, ResolvedPort>>,
    /// Every board's record, in the order they finished.
    reports: Mutex<Vec<Report>>,
    log_errors: Mutex<Vec<String>>,
}

type OpenError = (anyhow::Error, Option<File>);

impl Line {
    /// The plan, rows and ports of `args`, checked as a one-shot run checks them; `base` gets
    /// the plan's part of the records. On error, the log comes back for the record of it.
    fn open(
        args: &Args,
        base: &mut Report,
        log: Option<File>,
        started: Instant,
    ) -> Result<Line, OpenError> {
        let opened = (|| {
            nvs::check_args(args)?;
            if args.before == Before::NoResetNoSync && !args.desk.erase().is_empty() {
                return Err(UsageError::EraseNeedsStub.into());
            }
            let watched = watched(&args.port)?;
            let plan = flash::make_plan(args, base, started)?;
            if args.desk.expect.as_ref().is_some_and(Vec::is_empty)
                && flash::app_banner(&plan).is_empty()
            {
                return Err(UsageError::NoAppBanner.into());
            }
            let (sink, nvs) = flash::open_line(args, nvs::Rows::open(args, &plan)?)?;
            let options = device::Options {
                secure: flash::security_profile(args, &plan)?,
                ..flash::options(args, &plan)
            };
            anyhow::Ok((plan, (nvs, sink), watched, options))
        })();
        let (plan, (nvs, sink), watched, options) = match opened {
            Ok(opened) => opened,
            Err(e) => return Err((e, log)),
        };
        Ok(Line {
            target: args.target().clone(),
            plan,
            nvs,
            sink,
            watched,
            options,
            base: base.clone(),
            log,
            found: Mutex::default(),
            reports: Mutex::default(),
            log_errors: Mutex::default(),
        })
    }

    /// The port `name` as the device layer takes it: what a selector found, else the path
    /// resolved now (with what sysfs says of it).
    fn resolved(&self, name: &str) -> ResolvedPort {
        if let Some(found) = lock(&self.found).get(name) {
            return found.clone();
        }
        if let Some(net) = self.watched.iter().find_map(|w| match w {
            Watched::Net(port) if port.port == name => Some(port.clone()),
            _ => None,
        }) {
            return net;
        }
        port::resolve(name, &Roots::system())
            .ok()
            .and_then(|mut ports| ports.pop())
            .unwrap_or_else(|| ResolvedPort::device(name))
    }

    /// The options of one board, its phases going to `observer`.
    fn options_for(&self, observer: Arc<dyn PhaseObserver>) -> device::Options {
        device::Options {
            console: Console::observed(observer),
            ..self.options.clone()
        }
    }

    /// Ends the shift: the boards in doubt, the rows, the last record of each board summed up
    /// (and written to `--report`); returns the exit code.
    fn end(&self, shift: &station::Shift, report: Option<&Path>) -> u8 {
        for port in &shift.in_doubt {
            eprintln!(
                "warning: {port}: the station stopped while its board was being written: the \
                 board is in doubt; write it again (and give its row back with --nvs-release ID)"
            );
        }
        if let Some(nvs) = &self.nvs {
            eprintln!("{}", nvs.summary());
        }
        let finished = Finished {
            records: last_per_board(&lock(&self.reports)),
            log_errors: lock(&self.log_errors).clone(),
        };
        let code = outcome::finish(finished, report);
        match shift.in_doubt.is_empty() {
            true => code,
            false => ExitKind::InDoubt.code(),
        }
    }
}

impl station::Pipeline for Line {
    fn scan(&self) -> Vec<String> {
        let mut names: Vec<String> = Vec::new();
        for watched in &self.watched {
            let found = match watched {
                Watched::Path(path) if path.contains(['*', '?']) => port::glob::glob(path),
                Watched::Path(path) if Path::new(path).exists() => vec![path.clone()],
                Watched::Path(_) => Vec::new(),
                Watched::Select(spec) => self.select(spec),
                Watched::Net(port) => vec![port.port.clone()],
            };
            for name in found {
                if !names.contains(&name) {
                    names.push(name);
                }
            }
        }
        names
    }

    fn run(&self, port: &str, observer: Arc<dyn station::Observer>) -> station::BoardRecord {
        let resolved = self.resolved(port);
        let opts = self.options_for(Arc::new(Relay(observer)));
        let (report, log_error) = boards::board(
            &self.plan,
            self.nvs.as_ref(),
            self.sink.as_deref(),
            &self.target,
            &resolved,
            &opts,
            &self.base,
            self.log.as_ref(),
            Instant::now(),
        );
        if let Some(e) = log_error {
            lock(&self.log_errors).push(e);
        }
        lock(&self.reports).push(report.clone());
        record_of(&report)
    }

    fn identify(&self, port: &str) -> Option<String> {
        let opts = self.options_for(Arc::new(Unheard));
        let info = device::info::read(&self.resolved(port), None, None, &opts).ok()?;
        info.device.mac
    }

    fn rows_left(&self) -> Option<u64> {
        self.nvs.as_ref().and_then(nvs::Station::rows_left)
    }
}

impl Line {
    /// The ports `auto` or a selector stands for now (none when it matches none).
    fn select(&self, spec: &str) -> Vec<String> {
        let ports = port::resolve(spec, &Roots::system()).unwrap_or_default();
        let mut found = lock(&self.found);
        ports
            .into_iter()
            .map(|p| {
                let name = p.port.clone();
                found.insert(name.clone(), p);
                name
            })
            .collect()
    }
}

/// What each `--port` value watches. A bad value is an error; a path, pattern or selector
/// that matches nothing yet is not (its boards come later); a network port is connected now.
fn watched(specs: &[String]) -> anyhow::Result<Vec<Watched>> {
    specs
        .iter()
        .map(|spec| {
            let parsed = spec
                .parse::<PortSpec>()
                .map_err(|e| PortError::BadSpec(e.0))?;
            Ok(match parsed {
                PortSpec::Path(_) => Watched::Path(spec.clone()),
                PortSpec::Auto | PortSpec::Select(_) => Watched::Select(spec.clone()),
                PortSpec::Net(_) => Watched::Net(
                    port::resolve(spec, &Roots::system())?
                        .pop()
                        .with_context(|| format!("--port {spec} stands for no port"))?,
                ),
            })
        })
        .collect()
}

/// The station's record of a board from its report.
fn record_of(report: &Report) -> station::BoardRecord {
    let device = report.device.as_ref();
    station::BoardRecord {
        port: report.port.clone().unwrap_or_default(),
        outcome: match report.exit_code {
            0 => station::Outcome::Pass,
            _ => station::Outcome::Fail,
        },
        exit_code: report.exit_code,
        error: report.error.clone(),
        chip: device.map(|d| d.chip.clone()),
        mac: device.and_then(|d| d.mac.clone()),
        row: report.nvs_row.clone(),
        time: report.time.clone(),
        seconds: report.timings_ms.total as f64 / 1000.0,
    }
}

/// The last record of each board (by MAC; a board never identified stands alone), in the
/// order the boards were first seen.
fn last_per_board(reports: &[Report]) -> Vec<Report> {
    let mut macs: Vec<Option<String>> = Vec::new();
    let mut last: Vec<Report> = Vec::new();
    for report in reports {
        let mac = report.device.as_ref().and_then(|d| d.mac.clone());
        match macs.iter().position(|m| m.is_some() && *m == mac) {
            Some(i) => last[i] = report.clone(),
            None => {
                macs.push(mac);
                last.push(report.clone());
            }
        }
    }
    last
}

/// A board's phases, from the device layer to the station.
struct Relay(Arc<dyn station::Observer>);

impl PhaseObserver for Relay {
    fn phase(&self, phase: Phase) {
        self.0.phase(match phase {
            Phase::Connecting => station::Phase::Connecting,
            Phase::Erasing => station::Phase::Erasing,
            Phase::Writing { percent } => station::Phase::Writing { percent },
            Phase::Verifying => station::Phase::Verifying,
            Phase::BootCheck => station::Phase::BootCheck,
        });
    }

    fn identified(&self, chip: &str, mac: &str) {
        self.0.identified(chip, mac);
    }
}

/// Nobody listens (a jig's board identified between runs).
struct Unheard;

impl PhaseObserver for Unheard {
    fn phase(&self, _: Phase) {}
    fn identified(&self, _: &str, _: &str) {}
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::DeviceReport;

    fn report(mac: Option<&str>, code: u8) -> Report {
        Report {
            exit_code: code,
            device: Some(DeviceReport {
                mac: mac.map(String::from),
                ..DeviceReport::default()
            }),
            ..Report::default()
        }
    }

    #[test]
    fn a_board_run_again_is_summed_up_by_its_last_run() {
        let reports = [
            report(Some("aa"), 6),
            report(None, 4),
            report(Some("bb"), 0),
            report(None, 4),
            report(Some("aa"), 0),
        ];
        let last = last_per_board(&reports);
        let codes: Vec<u8> = last.iter().map(|r| r.exit_code).collect();
        assert_eq!(codes, [0, 4, 0, 4]);
        assert_eq!(boards::exit_code(&last), 4);
    }
}
