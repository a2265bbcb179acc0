//! Serial ports as sysfs describes them, without udev: what a container sees.
//!
//! A container has no udev database, so nothing names a port's USB vendor, product or serial
//! number. The kernel still publishes them in sysfs (`/sys/class/tty/<name>/device`, read-only
//! inside containers): the tty's `device` link leads to the USB interface, whose parent USB
//! device holds `idVendor`, `idProduct`, `serial`, `manufacturer` and `product`, and whose
//! directory name is the USB path (`1-1.4`: bus 1, hub port 1, port 4). Device nodes are found in
//! the device directory by their device number, so a port passed into the container under
//! another name (`--device=/dev/ttyUSB0:/dev/esp`) is still recognised.

use std::fs;
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

/// Where sysfs and the device nodes are: `/sys` and `/dev`, or a tree a test builds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Roots {
    /// The sysfs root (holding `class/tty`).
    pub sys: PathBuf,
    /// The directory of device nodes.
    pub dev: PathBuf,
}

impl Roots {
    /// `/sys` and `/dev`, or `$FLASHER_SYSFS_ROOT` and `$FLASHER_DEV_ROOT` when set.
    pub fn system() -> Roots {
        let var = |name: &str, default: &str| {
            std::env::var_os(name)
                .filter(|v| !v.is_empty())
                .map_or_else(|| PathBuf::from(default), PathBuf::from)
        };
        Roots {
            sys: var("FLASHER_SYSFS_ROOT", "/sys"),
            dev: var("FLASHER_DEV_ROOT", "/dev"),
        }
    }
}

/// The USB side of a port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsbInfo {
    /// Vendor id (`idVendor`).
    pub vid: u16,
    /// Product id (`idProduct`).
    pub pid: u16,
    /// Serial number string, when the device has one.
    pub serial: Option<String>,
    /// Manufacturer string.
    pub manufacturer: Option<String>,
    /// Product string.
    pub product: Option<String>,
    /// Interface number of the tty on the USB device (`bInterfaceNumber`).
    pub interface: Option<u8>,
    /// Position on the USB tree, the USB device's sysfs name: `1-1.4`.
    pub path: String,
}

/// One serial port sysfs knows of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortInfo {
    /// Kernel name: `ttyUSB0`, `ttyACM0`.
    pub name: String,
    /// The device node in the device directory, `None` when the port was not passed into the
    /// container.
    pub node: Option<PathBuf>,
    /// Device number (major, minor), from sysfs `dev`.
    pub devnum: Option<(u32, u32)>,
    /// Kernel driver: `cp210x`, `ch341-uart`, `ftdi_sio`, `cdc_acm`.
    pub driver: Option<String>,
    /// USB details, `None` for ports not on USB.
    pub usb: Option<UsbInfo>,
}

impl PortInfo {
    /// The node to open, or `/dev/<name>` (in the device root) when it is missing.
    pub fn node_or_default(&self, roots: &Roots) -> PathBuf {
        self.node
            .clone()
            .unwrap_or_else(|| roots.dev.join(&self.name))
    }
}

fn read_attr(dir: &Path, name: &str) -> Option<String> {
    let text = fs::read_to_string(dir.join(name)).ok()?;
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_string())
}

fn read_hex16(dir: &Path, name: &str) -> Option<u16> {
    u16::from_str_radix(&read_attr(dir, name)?, 16).ok()
}

fn parse_devnum(text: &str) -> Option<(u32, u32)> {
    let (major, minor) = text.trim().split_once(':')?;
    Some((major.parse().ok()?, minor.parse().ok()?))
}

/// Major and minor of a `st_rdev` (glibc's `gnu_dev_major`/`gnu_dev_minor` encoding).
pub fn split_rdev(rdev: u64) -> (u32, u32) {
    let major = ((rdev >> 32) & 0xffff_f000) | ((rdev >> 8) & 0x0000_0fff);
    let minor = ((rdev >> 12) & 0xffff_ff00) | (rdev & 0x0000_00ff);
    (major as u32, minor as u32)
}

