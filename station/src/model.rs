//! The station's state: a tile per port (what its board is doing), the shift's counts and the
//! last records. [`Hub`] holds it for the loop, which changes it, and for the views, which wait
//! for a change and read a [`Snapshot`].

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::pipeline::{BoardRecord, Phase};

/// How many records the views show.
pub const LAST_RECORDS: usize = 20;

/// What a port's tile shows.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum PortState {
    /// No board (or the last one was taken away): waiting for the next.
    Waiting,
    /// A board is being written; the phase says how far.
    Busy(Phase),
    /// The board passed; it waits to be taken away.
    Pass,
    /// The board failed; it waits to be taken away (or re-seated).
    Fail {
        /// The one-line reason and fix.
        reason: String,
    },
}

impl PortState {
    /// A short word for the state (`waiting`, `connecting`, `writing`, `pass`, `fail`).
    pub fn word(&self) -> &'static str {
        match self {
            PortState::Waiting => "waiting",
            PortState::Busy(Phase::Connecting) => "connecting",
            PortState::Busy(Phase::Erasing) => "erasing",
            PortState::Busy(Phase::Writing { .. }) => "writing",
            PortState::Busy(Phase::Verifying) => "verifying",
            PortState::Busy(Phase::BootCheck) => "boot_check",
            PortState::Pass => "pass",
            PortState::Fail { .. } => "fail",
        }
    }

    /// Every word [`PortState::word`] gives, for per-state metrics.
    pub const WORDS: [&'static str; 8] = [
        "waiting",
        "connecting",
        "erasing",
        "writing",
        "verifying",
        "boot_check",
        "pass",
        "fail",
    ];
}

/// One port and its board.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Tile {
    /// The port's path.
    pub port: String,
    /// Whether the port's device node is there now.
    pub present: bool,
    /// What its board is doing.
    #[serde(flatten)]
    pub state: PortState,
    /// The board's chip, once known.
    pub chip: Option<String>,
    /// The board's MAC, once known.
    pub mac: Option<String>,
    /// The board's data row, once known.
    pub row: Option<String>,
    /// Seconds since the board started (while busy) or that its run took (when done).
    pub elapsed: Option<f64>,
    #[serde(skip)]
    started: Option<Instant>,
}

impl Tile {
    fn new(port: &str) -> Tile {
        Tile {
            port: port.to_string(),
            present: false,
            state: PortState::Waiting,
            chip: None,
            mac: None,
            row: None,
            elapsed: None,
            started: None,
        }
    }
}

/// The shift's counts.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Counts {
    /// Boards whose last run passed.
    pub passed: u64,
    /// Boards whose last run failed.
    pub failed: u64,
    /// `passed / (passed + failed)`, 0 to 1, `None` before the first board.
    pub yield_ratio: Option<f64>,
    /// Boards passed per hour since the station started.
    pub boards_per_hour: f64,
    /// Per-board data rows left, when rows are handed out.
    pub rows_left: Option<u64>,
}

/// What the views show at one moment.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Snapshot {
    /// Grows with every change; a view redraws when it moves.
    pub version: u64,
    /// Seconds since the station started.
    pub uptime: f64,
    /// Whether the station is stopping (no new board starts).
    pub stopping: bool,
    /// One tile per port seen, in port order.
    pub ports: Vec<Tile>,
    /// The shift's counts.
    pub counts: Counts,
    /// The last records, newest first.
    pub last: Vec<BoardRecord>,
    /// Every run so far: whether it passed, and its time in seconds (for the metrics).
    #[serde(skip)]
    pub runs: Vec<(bool, f64)>,
}

#[derive(Debug)]
struct State {
    version: u64,
    stopping: bool,
    tiles: BTreeMap<String, Tile>,
    /// Per board (its MAC, else its port and start), whether its last run passed.
    boards: HashMap<String, bool>,
    last: VecDeque<BoardRecord>,
    runs: Vec<(bool, f64)>,
    rows_left: Option<u64>,
}

/// The station's state, shared by the loop, the board threads and the views.
#[derive(Debug)]
pub struct Hub {
    started: Instant,
    state: Mutex<State>,
    changed: Condvar,
}

