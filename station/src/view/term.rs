//! The station on its terminal: on a terminal, a compact table of the ports redrawn in place
//! (ANSI); elsewhere (a log, `docker logs`), one line per event.

use std::collections::HashMap;
use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use crate::model::{Hub, PortState, Snapshot, Tile};
use crate::pipeline::Phase;

use super::{short_name, state_text};

/// The terminal view, drawn by its own thread until dropped.
#[derive(Debug)]
pub struct Terminal {
    done: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Terminal {
    /// Shows `hub` on stderr: a table redrawn in place when `table`, else one line per event.
    pub fn start(hub: Arc<Hub>, table: bool) -> Terminal {
        let done = Arc::new(AtomicBool::new(false));
        let quit = done.clone();
        let thread = thread::spawn(move || {
            let mut out = Output::new(table);
            let mut seen = u64::MAX;
            loop {
                let finishing = quit.load(Ordering::SeqCst);
                let snap = hub.snapshot();
                if snap.version != seen || table {
                    out.show(&snap);
                    seen = snap.version;
                }
                if finishing {
                    return;
                }
                hub.wait(seen, Duration::from_secs(1));
            }
        });
        Terminal {
            done,
            thread: Some(thread),
        }
    }
}

impl Drop for Terminal {
    /// Draws the last state and stops.
    fn drop(&mut self) {
        self.done.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// What was shown so far.
struct Output {
    table: bool,
    /// Lines of the table drawn last.
    drawn: usize,
    /// Per port, the event last printed.
    printed: HashMap<String, String>,
    stopping: bool,
}

impl Output {
    fn new(table: bool) -> Output {
        Output {
            table,
            drawn: 0,
            printed: HashMap::new(),
            stopping: false,
        }
    }

    fn show(&mut self, snap: &Snapshot) {
        let text = match self.table {
            true => self.table(snap),
            false => self.events(snap),
        };
        let mut err = std::io::stderr().lock();
        let _ = err.write_all(text.as_bytes());
        let _ = err.flush();
    }

    /// The table, drawn over the last one.
    fn table(&mut self, snap: &Snapshot) -> String {
        let mut lines = vec![format!(
            "{:<14} {:<28} {:<9} {:<18} {:<8} {:>7}",
            "PORT", "STATE", "CHIP", "MAC", "ROW", "TIME"
        )];
        lines.extend(snap.ports.iter().map(row));
        lines.push(counts_line(snap));
        let mut text = String::new();
        if self.drawn > 0 {
            text.push_str(&format!("\x1b[{}F", self.drawn));
        }
        for line in &lines {
            text.push_str(&format!("\x1b[2K{line}\n"));
        }
        self.drawn = lines.len();
        text
    }

    /// One line per port whose state changed (writing in steps of 25 %), and the stop.
    fn events(&mut self, snap: &Snapshot) -> String {
        let mut text = String::new();
        for tile in &snap.ports {
            let event = event(tile);
            if self.printed.get(&tile.port) != Some(&event) {
                if event != "waiting" || self.printed.contains_key(&tile.port) {
                    text.push_str(&format!("[{}] {event}\n", short_name(&tile.port)));
                }
                self.printed.insert(tile.port.clone(), event);
            }
        }
        if snap.stopping && !self.stopping {
            self.stopping = true;
            text.push_str("station: stopping: the boards in progress finish, no new board starts (a second signal stops at once)\n");
            text.push_str(&format!("{}\n", counts_line(snap)));
        }
        text
    }
}

/// A port's event line: its state (writing in steps of 25 %), and its board when done.
fn event(tile: &Tile) -> String {
    match &tile.state {
        PortState::Busy(Phase::Writing { percent }) => format!("writing {} %", percent / 25 * 25),
        PortState::Pass | PortState::Fail { .. } => format!(
            "{} ({} {}, row {}, {:.1} s)",
            state_text(tile),
            tile.chip.as_deref().unwrap_or("-"),
            tile.mac.as_deref().unwrap_or("-"),
            tile.row.as_deref().unwrap_or("-"),
            tile.elapsed.unwrap_or(0.0)
        ),
        _ => state_text(tile),
    }
}

/// One row of the table, coloured by state.
fn row(tile: &Tile) -> String {
    let colour = match tile.state {
        PortState::Pass => "\x1b[1;32m",
        PortState::Fail { .. } => "\x1b[1;31m",
        PortState::Busy(_) => "\x1b[33m",
        PortState::Waiting => "\x1b[2m",
    };
    let mut state = state_text(tile);
    state.truncate(28);
    format!(
        "{:<14} {colour}{:<28}\x1b[0m {:<9} {:<18} {:<8} {:>6.0}s",
        short_name(&tile.port),
        state,
        tile.chip.as_deref().unwrap_or("-"),
        tile.mac.as_deref().unwrap_or("-"),
        tile.row.as_deref().unwrap_or("-"),
        tile.elapsed.unwrap_or(0.0)
    )
}

/// The shift's counts on one line.
pub fn counts_line(snap: &Snapshot) -> String {
    let c = &snap.counts;
    let rows = c
        .rows_left
        .map(|r| format!(", {r} rows left"))
        .unwrap_or_default();
    let yield_text = c
        .yield_ratio
        .map(|y| format!("{:.1} %", y * 100.0))
        .unwrap_or_else(|| "-".into());
    format!(
        "station: {} passed, {} failed, yield {yield_text}, {:.0} boards/h{rows}",
        c.passed, c.failed, c.boards_per_hour
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::{BoardRecord, Outcome};

    #[test]
    fn events_print_each_change_once_and_the_table_redraws_over_itself() {
        let hub = Hub::new();
        let mut lines = Output::new(false);
        let mut table = Output::new(true);
        hub.present("/dev/ttyUSB0", true);
        assert_eq!(lines.events(&hub.snapshot()), "");
        hub.start("/dev/ttyUSB0");
        hub.phase("/dev/ttyUSB0", Phase::Writing { percent: 10 });
        assert_eq!(lines.events(&hub.snapshot()), "[ttyUSB0] writing 0 %\n");
        hub.phase("/dev/ttyUSB0", Phase::Writing { percent: 20 });
        assert_eq!(lines.events(&hub.snapshot()), "");
        let first = table.table(&hub.snapshot());
        assert!(
            !first.contains("\x1b[3F") && first.contains("writing 20 %"),
            "{first:?}"
        );
        hub.finish(
            "m",
            &BoardRecord {
                port: "/dev/ttyUSB0".into(),
                outcome: Outcome::Pass,
                exit_code: 0,
                error: None,
                chip: Some("esp32s3".into()),
                mac: Some("02:00:00:00:00:01".into()),
                row: Some("SN-0001".into()),
                time: String::new(),
                seconds: 9.5,
            },
        );
        assert_eq!(
            lines.events(&hub.snapshot()),
            "[ttyUSB0] PASS (esp32s3 02:00:00:00:00:01, row SN-0001, 9.5 s)\n"
        );
        let again = table.table(&hub.snapshot());
        assert!(
            again.starts_with("\x1b[3F") && again.contains("PASS"),
            "{again:?}"
        );
        hub.stopping();
        assert!(
            lines
                .events(&hub.snapshot())
                .starts_with("station: stopping")
        );
    }
}
