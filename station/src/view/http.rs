//! The live view over HTTP, read-only, on std threads (one per connection):
//!
//! * `/`: one self-contained page (inline CSS and script, no external assets) that shows a
//!   tile per port, the shift's counts and the last records, updated by server-sent events and
//!   reconnecting by itself when the station restarts;
//! * `/events`: those events, one `data:` line of the state as JSON per change (and every
//!   second, for the elapsed times);
//! * `/api/state`: the state as JSON ([`Snapshot`](crate::Snapshot));
//! * `/metrics`: the Prometheus text format ([`metrics`](super::metrics)).

use std::io::{self, BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use crate::model::Hub;

use super::metrics;

/// The page.
pub const PAGE: &str = include_str!("page.html");

/// How long a request may take to arrive.
const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// The HTTP server, serving until dropped.
#[derive(Debug)]
pub struct Server {
    addr: SocketAddr,
    done: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    /// Listens on `addr` and serves `hub`'s views.
    pub fn start(addr: SocketAddr, hub: Arc<Hub>) -> io::Result<Server> {
        let listener = TcpListener::bind(addr)?;
        let addr = listener.local_addr()?;
        let done = Arc::new(AtomicBool::new(false));
        let quit = done.clone();
        let thread = thread::spawn(move || {
            for stream in listener.incoming() {
                if quit.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(stream) = stream else { continue };
                let (hub, quit) = (hub.clone(), quit.clone());
                thread::spawn(move || {
                    let _ = serve(stream, &hub, &quit);
                });
            }
        });
        Ok(Server {
            addr,
            done,
            thread: Some(thread),
        })
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for Server {
    /// Stops accepting (open event streams end within a second).
    fn drop(&mut self) {
        self.done.store(true, Ordering::SeqCst);
        // Wakes the accepting thread up.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Answers one connection's request.
fn serve(stream: TcpStream, hub: &Hub, done: &AtomicBool) -> io::Result<()> {
    stream.set_read_timeout(Some(READ_TIMEOUT))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request = String::new();
    reader.read_line(&mut request)?;
    // The headers say nothing this server needs; they are read and dropped.
    let mut header = String::new();
    while reader.read_line(&mut header)? > 2 {
        header.clear();
    }
    let mut out = stream;
    let mut parts = request.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let path = path.split('?').next().unwrap_or(path);
    if method != "GET" {
        return respond(
            &mut out,
            "405 Method Not Allowed",
            "text/plain",
            b"read-only\n",
        );
    }
    match path {
        "/" => respond(
            &mut out,
            "200 OK",
            "text/html; charset=utf-8",
            PAGE.as_bytes(),
        ),
        "/api/state" => {
            let json = serde_json::to_vec(&hub.snapshot()).unwrap_or_default();
            respond(&mut out, "200 OK", "application/json", &json)
        }
        "/metrics" => {
            let text = metrics::render(&hub.snapshot());
            respond(&mut out, "200 OK", metrics::CONTENT_TYPE, text.as_bytes())
        }
        "/events" => events(&mut out, hub, done),
        _ => respond(&mut out, "404 Not Found", "text/plain", b"not found\n"),
    }
}

/// A whole response.
fn respond(out: &mut TcpStream, status: &str, kind: &str, body: &[u8]) -> io::Result<()> {
    write!(
        out,
        "HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\n\
         Cache-Control: no-store\r\nConnection: close\r\n\r\n",
        body.len()
    )?;
    out.write_all(body)?;
    out.flush()
}

/// The event stream: the state at once, then at each change and every second, until the
/// client goes or the server stops.
fn events(out: &mut TcpStream, hub: &Hub, done: &AtomicBool) -> io::Result<()> {
    out.write_all(
        b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-store\r\n\
          Connection: keep-alive\r\n\r\nretry: 2000\n\n",
    )?;
    let mut seen;
    while !done.load(Ordering::SeqCst) {
        let snap = hub.snapshot();
        seen = snap.version;
        let json = serde_json::to_string(&snap).unwrap_or_default();
        out.write_all(format!("data: {json}\n\n").as_bytes())?;
        out.flush()?;
        hub.wait(seen, Duration::from_secs(1));
    }
    Ok(())
}
