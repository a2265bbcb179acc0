//! Connecting to a board: opening its port, putting it into its loader, syncing and loading
//! the stub through espflash (at the writing rate where the chip's ROM can change rate first);
//! then the line rate for writing, and the reset that ends the attempt on the connection given
//! back.

use std::os::unix::fs::FileTypeExt;
use std::time::Duration;

use espflash::command::{Command, CommandType};
use espflash::connection::{Connection, Port, ResetAfterOperation, ResetBeforeOperation};
use espflash::flasher::Flasher;
use espflash::target::XtalFrequency;
use serialport::{FlowControl, UsbPortInfo};

use crate::cli::{After, Before};
use crate::error::{DeviceError, SecurityError};
use crate::port::{Link, ResolvedPort, diag};
use crate::termios;
use firmware::chip::{Chip, TargetName};

use super::failure::{self, Failure, describe, is_line_error, nothing_answered};
use super::options::Options;
use super::session::{Session, esp_chip};

/// Baud rate of the ROM loader, which every connection starts at.
pub const ROM_BAUD: u32 = 115_200;
/// How long a command may wait for its reply unless it says otherwise (espflash's default).
const REPLY_TIMEOUT: Duration = Duration::from_secs(3);
/// GET_SECURITY_INFO flag: Secure Boot is enabled (esptool `loader.py`, espflash
/// `SecurityInfo`).
pub(super) const FLAG_SECURE_BOOT_EN: u32 = 1 << 0;
/// The GET_SECURITY_INFO flag of Secure Download Mode.
const FLAG_SECURE_DOWNLOAD: u32 = 1 << 2;

impl<'a> Session<'a> {
    /// Opens `resolved`, enters the loader as `--before` says and connects espflash (at the
    /// ROM's rate; the stub is loaded unless `--before no-reset-no-sync`, at `rate` where
    /// [`stub_at_rate`] allows).
    pub(super) fn connect(
        resolved: &'a ResolvedPort,
        target: &'a TargetName,
        opts: &'a Options,
        rate: u32,
    ) -> Result<Session<'a>, Failure> {
        let port = resolved.port.as_str();
        let link = Link::prepare(resolved).map_err(Failure::Fatal)?;
        let mut serial = open(link.path()).map_err(Failure::Fatal)?;
        let usb = link.usb_port_info();
        let before = link
            .enter_loader(before_operation(opts.before))
            .map_err(Failure::Fatal)?;
        let before = without_modem_lines(&mut serial, before, port, opts);
        // The requested reset runs after the final check, on the connection given back.
        let conn = Connection::new(
            serial,
            usb.clone(),
            ResetAfterOperation::NoResetNoStub,
            before,
            ROM_BAUD,
        );
        let at_rate = opts.use_stub() && rate > ROM_BAUD && stub_at_rate(target.chip());
        let connected = if at_rate {
            connect_stub_at_rate(conn, &usb, target.chip(), opts, rate)
        } else {
            Flasher::connect(
                conn,
                opts.use_stub(),
                opts.verify,
                opts.skip,
                opts.no_sync().then(|| esp_chip(target.chip())),
                None,
            )
        };
        let (flasher, stub) = match connected {
            Ok(flasher) => {
                // espflash runs no stub in Secure Download Mode.
                let stub = opts.use_stub() && !flasher.secure_download_mode();
                (flasher, stub)
            }
            // The stub went at the writing rate: a bad line there may be better lower.
            Err(e) if at_rate && is_line_error(&e) && !nothing_answered(&e) => {
                return Err(failure::line(port, "loading the stub")(e));
            }
            Err(e) if !nothing_answered(&e) && s2_in_secure_download(link.path(), &usb) => {
                return Err(Failure::Fatal(SecurityError::S2SecureDownload.into()));
            }
            Err(e) => match rom_under_secure_boot(link.path(), &usb, target, opts) {
                Some(flasher) => (flasher, false),
                None => return Err(connect_failure(e, port, target)),
            },
        };
        Ok(Session {
            flasher,
            stub,
            link,
            usb,
            port,
            target,
            opts,
        })
    }

    /// Moves the line to `rate` for writing (it stays at the ROM's rate when that is asked, and
    /// where the stub was loaded at `rate` it is there already).
    pub(super) fn set_rate(&mut self, rate: u32) -> Result<(), Failure> {
        let now = self.flasher.connection().baud().unwrap_or(ROM_BAUD);
        if rate > ROM_BAUD && now != rate {
            self.flasher
                .change_baud(rate)
                .map_err(failure::line(self.port, "changing the baud rate"))?;
        }
        Ok(())
    }

    /// Ends the attempt with the reset `--after` asks for, on the connection espflash gives
    /// back (at `rate`), then the part of it a network port does itself. It comes after the
    /// final check, so it sends nothing that can change the flash (see [`after_operation`]).
    /// The flash is verified by then: a reset that fails is a warning, returned.
    /// Also returns the port, still open, for what the board prints next.
    pub(super) fn reset(self, rate: u32) -> Result<(Port, Vec<String>), Failure> {
        let chip = self.chip();
        let stub = self.stub;
        let after = after_operation(self.opts.after);
        let serial = self.flasher.into_connection().into_serial();
        let mut conn = Connection::new(
            serial,
            self.usb,
            self.link.after(after),
            ResetBeforeOperation::NoResetNoSync,
            rate,
        );
        let mut warnings = Vec::new();
        let reset = conn.reset_after(stub, chip).map_err(|e| describe(&e));
        let finished = reset.and_then(|()| self.link.finish(after).map_err(|e| e.to_string()));
        if let Err(reason) = finished {
            warnings.push(format!(
                "all regions written and verified, but resetting the board failed: {reason}; \
                 reset it by hand"
            ));
        }
        Ok((conn.into_serial(), warnings))
    }
}

