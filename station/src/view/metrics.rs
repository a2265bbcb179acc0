//! `/metrics` in the Prometheus text exposition format 0.0.4: the boards by outcome, a
//! histogram of board times, each port's state, the rows free.

use std::fmt::Write;

use crate::model::{PortState, Snapshot};

/// The content type of [`render`]'s text.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Upper bounds of the board time histogram's buckets, in seconds.
pub const BUCKETS: [f64; 10] = [5.0, 10.0, 20.0, 30.0, 45.0, 60.0, 90.0, 120.0, 180.0, 300.0];

/// The metrics of `snap`.
pub fn render(snap: &Snapshot) -> String {
    let mut out = String::new();
    boards(&mut out, snap);
    times(&mut out, snap);
    ports(&mut out, snap);
    if let Some(rows) = snap.counts.rows_left {
        family(
            &mut out,
            "flasher_rows_free",
            "gauge",
            "Per-board data rows still free.",
        );
        let _ = writeln!(out, "flasher_rows_free {rows}");
    }
    out
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn boards(out: &mut String, snap: &Snapshot) {
    family(
        out,
        "flasher_boards_total",
        "counter",
        "Boards run by the station, by outcome (a board run again counts each run).",
    );
    let passed = snap.runs.iter().filter(|(p, _)| *p).count();
    let failed = snap.runs.len() - passed;
    let _ = writeln!(out, "flasher_boards_total{{outcome=\"pass\"}} {passed}");
    let _ = writeln!(out, "flasher_boards_total{{outcome=\"fail\"}} {failed}");
}

fn times(out: &mut String, snap: &Snapshot) {
    family(
        out,
        "flasher_board_seconds",
        "histogram",
        "Time from a board's start to its record, in seconds.",
    );
    for le in BUCKETS {
        let n = snap.runs.iter().filter(|(_, t)| *t <= le).count();
        let _ = writeln!(out, "flasher_board_seconds_bucket{{le=\"{le}\"}} {n}");
    }
    let n = snap.runs.len();
    let sum: f64 = snap.runs.iter().map(|(_, t)| t).sum();
    let _ = writeln!(out, "flasher_board_seconds_bucket{{le=\"+Inf\"}} {n}");
    let _ = writeln!(out, "flasher_board_seconds_sum {sum}");
    let _ = writeln!(out, "flasher_board_seconds_count {n}");
}

fn ports(out: &mut String, snap: &Snapshot) {
    family(
        out,
        "flasher_port_state",
        "gauge",
        "1 for the state each port is in, 0 for the others.",
    );
    for tile in &snap.ports {
        let port = escape(&tile.port);
        for word in PortState::WORDS {
            let on = u8::from(tile.state.word() == word);
            let _ = writeln!(
                out,
                "flasher_port_state{{port=\"{port}\",state=\"{word}\"}} {on}"
            );
        }
    }
}

/// A label value escaped as the format says: backslash, double quote, line feed.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Hub;
    use crate::pipeline::{BoardRecord, Outcome};

    #[test]
    fn every_family_is_declared_before_its_samples() {
        let hub = Hub::new();
        hub.present("/dev/tty\"x", true);
        hub.rows_left(Some(3));
        hub.finish(
            "m",
            &BoardRecord {
                port: "/dev/ttyUSB0".into(),
                outcome: Outcome::Pass,
                exit_code: 0,
                error: None,
                chip: None,
                mac: None,
                row: None,
                time: String::new(),
                seconds: 12.5,
            },
        );
        let text = render(&hub.snapshot());
        assert!(
            text.contains("flasher_board_seconds_bucket{le=\"10\"} 0\n"),
            "{text}"
        );
        assert!(
            text.contains("flasher_board_seconds_bucket{le=\"20\"} 1\n"),
            "{text}"
        );
        assert!(text.contains("port=\"/dev/tty\\\"x\""), "{text}");
        assert!(text.contains("flasher_rows_free 3\n"), "{text}");
    }
}
