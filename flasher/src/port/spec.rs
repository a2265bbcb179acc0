//! What `--port` may say: a device path (or a glob, which port selection expands), `auto`
//! (every port that looks like an ESP board), a USB selector (`usb-serial=ABC123`,
//! `usb-path=1-1.4`, `usb-id=303a:1001`, combined with commas), or a network URL
//! (`rfc2217://HOST:PORT`, `socket://HOST:PORT`).

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use super::select::Criterion;

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

/// The protocol of a network port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// Telnet with RFC 2217 Com Port Control: baud rate and modem lines travel too.
    Rfc2217,
    /// Raw bytes; no baud rate, no modem lines.
    Socket,
}

/// A network port: `rfc2217://HOST:PORT[?ign_set_control]` or `socket://HOST:PORT`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetUrl {
    /// The protocol.
    pub scheme: Scheme,
    /// Host name or address (IPv6 without brackets).
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// Whether DTR/RTS may be sent (`?ign_set_control` turns them off, as in pyserial).
    pub modem_lines: bool,
}

impl NetUrl {
    /// Whether resets can travel: RFC 2217 with modem lines.
    pub fn can_reset(&self) -> bool {
        self.scheme == Scheme::Rfc2217 && self.modem_lines
    }
}

impl fmt::Display for NetUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = match self.scheme {
            Scheme::Rfc2217 => "rfc2217",
            Scheme::Socket => "socket",
        };
        if self.host.contains(':') {
            write!(f, "{scheme}://[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{scheme}://{}:{}", self.host, self.port)
        }
    }
}

impl FromStr for NetUrl {
    type Err = BadSpec;

    fn from_str(s: &str) -> Result<NetUrl, BadSpec> {
        let bad = |why: &str| {
            BadSpec(format!(
                "{s}: {why}; network ports are rfc2217://HOST:PORT or socket://HOST:PORT"
            ))
        };
        let (scheme, rest) = s.split_once("://").ok_or_else(|| bad("no scheme"))?;
        let scheme = match scheme {
            "rfc2217" => Scheme::Rfc2217,
            "socket" => Scheme::Socket,
            _ => return Err(bad(&format!("unknown scheme '{scheme}'"))),
        };
        let (rest, query) = match rest.split_once('?') {
            Some((r, q)) => (r, Some(q)),
            None => (rest, None),
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        let (host, port) = match rest.strip_prefix('[') {
            Some(v6) => {
                let (host, port) = v6.split_once("]:").ok_or_else(|| bad("no port"))?;
                (host, port)
            }
            None => rest.rsplit_once(':').ok_or_else(|| bad("no port"))?,
        };
        if host.is_empty() {
            return Err(bad("no host"));
        }
        let port: u16 = port
            .parse()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| bad(&format!("'{port}' is not a TCP port")))?;
        let mut modem_lines = true;
        for option in query.into_iter().flat_map(|q| q.split('&')) {
            match (scheme, option) {
                (Scheme::Rfc2217, "ign_set_control") => modem_lines = false,
                _ => return Err(bad(&format!("unsupported option '{option}'"))),
            }
        }
        Ok(NetUrl {
            scheme,
            host: host.to_string(),
            port,
            modem_lines,
        })
    }
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

    #[test]
    fn urls() {
        let u: NetUrl = "rfc2217://127.0.0.1:4000".parse().unwrap();
        assert_eq!(
            (u.scheme, u.host.as_str(), u.port, u.modem_lines),
            (Scheme::Rfc2217, "127.0.0.1", 4000, true)
        );
        assert!(u.can_reset());
        assert_eq!(u.to_string(), "rfc2217://127.0.0.1:4000");
        let u: NetUrl = "rfc2217://host.docker.internal:2217?ign_set_control"
            .parse()
            .unwrap();
        assert!(!u.modem_lines && !u.can_reset());
        let u: NetUrl = "socket://[::1]:23".parse().unwrap();
        assert_eq!((u.scheme, u.host.as_str()), (Scheme::Socket, "::1"));
        assert_eq!(u.to_string(), "socket://[::1]:23");
        for bad in [
            "rfc2217://host",
            "rfc2217://:4000",
            "rfc2217://h:0",
            "rfc2217://h:99999",
            "telnet://h:23",
            "socket://h:23?ign_set_control",
        ] {
            assert!(bad.parse::<NetUrl>().is_err(), "{bad}");
        }
    }
}
