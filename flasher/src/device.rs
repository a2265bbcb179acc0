//! Writing a [`Plan`] to a board through espflash: connect, identify, refuse the wrong board,
//! write every region in one pass (compressed, in chunks, skipping chunks already in place,
//! verifying each by MD5), check every region's MD5 once more, reset.
//!
//! A failed attempt (lost, garbled or refused packets, a timeout, an MD5 that differs) is
//! retried a bounded number of times on a new connection; a line that fails while writing steps
//! the baud rate down first. Chunks already correct on the board are skipped by MD5, so a retry,
//! or the same run started again, writes only what is missing or wrong.

use std::io::IsTerminal;
use std::os::unix::fs::FileTypeExt;
use std::time::{Duration, Instant};

use espflash::connection::{Connection, Port, ResetAfterOperation, ResetBeforeOperation};
use espflash::flasher::Flasher;
use espflash::image_format::Segment;
use espflash::target::{Chip as EspChip, ProgressCallbacks};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use md5::{Digest, Md5};
use serialport::FlowControl;

use crate::cli::{After, Before};
use crate::error::DeviceError;
use crate::plan::Plan;
use crate::report::DeviceReport;
use firmware::chip::{Chip, TargetName};

/// Baud rate of the ROM loader, which every connection starts at.
pub const ROM_BAUD: u32 = 115_200;
/// Rates tried, fastest first, when `--baud` is not given.
pub const AUTO_BAUDS: [u32; 3] = [921_600, 460_800, ROM_BAUD];
/// Attempts per board, each on a new connection, before giving up.
pub const MAX_ATTEMPTS: u32 = 5;
/// Regions are written in chunks of this size (a 64 KiB flash block), each skipped on its own
/// when its MD5 already matches, so an interrupted region is resumed, not rewritten.
pub const CHUNK: usize = 0x1_0000;

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
    /// Skip chunks whose MD5 already matches.
    pub skip: bool,
    /// Where progress goes.
    pub console: Console,
}

/// Where a board's progress goes: lines on stderr (prefixed with the port when several boards
/// are written at once) and, on a terminal, a progress bar per board.
#[derive(Debug, Clone)]
pub struct Console {
    prefix: String,
    bars: Option<MultiProgress>,
}

impl Console {
    /// Output for the only board of a run: no prefix, a bar when stderr is a terminal.
    pub fn single() -> Console {
        Console {
            prefix: String::new(),
            bars: std::io::stderr().is_terminal().then(MultiProgress::new),
        }
    }

    /// Output for one of several boards: lines start with `[name]`; bars go to `bars`.
    pub fn shared(name: &str, bars: Option<MultiProgress>) -> Console {
        Console {
            prefix: format!("[{name}] "),
            bars,
        }
    }

    /// Whether progress bars are drawn.
    pub fn has_bars(&self) -> bool {
        self.bars.is_some()
    }

    /// Prints one line.
    pub fn say(&self, line: &str) {
        match &self.bars {
            Some(bars) => {
                let _ = bars.println(format!("{}{line}", self.prefix));
            }
            None => eprintln!("{}{line}", self.prefix),
        }
    }

    fn bar(&self, len: u64) -> Option<ProgressBar> {
        let bars = self.bars.as_ref()?;
        let bar = bars.add(ProgressBar::new(len.max(1)));
        bar.set_style(
            ProgressStyle::with_template("{prefix}{msg:32} [{bar:30}] {percent:>3}%")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        bar.set_prefix(self.prefix.clone());
        Some(bar)
    }
}

/// What a successful write did.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// Per region of the plan, whether it was already on the board (every chunk skipped).
    pub skipped: Vec<bool>,
    /// Time to connect and identify the board (last attempt).
    pub connect: Duration,
    /// Time to write and verify (last attempt).
    pub write: Duration,
}

/// What is known about a board so far, kept across attempts and on failure.
#[derive(Debug, Clone, Default)]
pub struct Contact {
    /// What the board reported, once identified.
    pub device: Option<DeviceReport>,
    /// Attempts made.
    pub attempts: u32,
}

