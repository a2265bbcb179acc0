//! After the final reset: the board's serial output on the same connection, watched for the
//! lines that say it booted (`--expect`), and shown on the terminal (`--monitor`,
//! `--monitor-for`) with ESP-IDF monitor's keys: Ctrl-] quits, Ctrl-T Ctrl-R resets the board.

use std::io::{self, Read, Write};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use espflash::connection::Port;
use regex::Regex;
use serde::Serialize;
use serialport::SerialPort;

use crate::error::DeviceError;

/// Ctrl-]: leave the monitor.
const EXIT_KEY: u8 = 0x1D;
/// Ctrl-T: the monitor's menu key.
const MENU_KEY: u8 = 0x14;
/// Ctrl-R after Ctrl-T: reset the board.
const RESET_KEY: u8 = 0x12;
/// Most lines of the boot log kept in the record.
const EXCERPT_LINES: usize = 80;

/// What to do with the board's output after the reset.
#[derive(Debug, Clone)]
pub struct BootWatch {
    /// Lines that must all appear (each a match of one pattern) for the board to count as
    /// booted; empty: nothing is waited for.
    pub expect: Vec<Regex>,
    /// How long to wait for them after the reset.
    pub within: Duration,
    /// Show the output on stdout: until Ctrl-] or Ctrl-C (`Some(None)`), or for a time.
    pub monitor: Option<Option<Duration>>,
}

/// What the board printed after the reset, and whether the expected lines came.
#[derive(Debug, Clone, Serialize)]
pub struct BootRecord {
    /// The patterns waited for.
    pub expect: Vec<String>,
    /// Whether every pattern matched a line within the time.
    pub booted: bool,
    /// The lines the board printed, up to the last expected one (at most 80).
    pub log: Vec<String>,
    /// Milliseconds from the reset to the last expected line (or to the time-out).
    pub ms: u64,
}

/// Lines read from the board, with CR LF (and lone CR) endings taken off.
struct Lines {
    serial: Port,
    partial: Vec<u8>,
}

impl Lines {
    /// The next complete line, or `None` when none came before `deadline`.
    fn next(&mut self, deadline: Instant) -> Option<String> {
        let mut buf = [0u8; 256];
        loop {
            if let Some(at) = self.partial.iter().position(|&b| b == b'\n') {
                let rest = self.partial.split_off(at + 1);
                let line = std::mem::replace(&mut self.partial, rest);
                let text = String::from_utf8_lossy(&line);
                return Some(text.trim_end_matches(['\r', '\n']).to_string());
            }
            let left = deadline.checked_duration_since(Instant::now())?;
            let _ = self
                .serial
                .set_timeout(left.clamp(Duration::from_millis(1), Duration::from_millis(100)));
            match self.serial.read(&mut buf) {
                Ok(n) => self.partial.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::TimedOut => {}
                Err(_) => return None,
            }
        }
    }
}

/// Watches the board on `serial` after its reset as `watch` says. A board that does not print
/// the expected lines in time fails with [`DeviceError::NoBoot`]; its record goes into
/// `record` either way.
pub(super) fn watch(
    serial: Port,
    watch: &BootWatch,
    port: &str,
    record: &mut Option<BootRecord>,
) -> Result<(), DeviceError> {
    let mut lines = Lines {
        serial,
        partial: Vec::new(),
    };
    let mut seen = Vec::new();
    if !watch.expect.is_empty() {
        let result = expect(&mut lines, watch, &mut seen);
        *record = Some(result.clone());
        if !result.booted {
            return Err(DeviceError::NoBoot {
                port: port.to_string(),
                expected: result.expect.join("`, `"),
                within: watch.within.as_secs_f64(),
                last: seen.last().cloned().unwrap_or_else(|| "nothing".into()),
            });
        }
    }
    if let Some(duration) = watch.monitor {
        let mut out = io::stdout().lock();
        for line in &seen {
            let _ = writeln!(out, "{line}");
        }
        drop(out);
        monitor(lines, duration);
    }
    Ok(())
}

