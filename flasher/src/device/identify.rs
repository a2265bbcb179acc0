//! Identifying the board (chip, revision, MAC, flash size and JEDEC id) and checking it is the
//! one asked for, before anything is written.

use firmware::revision::ChipRevision;
use std::time::Duration;

use espflash::flasher::Flasher;
use espflash::target::Chip as EspChip;

use crate::error::DeviceError;
use crate::plan::Plan;
use crate::report::DeviceReport;

use super::failure::{Failure, describe};
use super::options::Contact;
use super::session::Session;

/// What the board says it is.
pub(super) struct Board {
    /// The chip as espflash names it.
    pub(super) chip: EspChip,
    /// The chip revision, when the board tells it.
    pub(super) revision: Option<ChipRevision>,
    /// Everything read, as recorded.
    pub(super) report: DeviceReport,
}

impl Session<'_> {
    /// Reads what the board is; `rate` is the rate it is to be written at, for the record.
    pub(super) fn identify(&mut self, rate: u32) -> Result<Board, Failure> {
        if self.flasher.secure_download_mode() {
            return Ok(self.identify_in_secure_download(rate));
        }
        let info = self.flasher.device_info().map_err(|e| {
            Failure::Connect(DeviceError::Line {
                port: self.port.to_string(),
                doing: "reading the chip information",
                reason: describe(&e),
            })
        })?;
        let flash_id = read_flash_id(&mut self.flasher).ok();
        let report = DeviceReport {
            port: self.port.to_string(),
            chip: info.chip.to_string(),
            revision: info
                .revision
                .map(|(major, minor)| format!("v{major}.{minor}")),
            mac: info.mac_address.clone(),
            flash_id: flash_id.map(|id| format!("{id:06x}")),
            // Without a sync espflash does not detect the flash and reports its default size.
            flash_size: (!self.opts.no_sync()).then(|| u64::from(info.flash_size.size())),
            baud: rate,
            ..DeviceReport::default()
        };
        Ok(Board {
            chip: info.chip,
            revision: info
                .revision
                .map(|(major, minor)| ChipRevision { major, minor }),
            report,
        })
    }

    /// Refuses a board that is not the one asked for: another board than the one of an earlier
    /// attempt, another chip, or less flash than the plan needs. The board is announced and
    /// recorded in `contact` once it is known to be the same board.
    pub(super) fn check(
        &self,
        board: &Board,
        plan: &Plan,
        contact: &mut Contact,
    ) -> Result<(), Failure> {
        let device = &board.report;
        if let Some(seen) = &contact.device
            && seen.mac != device.mac
        {
            return Err(Failure::Fatal(DeviceError::BoardChanged {
                port: self.port.to_string(),
                was: seen.mac.clone().unwrap_or_else(|| "unknown".into()),
                now: device.mac.clone().unwrap_or_else(|| "unknown".into()),
            }));
        }
        self.opts.console.say(&announcement(device));
        let mac = device.mac.as_deref().unwrap_or("unknown");
        self.opts.console.identified(&device.chip, mac);
        contact.device = Some(device.clone());
        if board.chip != self.chip() {
            return Err(Failure::Fatal(DeviceError::WrongChip {
                found: device.chip.clone(),
                asked: self.target.to_string(),
            }));
        }
        if let Some(revision) = board.revision {
            plan.check_revision(revision).map_err(|(file, violation)| {
                Failure::Fatal(DeviceError::Revision { file, violation })
            })?;
        }
        match device.flash_size {
            // Secure Download Mode reads no flash id: the size is unknown, not too small.
            _ if device.secure_download => {}
            None => self.opts.console.say(&format!(
                "--before no-reset-no-sync: the board's flash size is unknown; --flash_size {} \
                 is taken on trust",
                plan.flash_size
            )),
            Some(found) if found < plan.flash_size.bytes() => {
                return Err(Failure::Fatal(DeviceError::FlashTooSmall {
                    found_mb: found >> 20,
                    asked: plan.flash_size.to_string(),
                }));
            }
            Some(_) => {}
        }
        Ok(())
    }
}

/// `board: esp32c3 v0.4 mac … flash 4 MB (id …), writing at 921600 baud`.
fn announcement(device: &DeviceReport) -> String {
    if device.secure_download {
        return format!(
            "board: {} in Secure Download Mode, writing at {} baud",
            device.chip, device.baud
        );
    }
    format!(
        "board: {} {} mac {} flash {} (id {}), writing at {} baud",
        device.chip,
        device.revision.as_deref().unwrap_or("(revision unknown)"),
        device.mac.as_deref().unwrap_or("unknown"),
        flash_size_text(device.flash_size),
        device.flash_id.as_deref().unwrap_or("unknown"),
        device.baud,
    )
}

/// `4 MB`, or `size unknown` when it was not detected.
pub(super) fn flash_size_text(size: Option<u64>) -> String {
    match size {
        Some(bytes) => format!("{} MB", bytes >> 20),
        None => "size unknown".into(),
    }
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