fn esp_chip(chip: Chip) -> EspChip {
    match chip {
        Chip::Esp32 => EspChip::Esp32,
        Chip::Esp32s2 => EspChip::Esp32s2,
        Chip::Esp32s3 => EspChip::Esp32s3,
        Chip::Esp32c2 => EspChip::Esp32c2,
        Chip::Esp32c3 => EspChip::Esp32c3,
        Chip::Esp32c5 => EspChip::Esp32c5,
        Chip::Esp32c6 => EspChip::Esp32c6,
        Chip::Esp32c61 => EspChip::Esp32c61,
        Chip::Esp32h2 => EspChip::Esp32h2,
        Chip::Esp32p4 => EspChip::Esp32p4,
    }
}

/// A failure of one attempt.
enum Failure {
    /// The line failed while writing at the attempt's rate; a lower rate may help.
    Line(DeviceError),
    /// The line failed while connecting or identifying the board (at the ROM's rate);
    /// another attempt may work.
    Connect(DeviceError),
    /// Writing did not leave the flash right (a region's MD5 differs); another attempt may.
    Verify(DeviceError),
    /// Retrying cannot help.
    Fatal(DeviceError),
}

/// Writes `plan` to the board on `opts.port`, which must be a `target` board with at least the
/// plan's flash size. Nothing is written to a board that is not. What the board reports goes
/// into `contact` as soon as it is known, so that it is there on failure too.
pub fn write(
    plan: &Plan,
    target: &TargetName,
    opts: &Options,
    contact: &mut Contact,
) -> Result<Outcome, DeviceError> {
    let rates: &[u32] = match &opts.baud {
        Some(b) => std::slice::from_ref(b),
        None if crate::port::keeps_rate(&opts.port) => &[ROM_BAUD],
        None => &AUTO_BAUDS,
    };
    let mut rate = 0;
    let mut previous: Option<DeviceError> = None;
    loop {
        contact.attempts += 1;
        // espflash indexes replies by their length field and panics on some garbled ones:
        // that is a bad line too, and must not take the other boards of the station down.
        let run = || attempt(plan, target, opts, rates[rate], contact);
        let failure = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(run)) {
            Ok(Ok(outcome)) => return Ok(outcome),
            Ok(Err(failure)) => failure,
            Err(panic) => Failure::Line(DeviceError::Line {
                port: opts.port.clone(),
                doing: "reading a reply",
                reason: format!(
                    "a garbled reply broke the serial library: {}",
                    panic_text(&panic)
                ),
            }),
        };
        let e = match failure {
            // A port gone after a failure: the board was lost then, say what happened.
            Failure::Fatal(DeviceError::NotFound(port)) => {
                return Err(previous.unwrap_or(DeviceError::NotFound(port)));
            }
            Failure::Fatal(e) => return Err(e),
            Failure::Line(e) if rate + 1 < rates.len() && contact.attempts < MAX_ATTEMPTS => {
                opts.console.say(&format!(
                    "the line is unreliable at {} baud ({e}); retrying at {} baud",
                    rates[rate],
                    rates[rate + 1]
                ));
                rate += 1;
                previous = Some(e);
                continue;
            }
            Failure::Line(e) | Failure::Connect(e) | Failure::Verify(e) => e,
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

/// The message of a caught panic.
fn panic_text(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "unknown failure".into())
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
    let opened = serialport::new(port, ROM_BAUD)
        .flow_control(FlowControl::None)
        .timeout(Duration::from_secs(3))
        .open_native();
    let e = match opened {
        Ok(serial) => return Ok(serial),
        Err(e) => e,
    };
    let reason = e.to_string();
    let lower = reason.to_ascii_lowercase();
    if lower.contains("lock") || lower.contains("busy") {
        return Err(crate::port::diag::busy(port).into());
    }
    if let serialport::ErrorKind::Io(std::io::ErrorKind::PermissionDenied) = e.kind()
        && let Some(e) = crate::port::diag::permission(port)
    {
        return Err(e.into());
    }
    // Without the termios2 ioctls (qemu-user), classic termios still opens the port.
    match crate::termios::open_classic(port, Duration::from_secs(3)) {
        Ok(serial) => Ok(serial),
        Err(crate::termios::OpenError::Busy) => Err(DeviceError::Busy(port.to_string())),
        Err(crate::termios::OpenError::Failed)
            if lower.contains("ioctl") || lower.contains("typewriter") =>
        {
            Err(DeviceError::NotSerial {
                port: port.to_string(),
                reason,
            })
        }
        Err(crate::termios::OpenError::Failed) => Err(DeviceError::Open {
            port: port.to_string(),
            reason,
        }),
    }
}

/// Whether `e` may come from a bad line: lost, garbled or refused packets, timeouts.
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
            | E::VerifyFailed
    )
}

