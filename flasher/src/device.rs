//! Writing a [`Plan`] to a board through espflash: connect, identify, refuse the wrong board,
//! write every region in one pass (compressed, skipping regions already in place, verifying
//! each by MD5), reset.

use std::io::IsTerminal;
use std::os::unix::fs::FileTypeExt;
use std::time::{Duration, Instant};

use espflash::connection::{Connection, Port, ResetAfterOperation, ResetBeforeOperation};
use espflash::flasher::Flasher;
use espflash::image_format::Segment;
use espflash::target::{Chip as EspChip, ProgressCallbacks};
use indicatif::{ProgressBar, ProgressStyle};
use serialport::{FlowControl, SerialPortType, UsbPortInfo};

use crate::chip::{Chip, TargetName};
use crate::cli::{After, Before};
use crate::error::DeviceError;
use crate::plan::Plan;
use crate::report::DeviceReport;

/// Baud rate of the ROM loader, which every connection starts at.
pub const ROM_BAUD: u32 = 115_200;
/// Rates tried, fastest first, when `--baud` is not given.
pub const AUTO_BAUDS: [u32; 3] = [921_600, 460_800, ROM_BAUD];

/// How to talk to the board.
#[derive(Debug, Clone)]
pub struct Options {
    /// Serial device.
    pub port: String,
    /// Pinned baud rate, or `None` to step down from 921600 as needed.
    pub baud: Option<u32>,
    /// How to enter download mode.
    pub before: Before,
    /// What to do after writing.
    pub after: After,
    /// Verify each region by MD5 after writing.
    pub verify: bool,
    /// Skip regions whose MD5 already matches.
    pub skip: bool,
}

/// What a successful write did.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// Per region of the plan, whether it was skipped.
    pub skipped: Vec<bool>,
    /// Time to connect and identify the board.
    pub connect: Duration,
    /// Time to write and verify.
    pub write: Duration,
}

fn esp_chip(chip: Chip) -> EspChip {
    match chip {
        Chip::Esp32 => EspChip::Esp32,
        Chip::Esp32s2 => EspChip::Esp32s2,
        Chip::Esp32s3 => EspChip::Esp32s3,
        Chip::Esp32c3 => EspChip::Esp32c3,
        Chip::Esp32c6 => EspChip::Esp32c6,
        Chip::Esp32h2 => EspChip::Esp32h2,
    }
}

/// A failure of one attempt: whether a slower line might help.
enum Failure {
    /// The line misbehaved after connecting; a lower baud rate may work.
    Line(DeviceError),
    /// Anything else.
    Fatal(DeviceError),
}

/// Writes `plan` to the board on `opts.port`, which must be a `target` board with at least the
/// plan's flash size. Nothing is written to a board that is not. What the board reports goes
/// into `device` as soon as it is known, so that it is there on failure too.
pub fn write(
    plan: &Plan,
    target: &TargetName,
    opts: &Options,
    device: &mut Option<DeviceReport>,
) -> Result<Outcome, DeviceError> {
    let rates: &[u32] = match &opts.baud {
        Some(b) => std::slice::from_ref(b),
        None => &AUTO_BAUDS,
    };
    let mut rates = rates.iter().copied().peekable();
    while let Some(rate) = rates.next() {
        match (attempt(plan, target, opts, rate, device), rates.peek()) {
            (Ok(outcome), _) => return Ok(outcome),
            (Err(Failure::Line(e)), Some(next)) => {
                eprintln!("the line is unreliable at {rate} baud ({e}); retrying at {next} baud");
            }
            (Err(Failure::Line(e) | Failure::Fatal(e)), _) => return Err(e),
        }
    }
    Err(DeviceError::Write("no baud rate to write at".into()))
}

fn open(port: &str) -> Result<Port, DeviceError> {
    let meta = std::fs::metadata(port).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => DeviceError::NotFound(port.to_string()),
        _ => DeviceError::Open {
            port: port.to_string(),
            reason: e.to_string(),
        },
    })?;
    if !meta.file_type().is_char_device() {
        return Err(DeviceError::NotSerial {
            port: port.to_string(),
            reason: "not a character device".into(),
        });
    }
    serialport::new(port, ROM_BAUD)
        .flow_control(FlowControl::None)
        .timeout(Duration::from_secs(3))
        .open_native()
        .map_err(|e| {
            let reason = e.to_string();
            let lower = reason.to_ascii_lowercase();
            if lower.contains("lock") || lower.contains("busy") {
                DeviceError::Busy(port.to_string())
            } else if lower.contains("ioctl") || lower.contains("typewriter") {
                DeviceError::NotSerial {
                    port: port.to_string(),
                    reason,
                }
            } else {
                DeviceError::Open {
                    port: port.to_string(),
                    reason,
                }
            }
        })
}

