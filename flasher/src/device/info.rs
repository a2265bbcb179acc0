//! `--info`: what a board is (chip, revision, MAC, crystal, flash, PSRAM, security), read
//! through the loader without writing or erasing anything.

use serde::Serialize;

use crate::error::DeviceError;
use crate::port::ResolvedPort;
use crate::report::DeviceReport;
use firmware::chip::{Chip, TargetName};
use firmware::flash_size::FlashSize;

use super::connect::ROM_BAUD;
use super::failure::{Failure, describe};
use super::identify::flash_size_text;
use super::options::Options;
use super::psram::{self, PsramFuse};
use super::session::{Session, esp_chip};

/// What `--info` found on one board.
#[derive(Debug, Clone, Serialize)]
pub struct BoardInfo {
    /// Chip, revision, MAC, flash id and size, as a flashing run records them.
    #[serde(flatten)]
    pub device: DeviceReport,
    /// The crystal frequency (`40 MHz`).
    pub crystal: String,
    /// The chip's features as its eFuses describe them (espflash's names).
    pub features: Vec<String>,
    /// The PSRAM the eFuses record.
    pub psram: PsramFuse,
    /// The security eFuses, when the loader reports them (not the ESP32's ROM).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub security: Option<Security>,
}

/// The security state the loader reports (GET_SECURITY_INFO).
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Security {
    /// Secure Boot is enabled.
    pub secure_boot: bool,
    /// Flash encryption is enabled (an odd number of bits set in `SPI_BOOT_CRYPT_CNT`).
    pub flash_encryption: bool,
    /// The loader runs in Secure Download Mode.
    pub secure_download: bool,
    /// The raw flags word.
    pub flags: u32,
}

impl BoardInfo {
    /// One line: `esp32s3 v0.2 mac … crystal 40 MHz flash 4 MB (id 1640ef) PSRAM 8 MB
    /// embedded, secure boot off, flash encryption off, secure download off`.
    pub fn line(&self) -> String {
        let d = &self.device;
        let security = match &self.security {
            Some(s) => format!(
                "secure boot {}, flash encryption {}, secure download {}",
                on_off(s.secure_boot),
                on_off(s.flash_encryption),
                on_off(s.secure_download)
            ),
            None => "security info not available from this ROM".into(),
        };
        format!(
            "{} {} mac {} crystal {} flash {} (id {}) PSRAM {}, {security}",
            d.chip,
            d.revision.as_deref().unwrap_or("(revision unknown)"),
            d.mac.as_deref().unwrap_or("unknown"),
            self.crystal,
            flash_size_text(d.flash_size),
            d.flash_id.as_deref().unwrap_or("unknown"),
            self.psram,
        )
    }
}

fn on_off(on: bool) -> &'static str {
    if on { "on" } else { "off" }
}

/// Reads what the board on `port` is and leaves it as `--after` says, having written and
/// erased nothing. With `asked` (`--chip`), a board of another chip or PSRAM is refused; with
/// `size` (`--flash_size`), a board with less flash.
pub fn read(
    port: &ResolvedPort,
    asked: Option<&TargetName>,
    size: Option<FlashSize>,
    opts: &Options,
) -> Result<BoardInfo, DeviceError> {
    // The session's target is `--chip`, or else the chip found (one name per chip, made before
    // connecting so that the session can hold it).
    let names: Vec<TargetName> = Chip::ALL.iter().map(|c| target_of(*c)).collect();
    let mut session =
        Session::connect(port, asked.unwrap_or(&names[0]), opts, ROM_BAUD).map_err(error)?;
    let found = session.flasher.chip();
    match asked {
        Some(t) if esp_chip(t.chip()) != found => {
            return Err(DeviceError::WrongChip {
                found: found.to_string(),
                asked: t.to_string(),
            });
        }
        Some(_) => {}
        None => {
            session.target = names
                .iter()
                .find(|t| esp_chip(t.chip()) == found)
                .ok_or_else(|| DeviceError::WrongChip {
                    found: found.to_string(),
                    asked: "a supported chip".into(),
                })?;
        }
    }
    let info = session.describe()?;
    if let Some(t) = asked {
        psram::check(t, info.psram)?;
    }
    if let (Some(size), Some(found)) = (size, info.device.flash_size)
        && found < size.bytes()
    {
        return Err(DeviceError::FlashTooSmall {
            found_mb: found >> 20,
            asked: size.to_string(),
        });
    }
    session.reset(ROM_BAUD).map_err(error)?;
    Ok(info)
}

impl Session<'_> {
    /// Everything `--info` shows about the connected board.
    fn describe(&mut self) -> Result<BoardInfo, DeviceError> {
        let board = self.identify(ROM_BAUD).map_err(error)?;
        let line = |doing| {
            let port = self.port.to_string();
            move |e: espflash::Error| DeviceError::Line {
                port,
                doing,
                reason: describe(&e),
            }
        };
        let details = self
            .flasher
            .device_info()
            .map_err(line("reading the chip information"))?;
        let chip = self.flasher.chip();
        let psram = psram::read(chip, self.flasher.connection())
            .map_err(line("reading the PSRAM eFuses"))?;
        // The ESP32's ROM has no GET_SECURITY_INFO; other chips answer it.
        let security = match self.flasher.security_info() {
            Ok(s) => Some(Security {
                secure_boot: s.flags & 1 != 0,
                flash_encryption: s.flash_crypt_cnt.count_ones() % 2 == 1,
                secure_download: s.flags & (1 << 2) != 0 || self.flasher.secure_download_mode(),
                flags: s.flags,
            }),
            Err(_) if chip == espflash::target::Chip::Esp32 => None,
            Err(e) => return Err(line("reading the security info")(e)),
        };
        Ok(BoardInfo {
            device: board.report,
            crystal: details.crystal_frequency.to_string(),
            features: details.features,
            psram,
            security,
        })
    }
}

/// The target name of `chip` alone (no PSRAM suffix).
fn target_of(chip: Chip) -> TargetName {
    chip.name().parse().expect("a chip's name is a target name")
}

/// The error a failed phase stands for (`--info` makes one attempt).
fn error(f: Failure) -> DeviceError {
    match f {
        Failure::Line(e) | Failure::Connect(e) | Failure::Verify(e) | Failure::Fatal(e) => e,
    }
}
