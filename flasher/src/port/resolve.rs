//! Port selection: each `--port` value becomes the [`ResolvedPort`]s it stands for, each
//! carrying what the device layer needs to open its board: the name, the sysfs details (the
//! USB identity to find a re-enumerated board again) and, for a network port, its bridge.

use std::sync::Arc;

use crate::error::PortError;

use super::list::list;
use super::net::Bridge;
use super::select;
use super::spec::{PortSpec, Scheme};
use super::sysfs::{self, PortInfo, Roots, UsbInfo};

/// One port a `--port` value stands for, as port selection found it. Cloning it shares the
/// network bridge, which stays connected as long as a clone lives.
#[derive(Debug, Clone)]
pub struct ResolvedPort {
    /// The port's name in records and messages: a device path, or the URL of a network port.
    pub port: String,
    /// What sysfs says about it, when it is a known tty.
    pub info: Option<PortInfo>,
    /// The pseudo-terminal bridge of an `rfc2217://` or `socket://` port.
    bridge: Option<Arc<Bridge>>,
}

impl ResolvedPort {
    /// A device path taken as it is, with nothing known about it yet (a port a glob matched,
    /// or one given by a caller that resolved nothing).
    pub fn device(path: impl Into<String>) -> ResolvedPort {
        ResolvedPort {
            port: path.into(),
            info: None,
            bridge: None,
        }
    }

    /// The USB identity sysfs gave when the port was resolved, to find the board again after
    /// it re-enumerates.
    pub fn usb(&self) -> Option<&UsbInfo> {
        self.info.as_ref().and_then(|i| i.usb.as_ref())
    }

    /// The bridge of a network port.
    pub fn bridge(&self) -> Option<&Arc<Bridge>> {
        self.bridge.as_ref()
    }

    /// Whether the line rate cannot change: a `socket://` port carries no baud rate, so the
    /// board must stay at the rate of the server's serial port (115200 unless `--baud` says).
    pub fn keeps_rate(&self) -> bool {
        self.bridge
            .as_ref()
            .is_some_and(|b| b.url().scheme == Scheme::Socket)
    }
}

/// The ports `spec` stands for. A path stands for itself (with its sysfs details when known;
/// a glob is left for [`expand`](super::glob::expand)), `auto` for every ESP-looking port in
/// the container, a selector for exactly one port, a URL for a bridged network port.
pub fn resolve(spec: &str, roots: &Roots) -> Result<Vec<ResolvedPort>, PortError> {
    match spec
        .parse::<PortSpec>()
        .map_err(|e| PortError::BadSpec(e.0))?
    {
        PortSpec::Path(path) => {
            let info = sysfs::scan(roots)
                .ok()
                .and_then(|ports| sysfs::find_by_node(&ports, &path).cloned());
            Ok(vec![ResolvedPort {
                port: spec.to_string(),
                info: info.filter(|_| path.exists()),
                bridge: None,
            }])
        }
        PortSpec::Auto => auto(spec, roots),
        PortSpec::Select(criteria) => {
            let ports = list(roots)?;
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
        PortSpec::Net(url) => Ok(vec![ResolvedPort {
            port: url.to_string(),
            info: None,
            bridge: Some(Arc::new(Bridge::connect(&url)?)),
        }]),
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

/// `auto`: every ESP-looking port that is in the container.
fn auto(spec: &str, roots: &Roots) -> Result<Vec<ResolvedPort>, PortError> {
    let ports = list(roots)?;
    let esp = select::auto(&ports);
    let present: Vec<&PortInfo> = esp.iter().copied().filter(|p| p.node.is_some()).collect();
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

/// The port sysfs describes as `info`, which `spec` picked; one not in the container is an
/// error.
fn from_info(spec: &str, info: &PortInfo) -> Result<ResolvedPort, PortError> {
    let node = info.node.clone().ok_or_else(|| PortError::NotInContainer {
        spec: spec.to_string(),
        name: info.name.clone(),
    })?;
    Ok(ResolvedPort {
        port: node.display().to_string(),
        info: Some(info.clone()),
        bridge: None,
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

/// The USB ports seen, for a message saying none matched.
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
