//! Opening a serial port with classic termios, for systems whose tty layer lacks the `termios2`
//! ioctls (`TCGETS2`/`TCSETS2`) that serialport uses on Linux: notably user-mode emulators such
//! as qemu-user running the arm64 flasher on an amd64 host. Standard rates only; the caller
//! pins the baud rate so that no `termios2` call is needed later.

use std::ffi::CString;
use std::os::fd::FromRawFd;
use std::time::Duration;

use espflash::connection::Port;
use serialport::SerialPort;

/// Why the port could not be opened this way.
#[derive(Debug)]
pub enum OpenError {
    /// Another process holds the port's lock.
    Busy,
    /// The device is not a tty, or another system error (the caller reports its own).
    Failed,
}

/// Opens `path` raw at 115200 baud, 8N1, no flow control, exclusively (flock + TIOCEXCL).
pub fn open_classic(path: &str, timeout: Duration) -> Result<Port, OpenError> {
    let c_path = CString::new(path).map_err(|_| OpenError::Failed)?;
    // SAFETY: plain libc calls on a file descriptor this function owns until it is handed to
    // TTYPort, or closed on every error path.
    unsafe {
        let fd = libc::open(
            c_path.as_ptr(),
            libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
        );
        if fd < 0 {
            return Err(OpenError::Failed);
        }
        let fail = |e: OpenError| {
            libc::close(fd);
            Err(e)
        };
        if libc::flock(fd, libc::LOCK_EX | libc::LOCK_NB) != 0 {
            return fail(OpenError::Busy);
        }
        let mut t: libc::termios = std::mem::zeroed();
        if libc::tcgetattr(fd, &mut t) != 0 {
            return fail(OpenError::Failed);
        }
        libc::cfmakeraw(&mut t);
        t.c_cflag |= libc::CLOCAL | libc::CREAD;
        t.c_cflag &= !libc::CRTSCTS;
        t.c_cc[libc::VMIN] = 0;
        t.c_cc[libc::VTIME] = 0;
        // The speed bits directly: glibc's cfsetspeed is a versioned symbol that a static link
        // cannot resolve.
        t.c_cflag = (t.c_cflag & !libc::CBAUD) | libc::B115200;
        t.c_ispeed = libc::B115200;
        t.c_ospeed = libc::B115200;
        if libc::tcsetattr(fd, libc::TCSANOW, &t) != 0 {
            return fail(OpenError::Failed);
        }
        let mut port = Port::from_raw_fd(fd);
        port.set_timeout(timeout).map_err(|_| OpenError::Failed)?;
        Ok(port)
    }
}
