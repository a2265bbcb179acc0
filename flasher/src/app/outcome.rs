//! How a run ends: the records of a run that stopped before any board was written, the line
//! that sums a station's boards up, the exit code, and the report file.

use std::fs::File;
use std::path::Path;
use std::time::Instant;

use crate::boards::{self, Finished};
use crate::error::{DeviceError, ExitKind, PlanError, PortError, UsageError};
use crate::nvs::NvsError;
use crate::port;
use crate::report::{self, Report, RunReport};

/// The kind of failure of an error that stopped the run before any board was written.
pub fn exit_kind(e: &anyhow::Error) -> ExitKind {
    if let Some(e) = e.downcast_ref::<PlanError>() {
        e.kind()
    } else if let Some(e) = e.downcast_ref::<DeviceError>() {
        e.kind()
    } else if let Some(e) = e.downcast_ref::<PortError>() {
        e.kind()
    } else if let Some(e) = e.downcast_ref::<NvsError>() {
        e.kind()
    } else if let Some(e) = e.downcast_ref::<crate::sink::SinkError>() {
        e.kind()
    } else if let Some(e) = e.downcast_ref::<crate::profile::ProfileError>() {
        e.kind()
    } else if e.downcast_ref::<UsageError>().is_some() {
        ExitKind::Usage
    } else {
        ExitKind::Other
    }
}

/// The records of a run that stopped before any board was written: one per port (or one when
/// none was given), each with the error, which is printed once. Each is appended to `log`.
pub fn failed_before_boards(
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
        record.fail(kind, &message);
        if let Some(log) = log
            && let Err(e) = report::append_line(log, &record.to_line())
        {
            finished.log_errors.push(format!("a record: {e}"));
        }
        finished.records.push(record);
    }
    finished
}

/// The line summing up a station's boards, when there are several: how many were written, and
/// which failed with what exit code.
pub fn summary(records: &[Report]) -> Option<String> {
    if records.len() < 2 {
        return None;
    }
    let ok = records.iter().filter(|r| r.exit_code == 0).count();
    let failed: Vec<String> = records
        .iter()
        .filter(|r| r.exit_code != 0)
        .map(|r| {
            let port = r.port.as_deref().unwrap_or("?");
            format!("{} (exit {})", port::short_name(port), r.exit_code)
        })
        .collect();
    Some(if failed.is_empty() {
        format!("station: all {ok} boards written")
    } else {
        format!(
            "station: {ok} of {} boards written; failed: {}",
            records.len(),
            failed.join(", ")
        )
    })
}

/// The exit code of a run before its report is written: the boards' (see
/// [`boards::exit_code`]), at least 1 when a record could not be appended to the log.
pub fn exit_code(finished: &Finished) -> u8 {
    let code = boards::exit_code(&finished.records);
    if finished.log_errors.is_empty() {
        code
    } else {
        code.max(ExitKind::Other.code())
    }
}

/// Ends a run: prints the summary of a station and the records the log lost, writes the
/// report to `report_path` when asked, and returns the exit code (at least 1 when the report
/// cannot be written).
pub fn finish(finished: Finished, report_path: Option<&Path>) -> u8 {
    let mut code = exit_code(&finished);
    if let Some(line) = summary(&finished.records) {
        eprintln!("{line}");
    }
    for e in &finished.log_errors {
        eprintln!(
            "error: cannot append {e}; check the disk and the --report-append file, the report \
             and the lines above have the outcome"
        );
    }
    if let Some(path) = report_path {
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
    code
}

#[cfg(test)]
mod tests {
    use super::*;

    fn board(port: &str, exit_code: u8) -> Report {
        Report {
            port: Some(port.into()),
            exit_code,
            ..Report::default()
        }
    }

    #[test]
    fn one_board_needs_no_summary() {
        assert_eq!(summary(&[]), None);
        assert_eq!(summary(&[board("/dev/ttyUSB0", 6)]), None);
    }

    #[test]
    fn the_summary_names_the_failed_boards() {
        assert_eq!(
            summary(&[board("/dev/ttyUSB0", 0), board("/dev/ttyUSB1", 0)]).unwrap(),
            "station: all 2 boards written"
        );
        assert_eq!(
            summary(&[
                board("/dev/ttyUSB0", 0),
                board("/dev/ttyUSB1", 5),
                board("rfc2217://host:4000", 4)
            ])
            .unwrap(),
            "station: 1 of 3 boards written; failed: ttyUSB1 (exit 5), host:4000 (exit 4)"
        );
    }

    #[test]
    fn errors_before_the_boards_exit_with_their_kind() {
        let kind = |e: anyhow::Error| exit_kind(&e);
        assert_eq!(kind(UsageError::MissingPort.into()), ExitKind::Usage);
        assert_eq!(kind(PortError::BadSpec("x".into()).into()), ExitKind::Usage);
        assert_eq!(
            kind(DeviceError::NotFound("/dev/x".into()).into()),
            ExitKind::Device
        );
        assert_eq!(
            kind(PlanError::NoBundle("/firmware".into()).into()),
            ExitKind::Bundle
        );
        // Context added on the way keeps the kind; anything untyped is "other".
        let e = anyhow::Error::from(PlanError::NoBundle("/firmware".into())).context("planning");
        assert_eq!(kind(e), ExitKind::Bundle);
        assert_eq!(kind(anyhow::anyhow!("disk full")), ExitKind::Other);
    }

    #[test]
    fn a_run_stopped_early_has_one_failed_record_per_port() {
        let e = anyhow::Error::from(UsageError::MissingPort);
        let base = Report {
            target: "esp32".into(),
            ..Report::default()
        };
        let ports = ["/dev/ttyUSB0".to_string(), "/dev/ttyUSB1".to_string()];
        let finished = failed_before_boards(&e, &base, &ports, None, Instant::now());
        assert_eq!(finished.records.len(), 2);
        for (record, port) in finished.records.iter().zip(&ports) {
            assert_eq!(record.port.as_ref(), Some(port));
            assert_eq!((record.outcome.as_str(), record.exit_code), ("failed", 2));
            assert_eq!(record.target, "esp32");
            assert!(record.error.as_ref().unwrap().contains("missing --port"));
        }
        let finished = failed_before_boards(&e, &base, &[], None, Instant::now());
        assert_eq!(finished.records.len(), 1);
        assert_eq!(finished.records[0].port, None);
    }

    #[test]
    fn a_lost_record_or_report_raises_the_exit_code_to_1() {
        let mut finished = Finished {
            records: vec![board("/dev/ttyUSB0", 0)],
            log_errors: Vec::new(),
        };
        assert_eq!(exit_code(&finished), 0);
        finished.log_errors.push("the record: disk full".into());
        assert_eq!(exit_code(&finished), 1);
        finished.records.push(board("/dev/ttyUSB1", 6));
        assert_eq!(exit_code(&finished), 6);

        let dir = tempfile::tempdir().unwrap();
        let ok = Finished {
            records: vec![board("/dev/ttyUSB0", 0)],
            log_errors: Vec::new(),
        };
        let path = dir.path().join("report.json");
        assert_eq!(finish(ok, Some(&path)), 0);
        let report: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(
            (report["outcome"].as_str(), report["exit_code"].as_u64()),
            (Some("ok"), Some(0))
        );
        let ok = Finished {
            records: vec![board("/dev/ttyUSB0", 0)],
            log_errors: Vec::new(),
        };
        assert_eq!(finish(ok, Some(&dir.path().join("missing/report.json"))), 1);
    }
}
