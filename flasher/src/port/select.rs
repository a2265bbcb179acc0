//! Which ports of a sysfs scan a `--port` selector or `auto` picks, and how each port resets
//! the chip into its loader.

use std::fmt;

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
