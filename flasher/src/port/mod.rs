//! Serial ports as containers see them: finding the board, resetting it the right way, and
//! reaching it over the network.
//!
//! * [`sysfs`] reads USB ids, serial numbers and USB paths from sysfs (containers have no udev).
//! * [`select`] parses `--port` (a path, `auto`, `usb-serial=…`, `usb-path=…`, `usb-id=…`, a
//!   network URL) and picks ports; [`resolve`] turns `--port` values into [`ResolvedPort`]s.
//! * [`Link`] is what the device layer opens for one port: the tty, the USB ids espflash chooses
//!   its reset sequence by, the reset a network port needs, and the board found again after it
//!   re-enumerated.
//! * [`diag`] explains permission and busy errors with the fix; [`net`] and [`rfc2217`] bridge
//!   `rfc2217://` and `socket://` ports through a pseudo-terminal.

pub mod diag;
pub mod net;
pub mod rfc2217;
pub mod select;
pub mod sysfs;

use std::path::Path;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use espflash::connection::{ResetAfterOperation, ResetBeforeOperation};
use serde_json::{Value, json};
use serialport::UsbPortInfo;

use crate::error::DeviceError;
pub use crate::error::PortError;
use net::{Bridge, Step};
use rfc2217::Line;
use select::{PortSpec, Reset};
use sysfs::{PortInfo, Roots, UsbInfo};

/// How long a board that left (USB re-enumeration after a reset) may take to come back.
pub const RETURN_TIMEOUT: Duration = Duration::from_secs(5);

/// One port a `--port` value stands for.
#[derive(Debug, Clone)]
pub struct ResolvedPort {
    /// What the device layer is given: a device path, or the URL of a network port.
    pub port: String,
    /// What sysfs says about it, when it is a known tty.
    pub info: Option<PortInfo>,
    /// The network bridge, kept alive as long as the port is.
    _bridge: Option<Arc<Bridge>>,
}

/// A port known to this process: its USB identity, to find it again, or its bridge.
struct Known {
    port: String,
    usb: Option<UsbInfo>,
    bridge: Weak<Bridge>,
}

static KNOWN: Mutex<Vec<Known>> = Mutex::new(Vec::new());

fn remember(port: &str, usb: Option<UsbInfo>, bridge: Option<&Arc<Bridge>>) {
    let mut known = KNOWN.lock().unwrap_or_else(|e| e.into_inner());
    known.retain(|k| k.port != port);
    known.push(Known {
        port: port.to_string(),
        usb,
        bridge: bridge.map_or_else(Weak::new, Arc::downgrade),
    });
}

fn recall(port: &str) -> (Option<UsbInfo>, Option<Arc<Bridge>>) {
    let known = KNOWN.lock().unwrap_or_else(|e| e.into_inner());
    known
        .iter()
        .find(|k| k.port == port)
        .map_or((None, None), |k| (k.usb.clone(), k.bridge.upgrade()))
}

fn scan(roots: &Roots) -> Result<Vec<PortInfo>, PortError> {
    sysfs::scan(roots).map_err(|e| PortError::Sysfs {
        path: roots.sys.join("class/tty").display().to_string(),
        reason: e.to_string(),
    })
}

/// `ttyACM0 303a:1001 serial F4:12 at 1-1.4`, for messages.
fn describe(p: &PortInfo) -> String {
    match &p.usb {
        Some(u) => {
            let serial = u
                .serial
                .as_deref()
                .map_or_else(String::new, |s| format!(" serial {s}"));
            format!(
                "{} {:04x}:{:04x}{serial} at {}",
                p.name, u.vid, u.pid, u.path
            )
        }
        None => p.name.clone(),
    }
}

fn seen(ports: &[PortInfo]) -> String {
    let usb: Vec<String> = ports
        .iter()
        .filter(|p| p.usb.is_some())
        .map(describe)
        .collect();
    if usb.is_empty() {
        "no USB serial ports seen".into()
    } else {
        format!("seen: {}", usb.join(", "))
    }
}