/// The USB device above `device` (the tty's `device` link, resolved), staying inside `sys`.
fn usb_info(sys: &Path, device: &Path) -> Option<UsbInfo> {
    let mut below: Option<&Path> = None;
    for dir in device.ancestors() {
        if !dir.starts_with(sys) || dir == sys {
            return None;
        }
        if dir.join("idVendor").is_file() {
            let interface = below
                .filter(|b| {
                    b.file_name()
                        .is_some_and(|n| n.to_string_lossy().contains(':'))
                })
                .and_then(|b| read_attr(b, "bInterfaceNumber"))
                .and_then(|n| u8::from_str_radix(&n, 16).ok());
            return Some(UsbInfo {
                vid: read_hex16(dir, "idVendor")?,
                pid: read_hex16(dir, "idProduct")?,
                serial: read_attr(dir, "serial"),
                manufacturer: read_attr(dir, "manufacturer"),
                product: read_attr(dir, "product"),
                interface,
                path: dir.file_name()?.to_string_lossy().into_owned(),
            });
        }
        below = Some(dir);
    }
    None
}

/// The driver bound to `device` or, for USB-serial adapters whose tty hangs off a port device,
/// to the nearest ancestor with one.
fn driver(device: &Path) -> Option<String> {
    device.ancestors().take(2).find_map(|d| {
        fs::read_link(d.join("driver"))
            .ok()
            .and_then(|l| l.file_name().map(|n| n.to_string_lossy().into_owned()))
    })
}

/// Character devices of the device directory, with their device numbers.
fn nodes(dev: &Path) -> Vec<(PathBuf, Option<(u32, u32)>)> {
    let Ok(entries) = fs::read_dir(dev) else {
        return Vec::new();
    };
    let mut out: Vec<_> = entries
        .flatten()
        .map(|e| {
            let path = e.path();
            let num = fs::metadata(&path)
                .ok()
                .filter(|m| m.file_type().is_char_device())
                .map(|m| split_rdev(m.rdev()));
            (path, num)
        })
        .collect();
    out.sort();
    out
}

/// Every serial port of sysfs (entries of `class/tty` with a `device`), sorted by name, with the
/// node that carries its device number (the same name first), or a node of the same name.
pub fn scan(roots: &Roots) -> io::Result<Vec<PortInfo>> {
    let sys = fs::canonicalize(&roots.sys)?;
    let class = sys.join("class/tty");
    let nodes = nodes(&roots.dev);
    let mut ports = Vec::new();
    for entry in fs::read_dir(&class)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let Ok(device) = fs::canonicalize(entry.path().join("device")) else {
            continue; // virtual consoles, ptmx: no device behind them
        };
        let devnum = read_attr(&entry.path(), "dev").and_then(|d| parse_devnum(&d));
        let by_name = roots.dev.join(&name);
        let node = devnum
            .and_then(|num| {
                nodes
                    .iter()
                    .filter(|(_, n)| *n == Some(num))
                    .map(|(p, _)| p)
                    .min_by_key(|p| *p != &by_name)
                    .cloned()
            })
            .or_else(|| fs::symlink_metadata(&by_name).is_ok().then_some(by_name));
        ports.push(PortInfo {
            usb: usb_info(&sys, &device),
            driver: driver(&device),
            name,
            node,
            devnum,
        });
    }
    ports.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(ports)
}

/// The port whose node is `path`: same device number, else same node path or kernel name.
pub fn find_by_node<'a>(ports: &'a [PortInfo], path: &Path) -> Option<&'a PortInfo> {
    let num = fs::metadata(path)
        .ok()
        .filter(|m| m.file_type().is_char_device())
        .map(|m| split_rdev(m.rdev()));
    if let Some(num) = num
        && let Some(p) = ports.iter().find(|p| p.devnum == Some(num))
    {
        return Some(p);
    }
    ports
        .iter()
        .find(|p| p.node.as_deref() == Some(path))
        .or_else(|| {
            let name = path.file_name()?.to_string_lossy();
            ports.iter().find(|p| p.name == name)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_numbers() {
        assert_eq!(parse_devnum("188:0\n"), Some((188, 0)));
        assert_eq!(parse_devnum("166:12"), Some((166, 12)));
        assert_eq!(parse_devnum("x"), None);
        // makedev(188, 3) and makedev(136, 300) in glibc's encoding.
        assert_eq!(split_rdev((188 << 8) | 3), (188, 3));
        assert_eq!(
            split_rdev((136 << 8) | (300 & 0xff) | ((300 & !0xff) << 12)),
            (136, 300)
        );
    }
}
