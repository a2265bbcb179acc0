//! Boards behind a network serial server: `rfc2217://HOST:PORT` (esptool's
//! `esp_rfc2217_server`, ser2net in telnet mode) and `socket://HOST:PORT` (a raw TCP bridge).
//!
//! espflash talks to a tty, so the [`Bridge`] makes one: a pseudo-terminal whose master side
//! the bridge pumps to and from the TCP stream. With RFC 2217 it also watches the line rate
//! espflash sets on the pty (`TCGETS2` on the master reads the slave's settings) and sends
//! SET-BAUDRATE before the first byte at the new rate, and it sends DTR/RTS as SET-CONTROL
//! commands ([`Bridge::pulse`]), since modem-line ioctls on a pty fail with `ENOTTY`.

use std::ffi::CStr;
use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::error::PortError;

use super::rfc2217::{self, Line, Telnet};
use super::spec::{NetUrl, Scheme};

/// How long to wait for the TCP connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long an RFC 2217 server may take to agree to the Com Port option.
const NEGOTIATION_TIMEOUT: Duration = Duration::from_secs(3);
/// The rate the ROM loader starts at.
const INITIAL_BAUD: u32 = 115_200;

/// One step of a modem-line sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Set a line.
    Set(Line, bool),
    /// Wait.
    Wait(Duration),
}

/// What the bridge shares with its pump thread.
#[derive(Debug)]
struct Shared {
    url: NetUrl,
    writer: Mutex<TcpStream>,
    lost: Mutex<Option<String>>,
    stop: AtomicBool,
}

impl Shared {
    fn send(&self, bytes: &[u8]) -> io::Result<()> {
        let mut w = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        w.write_all(bytes)
    }

    fn lose(&self, reason: String) {
        let mut lost = self.lost.lock().unwrap_or_else(|e| e.into_inner());
        lost.get_or_insert(reason);
    }
}

/// A network port made into a local pseudo-terminal. Dropping it closes the connection.
#[derive(Debug)]
pub struct Bridge {
    shared: Arc<Shared>,
    path: String,
    thread: Option<JoinHandle<()>>,
}

fn check(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// A pty pair: the master (non-blocking), a descriptor of the slave kept open so that the
/// master never reads `EIO` between clients, and the slave's path.
fn open_pty() -> io::Result<(OwnedFd, OwnedFd, String)> {
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
        let path = CStr::from_ptr(name.as_ptr()).to_string_lossy().into_owned();
        let flags = check(libc::fcntl(fd, libc::F_GETFL))?;
        check(libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK))?;
        let c_path = std::ffi::CString::new(path.clone())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let slave = OwnedFd::from_raw_fd(check(libc::open(
            c_path.as_ptr(),
            libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC | libc::O_NONBLOCK,
        ))?);
        let mut tio: libc::termios = std::mem::zeroed();
        check(libc::tcgetattr(slave.as_raw_fd(), &mut tio))?;
        libc::cfmakeraw(&mut tio);
        // Speed bits set directly: glibc's cfsetspeed is a versioned symbol that a static
        // link cannot resolve.
        tio.c_cflag = (tio.c_cflag & !libc::CBAUD) | libc::B115200;
        tio.c_ispeed = libc::B115200;
        tio.c_ospeed = libc::B115200;
        check(libc::tcsetattr(slave.as_raw_fd(), libc::TCSANOW, &tio))?;
        Ok((master, slave, path))
    }
}

/// The rate the pty's user set, read on the master (`TCGETS2`).
fn pty_baud(master: RawFd) -> Option<u32> {
    const RATES: [(libc::speed_t, u32); 12] = [
        (libc::B9600, 9600),
        (libc::B19200, 19200),
        (libc::B38400, 38400),
        (libc::B57600, 57600),
        (libc::B115200, 115_200),
        (libc::B230400, 230_400),
        (libc::B460800, 460_800),
        (libc::B921600, 921_600),
        (libc::B1000000, 1_000_000),
        (libc::B1500000, 1_500_000),
        (libc::B2000000, 2_000_000),
        (libc::B3000000, 3_000_000),
    ];
    // SAFETY: TCGETS2 fills a termios2 of the right size.
    let tio = unsafe {
        let mut tio: libc::termios2 = std::mem::zeroed();
        check(libc::ioctl(master, libc::TCGETS2, &mut tio)).ok()?;
        tio
    };
    let cbaud = tio.c_cflag & libc::CBAUD;
    if cbaud == libc::BOTHER {
        return (tio.c_ospeed > 0).then_some(tio.c_ospeed);
    }
    RATES.iter().find(|(b, _)| *b == cbaud).map(|(_, r)| *r)
}