/// Whether the ROM of `chip` may change the line rate before the stub is uploaded, so that
/// the stub (about 1.3 s at 115200) goes at the writing rate. espflash 4.7 and esptool 5.6
/// always upload at 115200; espflash's work on uploading at the configured rate
/// (esp-rs/espflash#1060) leaves the ESP32 and ESP32-S2 out as unreliable, and the stub
/// re-clocks the UART of those and of the ESP32-P4 when it starts. The ESP32-C5's ROM needs a
/// crystal correction espflash does not make (esptool's `ESP32C5ROM.change_baud`); the
/// ESP32-C2's 26 MHz one is made in [`change_rate`].
fn stub_at_rate(chip: Chip) -> bool {
    matches!(
        chip,
        Chip::Esp32s3
            | Chip::Esp32c2
            | Chip::Esp32c3
            | Chip::Esp32c6
            | Chip::Esp32c61
            | Chip::Esp32h2
    )
}

/// Syncs with the ROM, has it change the line to `rate` (when it is the chip asked for and
/// neither Secure Download Mode nor Secure Boot is on), then connects espflash without a
/// reset, which loads the stub at that rate.
fn connect_stub_at_rate(
    mut conn: Connection,
    usb: &UsbPortInfo,
    target: Chip,
    opts: &Options,
    rate: u32,
) -> Result<Flasher, espflash::Error> {
    conn.begin()?;
    conn.set_timeout(REPLY_TIMEOUT)?;
    let rate = match may_change_rate(&mut conn, target) {
        Some(loader) => {
            change_rate(&mut conn, target, loader, rate)?;
            rate
        }
        None => ROM_BAUD,
    };
    let conn = Connection::new(
        conn.into_serial(),
        usb.clone(),
        ResetAfterOperation::NoResetNoStub,
        ResetBeforeOperation::NoReset,
        rate,
    );
    Flasher::connect(conn, true, opts.verify, opts.skip, None, None)
}

/// Which loader answers on a board about to be written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Loader {
    /// The ROM.
    Rom,
    /// A stub left running by an earlier run (`--after no-reset`) or attempt.
    Stub,
}