fn from_info(spec: &str, info: &PortInfo) -> Result<ResolvedPort, PortError> {
    let node = info.node.clone().ok_or_else(|| PortError::NotInContainer {
        spec: spec.to_string(),
        name: info.name.clone(),
    })?;
    let port = node.display().to_string();
    remember(&port, info.usb.clone(), None);
    Ok(ResolvedPort {
        port,
        info: Some(info.clone()),
        _bridge: None,
    })
}

/// The ports `spec` stands for. A path stands for itself (with its sysfs details when known;
/// a glob is left for the station to expand), `auto` for every ESP-looking port in the
/// container, a selector for exactly one port, a URL for a bridged network port.
pub fn resolve(spec: &str, roots: &Roots) -> Result<Vec<ResolvedPort>, PortError> {
    match spec
        .parse::<PortSpec>()
        .map_err(|e| PortError::BadSpec(e.0))?
    {
        PortSpec::Path(path) => {
            let info = sysfs::scan(roots)
                .ok()
                .and_then(|ports| sysfs::find_by_node(&ports, &path).cloned());
            let info = info.filter(|_| path.exists());
            remember(spec, info.as_ref().and_then(|i| i.usb.clone()), None);
            Ok(vec![ResolvedPort {
                port: spec.to_string(),
                info,
                _bridge: None,
            }])
        }
        PortSpec::Auto => {
            let ports = scan(roots)?;
            let esp = select::auto(&ports);
            let present: Vec<&PortInfo> =
                esp.iter().copied().filter(|p| p.node.is_some()).collect();
            match (present.is_empty(), esp.first()) {
                (false, _) => present.into_iter().map(|p| from_info(spec, p)).collect(),
                (true, Some(absent)) => Err(PortError::NotInContainer {
                    spec: spec.to_string(),
                    name: absent.name.clone(),
                }),
                (true, None) => Err(PortError::NoMatch {
                    spec: spec.to_string(),
                    seen: seen(&ports),
                }),
            }
        }
        PortSpec::Select(criteria) => {
            let ports = scan(roots)?;
            match select::select(&ports, &criteria)[..] {
                [] => Err(PortError::NoMatch {
                    spec: spec.to_string(),
                    seen: seen(&ports),
                }),
                [one] => Ok(vec![from_info(spec, one)?]),
                ref several => Err(PortError::Ambiguous {
                    spec: spec.to_string(),
                    count: several.len(),
                    candidates: several
                        .iter()
                        .map(|p| describe(p))
                        .collect::<Vec<_>>()
                        .join(", "),
                }),
            }
        }
        PortSpec::Net(url) => {
            let bridge = Arc::new(Bridge::connect(&url)?);
            let port = url.to_string();
            remember(&port, None, Some(&bridge));
            Ok(vec![ResolvedPort {
                port,
                info: None,
                _bridge: Some(bridge),
            }])
        }
    }
}

/// Every `--port` value resolved with the system's sysfs and `/dev`, in order.
pub fn resolve_all(specs: &[String]) -> Result<Vec<ResolvedPort>, PortError> {
    let roots = Roots::system();
    let mut out = Vec::new();
    for spec in specs {
        out.extend(resolve(spec, &roots)?);
    }
    Ok(out)
}