impl Default for Hub {
    fn default() -> Self {
        Hub::new()
    }
}

impl Hub {
    /// An empty station, started now.
    pub fn new() -> Hub {
        Hub {
            started: Instant::now(),
            state: Mutex::new(State {
                version: 0,
                stopping: false,
                tiles: BTreeMap::new(),
                boards: HashMap::new(),
                last: VecDeque::new(),
                runs: Vec::new(),
                rows_left: None,
            }),
            changed: Condvar::new(),
        }
    }

    /// The port's device node appeared (`true`) or went away (`false`). A port that goes away
    /// shows waiting again, unless its board is still busy.
    pub fn present(&self, port: &str, present: bool) {
        self.change(|s| {
            let tile = s
                .tiles
                .entry(port.to_string())
                .or_insert_with(|| Tile::new(port));
            tile.present = present;
            if !present && !matches!(tile.state, PortState::Busy(_)) {
                *tile = Tile::new(port);
            }
        });
    }

    /// The board on `port` was taken away from a jig (it no longer answers).
    pub fn emptied(&self, port: &str) {
        self.change(|s| {
            let mut tile = Tile::new(port);
            tile.present = true;
            s.tiles.insert(port.to_string(), tile);
        });
    }

    /// A new board starts on `port`.
    pub fn start(&self, port: &str) {
        self.change(|s| {
            let mut tile = Tile::new(port);
            tile.present = true;
            tile.state = PortState::Busy(Phase::Connecting);
            tile.started = Some(Instant::now());
            tile.elapsed = Some(0.0);
            s.tiles.insert(port.to_string(), tile);
        });
    }

    /// The board on `port` entered `phase`.
    pub fn phase(&self, port: &str, phase: Phase) {
        self.change(|s| {
            if let Some(tile) = s.tiles.get_mut(port) {
                tile.state = PortState::Busy(phase);
            }
        });
    }

    /// The board on `port` said what it is.
    pub fn identified(&self, port: &str, chip: &str, mac: &str) {
        self.change(|s| {
            if let Some(tile) = s.tiles.get_mut(port) {
                tile.chip = Some(chip.to_string());
                tile.mac = Some(mac.to_string());
            }
        });
    }

    /// The board on `port` ended with `record`; `board` names it for the counts (its MAC,
    /// else something unique to this insertion), so that a board run again counts once, by
    /// its last run.
    pub fn finish(&self, board: &str, record: &BoardRecord) {
        self.change(|s| {
            let tile = s
                .tiles
                .entry(record.port.clone())
                .or_insert_with(|| Tile::new(&record.port));
            tile.state = match &record.error {
                _ if record.passed() => PortState::Pass,
                Some(reason) => PortState::Fail {
                    reason: reason.clone(),
                },
                None => PortState::Fail {
                    reason: "failed".into(),
                },
            };
            tile.chip = record.chip.clone().or(tile.chip.take());
            tile.mac = record.mac.clone().or(tile.mac.take());
            tile.row = record.row.clone();
            tile.elapsed = Some(record.seconds);
            tile.started = None;
            s.boards.insert(board.to_string(), record.passed());
            s.runs.push((record.passed(), record.seconds));
            s.last.push_front(record.clone());
            s.last.truncate(LAST_RECORDS);
        });
    }

    /// The rows left now.
    pub fn rows_left(&self, rows: Option<u64>) {
        let s = self.lock();
        if s.rows_left != rows {
            drop(s);
            self.change(|s| s.rows_left = rows);
        }
    }

    /// The station stops: no new board starts.
    pub fn stopping(&self) {
        self.change(|s| s.stopping = true);
    }