fn poll(fds: &mut [libc::pollfd], timeout_ms: libc::c_int) -> io::Result<()> {
    // SAFETY: `fds` is a valid slice of pollfd for the duration of the call.
    let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout_ms) };
    if n < 0 {
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
    Ok(())
}

fn connect_tcp(url: &NetUrl) -> Result<TcpStream, PortError> {
    let unreachable = |reason: String| PortError::Unreachable {
        url: url.to_string(),
        reason,
    };
    let addrs: Vec<_> = (url.host.as_str(), url.port)
        .to_socket_addrs()
        .map_err(|e| unreachable(format!("cannot resolve {}: {e}", url.host)))?
        .collect();
    let mut last = format!("no address for {}", url.host);
    for addr in addrs {
        match TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT) {
            Ok(s) => {
                let _ = s.set_nodelay(true);
                return Ok(s);
            }
            Err(e) => last = e.to_string().to_lowercase(),
        }
    }
    Err(unreachable(last))
}

/// Negotiates RFC 2217 on `stream`; returns the parser and serial data that came early.
fn negotiate(url: &NetUrl, stream: &mut TcpStream) -> Result<(Telnet, Vec<u8>), PortError> {
    let io_err = |e: io::Error| PortError::Unreachable {
        url: url.to_string(),
        reason: e.to_string().to_lowercase(),
    };
    let (mut telnet, hello) = Telnet::new();
    stream.write_all(&hello).map_err(io_err)?;
    let deadline = Instant::now() + NEGOTIATION_TIMEOUT;
    let (mut data, mut reply) = (Vec::new(), Vec::new());
    let mut buf = [0u8; 1024];
    while !telnet.com_port_active() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(PortError::NotRfc2217 {
                url: url.to_string(),
            });
        }
        stream.set_read_timeout(Some(left)).map_err(io_err)?;
        match stream.read(&mut buf) {
            Ok(0) => {
                return Err(PortError::Dropped {
                    url: url.to_string(),
                    reason: "the server closed the connection during the option negotiation".into(),
                });
            }
            Ok(n) => {
                reply.clear();
                telnet.feed(&buf[..n], &mut data, &mut reply);
                stream.write_all(&reply).map_err(io_err)?;
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) => {}
            Err(e) => return Err(io_err(e)),
        }
    }
    stream
        .write_all(&rfc2217::line_settings(INITIAL_BAUD))
        .map_err(io_err)?;
    stream.set_read_timeout(None).map_err(io_err)?;
    Ok((telnet, data))
}

impl Bridge {
    /// Connects to `url` (and negotiates RFC 2217) and starts pumping through a new pty.
    pub fn connect(url: &NetUrl) -> Result<Bridge, PortError> {
        let mut stream = connect_tcp(url)?;
        let (telnet, early) = match url.scheme {
            Scheme::Rfc2217 => {
                let (t, early) = negotiate(url, &mut stream)?;
                (Some(t), early)
            }
            Scheme::Socket => (None, Vec::new()),
        };
        let pty_error = |e: io::Error| PortError::Pty(e.to_string());
        let (master, slave, path) = open_pty().map_err(pty_error)?;
        let reader = stream.try_clone().map_err(pty_error)?;
        reader.set_nonblocking(true).map_err(pty_error)?;
        let shared = Arc::new(Shared {
            url: url.clone(),
            writer: Mutex::new(stream),
            lost: Mutex::new(None),
            stop: AtomicBool::new(false),
        });
        let pump = Pump {
            shared: shared.clone(),
            master,
            _slave: slave,
            reader,
            telnet,
            baud: INITIAL_BAUD,
            pending: early,
        };
        let thread = std::thread::Builder::new()
            .name("net-bridge".into())
            .spawn(move || pump.run())
            .map_err(pty_error)?;
        Ok(Bridge {
            shared,
            path,
            thread: Some(thread),
        })
    }

    /// The pty that stands for the network port.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The URL.
    pub fn url(&self) -> &NetUrl {
        &self.shared.url
    }