/// Reads lines until every pattern has matched one, or the time is up.
fn expect(lines: &mut Lines, watch: &BootWatch, seen: &mut Vec<String>) -> BootRecord {
    let started = Instant::now();
    let deadline = started + watch.within;
    let mut pending: Vec<&Regex> = watch.expect.iter().collect();
    while !pending.is_empty() {
        let Some(line) = lines.next(deadline) else {
            break;
        };
        pending.retain(|re| !re.is_match(&line));
        seen.push(line);
    }
    BootRecord {
        expect: watch
            .expect
            .iter()
            .map(|r| r.as_str().to_string())
            .collect(),
        booted: pending.is_empty(),
        log: seen
            .iter()
            .rev()
            .take(EXCERPT_LINES)
            .rev()
            .cloned()
            .collect(),
        ms: started.elapsed().as_millis() as u64,
    }
}

/// Shows the board's output on stdout until Ctrl-] (or Ctrl-C, or the end of stdin), or for
/// `duration`; keys typed go to the board, Ctrl-T Ctrl-R resets it.
fn monitor(mut lines: Lines, duration: Option<Duration>) {
    let deadline = duration.map(|d| Instant::now() + d);
    let _raw = RawStdin::enter();
    let keys = keyboard();
    let mut menu = false;
    let mut out = io::stdout();
    loop {
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return;
        }
        let step = Instant::now() + Duration::from_millis(50);
        if let Some(line) = lines.next(deadline.map_or(step, |d| d.min(step))) {
            let _ = writeln!(out, "{line}");
            continue;
        }
        while let Ok(key) = keys.try_recv() {
            match (menu, key) {
                (_, None) | (false, Some(EXIT_KEY)) => return,
                (false, Some(MENU_KEY)) => menu = true,
                (true, Some(RESET_KEY)) => {
                    menu = false;
                    if let Err(e) = pulse_reset(&mut lines.serial) {
                        eprintln!("note: cannot reset the board from here ({e})");
                    }
                }
                (_, Some(k)) => {
                    menu = false;
                    let _ = lines.serial.write_all(&[k]);
                }
            }
        }
    }
}

/// The keys typed on stdin; `None` for Ctrl-C typed on a raw terminal (where it raises no
/// signal). The end of stdin ends the keys, not the monitor.
fn keyboard() -> mpsc::Receiver<Option<u8>> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut stdin = io::stdin();
        let mut byte = [0u8; 1];
        while let Ok(1) = stdin.read(&mut byte) {
            let key = (byte[0] != 0x03).then_some(byte[0]);
            if tx.send(key).is_err() || key.is_none() {
                return;
            }
        }
    });
    rx
}

/// A hard reset by RTS, as esptool's monitor does: EN low, then high, with IO0 high.
fn pulse_reset(serial: &mut Port) -> serialport::Result<()> {
    serial.write_data_terminal_ready(false)?;
    serial.write_request_to_send(true)?;
    std::thread::sleep(Duration::from_millis(100));
    serial.write_request_to_send(false)
}

/// Stdin in raw mode (no echo, no line buffering, no signals) while the monitor runs, when it
/// is a terminal; restored on drop.
struct RawStdin(Option<libc::termios>);

impl RawStdin {
    fn enter() -> RawStdin {
        // SAFETY: tcgetattr/tcsetattr on fd 0 with a termios this function owns.
        unsafe {
            if libc::isatty(0) != 1 {
                return RawStdin(None);
            }
            let mut saved: libc::termios = std::mem::zeroed();
            if libc::tcgetattr(0, &mut saved) != 0 {
                return RawStdin(None);
            }
            let mut raw = saved;
            libc::cfmakeraw(&mut raw);
            libc::tcsetattr(0, libc::TCSANOW, &raw);
            RawStdin(Some(saved))
        }
    }
}

impl Drop for RawStdin {
    fn drop(&mut self) {
        if let Some(saved) = &self.0 {
            // SAFETY: restores the settings read in `enter`.
            unsafe {
                libc::tcsetattr(0, libc::TCSANOW, saved);
            }
        }
    }
}
