//! A manufacturing station: one plan written to several boards at once, each on its own port,
//! connection and thread, each ending in its own record.
//!
//! [`expand_ports`] turns the `--port` arguments into devices; [`flash_all`] writes every board
//! and returns one [`Report`] per port, appending each to the station's log as soon as its
//! board is done; [`exit_code`] sums the records up.

use std::cmp::Ordering;
use std::fs;
use std::path::Path;
use std::sync::Mutex;
use std::time::Instant;

use indicatif::MultiProgress;

use crate::device::{self, Console, Contact, Options};
use crate::error::{ExitKind, UsageError};
use crate::plan::Plan;
use crate::report::{self, Report};
use firmware::chip::TargetName;

/// The devices the `--port` arguments name, in order: each argument is a path, or a pattern
/// with `*` and `?` in its last component (`/dev/ttyUSB*`), which expands to the matching
/// devices in natural order (`ttyUSB2` before `ttyUSB10`).
pub fn expand_ports(args: &[String]) -> Result<Vec<String>, UsageError> {
    let mut ports: Vec<String> = Vec::new();
    for arg in args {
        let found = if arg.contains(['*', '?']) {
            let matches = glob(arg);
            if matches.is_empty() {
                return Err(UsageError::NoPortMatches(arg.clone()));
            }
            matches
        } else {
            vec![arg.clone()]
        };
        for port in found {
            let same = |p: &String| {
                p == &port
                    || matches!((fs::canonicalize(p), fs::canonicalize(&port)), (Ok(a), Ok(b)) if a == b)
            };
            if ports.iter().any(same) {
                return Err(UsageError::DuplicatePort(port));
            }
            ports.push(port);
        }
    }
    Ok(ports)
}

/// The paths matching `pattern`, whose wildcards may only be in the last component.
fn glob(pattern: &str) -> Vec<String> {
    let (dir, name) = match pattern.rfind('/') {
        Some(i) => (&pattern[..=i], &pattern[i + 1..]),
        None => ("", pattern),
    };
    let Ok(entries) = fs::read_dir(if dir.is_empty() { "." } else { dir }) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| wildcard(name.as_bytes(), n.as_bytes()))
        .collect();
    names.sort_by(|a, b| natural(a, b));
    names.into_iter().map(|n| format!("{dir}{n}")).collect()
}

/// Whether `name` matches `pattern` (`*` any run of bytes, `?` one byte).
fn wildcard(pattern: &[u8], name: &[u8]) -> bool {
    match (pattern.first(), name.first()) {
        (None, None) => true,
        (Some(b'*'), _) => {
            wildcard(&pattern[1..], name) || (!name.is_empty() && wildcard(pattern, &name[1..]))
        }
        (Some(b'?'), Some(_)) => wildcard(&pattern[1..], &name[1..]),
        (Some(p), Some(n)) if p == n => wildcard(&pattern[1..], &name[1..]),
        _ => false,
    }
}

/// Compares names with their digit runs as numbers.
fn natural(a: &str, b: &str) -> Ordering {
    fn split(s: &str) -> (&str, u64) {
        let digits = s.len() - s.trim_end_matches(|c: char| c.is_ascii_digit()).len();
        let (head, tail) = s.split_at(s.len() - digits);
        (head, tail.parse().unwrap_or(0))
    }
    split(a).cmp(&split(b)).then_with(|| a.cmp(b))
}

/// The short name of a port for progress lines (`ttyUSB0`).
pub fn short_name(port: &str) -> &str {
    Path::new(port)
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or(port)
}

/// What a station run produced.
#[derive(Debug, Default)]
pub struct Finished {
    /// One record per port, in port order.
    pub records: Vec<Report>,
    /// Records that could not be appended to the log (one message each).
    pub log_errors: Vec<String>,
}

