//! What `--port` may say, and which ports of a sysfs scan it picks: a device path (or a glob,
//! which the station expands), `auto` (every port that looks like an ESP board), a USB selector (`usb-serial=ABC123`,
//! `usb-path=1-1.4`, `usb-id=303a:1001`, combined with commas), or a network URL
//! (`rfc2217://HOST:PORT`, `socket://HOST:PORT`).

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use super::net::NetUrl;
use super::sysfs::{PortInfo, UsbInfo};

/// Espressif's USB vendor id (native USB: USB-Serial/JTAG, USB-OTG CDC).
pub const ESPRESSIF_VID: u16 = 0x303a;
/// Product id of the USB-Serial/JTAG peripheral (ESP32-C3, -C6, -H2, -S3).
pub const USB_SERIAL_JTAG_PID: u16 = 0x1001;

/// USB-UART bridges found on ESP boards: CP210x, CH34x/CH910x, FTDI.
pub const BRIDGES: &[(u16, u16, &str)] = &[
    (0x10c4, 0xea60, "CP210x"),
    (0x10c4, 0xea70, "CP2105"),
    (0x10c4, 0xea71, "CP2108"),
    (0x1a86, 0x7522, "CH340"),
    (0x1a86, 0x7523, "CH340"),
    (0x1a86, 0x5523, "CH341"),
    (0x1a86, 0x55d2, "CH9102"),
    (0x1a86, 0x55d3, "CH343"),
    (0x1a86, 0x55d4, "CH9102"),
    (0x0403, 0x6001, "FT232R"),
    (0x0403, 0x6010, "FT2232"),
    (0x0403, 0x6014, "FT232H"),
    (0x0403, 0x6015, "FT231X"),
];

/// Whether a USB device looks like an ESP board: native Espressif USB or a known bridge.
pub fn is_esp(usb: &UsbInfo) -> bool {
    usb.vid == ESPRESSIF_VID
        || BRIDGES
            .iter()
            .any(|&(vid, pid, _)| (vid, pid) == (usb.vid, usb.pid))
}

/// How a port resets the chip into its ROM loader.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reset {
    /// The USB-Serial/JTAG sequence (303a:1001): the peripheral decodes DTR/RTS itself.
    UsbJtag,
    /// The classic DTR/RTS pulses a USB-UART bridge drives into EN and IO0.
    DtrRts,
}

impl Reset {
    /// The reset sysfs implies for a port: USB-Serial/JTAG for 303a:1001, else DTR/RTS.
    pub fn for_usb(usb: Option<&UsbInfo>) -> Reset {
        match usb {
            Some(u) if (u.vid, u.pid) == (ESPRESSIF_VID, USB_SERIAL_JTAG_PID) => Reset::UsbJtag,
            _ => Reset::DtrRts,
        }
    }

    /// Its name in `--list-ports`.
    pub fn name(self) -> &'static str {
        match self {
            Reset::UsbJtag => "usb-jtag",
            Reset::DtrRts => "dtr-rts",
        }
    }
}

/// One condition of a USB selector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Criterion {
    /// `usb-serial=S`: the USB serial number.
    Serial(String),
    /// `usb-path=P`: the position on the USB tree, `1-1.4`.
    UsbPath(String),
    /// `usb-id=VID[:PID]`, hexadecimal.
    UsbId(u16, Option<u16>),
}

impl Criterion {
    fn matches(&self, usb: &UsbInfo) -> bool {
        match self {
            Criterion::Serial(s) => usb.serial.as_deref() == Some(s),
            Criterion::UsbPath(p) => usb.path == *p,
            Criterion::UsbId(vid, pid) => usb.vid == *vid && pid.is_none_or(|p| p == usb.pid),
        }
    }
}

