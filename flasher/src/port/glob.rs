//! Port patterns: a `--port` path with `*` and `?` in its last component (`/dev/ttyUSB*`)
//! stands for the matching devices in natural order (`ttyUSB2` before `ttyUSB10`); no device
//! may be given twice.

use std::cmp::Ordering;
use std::fs;

use crate::error::UsageError;

use super::resolve::ResolvedPort;

/// The ports `resolved` stands for, in order, patterns expanded: a pattern that matches no
/// device, or a device given twice (by name or through a link), is an error.
pub fn expand(resolved: Vec<ResolvedPort>) -> Result<Vec<ResolvedPort>, UsageError> {
    let mut ports: Vec<ResolvedPort> = Vec::new();
    for port in resolved {
        let found = if port.bridge().is_none() && port.port.contains(['*', '?']) {
            let matches = glob(&port.port);
            if matches.is_empty() {
                return Err(UsageError::NoPortMatches(port.port));
            }
            matches.into_iter().map(ResolvedPort::device).collect()
        } else {
            vec![port]
        };
        for port in found {
            if ports.iter().any(|p| same_device(&p.port, &port.port)) {
                return Err(UsageError::DuplicatePort(port.port));
            }
            ports.push(port);
        }
    }
    Ok(ports)
}

/// Whether `a` and `b` name the same device.
fn same_device(a: &str, b: &str) -> bool {
    a == b || matches!((fs::canonicalize(a), fs::canonicalize(b)), (Ok(a), Ok(b)) if a == b)
}

/// The paths matching `pattern`, whose wildcards may only be in the last component, in
/// natural order (none is not an error: a station waits for them).
pub fn glob(pattern: &str) -> Vec<String> {
    let (dir, name) = match pattern.rfind('/') {
        Some(i) => (&pattern[..=i], &pattern[i + 1..]),
        None => ("", pattern),
    };
    let Ok(entries) = fs::read_dir(if dir.is_empty() { "." } else { dir }) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| wildcard(name.as_bytes(), n.as_bytes()))
        .collect();
    names.sort_by(|a, b| natural(a, b));
    names.into_iter().map(|n| format!("{dir}{n}")).collect()
}

/// Whether `name` matches `pattern` (`*` any run of bytes, `?` one byte).
fn wildcard(pattern: &[u8], name: &[u8]) -> bool {
    match (pattern.first(), name.first()) {
        (None, None) => true,
        (Some(b'*'), _) => {
            wildcard(&pattern[1..], name) || (!name.is_empty() && wildcard(pattern, &name[1..]))
        }
        (Some(b'?'), Some(_)) => wildcard(&pattern[1..], &name[1..]),
        (Some(p), Some(n)) if p == n => wildcard(&pattern[1..], &name[1..]),
        _ => false,
    }
}

/// Compares names with their digit runs as numbers.
fn natural(a: &str, b: &str) -> Ordering {
    fn split(s: &str) -> (&str, u64) {
        let digits = s.len() - s.trim_end_matches(|c: char| c.is_ascii_digit()).len();
        let (head, tail) = s.split_at(s.len() - digits);
        (head, tail.parse().unwrap_or(0))
    }
    split(a).cmp(&split(b)).then_with(|| a.cmp(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expand_names(args: &[String]) -> Result<Vec<String>, UsageError> {
        let resolved = args.iter().cloned().map(ResolvedPort::device).collect();
        expand(resolved).map(|ports| ports.into_iter().map(|p| p.port).collect())
    }

    #[test]
    fn wildcards_and_natural_order() {
        assert!(wildcard(b"ttyUSB*", b"ttyUSB10"));
        assert!(wildcard(b"ttyUSB*", b"ttyUSB"));
        assert!(wildcard(b"tty?SB1", b"ttyUSB1"));
        assert!(!wildcard(b"ttyUSB?", b"ttyUSB10"));
        assert!(!wildcard(b"ttyACM*", b"ttyUSB0"));
        let mut names = vec!["ttyUSB10", "ttyUSB2", "ttyACM0", "ttyUSB1"];
        names.sort_by(|a, b| natural(a, b));
        assert_eq!(names, ["ttyACM0", "ttyUSB1", "ttyUSB2", "ttyUSB10"]);
    }

    #[test]
    fn ports_expand_in_order_without_duplicates() {
        let dir = tempfile::tempdir().unwrap();
        for n in ["ttyUSB0", "ttyUSB10", "ttyUSB2", "other"] {
            fs::write(dir.path().join(n), b"").unwrap();
        }
        let d = dir.path().display();
        let pattern = format!("{d}/ttyUSB*");
        assert_eq!(
            expand_names(std::slice::from_ref(&pattern)).unwrap(),
            [
                format!("{d}/ttyUSB0"),
                format!("{d}/ttyUSB2"),
                format!("{d}/ttyUSB10")
            ]
        );
        let err = expand_names(&[format!("{d}/ttyACM*")]).unwrap_err();
        assert!(err.to_string().contains("matches no device"), "{err}");
        let err = expand_names(&[format!("{d}/ttyUSB2"), pattern]).unwrap_err();
        assert!(err.to_string().contains("given twice"), "{err}");
        // Plain names are passed through, existing or not: opening them reports what is wrong.
        assert_eq!(
            expand_names(&["/dev/nothing".to_string()]).unwrap(),
            ["/dev/nothing"]
        );
    }
}
