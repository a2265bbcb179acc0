//! `--list-ports`: every serial port sysfs shows, as a table or JSON.

use serde_json::{Value, json};

use crate::error::PortError;

use super::select::{self, Reset};
use super::sysfs::{self, PortInfo, Roots};

/// Every serial port sysfs shows (for `--list-ports`, and the ports selectors pick from).
pub fn list(roots: &Roots) -> Result<Vec<PortInfo>, PortError> {
    sysfs::scan(roots).map_err(|e| PortError::Sysfs {
        path: roots.sys.join("class/tty").display().to_string(),
        reason: e.to_string(),
    })
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
