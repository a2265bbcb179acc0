//! What the device layer opens for one port and one attempt: the tty (a network port's pty,
//! or the node a re-enumerated USB board came back on), the USB ids espflash chooses its reset
//! sequence by, and the resets a network port needs done through its server.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use espflash::connection::{ResetAfterOperation, ResetBeforeOperation};
use serialport::UsbPortInfo;

use crate::error::{DeviceError, PortError};

use super::net::{Bridge, Step};
use super::resolve::ResolvedPort;
use super::rfc2217::Line;
use super::select::{self, Reset};
use super::sysfs::{self, Roots, UsbInfo};

/// How long a board that left (USB re-enumeration after a reset) may take to come back.
pub const RETURN_TIMEOUT: Duration = Duration::from_secs(5);

/// Where a port that left has come back: the port with the same USB serial number (or, without
/// one, the same USB path and ids) and a device node, waiting up to `timeout`.
pub fn find_again(usb: &UsbInfo, roots: &Roots, timeout: Duration) -> Option<String> {
    let deadline = Instant::now() + timeout;
    loop {
        let found = sysfs::scan(roots).ok().and_then(|ports| {
            ports.into_iter().find_map(|p| {
                let u = p.usb.as_ref()?;
                let same = match &usb.serial {
                    Some(serial) => u.serial.as_ref() == Some(serial),
                    None => u.path == usb.path && (u.vid, u.pid) == (usb.vid, usb.pid),
                };
                let node = p.node.as_ref().filter(|n| n.exists())?;
                same.then(|| node.display().to_string())
            })
        });
        if found.is_some() || Instant::now() >= deadline {
            return found;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The reset sequence of a USB-UART bridge, as SET-CONTROL steps (esptool's ClassicReset):
/// EN low, then IO0 low while EN is released, then IO0 released.
const DTR_RTS_RESET: &[Step] = &[
    Step::Set(Line::Dtr, false),
    Step::Set(Line::Rts, true),
    Step::Wait(Duration::from_millis(100)),
    Step::Set(Line::Dtr, true),
    Step::Set(Line::Rts, false),
    Step::Wait(Duration::from_millis(50)),
    Step::Set(Line::Dtr, false),
];

/// The USB-Serial/JTAG reset sequence, as SET-CONTROL steps.
const USB_JTAG_RESET: &[Step] = &[
    Step::Set(Line::Rts, false),
    Step::Set(Line::Dtr, false),
    Step::Wait(Duration::from_millis(100)),
    Step::Set(Line::Dtr, true),
    Step::Set(Line::Rts, false),
    Step::Wait(Duration::from_millis(100)),
    Step::Set(Line::Rts, true),
    Step::Set(Line::Dtr, false),
    Step::Set(Line::Rts, true),
    Step::Wait(Duration::from_millis(100)),
    Step::Set(Line::Dtr, false),
    Step::Set(Line::Rts, false),
];

/// A hard reset into the firmware: an RTS pulse.
const HARD_RESET: &[Step] = &[
    Step::Set(Line::Rts, true),
    Step::Wait(Duration::from_millis(100)),
    Step::Set(Line::Rts, false),
];

/// One port as the device layer opens it, for one attempt.
#[derive(Debug)]
pub struct Link {
    path: String,
    usb: Option<UsbInfo>,
    bridge: Option<Arc<Bridge>>,
}

impl Link {
    /// The link for `port`, as port selection resolved it. A USB board that left its node
    /// (re-enumerated after a reset) is looked for by its serial number or USB path for up to
    /// [`RETURN_TIMEOUT`]; a network port whose connection ended is an error.
    pub fn prepare(port: &ResolvedPort) -> Result<Link, DeviceError> {
        Link::prepare_with(port, &Roots::system())
    }

    /// [`Link::prepare`] with sysfs and device nodes under `roots`.
    pub fn prepare_with(port: &ResolvedPort, roots: &Roots) -> Result<Link, DeviceError> {
        if let Some(bridge) = port.bridge() {
            return Link::bridged(&port.port, bridge);
        }
        let name = port.port.as_str();
        if Path::new(name).exists() {
            let usb = sysfs::scan(roots)
                .ok()
                .and_then(|ports| sysfs::find_by_node(&ports, Path::new(name)).cloned())
                .and_then(|p| p.usb);
            return Ok(Link {
                path: name.to_string(),
                usb,
                bridge: None,
            });
        }
        match port.usb() {
            Some(usb) => Link::returned(name, usb, roots),
            None => Ok(Link {
                path: name.to_string(),
                usb: None,
                bridge: None,
            }),
        }
    }

    /// The pty of a network port, unless its connection ended.
    fn bridged(url: &str, bridge: &Arc<Bridge>) -> Result<Link, DeviceError> {
        if let Some(reason) = bridge.lost() {
            return Err(PortError::Dropped {
                url: url.to_string(),
                reason,
            }
            .into());
        }
        Ok(Link {
            path: bridge.path().to_string(),
            usb: None,
            bridge: Some(bridge.clone()),
        })
    }

    /// The board that left `port`, where it came back.
    fn returned(port: &str, usb: &UsbInfo, roots: &Roots) -> Result<Link, DeviceError> {
        match find_again(usb, roots, RETURN_TIMEOUT) {
            Some(path) => {
                eprintln!("note: the board of {port} is back as {path}");
                Ok(Link {
                    path,
                    usb: Some(usb.clone()),
                    bridge: None,
                })
            }
            None => Err(PortError::Gone {
                port: port.to_string(),
                identity: usb.serial.as_ref().map_or_else(
                    || format!("USB path {}", usb.path),
                    |s| format!("serial {s}"),
                ),
                seconds: RETURN_TIMEOUT.as_secs(),
            }
            .into()),
        }
    }

    /// The tty to open.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The reset sysfs implies for the port.
    pub fn reset(&self) -> Reset {
        Reset::for_usb(self.usb.as_ref())
    }

    /// The USB ids for espflash's `Connection::new`: the real ones, except that a product id
    /// of 0x1001 from another vendor than Espressif is hidden (espflash takes any 0x1001 for
    /// USB-Serial/JTAG); zeros off USB.
    pub fn usb_port_info(&self) -> UsbPortInfo {
        match &self.usb {
            Some(u) => UsbPortInfo {
                vid: u.vid,
                pid: if u.vid != select::ESPRESSIF_VID && u.pid == select::USB_SERIAL_JTAG_PID {
                    0
                } else {
                    u.pid
                },
                serial_number: u.serial.clone(),
                manufacturer: u.manufacturer.clone(),
                product: u.product.clone(),
            },
            None => UsbPortInfo {
                vid: 0,
                pid: 0,
                serial_number: None,
                manufacturer: None,
                product: None,
            },
        }
    }

    /// Puts the board into its loader as `requested` says and returns what espflash should do
    /// then. USB-Serial/JTAG ports get that sequence for `DefaultReset`. A network port is reset
    /// here through RFC 2217 SET-CONTROL (modem-line ioctls fail on the pty), and espflash
    /// only syncs; `socket://` carries no modem lines, so the board must be in download mode.
    pub fn enter_loader(
        &self,
        requested: ResetBeforeOperation,
    ) -> Result<ResetBeforeOperation, DeviceError> {
        let resetting = matches!(
            requested,
            ResetBeforeOperation::DefaultReset | ResetBeforeOperation::UsbReset
        );
        let Some(bridge) = &self.bridge else {
            return Ok(match (requested, self.reset()) {
                (ResetBeforeOperation::DefaultReset, Reset::UsbJtag) => {
                    ResetBeforeOperation::UsbReset
                }
                _ => requested,
            });
        };
        if !resetting {
            return Ok(requested);
        }
        if bridge.url().can_reset() {
            let steps = if requested == ResetBeforeOperation::UsbReset {
                USB_JTAG_RESET
            } else {
                DTR_RTS_RESET
            };
            bridge.pulse(steps)?;
        } else {
            eprintln!(
                "note: {} carries no DTR/RTS: the board must be in download mode already",
                bridge.url()
            );
        }
        Ok(ResetBeforeOperation::NoReset)
    }

    /// What espflash should do after writing: on a network port a hard reset is left to
    /// [`Link::finish`], since espflash's would fail on the pty.
    pub fn after(&self, requested: ResetAfterOperation) -> ResetAfterOperation {
        match (&self.bridge, requested) {
            (Some(_), ResetAfterOperation::HardReset) => ResetAfterOperation::NoResetNoStub,
            _ => requested,
        }
    }

    /// Completes a hard reset on a network port (an RTS pulse through the server).
    pub fn finish(&self, requested: ResetAfterOperation) -> Result<(), DeviceError> {
        match &self.bridge {
            Some(bridge) if requested == ResetAfterOperation::HardReset => {
                if bridge.url().can_reset() {
                    bridge.pulse(HARD_RESET)?;
                } else {
                    eprintln!(
                        "note: {} carries no DTR/RTS: reset the board by hand to start the new \
                         firmware",
                        bridge.url()
                    );
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }
}
