//! Attempts until the board is written: a failed attempt is retried on a new connection a
//! bounded number of times, taking up what the board already holds. A line that fails while
//! writing (after the attempt's own recoveries: blocks sent again, streams taken up again) is
//! tried once more at the same rate, and steps the rate down only when it fails there again.
//! A panic of the serial library on a garbled reply counts as a bad line.

use crate::error::DeviceError;
use crate::plan::Plan;
use crate::port::ResolvedPort;
use crate::port::select::{self, UNKNOWN_BRIDGE_RATE};
use firmware::chip::TargetName;

use super::attempt::attempt;
use super::connect::ROM_BAUD;
use super::failure::Failure;
use super::options::{Contact, Options, Outcome};

/// Rates stepped down to, fastest first, when `--baud` is not given (after the bridge's
/// default rate, when that is higher).
pub const AUTO_BAUDS: [u32; 3] = [921_600, 460_800, ROM_BAUD];
/// Attempts per board, each on a new connection, before giving up.
pub const MAX_ATTEMPTS: u32 = 5;

/// Writes `plan` to the board on `port`, which must be a `target` board with at least the
/// plan's flash size. Nothing is written to a board that is not. What the board reports goes
/// into `contact` as soon as it is known, so that it is there on failure too.
pub fn write(
    plan: &Plan,
    target: &TargetName,
    port: &ResolvedPort,
    opts: &Options,
    contact: &mut Contact,
) -> Result<Outcome, DeviceError> {
    let rates = rates(port, opts);
    let mut rate = 0;
    // Attempts that failed on the line at the current rate.
    let mut line_failures = 0;
    let mut previous: Option<DeviceError> = None;
    loop {
        contact.attempts += 1;
        let e = match guarded_attempt(plan, target, port, opts, rates[rate], contact) {
            Ok(outcome) => return Ok(outcome),
            // A port gone after a failure: the board was lost then, say what happened.
            Err(Failure::Fatal(DeviceError::NotFound(port))) => {
                return Err(previous.unwrap_or(DeviceError::NotFound(port)));
            }
            Err(Failure::Fatal(e)) => return Err(e),
            Err(Failure::Line(e)) if contact.attempts < MAX_ATTEMPTS => {
                line_failures += 1;
                let lower = rates.get(rate + 1).copied();
                match lower {
                    Some(lower) if line_failures > 1 => {
                        opts.console.say(&format!(
                            "the line is unreliable at {} baud ({e}); retrying at {lower} baud",
                            rates[rate]
                        ));
                        rate += 1;
                        line_failures = 0;
                        contact.line.stepped_down_to.push(lower);
                    }
                    _ => {
                        opts.console.say(&format!(
                            "attempt {} of {MAX_ATTEMPTS} failed on the line at {} baud ({e}); \
                             retrying at the same rate from where the board is",
                            contact.attempts, rates[rate]
                        ));
                        contact.line.same_rate_retries += 1;
                    }
                }
                previous = Some(e);
                continue;
            }
            Err(Failure::Line(e) | Failure::Connect(e) | Failure::Verify(e)) => e,
        };
        if contact.attempts >= MAX_ATTEMPTS {
            return Err(e);
        }
        opts.console.say(&format!(
            "attempt {} of {MAX_ATTEMPTS} failed ({e}); retrying",
            contact.attempts
        ));
        previous = Some(e);
    }
}

/// The rates to try, fastest first: `--baud`; the ROM's rate on a port that cannot change it
/// or whose rate is nominal (the chip's own USB: nothing would be faster); else the default of
/// the port's bridge (docs/flasher.md, "Line rate"), then the lower [`AUTO_BAUDS`].
fn rates(port: &ResolvedPort, opts: &Options) -> Vec<u32> {
    let first = match (opts.baud, port.usb()) {
        (Some(b), _) => return vec![b],
        _ if port.keeps_rate() => return vec![ROM_BAUD],
        (None, Some(usb)) if select::is_native_usb(usb) => return vec![ROM_BAUD],
        (None, Some(usb)) => select::bridge_of(usb).map_or(UNKNOWN_BRIDGE_RATE, |b| b.rate),
        (None, None) => UNKNOWN_BRIDGE_RATE,
    };
    std::iter::once(first)
        .chain(AUTO_BAUDS.into_iter().filter(|&r| r < first))
        .collect()
}

/// One attempt, with a panic of espflash (which indexes replies by their length field and
/// panics on some garbled ones) caught as a bad line, so that it cannot take the other boards
/// of a station down.
fn guarded_attempt(
    plan: &Plan,
    target: &TargetName,
    port: &ResolvedPort,
    opts: &Options,
    rate: u32,
    contact: &mut Contact,
) -> Result<Outcome, Failure> {
    let run = || attempt(plan, target, port, opts, rate, contact);
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(run)).unwrap_or_else(|panic| {
        Err(Failure::Line(DeviceError::Line {
            port: port.port.clone(),
            doing: "reading a reply",
            reason: format!(
                "a garbled reply broke the serial library: {}",
                panic_text(&panic)
            ),
        }))
    })
}

/// The message of a caught panic.
fn panic_text(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "unknown failure".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::port::sysfs::{PortInfo, UsbInfo};

    fn port(usb: Option<(u16, u16)>) -> ResolvedPort {
        let mut port = ResolvedPort::device("/dev/ttyUSB0");
        port.info = Some(PortInfo {
            name: "ttyUSB0".into(),
            node: None,
            devnum: None,
            driver: None,
            usb: usb.map(|(vid, pid)| UsbInfo {
                vid,
                pid,
                serial: None,
                manufacturer: None,
                product: None,
                interface: None,
                path: "1-1".into(),
            }),
        });
        port
    }

    fn options(baud: Option<u32>) -> Options {
        Options {
            baud,
            before: crate::cli::Before::NoReset,
            after: crate::cli::After::NoReset,
            verify: true,
            skip: true,
            console: super::super::Console::shared("test", None),
            boot: None,
            check_untouched: None,
            streams: Default::default(),
            secure: None,
            per_board: None,
        }
    }

    #[test]
    fn the_first_rate_follows_the_bridge_and_steps_down_from_there() {
        let auto = options(None);
        let ch340 = rates(&port(Some((0x1a86, 0x7523))), &auto);
        assert_eq!(ch340, [2_000_000, 921_600, 460_800, ROM_BAUD]);
        let cp210x = rates(&port(Some((0x10c4, 0xea60))), &auto);
        assert_eq!(cp210x, AUTO_BAUDS);
        let ch341 = rates(&port(Some((0x1a86, 0x5523))), &auto);
        assert_eq!(ch341, [460_800, ROM_BAUD]);
        let unknown = rates(&port(Some((0x1234, 0x5678))), &auto);
        assert_eq!(unknown, AUTO_BAUDS);
        assert_eq!(rates(&port(None), &auto), AUTO_BAUDS);
        assert_eq!(
            rates(&ResolvedPort::device("/dev/pts/3"), &auto),
            AUTO_BAUDS
        );
    }

    #[test]
    fn native_usb_keeps_the_rom_rate_and_baud_pins_it() {
        let jtag = port(Some((0x303a, 0x1001)));
        assert_eq!(rates(&jtag, &options(None)), [ROM_BAUD]);
        let pinned = options(Some(1_500_000));
        assert_eq!(rates(&jtag, &pinned), [1_500_000]);
        assert_eq!(rates(&port(Some((0x1a86, 0x7523))), &pinned), [1_500_000]);
    }
}