    /// What the views show now.
    pub fn snapshot(&self) -> Snapshot {
        let s = self.lock();
        let uptime = self.started.elapsed().as_secs_f64();
        let passed = s.boards.values().filter(|p| **p).count() as u64;
        let failed = s.boards.len() as u64 - passed;
        let ports = s
            .tiles
            .values()
            .map(|t| {
                let mut t = t.clone();
                if let Some(started) = t.started {
                    t.elapsed = Some(started.elapsed().as_secs_f64());
                }
                t
            })
            .collect();
        Snapshot {
            version: s.version,
            uptime,
            stopping: s.stopping,
            ports,
            counts: Counts {
                passed,
                failed,
                yield_ratio: (passed + failed > 0)
                    .then(|| passed as f64 / (passed + failed) as f64),
                boards_per_hour: passed as f64 * 3600.0 / uptime.max(1.0),
                rows_left: s.rows_left,
            },
            last: s.last.iter().cloned().collect(),
            runs: s.runs.clone(),
        }
    }

    /// Waits until the state changes past `seen` or `timeout` passes; returns the version now.
    pub fn wait(&self, seen: u64, timeout: Duration) -> u64 {
        let s = self.lock();
        let (s, _) = self
            .changed
            .wait_timeout_while(s, timeout, |s| s.version == seen)
            .unwrap_or_else(|e| e.into_inner());
        s.version
    }

    fn change(&self, f: impl FnOnce(&mut State)) {
        let mut s = self.lock();
        f(&mut s);
        s.version += 1;
        self.changed.notify_all();
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::Outcome;

    fn record(port: &str, passed: bool) -> BoardRecord {
        BoardRecord {
            port: port.into(),
            outcome: if passed { Outcome::Pass } else { Outcome::Fail },
            exit_code: if passed { 0 } else { 6 },
            error: (!passed).then(|| "verify failed; re-seat the board".into()),
            chip: Some("esp32s3".into()),
            mac: Some("02:00:00:00:00:01".into()),
            row: Some("A1".into()),
            time: "2026-01-01T00:00:00Z".into(),
            seconds: 12.0,
        }
    }

    #[test]
    fn a_board_goes_from_waiting_to_pass_and_back_when_taken_away() {
        let hub = Hub::new();
        hub.present("/dev/ttyUSB0", true);
        assert_eq!(hub.snapshot().ports[0].state, PortState::Waiting);
        hub.start("/dev/ttyUSB0");
        hub.phase("/dev/ttyUSB0", Phase::Writing { percent: 40 });
        hub.identified("/dev/ttyUSB0", "esp32s3", "02:00:00:00:00:01");
        let tile = &hub.snapshot().ports[0];
        assert_eq!(tile.state.word(), "writing");
        assert_eq!(tile.mac.as_deref(), Some("02:00:00:00:00:01"));
        hub.finish("02:00:00:00:00:01", &record("/dev/ttyUSB0", true));
        let snap = hub.snapshot();
        assert_eq!(snap.ports[0].state, PortState::Pass);
        assert_eq!(snap.ports[0].row.as_deref(), Some("A1"));
        assert_eq!(snap.counts.passed, 1);
        assert_eq!(snap.counts.yield_ratio, Some(1.0));
        hub.present("/dev/ttyUSB0", false);
        assert_eq!(hub.snapshot().ports[0].state, PortState::Waiting);
    }

    #[test]
    fn a_board_run_again_counts_once_by_its_last_run() {
        let hub = Hub::new();
        hub.finish("mac-1", &record("/dev/ttyUSB0", false));
        hub.finish("mac-2", &record("/dev/ttyUSB1", false));
        assert_eq!(
            (hub.snapshot().counts.passed, hub.snapshot().counts.failed),
            (0, 2)
        );
        hub.finish("mac-1", &record("/dev/ttyUSB0", true));
        let counts = hub.snapshot().counts;
        assert_eq!((counts.passed, counts.failed), (1, 1));
        assert_eq!(counts.yield_ratio, Some(0.5));
        assert_eq!(hub.snapshot().last.len(), 3);
    }

    #[test]
    fn waiting_wakes_on_a_change() {
        let hub = std::sync::Arc::new(Hub::new());
        let seen = hub.snapshot().version;
        let h = hub.clone();
        let t = std::thread::spawn(move || h.wait(seen, Duration::from_secs(10)));
        std::thread::sleep(Duration::from_millis(50));
        hub.stopping();
        assert!(t.join().unwrap() > seen);
        assert!(hub.snapshot().stopping);
    }
}