/// Writes `plan` to the board on each of `ports` at once, with `options` (whose port and
/// console are set per board). Each record starts from `base` (the plan's part of the report);
/// it is appended to `log` as soon as its board is done. `started` is when the run began.
pub fn flash_all(
    plan: &Plan,
    target: &TargetName,
    ports: &[String],
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
                    Console::shared(short_name(port), bars.clone())
                } else {
                    options.console.clone()
                };
                let opts = Options {
                    port: port.clone(),
                    console,
                    ..options.clone()
                };
                let log_errors = &log_errors;
                scope.spawn(move || {
                    let record = flash_one(plan, target, &opts, base, started);
                    if let Some(log) = log
                        && let Err(e) = report::append_line(log, &record.to_line())
                    {
                        lock(log_errors).push(format!("the record of {}: {e}", opts.port));
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
                    r.port = Some(port.clone());
                    r.time = report::utc_now();
                    failed(
                        &mut r,
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

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Marks `record` failed with `kind` and `message`.
pub fn failed(record: &mut Report, kind: ExitKind, message: &str) {
    record.outcome = "failed".into();
    record.exit_code = kind.code();
    record.error = Some(message.replace('\n', " "));
}

fn flash_one(
    plan: &Plan,
    target: &TargetName,
    opts: &Options,
    base: &Report,
    started: Instant,
) -> Report {
    let board_started = Instant::now();
    let mut contact = Contact::default();
    let result = device::write(plan, target, opts, &mut contact);
    let mut record = base.clone();
    record.port = Some(opts.port.clone());
    record.attempts = Some(contact.attempts);
    record.device = contact.device;
    match result {
        Ok(outcome) => {
            record.outcome = "ok".into();
            record.exit_code = 0;
            for (region, skipped) in record.regions.iter_mut().zip(&outcome.skipped) {
                region.skipped = Some(*skipped);
            }
            record.timings_ms.connect = outcome.connect.as_millis() as u64;
            record.timings_ms.write = outcome.write.as_millis() as u64;
            let written = outcome.skipped.iter().filter(|s| !**s).count();
            opts.console.say(&format!(
                "done: {written} of {} regions written, {} already in place, in {:.1} s",
                outcome.skipped.len(),
                outcome.skipped.len() - written,
                board_started.elapsed().as_secs_f64()
            ));
        }
        Err(e) => failed(&mut record, e.kind(), &e.to_string()),
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
    fn wildcards_and_natural_order() {
        assert!(wildcard(b"ttyUSB*", b"ttyUSB10"));
        assert!(wildcard(b"ttyUSB*", b"ttyUSB"));
        assert!(wildcard(b"tty?SB1", b"ttyUSB1"));
        assert!(!wildcard(b"ttyUSB?", b"ttyUSB10"));
        assert!(!wildcard(b"ttyACM*", b"ttyUSB0"));
        let mut names = vec!["ttyUSB10", "ttyUSB2", "ttyACM0", "ttyUSB1"];
        names.sort_by(|a, b| natural(a, b));
        assert_eq!(names, ["ttyACM0", "ttyUSB1", "ttyUSB2", "ttyUSB10"]);
    }

    #[test]
    fn ports_expand_in_order_without_duplicates() {
        let dir = tempfile::tempdir().unwrap();
        for n in ["ttyUSB0", "ttyUSB10", "ttyUSB2", "other"] {
            fs::write(dir.path().join(n), b"").unwrap();
        }
        let d = dir.path().display();
        let pattern = format!("{d}/ttyUSB*");
        assert_eq!(
            expand_ports(std::slice::from_ref(&pattern)).unwrap(),
            [
                format!("{d}/ttyUSB0"),
                format!("{d}/ttyUSB2"),
                format!("{d}/ttyUSB10")
            ]
        );
        let err = expand_ports(&[format!("{d}/ttyACM*")]).unwrap_err();
        assert!(err.to_string().contains("matches no device"), "{err}");
        let err = expand_ports(&[format!("{d}/ttyUSB2"), pattern]).unwrap_err();
        assert!(err.to_string().contains("given twice"), "{err}");
        // Plain names are passed through, existing or not: opening them reports what is wrong.
        assert_eq!(
            expand_ports(&["/dev/nothing".to_string()]).unwrap(),
            ["/dev/nothing"]
        );
    }

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
