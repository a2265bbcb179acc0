//! Serial ports as containers see them: finding the board, resetting it the right way, and
//! reaching it over the network.
//!
//! * [`spec`] parses `--port` (a path, `auto`, `usb-serial=…`, `usb-path=…`, `usb-id=…`, a
//!   network URL); [`select`] picks the ports a selector or `auto` stands for and knows how
//!   each resets; [`sysfs`] reads USB ids, serial numbers and USB paths (containers have no
//!   udev).
//! * [`resolve`](mod@resolve) turns `--port` values into [`ResolvedPort`]s (the name, the USB identity, the
//!   bridge of a network port) and [`glob`] expands patterns among them: the values the station
//!   and the device layer are handed, port by port.
//! * [`Link`] is what the device layer opens for one port and one attempt: the tty, the USB ids
//!   espflash chooses its reset sequence by, the reset a network port needs, and the board
//!   found again after it re-enumerated.
//! * [`diag`] explains permission and busy errors with the fix; [`net`] and [`rfc2217`] bridge
//!   `rfc2217://` and `socket://` ports through a pseudo-terminal; [`list`](mod@list) is `--list-ports`.

pub mod diag;
pub mod glob;
pub mod link;
pub mod list;
pub mod net;
pub mod resolve;
pub mod rfc2217;
pub mod select;
pub mod spec;
pub mod sysfs;

pub use crate::error::PortError;

/// The short name of a port for progress lines (`ttyUSB0`).
pub fn short_name(port: &str) -> &str {
    std::path::Path::new(port)
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or(port)
}
pub use glob::expand;
pub use link::{Link, RETURN_TIMEOUT, find_again};
pub use list::{list, table, to_json};
pub use resolve::{ResolvedPort, resolve, resolve_all};