    /// Why the connection ended, once it has.
    pub fn lost(&self) -> Option<String> {
        self.shared
            .lost
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Drives DTR and RTS through the server (RFC 2217 SET-CONTROL), step by step.
    pub fn pulse(&self, steps: &[Step]) -> Result<(), PortError> {
        for step in steps {
            match *step {
                Step::Set(line, on) => {
                    if let Err(e) = self.shared.send(&rfc2217::set_line(line, on)) {
                        let reason = format!("sending DTR/RTS failed: {e}");
                        self.shared.lose(reason.clone());
                        return Err(PortError::Dropped {
                            url: self.shared.url.to_string(),
                            reason,
                        });
                    }
                }
                Step::Wait(d) => std::thread::sleep(d),
            }
        }
        Ok(())
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        if let Ok(w) = self.shared.writer.lock() {
            let _ = w.shutdown(std::net::Shutdown::Both);
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The pump thread's state. Dropping it closes the master, which hangs up the pty.
struct Pump {
    shared: Arc<Shared>,
    master: OwnedFd,
    _slave: OwnedFd,
    reader: TcpStream,
    telnet: Option<Telnet>,
    baud: u32,
    pending: Vec<u8>,
}

impl Pump {
    fn run(mut self) {
        if let Err(reason) = self.pump() {
            self.shared.lose(reason);
        }
    }

    fn pump(&mut self) -> Result<(), String> {
        let mut buf = vec![0u8; 16 * 1024];
        let mut out = Vec::with_capacity(32 * 1024);
        let mut reply = Vec::new();
        while !self.shared.stop.load(Ordering::SeqCst) {
            if !self.pending.is_empty() {
                let pending = std::mem::take(&mut self.pending);
                self.to_pty(&pending)?;
            }
            let mut fds = [
                libc::pollfd {
                    fd: self.master.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                },
                libc::pollfd {
                    fd: self.reader.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                },
            ];
            poll(&mut fds, 20).map_err(|e| format!("poll failed: {e}"))?;
            if fds[0].revents & libc::POLLIN != 0 {
                self.pty_to_server(&mut buf, &mut out)?;
            }
            if fds[1].revents & (libc::POLLIN | libc::POLLHUP | libc::POLLERR) != 0 {
                self.server_to_pty(&mut buf, &mut out, &mut reply)?;
            }
        }
        Ok(())
    }

    /// Sends what the pty's user wrote to the server: RFC 2217-escaped, after SET-BAUDRATE
    /// when the user changed the rate.
    fn pty_to_server(&mut self, buf: &mut [u8], out: &mut Vec<u8>) -> Result<(), String> {
        let master = self.master.as_raw_fd();
        // SAFETY: reading into a buffer we own, of its length.
        let n = unsafe { libc::read(master, buf.as_mut_ptr().cast(), buf.len()) };
        if n <= 0 {
            return Ok(());
        }
        let data = &buf[..n as usize];
        out.clear();
        if self.telnet.is_some() {
            // The rate espflash set is in place before it writes at that rate.
            if let Some(baud) = pty_baud(master)
                && baud != self.baud
            {
                self.baud = baud;
                out.extend(rfc2217::set_baud(baud));
            }
            rfc2217::escape(data, out);
        } else {
            out.extend_from_slice(data);
        }
        self.shared.send(out).map_err(|e| match e.kind() {
            // Which side notices a closed connection first is a race: name it the same
            // either way.
            std::io::ErrorKind::BrokenPipe | std::io::ErrorKind::ConnectionReset => {
                "the server closed the connection".to_string()
            }
            _ => format!("sending to the server failed: {e}"),
        })
    }

    /// Passes what the server sent to the pty: with RFC 2217, the serial data only, the
    /// server's options answered.
    fn server_to_pty(
        &mut self,
        buf: &mut [u8],
        out: &mut Vec<u8>,
        reply: &mut Vec<u8>,
    ) -> Result<(), String> {
        match self.reader.read(buf) {
            Ok(0) => Err("the server closed the connection".into()),
            Ok(n) => match &mut self.telnet {
                Some(telnet) => {
                    out.clear();
                    reply.clear();
                    telnet.feed(&buf[..n], out, reply);
                    if !reply.is_empty() {
                        self.shared
                            .send(reply)
                            .map_err(|e| format!("answering the server failed: {e}"))?;
                    }
                    self.to_pty(out)
                }
                None => self.to_pty(&buf[..n]),
            },
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(()),
            Err(_) if self.shared.stop.load(Ordering::SeqCst) => Ok(()),
            Err(e) => Err(format!("the connection failed: {e}")),
        }
    }

    /// Writes to the pty; bytes nobody reads for a second (no client) are dropped.
    fn to_pty(&self, mut data: &[u8]) -> Result<(), String> {
        let master = self.master.as_raw_fd();
        let deadline = Instant::now() + Duration::from_secs(1);
        while !data.is_empty() {
            // SAFETY: writing from a slice we borrow, of its length.
            let n = unsafe { libc::write(master, data.as_ptr().cast(), data.len()) };
            if n > 0 {
                data = &data[n as usize..];
                continue;
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::WouldBlock && e.kind() != io::ErrorKind::Interrupted {
                return Err(format!("writing to the pty failed: {e}"));
            }
            if Instant::now() > deadline || self.shared.stop.load(Ordering::SeqCst) {
                return Ok(());
            }
            let mut fds = [libc::pollfd {
                fd: master,
                events: libc::POLLOUT,
                revents: 0,
            }];
            poll(&mut fds, 10).map_err(|e| format!("poll failed: {e}"))?;
        }
        Ok(())
    }
}
