//! Which ports of a sysfs scan a `--port` selector or `auto` picks, and how each port resets
//! the chip into its loader.

use std::fmt;

use super::sysfs::{PortInfo, UsbInfo};

/// Espressif's USB vendor id (native USB: USB-Serial/JTAG, USB-OTG CDC).
pub const ESPRESSIF_VID: u16 = 0x303a;
/// Product id of the USB-Serial/JTAG peripheral (ESP32-C3, -C6, -H2, -S3).
pub const USB_SERIAL_JTAG_PID: u16 = 0x1001;

/// A USB-UART bridge found on ESP boards, and the rate it is written at by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bridge {
    /// USB vendor id.
    pub vid: u16,
    /// USB product id.
    pub pid: u16,
    /// The chip family.
    pub family: &'static str,
    /// The default write rate: the highest the family's datasheet documents (capped at
    /// [`BRIDGE_RATE_CAP`]) where one was found, else [`UNKNOWN_BRIDGE_RATE`]
    /// (docs/flasher.md, "Line rate").
    pub rate: u32,
}

/// The default rate of a bridge whose documented maximum is not known: every bridge above is
/// documented to carry it, and so is every ESP chip's UART.
pub const UNKNOWN_BRIDGE_RATE: u32 = 921_600;
/// The highest default rate: 80 MHz / 40, an exact divider of the ESP UARTs' clock, and within
/// the documented maximum of every bridge given it (the ESP32's UART is documented to 5 Mbit/s).
pub const BRIDGE_RATE_CAP: u32 = 2_000_000;

const fn bridge(vid: u16, pid: u16, family: &'static str, rate: u32) -> Bridge {
    Bridge {
        vid,
        pid,
        family,
        rate,
    }
}

/// USB-UART bridges found on ESP boards: CP210x, CH34x/CH910x, FTDI. One product id may
/// stand for parts of different limits (10c4:ea60 is the CP2102 at 1 Mbit/s as well as the
/// CP2102N at 3 Mbaud): the default is then what the slowest of them documents.
pub const BRIDGES: &[Bridge] = &[
    // CP2102 1 Mbit/s, CP2104 2 Mbit/s, CP2102N 3 Mbaud: one id, the CP2102 decides.
    bridge(0x10c4, 0xea60, "CP210x", UNKNOWN_BRIDGE_RATE),
    bridge(0x10c4, 0xea70, "CP2105", UNKNOWN_BRIDGE_RATE),
    bridge(0x10c4, 0xea71, "CP2108", UNKNOWN_BRIDGE_RATE),
    // CH340 datasheet: 50 bit/s to 2 Mbit/s.
    bridge(0x1a86, 0x7522, "CH340", BRIDGE_RATE_CAP),
    bridge(0x1a86, 0x7523, "CH340", BRIDGE_RATE_CAP),
    // CH341: no maximum found; Linux drivers of some versions fail at 921600 (esptool#435).
    bridge(0x1a86, 0x5523, "CH341", 460_800),
    // CH9102 datasheet: 50 bit/s to 4 Mbit/s.
    bridge(0x1a86, 0x55d2, "CH9102", BRIDGE_RATE_CAP),
    bridge(0x1a86, 0x55d3, "CH343", UNKNOWN_BRIDGE_RATE),
    bridge(0x1a86, 0x55d4, "CH9102", BRIDGE_RATE_CAP),
    // FT232R datasheet: up to 3 Mbaud.
    bridge(0x0403, 0x6001, "FT232R", BRIDGE_RATE_CAP),
    bridge(0x0403, 0x6010, "FT2232", UNKNOWN_BRIDGE_RATE),
    bridge(0x0403, 0x6014, "FT232H", UNKNOWN_BRIDGE_RATE),
    bridge(0x0403, 0x6015, "FT231X", UNKNOWN_BRIDGE_RATE),
];

/// The known bridge `usb` is, if any.
pub fn bridge_of(usb: &UsbInfo) -> Option<&'static Bridge> {
    BRIDGES
        .iter()
        .find(|b| (b.vid, b.pid) == (usb.vid, usb.pid))
}

/// Whether a USB device looks like an ESP board: native Espressif USB or a known bridge.
pub fn is_esp(usb: &UsbInfo) -> bool {
    usb.vid == ESPRESSIF_VID || bridge_of(usb).is_some()
}

/// Whether `usb` is the chip's own USB (USB-Serial/JTAG or USB-OTG CDC), where the baud rate
/// is nominal: data moves at USB full speed whatever it says.
pub fn is_native_usb(usb: &UsbInfo) -> bool {
    usb.vid == ESPRESSIF_VID
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