/// The loader on `conn`, if its rate may change before the stub is uploaded: the board is the
/// chip asked for, and neither Secure Download Mode (where esptool does not change the
/// ESP32-C2's rate) nor Secure Boot (where the ESP32-S3's ROM runs no stub and the flasher
/// falls back to the ROM at its rate) is on. The security info tells the loaders apart: the
/// ROM ends its replies with 4 status bytes, the stub with 2.
fn may_change_rate(conn: &mut Connection, target: Chip) -> Option<Loader> {
    let is_target = conn
        .detect_chip(false)
        .is_ok_and(|chip| chip == esp_chip(target));
    let (loader, info) = match conn.security_info(false) {
        Ok(info) => (Loader::Rom, info),
        Err(_) => (Loader::Stub, conn.security_info(true).ok()?),
    };
    let secured = FLAG_SECURE_DOWNLOAD | FLAG_SECURE_BOOT_EN;
    (is_target && info.flags & secured == 0).then_some(loader)
}

/// CHANGE_BAUDRATE (prior rate 0, as the ROM wants; the stub espflash ships reads only the new
/// rate), then the port: what espflash's `Flasher::change_baud` does without a stub, with its
/// correction for the ESP32-C2's 26 MHz crystal where the ROM answers (it reckons with 40 MHz).
fn change_rate(
    conn: &mut Connection,
    target: Chip,
    loader: Loader,
    rate: u32,
) -> Result<(), espflash::Error> {
    let chip = esp_chip(target);
    let sent = match loader == Loader::Rom && target == Chip::Esp32c2 {
        true if chip.xtal_frequency(conn)? == XtalFrequency::_26Mhz => rate * 40 / 26,
        _ => rate,
    };
    let change = Command::ChangeBaudrate {
        new_baud: sent,
        prior_baud: 0,
    };
    conn.with_timeout(CommandType::ChangeBaudrate.timeout(), |c| c.command(change))?;
    conn.set_baud(rate)?;
    std::thread::sleep(Duration::from_millis(50));
    conn.flush()
}

/// The ESP32-S3's ROM runs no RAM code under Secure Boot (esptool `loader.py`, `run_stub`), so
/// espflash's stub never starts there. After a failed connect on such a target, connects again
/// through the ROM alone (the board is still in its loader) and keeps that connection when the
/// board says Secure Boot is on; `None` otherwise, leaving the first failure to stand.
fn rom_under_secure_boot(
    path: &str,
    usb: &UsbPortInfo,
    target: &TargetName,
    opts: &Options,
) -> Option<Flasher> {
    if target.chip() != Chip::Esp32s3 || !opts.use_stub() {
        return None;
    }
    let conn = Connection::new(
        open(path).ok()?,
        usb.clone(),
        ResetAfterOperation::NoResetNoStub,
        ResetBeforeOperation::NoReset,
        ROM_BAUD,
    );
    let mut flasher = Flasher::connect(conn, false, opts.verify, opts.skip, None, None).ok()?;
    let info = flasher.security_info().ok()?;
    if info.flags & FLAG_SECURE_BOOT_EN == 0 {
        return None;
    }
    opts.console.say(
        "esp32s3 with Secure Boot: its ROM runs no flasher stub, so writing through the ROM \
         (uncompressed; each region checked by MD5 before and after)",
    );
    Some(flasher)
}

/// Whether the board that failed to connect is an ESP32-S2 in Secure Download Mode: its ROM
/// answers GET_SECURITY_INFO with the Secure Download flag and no chip id (the other chips with
/// the mode add one; the ESP32 has no security info), then refuses the register read espflash
/// detects the chip by (esptool `loader.py` tells the S2 the same way). Asks again through the
/// ROM alone; the board is still in its loader.
fn s2_in_secure_download(path: &str, usb: &UsbPortInfo) -> bool {
    let Ok(serial) = open(path) else {
        return false;
    };
    let mut conn = Connection::new(
        serial,
        usb.clone(),
        ResetAfterOperation::NoResetNoStub,
        ResetBeforeOperation::NoReset,
        ROM_BAUD,
    );
    if conn.begin().is_err() {
        return false;
    }
    conn.security_info(false)
        .is_ok_and(|info| info.flags & FLAG_SECURE_DOWNLOAD != 0 && info.chip_id.is_none())
}

