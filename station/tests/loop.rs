//! The loop over a fake pipeline: ports appear and go as the test says, each run takes a
//! moment, boards with a MAC in the failing set fail.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use station::{BoardRecord, Config, Hub, Observer, Outcome, Phase, Pipeline, PortState, Stop};

/// Ports and the boards on them, as the test plugs them.
#[derive(Default)]
struct Line {
    /// Port → the MAC of the board on it (`None`: a jig with no board).
    ports: Mutex<BTreeMap<String, Option<String>>>,
    failing: Mutex<BTreeSet<String>>,
    runs: Mutex<Vec<(String, String)>>,
    /// Boards being run now, and the most at once.
    active: Mutex<(usize, usize)>,
    run_time: Duration,
}

impl Line {
    fn plug(&self, port: &str, mac: Option<&str>) {
        let mut ports = self.ports.lock().unwrap();
        ports.insert(port.into(), mac.map(String::from));
    }
    fn unplug(&self, port: &str) {
        self.ports.lock().unwrap().remove(port);
    }
    fn runs(&self) -> Vec<(String, String)> {
        self.runs.lock().unwrap().clone()
    }
}

impl Pipeline for Line {
    fn scan(&self) -> Vec<String> {
        self.ports.lock().unwrap().keys().cloned().collect()
    }

    fn run(&self, port: &str, observer: Arc<dyn Observer>) -> BoardRecord {
        let mac = self.ports.lock().unwrap().get(port).cloned().flatten();
        let mac = mac.unwrap_or_else(|| "none".into());
        {
            let mut active = self.active.lock().unwrap();
            active.0 += 1;
            active.1 = active.1.max(active.0);
        }
        observer.phase(Phase::Connecting);
        observer.identified("esp32s3", &mac);
        for percent in [0, 50, 100] {
            observer.phase(Phase::Writing { percent });
            thread::sleep(self.run_time / 3);
        }
        self.runs.lock().unwrap().push((port.into(), mac.clone()));
        self.active.lock().unwrap().0 -= 1;
        let failed = self.failing.lock().unwrap().contains(&mac);
        BoardRecord {
            port: port.into(),
            outcome: if failed { Outcome::Fail } else { Outcome::Pass },
            exit_code: if failed { 6 } else { 0 },
            error: failed.then(|| "verify failed".into()),
            chip: Some("esp32s3".into()),
            mac: Some(mac),
            row: None,
            time: String::new(),
            seconds: 0.0,
        }
    }

    fn identify(&self, port: &str) -> Option<String> {
        self.ports.lock().unwrap().get(port).cloned().flatten()
    }

    fn rows_left(&self) -> Option<u64> {
        Some(100 - self.runs.lock().unwrap().len() as u64)
    }
}

struct Running {
    line: Arc<Line>,
    hub: Arc<Hub>,
    stop: Stop,
    thread: thread::JoinHandle<station::Shift>,
}

fn start(jig: bool, run_time: Duration) -> Running {
    let line = Arc::new(Line {
        run_time,
        ..Line::default()
    });
    let hub = Arc::new(Hub::new());
    let stop = Stop::manual();
    let config = Config {
        poll: Duration::from_millis(20),
        jig: jig.then_some(Duration::from_millis(40)),
    };
    let (l, h) = (line.clone() as Arc<dyn Pipeline>, hub.clone());
    let thread = thread::spawn(move || station::run(l, h, &config, stop));
    Running {
        line,
        hub,
        stop,
        thread,
    }
}

fn until(what: &str, f: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        thread::sleep(Duration::from_millis(5));
    }
}

fn state(hub: &Hub, port: &str) -> PortState {
    let snap = hub.snapshot();
    let tile = snap.ports.iter().find(|t| t.port == port);
    tile.map(|t| t.state.clone()).unwrap_or(PortState::Waiting)
}