/// USB ids of the port, which select the USB-Serial-JTAG reset sequence; zeros otherwise.
fn port_info(port: &str) -> UsbPortInfo {
    let canonical = std::fs::canonicalize(port).ok();
    serialport::available_ports()
        .unwrap_or_default()
        .into_iter()
        .find(|p| {
            p.port_name == port
                || canonical.is_some() && std::fs::canonicalize(&p.port_name).ok() == canonical
        })
        .and_then(|p| match p.port_type {
            SerialPortType::UsbPort(info) => Some(info),
            _ => None,
        })
        .unwrap_or(UsbPortInfo {
            vid: 0,
            pid: 0,
            serial_number: None,
            manufacturer: None,
            product: None,
        })
}

/// Whether `e` may come from a line too fast for the cable: lost, garbled or refused packets.
/// Loader errors count too, since a garbled block shows up as a checksum or inflate error.
fn is_line_error(e: &espflash::Error) -> bool {
    use espflash::Error as E;
    matches!(
        e,
        E::Connection(_)
            | E::InvalidResponse(_)
            | E::IncorrectResponse
            | E::ReadMoreThanExpected
            | E::Flashing(_)
            | E::RomError(_)
    )
}

fn attempt(
    plan: &Plan,
    target: &TargetName,
    opts: &Options,
    rate: u32,
    device_out: &mut Option<DeviceReport>,
) -> Result<Outcome, Failure> {
    let started = Instant::now();
    let port = &opts.port;
    let serial = open(port).map_err(Failure::Fatal)?;
    let before = match opts.before {
        Before::DefaultReset => ResetBeforeOperation::DefaultReset,
        Before::NoReset => ResetBeforeOperation::NoReset,
        Before::NoResetNoSync => ResetBeforeOperation::NoResetNoSync,
        Before::UsbReset => ResetBeforeOperation::UsbReset,
    };
    let after = match opts.after {
        After::HardReset => ResetAfterOperation::HardReset,
        After::NoReset => ResetAfterOperation::NoReset,
        After::NoResetStub => ResetAfterOperation::NoResetNoStub,
        After::WatchdogReset => ResetAfterOperation::WatchdogReset,
    };
    let conn = Connection::new(serial, port_info(port), after, before, ROM_BAUD);
    let no_sync = opts.before == Before::NoResetNoSync;
    let mut flasher = Flasher::connect(
        conn,
        !no_sync,
        opts.verify,
        opts.skip,
        no_sync.then(|| esp_chip(target.chip())),
        None,
    )
    .map_err(|e| {
        Failure::Fatal(match e {
            espflash::Error::ChipMismatch(found, _) => DeviceError::WrongChip {
                found,
                asked: target.to_string(),
            },
            e => DeviceError::Connect {
                port: port.clone(),
                reason: e.to_string(),
            },
        })
    })?;
    let line = |doing: &'static str| {
        move |e: espflash::Error| {
            let err = DeviceError::Line {
                port: port.clone(),
                doing,
                reason: e.to_string(),
            };
            if is_line_error(&e) {
                Failure::Line(err)
            } else {
                Failure::Fatal(err)
            }
        }
    };
    let info = flasher.device_info().map_err(|e| {
        Failure::Fatal(DeviceError::Connect {
            port: port.clone(),
            reason: format!("reading the chip information: {e}"),
        })
    })?;
    let flash_id = read_flash_id(&mut flasher).ok();
    let device = DeviceReport {
        port: port.clone(),
        chip: info.chip.to_string(),
        revision: info
            .revision
            .map(|(major, minor)| format!("v{major}.{minor}")),
        mac: info.mac_address.clone(),
        flash_id: flash_id.map(|id| format!("{id:06x}")),
        flash_size: u64::from(info.flash_size.size()),
        baud: rate,
    };
    eprintln!(
        "board: {} {} mac {} flash {} MB (id {}), writing at {rate} baud",
        device.chip,
        device.revision.as_deref().unwrap_or("(revision unknown)"),
        device.mac.as_deref().unwrap_or("unknown"),
        device.flash_size >> 20,
        device.flash_id.as_deref().unwrap_or("unknown"),
    );
    *device_out = Some(device.clone());
    if info.chip != esp_chip(target.chip()) {
        return Err(Failure::Fatal(DeviceError::WrongChip {
            found: device.chip,
            asked: target.to_string(),
        }));
    }
    if no_sync {
        eprintln!("--before no-reset-no-sync: flash size not detected, not checked");
    } else if device.flash_size < plan.flash_size.bytes() {
        return Err(Failure::Fatal(DeviceError::FlashTooSmall {
            found_mb: device.flash_size >> 20,
            asked: plan.flash_size.to_string(),
        }));
    }
    if rate > ROM_BAUD {
        flasher
            .change_baud(rate)
            .map_err(line("changing the baud rate"))?;
    }
    let connect = started.elapsed();

    let write_started = Instant::now();
    let segments: Vec<Segment<'_>> = plan
        .regions
        .iter()
        .map(|r| Segment::new(r.offset, &r.bytes))
        .collect();
    let mut progress = Progress::new(plan, opts.verify);
    flasher
        .write_bins_to_flash(&segments, &mut progress)
        .map_err(|e| match e {
            espflash::Error::VerifyFailed => Failure::Fatal(DeviceError::Verify(format!(
                "region {}",
                progress.current_label()
            ))),
            e if is_line_error(&e) && !progress.all_done() => line("writing")(e),
            e if progress.all_done() => Failure::Fatal(DeviceError::Write(format!(
                "all regions written, but resetting the board failed: {e}; \
                 reset it by hand, or pass --after no-reset"
            ))),
            e => Failure::Fatal(DeviceError::Write(e.to_string())),
        })?;
    Ok(Outcome {
        skipped: progress.skipped,
        connect,
        write: write_started.elapsed(),
    })
}