/// What a failed `Flasher::connect` means: another chip, a line to retry, or no loader at all.
fn connect_failure(e: espflash::Error, port: &str, target: &TargetName) -> Failure {
    match e {
        espflash::Error::ChipMismatch(found, _) => Failure::Fatal(DeviceError::WrongChip {
            found,
            asked: target.to_string(),
        }),
        e if is_line_error(&e) && !nothing_answered(&e) => Failure::Connect(DeviceError::Line {
            port: port.to_string(),
            doing: "connecting",
            reason: describe(&e),
        }),
        e => Failure::Fatal(DeviceError::Connect {
            port: port.to_string(),
            reason: describe(&e),
        }),
    }
}

/// Opens the tty at `port` at the ROM's rate; a port that is missing, busy, forbidden or not a
/// serial device is said so, with the fix.
pub(super) fn open(port: &str) -> Result<Port, DeviceError> {
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
        .timeout(REPLY_TIMEOUT)
        .open_native();
    let e = match opened {
        Ok(serial) => return Ok(serial),
        Err(e) => e,
    };
    let reason = e.to_string();
    let lower = reason.to_ascii_lowercase();
    if lower.contains("lock") || lower.contains("busy") {
        return Err(diag::busy(port).into());
    }
    if let serialport::ErrorKind::Io(std::io::ErrorKind::PermissionDenied) = e.kind()
        && let Some(e) = diag::permission(port)
    {
        return Err(e.into());
    }
    open_classic(port, &reason)
}

/// Opens `port` with classic termios, for systems without the termios2 ioctls (qemu-user);
/// `reason` is why serialport could not open it.
fn open_classic(port: &str, reason: &str) -> Result<Port, DeviceError> {
    let lower = reason.to_ascii_lowercase();
    match termios::open_classic(port, REPLY_TIMEOUT) {
        Ok(serial) => Ok(serial),
        Err(termios::OpenError::Busy) => Err(DeviceError::Busy(port.to_string())),
        Err(termios::OpenError::Failed)
            if lower.contains("ioctl") || lower.contains("typewriter") =>
        {
            Err(DeviceError::NotSerial {
                port: port.to_string(),
                reason: reason.to_string(),
            })
        }
        Err(termios::OpenError::Failed) => Err(DeviceError::Open {
            port: port.to_string(),
            reason: reason.to_string(),
        }),
    }
}

/// `before`, or `NoReset` when it resets through DTR/RTS but `serial` has no modem lines (a
/// pseudo-terminal): then the flasher says so and syncs with a board in download mode already,
/// as esptool does on a socket, instead of failing the reset.
fn without_modem_lines(
    serial: &mut Port,
    before: ResetBeforeOperation,
    port: &str,
    opts: &Options,
) -> ResetBeforeOperation {
    use serialport::SerialPort;
    let resets = matches!(
        before,
        ResetBeforeOperation::DefaultReset | ResetBeforeOperation::UsbReset
    );
    // Reading a modem line takes the ioctl a reset needs, without changing any line.
    if !resets || serial.read_carrier_detect().is_ok() {
        return before;
    }
    opts.console.say(&format!(
        "note: {port} cannot drive DTR/RTS (a pseudo-terminal?): no reset into the loader, \
         syncing with a board in download mode already"
    ));
    ResetBeforeOperation::NoReset
}

fn before_operation(before: Before) -> ResetBeforeOperation {
    match before {
        Before::DefaultReset => ResetBeforeOperation::DefaultReset,
        Before::NoReset => ResetBeforeOperation::NoReset,
        Before::NoResetNoSync => ResetBeforeOperation::NoResetNoSync,
        Before::UsbReset => ResetBeforeOperation::UsbReset,
    }
}

/// The reset espflash does for `--after`. None sends a command that can write: a hard reset
/// only toggles RTS, a watchdog reset writes RTC watchdog registers. `no-reset` leaves the board
/// in the loader that wrote it: espflash's way out of the stub (a FLASH_BEGIN of size 0, then a
/// FLASH_END that reboots into the ROM) would send, after the final check, a command whose
/// garbled size makes a loader that erases on FLASH_BEGIN erase from 0; so the stub stays.
fn after_operation(after: After) -> ResetAfterOperation {
    match after {
        After::HardReset => ResetAfterOperation::HardReset,
        After::NoReset => ResetAfterOperation::NoResetNoStub,
        After::NoResetStub => ResetAfterOperation::NoResetNoStub,
        After::WatchdogReset => ResetAfterOperation::WatchdogReset,
    }
}