#[test]
fn boards_are_written_once_per_insertion_in_parallel() {
    let s = start(false, Duration::from_millis(300));
    s.line.plug("p0", Some("m0"));
    until("the first board", || s.line.runs().len() == 1);
    for (p, m) in [("p1", "m1"), ("p2", "m2"), ("p3", "m3")] {
        s.line.plug(p, Some(m));
    }
    until("three more boards", || s.line.runs().len() == 4);
    assert_eq!(
        s.line.active.lock().unwrap().1,
        3,
        "three boards ran one after the other"
    );
    // Still plugged: not written again.
    thread::sleep(Duration::from_millis(200));
    assert_eq!(s.line.runs().len(), 4);
    assert_eq!(state(&s.hub, "p1"), PortState::Pass);
    // Unplugged and plugged again: a new insertion.
    s.line.unplug("p1");
    until("p1 waiting", || state(&s.hub, "p1") == PortState::Waiting);
    s.line.plug("p1", Some("m1"));
    until("p1 again", || s.line.runs().len() == 5);
    s.stop.request();
    let shift = s.thread.join().unwrap();
    assert_eq!(shift.records.len(), 5);
    assert_eq!(shift.last.len(), 4, "m1 counts once");
    assert!(shift.in_doubt.is_empty());
    let counts = s.hub.snapshot().counts;
    assert_eq!(
        (counts.passed, counts.failed, counts.rows_left),
        (4, 0, Some(95))
    );
}

#[test]
fn a_failed_board_reseated_is_retried_and_counts_by_its_last_run() {
    let s = start(false, Duration::from_millis(30));
    s.line.failing.lock().unwrap().insert("m0".into());
    s.line.plug("p0", Some("m0"));
    until("the failure", || {
        matches!(state(&s.hub, "p0"), PortState::Fail { .. })
    });
    assert_eq!(s.hub.snapshot().counts.failed, 1);
    s.line.failing.lock().unwrap().clear();
    s.line.unplug("p0");
    until("p0 gone", || state(&s.hub, "p0") == PortState::Waiting);
    s.line.plug("p0", Some("m0"));
    until("the pass", || state(&s.hub, "p0") == PortState::Pass);
    let counts = s.hub.snapshot().counts;
    assert_eq!((counts.passed, counts.failed), (1, 0));
    s.stop.request();
    let shift = s.thread.join().unwrap();
    assert_eq!(shift.last.len(), 1);
    assert!(shift.last[0].passed());
}

#[test]
fn a_jig_takes_a_board_with_another_mac_or_after_it_was_empty() {
    let s = start(true, Duration::from_millis(30));
    s.line.plug("jig", None);
    thread::sleep(Duration::from_millis(200));
    assert!(s.line.runs().is_empty(), "an empty jig was written");
    s.line.plug("jig", Some("m1"));
    until("m1", || s.line.runs().len() == 1);
    thread::sleep(Duration::from_millis(200));
    assert_eq!(s.line.runs().len(), 1, "the same board was written twice");
    s.line.plug("jig", Some("m2"));
    until("m2", || s.line.runs().len() == 2);
    // The same board taken out and put back (the jig answered nothing in between).
    s.line.plug("jig", None);
    until("the jig empty", || {
        state(&s.hub, "jig") == PortState::Waiting
    });
    s.line.plug("jig", Some("m2"));
    until("m2 again", || s.line.runs().len() == 3);
    let macs: Vec<String> = s.line.runs().into_iter().map(|(_, m)| m).collect();
    assert_eq!(macs, ["m1", "m2", "m2"]);
    s.stop.request();
    s.thread.join().unwrap();
}

#[test]
fn a_stop_lets_boards_finish_and_starts_none_and_a_second_stops_at_once() {
    let s = start(false, Duration::from_millis(400));
    s.line.plug("p0", Some("m0"));
    until("p0 busy", || {
        matches!(state(&s.hub, "p0"), PortState::Busy(_))
    });
    s.stop.request();
    s.line.plug("p1", Some("m1"));
    let shift = s.thread.join().unwrap();
    assert_eq!(shift.records.len(), 1, "the board in progress finished");
    assert!(shift.records[0].passed());
    assert_eq!(s.line.runs().len(), 1, "no new board started");
    assert!(s.hub.snapshot().stopping);

    let s = start(false, Duration::from_secs(3));
    s.line.plug("p0", Some("m0"));
    until("p0 busy", || {
        matches!(state(&s.hub, "p0"), PortState::Busy(_))
    });
    let asked = Instant::now();
    s.stop.request();
    s.stop.request();
    let shift = s.thread.join().unwrap();
    assert!(asked.elapsed() < Duration::from_secs(1));
    assert_eq!(shift.in_doubt, ["p0"]);
    assert!(shift.records.is_empty());
}