/// `e` with its causes, on one line (espflash's own messages are often just the outer layer).
fn describe(e: &espflash::Error) -> String {
    let mut text = e.to_string();
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        let next = c.to_string();
        if !text.contains(&next) {
            text = format!("{text}: {next}");
        }
        cause = c.source();
    }
    text.replace('\n', " ")
}

/// Whether connecting failed because no loader answered the sync at all; espflash has already
/// tried again and again, so another attempt would only repeat it.
fn nothing_answered(e: &espflash::Error) -> bool {
    let text = describe(e);
    matches!(e, espflash::Error::Connection(_))
        && ["Failed to connect", "no sync reply", "boot mode"]
            .iter()
            .any(|m| text.contains(m))
}

fn before_operation(before: Before) -> ResetBeforeOperation {
    match before {
        Before::DefaultReset => ResetBeforeOperation::DefaultReset,
        Before::NoReset => ResetBeforeOperation::NoReset,
        Before::NoResetNoSync => ResetBeforeOperation::NoResetNoSync,
        Before::UsbReset => ResetBeforeOperation::UsbReset,
    }
}

fn after_operation(after: After) -> ResetAfterOperation {
    match after {
        After::HardReset => ResetAfterOperation::HardReset,
        After::NoReset => ResetAfterOperation::NoReset,
        After::NoResetStub => ResetAfterOperation::NoResetNoStub,
        After::WatchdogReset => ResetAfterOperation::WatchdogReset,
    }
}

/// One piece of a region, written and skipped on its own.
#[derive(Debug, Clone, Copy)]
struct Chunk {
    region: usize,
    start: usize,
    len: usize,
}

/// The plan's regions cut into [`CHUNK`]-sized pieces. A region that does not start on a
/// 4 KiB sector stays whole, so that no chunk's erase reaches into its neighbour.
fn chunks(plan: &Plan) -> Vec<Chunk> {
    let mut out = Vec::new();
    for (region, r) in plan.regions.iter().enumerate() {
        let step = if r.offset % 0x1000 == 0 {
            CHUNK
        } else {
            r.bytes.len().max(1)
        };
        let mut start = 0;
        while start < r.bytes.len() {
            let len = step.min(r.bytes.len() - start);
            out.push(Chunk { region, start, len });
            start += len;
        }
    }
    out
}

/// The MD5 of `bytes` as espflash returns digests.
fn md5_value(bytes: &[u8]) -> u128 {
    u128::from_be_bytes(Md5::digest(bytes).into())
}