impl fmt::Display for Criterion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Criterion::Serial(s) => write!(f, "usb-serial={s}"),
            Criterion::UsbPath(p) => write!(f, "usb-path={p}"),
            Criterion::UsbId(v, Some(p)) => write!(f, "usb-id={v:04x}:{p:04x}"),
            Criterion::UsbId(v, None) => write!(f, "usb-id={v:04x}"),
        }
    }
}

/// A parsed `--port` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PortSpec {
    /// A device path.
    Path(PathBuf),
    /// Every port that looks like an ESP board.
    Auto,
    /// USB ports meeting every criterion.
    Select(Vec<Criterion>),
    /// A board behind a network serial server.
    Net(NetUrl),
}

/// Why a `--port` value cannot be understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BadSpec(pub String);

fn parse_hex(s: &str, what: &str) -> Result<u16, BadSpec> {
    u16::from_str_radix(s, 16)
        .map_err(|_| BadSpec(format!("{what} '{s}' is not a 4-digit hexadecimal USB id")))
}

impl FromStr for PortSpec {
    type Err = BadSpec;

    fn from_str(s: &str) -> Result<PortSpec, BadSpec> {
        if s.is_empty() {
            return Err(BadSpec("--port is empty".into()));
        }
        if s == "auto" {
            return Ok(PortSpec::Auto);
        }
        if s.contains("://") {
            return s.parse().map(PortSpec::Net);
        }
        if !s.starts_with('/') && !s.starts_with('.') && s.contains('=') {
            let mut criteria = Vec::new();
            for item in s.split(',') {
                let (key, value) = item.split_once('=').unwrap_or((item, ""));
                if value.is_empty() {
                    return Err(BadSpec(format!("selector '{item}' has no value")));
                }
                criteria.push(match key {
                    "usb-serial" => Criterion::Serial(value.into()),
                    "usb-path" => Criterion::UsbPath(value.into()),
                    "usb-id" => {
                        let (vid, pid) = match value.split_once(':') {
                            Some((v, p)) => (v, Some(p)),
                            None => (value, None),
                        };
                        Criterion::UsbId(
                            parse_hex(vid, "vendor id")?,
                            pid.map(|p| parse_hex(p, "product id")).transpose()?,
                        )
                    }
                    _ => {
                        return Err(BadSpec(format!(
                            "unknown selector '{key}' (known: usb-serial, usb-path, usb-id)"
                        )));
                    }
                });
            }
            return Ok(PortSpec::Select(criteria));
        }
        Ok(PortSpec::Path(s.into()))
    }
}

/// The ports of `ports` that have USB details meeting every one of `criteria`.
pub fn select<'a>(ports: &'a [PortInfo], criteria: &[Criterion]) -> Vec<&'a PortInfo> {
    ports
        .iter()
        .filter(|p| {
            p.usb
                .as_ref()
                .is_some_and(|u| criteria.iter().all(|c| c.matches(u)))
        })
        .collect()
}

/// The ports of `ports` that look like ESP boards.
pub fn auto(ports: &[PortInfo]) -> Vec<&PortInfo> {
    ports
        .iter()
        .filter(|p| p.usb.as_ref().is_some_and(is_esp))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs() {
        assert_eq!("auto".parse(), Ok(PortSpec::Auto));
        assert_eq!(
            "/dev/ttyUSB0".parse(),
            Ok(PortSpec::Path("/dev/ttyUSB0".into()))
        );
        assert_eq!(
            "usb-serial=ABC,usb-id=303a:1001".parse(),
            Ok(PortSpec::Select(vec![
                Criterion::Serial("ABC".into()),
                Criterion::UsbId(0x303a, Some(0x1001))
            ]))
        );
        assert_eq!(
            "usb-id=10C4".parse(),
            Ok(PortSpec::Select(vec![Criterion::UsbId(0x10c4, None)]))
        );
        for bad in [
            "",
            "usb-serial=",
            "serial=ABC",
            "usb-id=xyz",
            "usb-id=303a:",
        ] {
            assert!(bad.parse::<PortSpec>().is_err(), "{bad}");
        }
    }
}
