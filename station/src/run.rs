//! The loop that runs all shift: it polls the ports (no udev), starts each board that appears
//! on its own thread, and keeps the port waiting until that board is gone, so that the same
//! insertion is never written twice.
//!
//! A board is gone when its port's device node disappears (a board unplugged with its USB
//! bridge). On a jig (`Config::jig`), the bridge stays plugged: the loop reads the identity of
//! the board under it through its loader every `jig` interval; no answer means the jig is empty,
//! and a board that answers after that, or one with another MAC, is a new board.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::model::Hub;
use crate::pipeline::{BoardRecord, Observer, Outcome, Phase, Pipeline};
use crate::stop::Stop;

/// How the loop watches the ports.
#[derive(Debug, Clone)]
pub struct Config {
    /// How often the ports are listed (a few hundred milliseconds).
    pub poll: Duration,
    /// On a jig, how often the board under each done or empty port is identified; `None` when
    /// boards are plugged with their bridge.
    pub jig: Option<Duration>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            poll: Duration::from_millis(300),
            jig: None,
        }
    }
}

/// What a shift did.
#[derive(Debug, Default)]
pub struct Shift {
    /// Every record, in the order the boards finished.
    pub records: Vec<BoardRecord>,
    /// The last record of each board (by MAC, else per insertion), in the order first seen.
    pub last: Vec<BoardRecord>,
    /// Ports whose board was still being written when the station stopped at once: their
    /// boards are in doubt.
    pub in_doubt: Vec<String>,
}

impl Shift {
    fn add(&mut self, key: &str, keys: &mut Vec<String>, record: BoardRecord) {
        match keys.iter().position(|k| k == key) {
            Some(i) => self.last[i] = record.clone(),
            None => {
                keys.push(key.to_string());
                self.last.push(record.clone());
            }
        }
        self.records.push(record);
    }
}

/// One port as the loop sees it.
enum Slot {
    /// No device node.
    Absent,
    /// A jig with no board under it (or not probed yet).
    Empty { probe_at: Instant },
    /// A board is being written.
    Busy(JoinHandle<BoardRecord>),
    /// The board is done and still there.
    Done {
        mac: Option<String>,
        probe_at: Instant,
    },
}

/// Runs the station until `stop` asks twice, or once and the boards in progress are done.
/// Every change goes to `hub`, which the views read.
pub fn run(pipeline: Arc<dyn Pipeline>, hub: Arc<Hub>, config: &Config, stop: Stop) -> Shift {
    let mut slots: BTreeMap<String, Slot> = BTreeMap::new();
    let mut shift = Shift::default();
    let mut keys = Vec::new();
    let mut insertions = 0u64;
    hub.rows_left(pipeline.rows_left());
    loop {
        if stop.requests() >= 2 {
            shift.in_doubt = busy_ports(&slots);
            return shift;
        }
        let stopping = stop.requests() == 1;
        if stopping {
            hub.stopping();
        }
        for (port, slot) in slots.iter_mut() {
            if let Some(record) = reap(slot, config) {
                insertions += 1;
                let key = record
                    .mac
                    .clone()
                    .unwrap_or_else(|| format!("{port}#{insertions}"));
                hub.finish(&key, &record);
                hub.rows_left(pipeline.rows_left());
                shift.add(&key, &mut keys, record);
            }
        }
        if stopping && busy_ports(&slots).is_empty() {
            return shift;
        }
        watch(&pipeline, &hub, config, &mut slots, stopping);
        thread::sleep(config.poll);
    }
}

/// The ports whose board is being written.
fn busy_ports(slots: &BTreeMap<String, Slot>) -> Vec<String> {
    slots
        .iter()
        .filter(|(_, s)| matches!(s, Slot::Busy(_)))
        .map(|(p, _)| p.clone())
        .collect()
}

/// The record of a board whose thread has ended; its slot becomes done.
fn reap(slot: &mut Slot, config: &Config) -> Option<BoardRecord> {
    if !matches!(slot, Slot::Busy(h) if h.is_finished()) {
        return None;
    }
    let Slot::Busy(handle) = std::mem::replace(slot, Slot::Absent) else {
        unreachable!("checked busy above")
    };
    let record = handle.join().ok()?;
    *slot = Slot::Done {
        mac: record.mac.clone(),
        probe_at: Instant::now() + config.jig.unwrap_or_default(),
    };
    Some(record)
}

/// Lists the ports and moves each slot on: gone, appeared, a jig's board changed.
fn watch(
    pipeline: &Arc<dyn Pipeline>,
    hub: &Arc<Hub>,
    config: &Config,
    slots: &mut BTreeMap<String, Slot>,
    stopping: bool,
) {
    let present = pipeline.scan();
    for (port, slot) in slots.iter_mut() {
        if !present.contains(port) && !matches!(slot, Slot::Absent | Slot::Busy(_)) {
            *slot = Slot::Absent;
            hub.present(port, false);
        }
    }
    for port in present {
        let slot = slots.entry(port.clone()).or_insert(Slot::Absent);
        if matches!(slot, Slot::Absent) {
            hub.present(&port, true);
            *slot = Slot::Empty {
                probe_at: Instant::now(),
            };
        }
        if stopping {
            continue;
        }
        if next_board(pipeline.as_ref(), hub, config, &port, slot) {
            *slot = Slot::Busy(start(pipeline.clone(), hub.clone(), &port));
        }
    }
}

/// Whether a new board is on `port`: any board on a port that just appeared; on a jig, a
/// board that answers on an empty jig, or with another MAC than the one done.
fn next_board(
    pipeline: &dyn Pipeline,
    hub: &Hub,
    config: &Config,
    port: &str,
    slot: &mut Slot,
) -> bool {
    let Some(every) = config.jig else {
        return matches!(slot, Slot::Empty { .. });
    };
    let (Slot::Empty { probe_at } | Slot::Done { probe_at, .. }) = slot else {
        return false;
    };
    if Instant::now() < *probe_at {
        return false;
    }
    *probe_at = Instant::now() + every;
    let found = pipeline.identify(port);
    match slot {
        Slot::Empty { .. } => found.is_some(),
        Slot::Done { mac, .. } => match found {
            Some(found) => mac.as_deref() != Some(found.as_str()),
            None => {
                hub.emptied(port);
                *slot = Slot::Empty {
                    probe_at: Instant::now() + every,
                };
                false
            }
        },
        _ => false,
    }
}

/// Starts the board on `port` on its own thread; its phases go to `hub`.
fn start(pipeline: Arc<dyn Pipeline>, hub: Arc<Hub>, port: &str) -> JoinHandle<BoardRecord> {
    hub.start(port);
    let port = port.to_string();
    thread::spawn(move || {
        let started = Instant::now();
        let observer = Arc::new(PortObserver {
            hub,
            port: port.clone(),
        });
        let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            pipeline.run(&port, observer)
        }));
        let mut record = run.unwrap_or_else(|_| BoardRecord {
            port: port.clone(),
            outcome: Outcome::Fail,
            exit_code: 1,
            error: Some("internal error: the board's run panicked; re-seat the board".into()),
            chip: None,
            mac: None,
            row: None,
            time: String::new(),
            seconds: 0.0,
        });
        record.seconds = started.elapsed().as_secs_f64();
        record
    })
}

/// One board's phases, passed to the hub under its port.
struct PortObserver {
    hub: Arc<Hub>,
    port: String,
}

impl Observer for PortObserver {
    fn phase(&self, phase: Phase) {
        self.hub.phase(&self.port, phase);
    }

    fn identified(&self, chip: &str, mac: &str) {
        self.hub.identified(&self.port, chip, mac);
    }
}