fn attempt(
    plan: &Plan,
    target: &TargetName,
    opts: &Options,
    rate: u32,
    contact: &mut Contact,
) -> Result<Outcome, Failure> {
    let started = Instant::now();
    let port = &opts.port;
    let link = crate::port::Link::prepare(port).map_err(Failure::Fatal)?;
    let serial = open(link.path()).map_err(Failure::Fatal)?;
    let info = link.usb_port_info();
    let before = link
        .enter_loader(before_operation(opts.before))
        .map_err(Failure::Fatal)?;
    // The requested reset runs after the final check, on the connection given back.
    let conn = Connection::new(
        serial,
        info.clone(),
        ResetAfterOperation::NoResetNoStub,
        before,
        ROM_BAUD,
    );
    let no_sync = opts.before == Before::NoResetNoSync;
    let use_stub = !no_sync;
    let connect_error = |reason: String| DeviceError::Connect {
        port: port.clone(),
        reason,
    };
    let mut flasher = Flasher::connect(
        conn,
        use_stub,
        opts.verify,
        opts.skip,
        no_sync.then(|| esp_chip(target.chip())),
        None,
    )
    .map_err(|e| match e {
        espflash::Error::ChipMismatch(found, _) => Failure::Fatal(DeviceError::WrongChip {
            found,
            asked: target.to_string(),
        }),
        e if is_line_error(&e) && !nothing_answered(&e) => Failure::Connect(DeviceError::Line {
            port: port.clone(),
            doing: "connecting",
            reason: describe(&e),
        }),
        e => Failure::Fatal(connect_error(describe(&e))),
    })?;
    let line = |doing: &'static str| {
        move |e: espflash::Error| {
            let err = DeviceError::Line {
                port: port.clone(),
                doing,
                reason: describe(&e),
            };
            if is_line_error(&e) {
                Failure::Line(err)
            } else {
                Failure::Fatal(err)
            }
        }
    };
    let chip_info = flasher.device_info().map_err(|e| {
        Failure::Connect(DeviceError::Line {
            port: port.clone(),
            doing: "reading the chip information",
            reason: describe(&e),
        })
    })?;
    let flash_id = read_flash_id(&mut flasher).ok();
    let device = DeviceReport {
        port: port.clone(),
        chip: chip_info.chip.to_string(),
        revision: chip_info
            .revision
            .map(|(major, minor)| format!("v{major}.{minor}")),
        mac: chip_info.mac_address.clone(),
        flash_id: flash_id.map(|id| format!("{id:06x}")),
        flash_size: u64::from(chip_info.flash_size.size()),
        baud: rate,
    };
    if let Some(seen) = &contact.device
        && seen.mac != device.mac
    {
        return Err(Failure::Fatal(DeviceError::BoardChanged {
            port: port.clone(),
            was: seen.mac.clone().unwrap_or_else(|| "unknown".into()),
            now: device.mac.clone().unwrap_or_else(|| "unknown".into()),
        }));
    }
    opts.console.say(&format!(
        "board: {} {} mac {} flash {} MB (id {}), writing at {rate} baud",
        device.chip,
        device.revision.as_deref().unwrap_or("(revision unknown)"),
        device.mac.as_deref().unwrap_or("unknown"),
        device.flash_size >> 20,
        device.flash_id.as_deref().unwrap_or("unknown"),
    ));
    contact.device = Some(device.clone());
    if chip_info.chip != esp_chip(target.chip()) {
        return Err(Failure::Fatal(DeviceError::WrongChip {
            found: device.chip,
            asked: target.to_string(),
        }));
    }
    if let Some((major, minor)) = chip_info.revision {
        let board = firmware::revision::ChipRevision { major, minor };
        plan.check_revision(board).map_err(|(file, violation)| {
            Failure::Fatal(DeviceError::Revision { file, violation })
        })?;
    }
    if no_sync {
        opts.console
            .say("--before no-reset-no-sync: flash size not detected, not checked");
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
    let pieces = chunks(plan);
    let segments: Vec<Segment<'_>> = pieces
        .iter()
        .map(|c| {
            let r = &plan.regions[c.region];
            Segment::new(
                r.offset + c.start as u32,
                &r.bytes[c.start..c.start + c.len],
            )
        })
        .collect();
    let mut progress = Progress::new(plan, &pieces, &opts.console, opts.verify);
    let written = flasher.write_bins_to_flash(&segments, &mut progress);
    progress.clear();
    written.map_err(|e| match e {
        espflash::Error::VerifyFailed => Failure::Verify(DeviceError::Verify(format!(
            "region {}",
            progress.current_label()
        ))),
        e => line("writing")(e),
    })?;

    // Every chunk was skipped or written and verified; check each whole region once more, since
    // a garbled command may have put data elsewhere. The ROM leaves the loader after writing,
    // and Secure Download Mode allows no MD5: there the per-chunk checks are all there is.
    if use_stub && opts.verify && !flasher.secure_download_mode() {
        for r in &plan.regions {
            let found = flasher
                .checksum_md5(r.offset, r.bytes.len() as u32)
                .map_err(line("checking the regions"))?;
            if found != md5_value(&r.bytes) {
                return Err(Failure::Verify(DeviceError::Verify(format!(
                    "region {} at {:#x} changed after it was written",
                    r.label, r.offset
                ))));
            }
        }
    }
    let serial = flasher.into_connection().into_serial();
    let mut conn = Connection::new(
        serial,
        info,
        link.after(after_operation(opts.after)),
        ResetBeforeOperation::NoResetNoSync,
        rate,
    );
    conn.reset_after(use_stub, esp_chip(target.chip()))
        .map_err(|e| {
            Failure::Fatal(DeviceError::Write(format!(
                "all regions written and verified, but resetting the board failed: {}; \
                 reset it by hand, or pass --after no-reset",
                describe(&e)
            )))
        })?;
    link.finish(after_operation(opts.after))
        .map_err(Failure::Fatal)?;
    Ok(Outcome {
        skipped: progress.region_skipped,
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

/// Progress of the write: a bar per board on a terminal, else one line per region and per
/// 10 %. Tracks which regions were already on the board.
struct Progress<'a> {
    console: &'a Console,
    /// Label, offset and length of each region.
    regions: Vec<(&'static str, u32, usize)>,
    chunks: &'a [Chunk],
    /// The chunk being written.
    index: usize,
    /// Blocks in the current chunk.
    blocks: usize,
    /// Bytes of the current region in finished chunks.
    region_done: usize,
    /// Chunks of the current region skipped so far.
    region_chunks_skipped: usize,
    announced: bool,
    last_decile: usize,
    bar: Option<ProgressBar>,
    /// Bytes of the plan in finished chunks.
    plan_done: u64,
    verify: bool,
    /// Per finished region, whether every chunk was skipped.
    region_skipped: Vec<bool>,
}

impl<'a> Progress<'a> {
    fn new(plan: &Plan, chunks: &'a [Chunk], console: &'a Console, verify: bool) -> Progress<'a> {
        let total: usize = plan.regions.iter().map(|r| r.bytes.len()).sum();
        Progress {
            console,
            regions: plan
                .regions
                .iter()
                .map(|r| (r.label, r.offset, r.bytes.len()))
                .collect(),
            chunks,
            index: 0,
            blocks: 1,
            region_done: 0,
            region_chunks_skipped: 0,
            announced: false,
            last_decile: 0,
            bar: console.bar(total as u64),
            plan_done: 0,
            verify,
            region_skipped: Vec::new(),
        }
    }

    fn chunk(&self) -> Option<Chunk> {
        self.chunks.get(self.index).copied()
    }

    fn current_label(&self) -> &'static str {
        self.chunk().map_or("?", |c| self.regions[c.region].0)
    }

    fn announce(&mut self) {
        if self.announced {
            return;
        }
        self.announced = true;
        let Some(c) = self.chunk() else { return };
        let (label, offset, len) = self.regions[c.region];
        match &self.bar {
            Some(bar) => bar.set_message(format!("{label} at {offset:#x}")),
            None => self
                .console
                .say(&format!("writing {label} at {offset:#x} ({len} bytes)")),
        }
    }

    fn clear(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}

impl ProgressCallbacks for Progress<'_> {
    fn init(&mut self, _addr: u32, total: usize) {
        self.blocks = total.max(1);
        self.announce();
    }

    fn update(&mut self, current: usize) {
        let Some(c) = self.chunk() else { return };
        let part = c.len * current.min(self.blocks) / self.blocks;
        match &self.bar {
            Some(bar) => bar.set_position(self.plan_done + part as u64),
            None => {
                let region_len = self.regions[c.region].2.max(1);
                let decile = (self.region_done + part) * 10 / region_len;
                if decile > self.last_decile && decile < 10 {
                    self.last_decile = decile;
                    self.console
                        .say(&format!("  {} {}%", self.current_label(), decile * 10));
                }
            }
        }
    }

    fn verifying(&mut self) {}

    fn finish(&mut self, skipped: bool) {
        let Some(c) = self.chunk() else { return };
        if !skipped {
            self.announce();
        }
        self.region_done += c.len;
        self.plan_done += c.len as u64;
        self.region_chunks_skipped += usize::from(skipped);
        if let Some(bar) = &self.bar {
            bar.set_position(self.plan_done);
        }
        let last_of_region = self.chunks.get(self.index + 1).map(|n| n.region) != Some(c.region);
        if last_of_region {
            let label = self.regions[c.region].0;
            let count = self.chunks.iter().filter(|x| x.region == c.region).count();
            let all_skipped = self.region_chunks_skipped == count;
            let line = if all_skipped {
                format!("{label}: already on the board (MD5 matches), skipped")
            } else {
                let done = if self.verify {
                    "written and verified"
                } else {
                    "written"
                };
                match self.region_chunks_skipped {
                    0 => format!("{label}: {done}"),
                    n => format!("{label}: {done} ({n} of {count} chunks already in place)"),
                }
            };
            self.console.say(&line);
            self.region_skipped.push(all_skipped);
            self.region_done = 0;
            self.region_chunks_skipped = 0;
            self.last_decile = 0;
            self.announced = false;
        }
        self.index += 1;
    }
}
