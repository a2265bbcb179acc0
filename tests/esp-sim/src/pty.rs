//! The pseudo-terminal the board is served on.
//!
//! The simulator owns the master side and keeps its own descriptor of the
//! slave open (in raw mode), so reads on the master do not fail with `EIO`
//! while no client has the port open, and the line settings survive from
//! one client to the next.

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// A pty pair: the master the board talks through and the slave path
/// clients open.
#[derive(Debug)]
pub struct Pty {
    master: OwnedFd,
    slave: OwnedFd,
    path: PathBuf,
}

fn check(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

fn poll_one(fd: RawFd, events: libc::c_short, timeout: Duration) -> io::Result<bool> {
    let mut pfd = libc::pollfd {
        fd,
        events,
        revents: 0,
    };
    let ms = libc::c_int::try_from(timeout.as_millis()).unwrap_or(libc::c_int::MAX);
    // SAFETY: `pfd` is a valid pollfd for the duration of the call.
    match unsafe { libc::poll(&mut pfd, 1, ms) } {
        n if n < 0 => {
            let err = io::Error::last_os_error();
            if err.kind() == io::ErrorKind::Interrupted {
                Ok(false)
            } else {
                Err(err)
            }
        }
        0 => Ok(false),
        _ => Ok(true),
    }
}

impl Pty {
    /// Opens a new pty pair with the slave in raw mode at 115200 baud.
    pub fn open() -> io::Result<Self> {
        // SAFETY: plain libc calls; every descriptor is checked and then owned.
        unsafe {
            let fd = check(libc::posix_openpt(
                libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
            ))?;
            let master = OwnedFd::from_raw_fd(fd);
            check(libc::grantpt(fd))?;
            check(libc::unlockpt(fd))?;
            let mut name = [0 as libc::c_char; 128];
            check(libc::ptsname_r(fd, name.as_mut_ptr(), name.len()))?;
            let path = PathBuf::from(CStr::from_ptr(name.as_ptr()).to_string_lossy().into_owned());
            let flags = check(libc::fcntl(fd, libc::F_GETFL))?;
            check(libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK))?;
            let c_path = std::ffi::CString::new(path.as_os_str().as_encoded_bytes())
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
            let slave_fd = check(libc::open(
                c_path.as_ptr(),
                libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC | libc::O_NONBLOCK,
            ))?;
            let slave = OwnedFd::from_raw_fd(slave_fd);
            let mut tio: libc::termios = std::mem::zeroed();
            check(libc::tcgetattr(slave_fd, &mut tio))?;
            libc::cfmakeraw(&mut tio);
            check(libc::cfsetspeed(&mut tio, libc::B115200))?;
            check(libc::tcsetattr(slave_fd, libc::TCSANOW, &tio))?;
            Ok(Pty {
                master,
                slave,
                path,
            })
        }
    }

    /// Pulls the cable: closes the master, so the host sees a hang-up and cannot open the
    /// port again (`EIO`), and returns the simulator's own slave descriptor. Whoever keeps it
    /// keeps the number `/dev/pts/N` taken: no other pty gets it while a client still tries
    /// the dead port.
    pub fn hang_up(self) -> OwnedFd {
        drop(self.master);
        self.slave
    }

    /// Path of the slave device (`/dev/pts/N`) clients open.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The host's current output rate, as set by the client on its side of
    /// the line (`TCGETS2`, `c_ospeed`).
    pub fn host_baud(&self) -> Option<u32> {
        // SAFETY: TCGETS2 fills a termios2 of the right size.
        unsafe {
            let mut tio: libc::termios2 = std::mem::zeroed();
            check(libc::ioctl(
                self.master.as_raw_fd(),
                libc::TCGETS2,
                &mut tio,
            ))
            .ok()?;
            (tio.c_ospeed > 0).then_some(tio.c_ospeed)
        }
    }

    /// Whether input is waiting right now.
    pub fn readable(&self) -> io::Result<bool> {
        poll_one(self.master.as_raw_fd(), libc::POLLIN, Duration::ZERO)
    }

    /// Reads what the host sent, waiting at most `timeout`; `Ok(0)` on
    /// timeout.
    pub fn read(&self, buf: &mut [u8], timeout: Duration) -> io::Result<usize> {
        let fd = self.master.as_raw_fd();
        if !poll_one(fd, libc::POLLIN, timeout)? {
            return Ok(0);
        }
        // SAFETY: `buf` is valid for `buf.len()` bytes.
        let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
        if n < 0 {
            let err = io::Error::last_os_error();
            return match err.kind() {
                io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => Ok(0),
                _ => Err(err),
            };
        }
        Ok(n as usize)
    }

    /// Writes all of `bytes` towards the host.
    ///
    /// If nobody drains the line for `stale_after`, the unread input on the
    /// slave side is discarded (a UART does not buffer for absent readers).
    pub fn write_all(&self, mut bytes: &[u8], stale_after: Duration) -> io::Result<()> {
        let fd = self.master.as_raw_fd();
        let mut blocked_since: Option<Instant> = None;
        while !bytes.is_empty() {
            // SAFETY: `bytes` is valid for `bytes.len()` bytes.
            let n = unsafe { libc::write(fd, bytes.as_ptr().cast(), bytes.len()) };
            if n > 0 {
                bytes = &bytes[n as usize..];
                blocked_since = None;
                continue;
            }
            let err = io::Error::last_os_error();
            match err.kind() {
                io::ErrorKind::Interrupted => {}
                io::ErrorKind::WouldBlock => {
                    let since = *blocked_since.get_or_insert_with(Instant::now);
                    if since.elapsed() >= stale_after {
                        self.discard_unread();
                        blocked_since = None;
                    }
                    poll_one(fd, libc::POLLOUT, Duration::from_millis(10))?;
                }
                _ => return Err(err),
            }
        }
        Ok(())
    }

    /// Drops bytes sent to the host that no client has read.
    pub fn discard_unread(&self) {
        // SAFETY: tcflush on an owned descriptor.
        unsafe {
            libc::tcflush(self.slave.as_raw_fd(), libc::TCIFLUSH);
        }
    }
}
