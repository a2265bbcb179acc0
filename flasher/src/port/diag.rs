//! Why a serial port cannot be opened, told with the fix: the group to add to the container
//! (`--group-add GID`), the device cgroup rule for ports plugged in later
//! (`--device-cgroup-rule='c MAJOR:* rmw'`), or the process holding the port.

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::Path;

use crate::error::PortError;

use super::sysfs::split_rdev;

/// A process that has a port open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    /// Process id.
    pub pid: u32,
    /// Command name (`/proc/PID/comm`).
    pub command: String,
}

/// Processes under `proc_root` (other than this one) with an open descriptor of the character
/// device `rdev`, found by following `/proc/PID/fd/*`. Processes outside this PID namespace (on
/// the host, in other containers) are not visible.
pub fn holders(proc_root: &Path, rdev: u64) -> Vec<Holder> {
    let me = std::process::id();
    let Ok(entries) = fs::read_dir(proc_root) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == me {
            continue;
        }
        let Ok(fds) = fs::read_dir(entry.path().join("fd")) else {
            continue;
        };
        let holds = fds.flatten().any(|fd| {
            fs::metadata(fd.path())
                .is_ok_and(|m| m.file_type().is_char_device() && m.rdev() == rdev)
        });
        if holds {
            let command = fs::read_to_string(entry.path().join("comm"))
                .map(|c| c.trim().to_string())
                .unwrap_or_else(|_| "?".into());
            out.push(Holder { pid, command });
        }
    }
    out.sort_by_key(|h| h.pid);
    out
}

/// The name of group `gid` in `/etc/group`, when the image has one.
fn group_name(gid: u32) -> Option<String> {
    let text = fs::read_to_string("/etc/group").ok()?;
    text.lines().find_map(|l| {
        let mut f = l.split(':');
        let name = f.next()?;
        let id: u32 = f.nth(1)?.parse().ok()?;
        (id == gid).then(|| name.to_string())
    })
}

/// The busy error for `port`, naming who holds it when `/proc` shows it.
pub fn busy(port: &str) -> PortError {
    let holders = fs::metadata(port)
        .ok()
        .filter(|m| m.file_type().is_char_device())
        .map(|m| holders(Path::new("/proc"), m.rdev()))
        .unwrap_or_default();
    PortError::Busy {
        port: port.to_string(),
        holder: describe_holders(&holders),
    }
}

/// `held by process 12 (screen)`, or where to look when no process here holds it.
pub fn describe_holders(holders: &[Holder]) -> String {
    if holders.is_empty() {
        return "held by a process outside this container (on the host or in another container)"
            .into();
    }
    let list: Vec<String> = holders
        .iter()
        .map(|h| format!("process {} ({})", h.pid, h.command))
        .collect();
    format!("held by {}", list.join(", "))
}

/// What the system says about a device node, for the permission messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeFacts {
    /// Permission bits.
    pub mode: u32,
    /// Owning user.
    pub uid: u32,
    /// Owning group.
    pub gid: u32,
    /// Device number.
    pub rdev: u64,
}

/// The error for a port the kernel refused to open with `errno` (`EACCES`: file permissions;
/// `EPERM`: the container's device cgroup), or `None` for other errors.
pub fn refused(port: &str, node: &NodeFacts, errno: i32, group: Option<&str>) -> Option<PortError> {
    let (major, minor) = split_rdev(node.rdev);
    match errno {
        libc::EACCES => {
            let group =
                group.map_or_else(|| node.gid.to_string(), |g| format!("{} ({g})", node.gid));
            Some(PortError::Permission {
                port: port.to_string(),
                mode: format!("{:o}", node.mode & 0o777),
                group,
                gid: node.gid,
                uid: uid(),
            })
        }
        libc::EPERM => Some(PortError::Cgroup {
            port: port.to_string(),
            major,
            minor,
        }),
        _ => None,
    }
}

fn uid() -> u32 {
    // SAFETY: getuid has no preconditions.
    unsafe { libc::getuid() }
}

/// Opens `port` once more to learn why it was refused, and explains it.
pub fn permission(port: &str) -> Option<PortError> {
    let meta = fs::metadata(port).ok()?;
    let errno = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOCTTY | libc::O_NONBLOCK)
        .open(port)
        .err()?
        .raw_os_error()?;
    let node = NodeFacts {
        mode: meta.mode(),
        uid: meta.uid(),
        gid: meta.gid(),
        rdev: meta.rdev(),
    };
    refused(port, &node, errno, group_name(node.gid).as_deref())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permission_messages_name_the_fix() {
        let node = NodeFacts {
            mode: 0o20660,
            uid: 0,
            gid: 20,
            rdev: (188 << 8) | 1,
        };
        let e = refused("/dev/ttyUSB1", &node, libc::EACCES, Some("dialout")).unwrap();
        let text = e.to_string();
        assert!(text.contains("--group-add 20"), "{text}");
        assert!(
            text.contains("20 (dialout)") && text.contains("660"),
            "{text}"
        );
        let e = refused("/dev/ttyUSB1", &node, libc::EPERM, None).unwrap();
        let text = e.to_string();
        assert!(
            text.contains("--device-cgroup-rule='c 188:* rmw'")
                && text.contains("--device=/dev/ttyUSB1")
                && text.contains("188:1"),
            "{text}"
        );
        assert!(refused("/dev/ttyUSB1", &node, libc::EIO, None).is_none());
    }

    #[test]
    fn holders_are_described() {
        let holders = describe_holders(&[Holder {
            pid: 42,
            command: "screen".into(),
        }]);
        assert_eq!(holders, "held by process 42 (screen)");
        assert!(describe_holders(&[]).contains("outside this container"));
    }
}