/// Reads the SPI flash JEDEC id (RDID, 0x9F) through the SPI1 user-command registers.
fn read_flash_id(flasher: &mut Flasher) -> Result<u32, espflash::Error> {
    const RDID: u32 = 0x9F;
    let regs = flasher.chip().spi_registers();
    let conn = flasher.connection();
    let old_usr = conn.read_reg(regs.usr())?;
    let old_usr2 = conn.read_reg(regs.usr2())?;
    conn.write_reg(regs.usr(), (1 << 31) | (1 << 28), None)?;
    conn.write_reg(regs.usr2(), (7 << 28) | RDID, None)?;
    match regs.miso_length() {
        Some(miso) => conn.write_reg(miso, 24 - 1, None)?,
        None => conn.write_reg(regs.usr1(), (24 - 1) << 8, None)?,
    }
    conn.write_reg(regs.w0(), 0, None)?;
    conn.write_reg(regs.cmd(), 1 << 18, None)?;
    let mut done = false;
    for _ in 0..10 {
        if conn.read_reg(regs.cmd())? & (1 << 18) == 0 {
            done = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let id = conn.read_reg(regs.w0())? & 0xFF_FFFF;
    conn.write_reg(regs.usr(), old_usr, None)?;
    conn.write_reg(regs.usr2(), old_usr2, None)?;
    if done {
        Ok(id)
    } else {
        Err(espflash::Error::IncorrectResponse)
    }
}

/// Progress of the write: bars on a terminal, else one line per region and per 10 %.
struct Progress {
    labels: Vec<(u32, &'static str, usize)>,
    index: usize,
    total: usize,
    last_decile: usize,
    bar: Option<ProgressBar>,
    terminal: bool,
    verify: bool,
    skipped: Vec<bool>,
}

impl Progress {
    fn new(plan: &Plan, verify: bool) -> Progress {
        Progress {
            labels: plan
                .regions
                .iter()
                .map(|r| (r.offset, r.label, r.bytes.len()))
                .collect(),
            index: 0,
            total: 0,
            last_decile: 0,
            bar: None,
            terminal: std::io::stderr().is_terminal(),
            verify,
            skipped: Vec::new(),
        }
    }

    fn current_label(&self) -> &'static str {
        self.labels.get(self.index).map_or("?", |l| l.1)
    }

    fn all_done(&self) -> bool {
        self.skipped.len() == self.labels.len()
    }
}

impl ProgressCallbacks for Progress {
    fn init(&mut self, addr: u32, total: usize) {
        self.total = total.max(1);
        self.last_decile = 0;
        let (label, len) = self
            .labels
            .get(self.index)
            .map_or(("region", 0), |l| (l.1, l.2));
        let title = format!("{label} at {addr:#x} ({len} bytes)");
        if self.terminal {
            let bar = ProgressBar::new(self.total as u64).with_message(title);
            bar.set_style(
                ProgressStyle::with_template("{msg:40} [{bar:30}] {pos}/{len} blocks")
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> "),
            );
            self.bar = Some(bar);
        } else {
            eprintln!("writing {title}");
        }
    }

    fn update(&mut self, current: usize) {
        match &self.bar {
            Some(bar) => bar.set_position(current as u64),
            None => {
                let decile = current * 10 / self.total;
                if decile > self.last_decile {
                    self.last_decile = decile;
                    eprintln!("  {} {}%", self.current_label(), decile * 10);
                }
            }
        }
    }

    fn verifying(&mut self) {
        if self.bar.is_none() {
            eprintln!("  {} verifying (MD5)", self.current_label());
        }
    }

    fn finish(&mut self, skipped: bool) {
        let label = self.current_label();
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
        if skipped {
            eprintln!("{label}: already on the board (MD5 matches), skipped");
        } else if self.verify {
            eprintln!("{label}: written and verified");
        } else {
            eprintln!("{label}: written");
        }
        self.skipped.push(skipped);
        self.index += 1;
    }
}