/// Whether the line rate of `port` cannot change: a `socket://` port carries no baud rate, so
/// the board must stay at the rate of the server's serial port (115200 unless `--baud` says).
pub fn keeps_rate(port: &str) -> bool {
    recall(port)
        .1
        .is_some_and(|b| b.url().scheme == net::Scheme::Socket)
}

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
    /// The link for `port` (a device path or a network URL resolved before). A USB board that
    /// left its node (re-enumerated after a reset) is looked for by its serial number or USB
    /// path for up to [`RETURN_TIMEOUT`]; a network port whose connection ended is an error.
    pub fn prepare(port: &str) -> Result<Link, DeviceError> {
        Link::prepare_with(port, &Roots::system())
    }

    /// [`Link::prepare`] with sysfs and device nodes under `roots`.
    pub fn prepare_with(port: &str, roots: &Roots) -> Result<Link, DeviceError> {
        let (usb, bridge) = recall(port);
        if let Some(bridge) = bridge {
            if let Some(reason) = bridge.lost() {
                return Err(PortError::Dropped {
                    url: port.to_string(),
                    reason,
                }
                .into());
            }
            return Ok(Link {
                path: bridge.path().to_string(),
                usb: None,
                bridge: Some(bridge),
            });
        }
        if Path::new(port).exists() {
            let usb = sysfs::scan(roots)
                .ok()
                .and_then(|ports| sysfs::find_by_node(&ports, Path::new(port)).cloned())
                .and_then(|p| p.usb);
            return Ok(Link {
                path: port.to_string(),
                usb,
                bridge: None,
            });
        }
        match usb {
            Some(usb) => match find_again(&usb, roots, RETURN_TIMEOUT) {
                Some(path) => {
                    eprintln!("note: the board of {port} is back as {path}");
                    Ok(Link {
                        path,
                        usb: Some(usb),
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
            },
            None => Ok(Link {
                path: port.to_string(),
                usb: None,
                bridge: None,
            }),
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

/// Every serial port sysfs shows, for `--list-ports`.
pub fn list(roots: &Roots) -> Result<Vec<PortInfo>, PortError> {
    scan(roots)
}

fn hex(v: u16) -> String {
    format!("{v:04x}")
}

/// The ports as a table: node (`-` when not in the container), kernel name, USB id, serial
/// number, USB path, interface, driver, reset sequence, whether it looks like an ESP board,
/// and the product string.
pub fn table(ports: &[PortInfo]) -> String {
    let mut rows = vec![
        [
            "PORT", "NAME", "USB ID", "SERIAL", "USB PATH", "IF", "DRIVER", "RESET", "ESP",
            "PRODUCT",
        ]
        .map(String::from),
    ];
    for p in ports {
        let u = p.usb.as_ref();
        let dash = || "-".to_string();
        rows.push([
            p.node
                .as_ref()
                .map_or_else(dash, |n| n.display().to_string()),
            p.name.clone(),
            u.map_or_else(dash, |u| format!("{}:{}", hex(u.vid), hex(u.pid))),
            u.and_then(|u| u.serial.clone()).unwrap_or_else(dash),
            u.map_or_else(dash, |u| u.path.clone()),
            u.and_then(|u| u.interface)
                .map_or_else(dash, |i| i.to_string()),
            p.driver.clone().unwrap_or_else(dash),
            Reset::for_usb(u).name().to_string(),
            if u.is_some_and(select::is_esp) {
                "yes"
            } else {
                "no"
            }
            .to_string(),
            u.and_then(|u| u.product.clone()).unwrap_or_else(dash),
        ]);
    }
    let widths: Vec<usize> = (0..10)
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in rows {
        let line: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:w$}"))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}

/// The ports as JSON: an array of objects with `port` (the node, or null), `name`, `devnum`,
/// `driver`, `reset`, `esp`, and `usb` (`vid`, `pid` as 4 hex digits, `serial`,
/// `manufacturer`, `product`, `interface`, `path`) or null.
pub fn to_json(ports: &[PortInfo]) -> Value {
    Value::Array(
        ports
            .iter()
            .map(|p| {
                let u = p.usb.as_ref();
                json!({
                    "port": p.node.as_ref().map(|n| n.display().to_string()),
                    "name": p.name,
                    "devnum": p.devnum.map(|(a, b)| format!("{a}:{b}")),
                    "driver": p.driver,
                    "reset": Reset::for_usb(u).name(),
                    "esp": u.is_some_and(select::is_esp),
                    "usb": u.map(|u| json!({
                        "vid": hex(u.vid),
                        "pid": hex(u.pid),
                        "serial": u.serial,
                        "manufacturer": u.manufacturer,
                        "product": u.product,
                        "interface": u.interface,
                        "path": u.path,
                    })),
                })
            })
            .collect(),
    )
}
