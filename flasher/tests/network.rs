//! Network ports end to end with real peers: the simulated board behind esptool's
//! `esp_rfc2217_server` (which reaches the board's pty through a socat TCP bridge), flashed with
//! `--port rfc2217://…` including the baud change and both resets; the same board through the
//! socat bridge alone with `--port socket://…`. The flash must equal the plan. Bad input: an
//! unreachable host, a server that does not speak RFC 2217, a bad URL, a connection that drops
//! midway: one-line errors with the documented exit codes.

mod common;

use std::fs;
use std::io::{BufRead, BufReader, Read};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{flasher, generated_build, stderr, write_bundle};
use esp_sim::protocol::Opcode;
use esp_sim::{BoardConfig, SimBoard};
use firmware::chip::Chip;
use serde_json::Value;
use testkit::idf_build::BuildSpec;
use testkit::tools;

/// A child process whose stdout and stderr are collected; killed when dropped.
struct Peer {
    child: Child,
    log: Arc<Mutex<String>>,
}

impl Peer {
    /// Starts `cmd` and waits until its output contains `ready`.
    fn start(cmd: &mut Command, ready: &str) -> Peer {
        let mut child = cmd
            .env("PYTHONUNBUFFERED", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
        let log = Arc::new(Mutex::new(String::new()));
        let out: Box<dyn Read + Send> = Box::new(child.stdout.take().unwrap());
        let err: Box<dyn Read + Send> = Box::new(child.stderr.take().unwrap());
        for stream in [out, err] {
            let log = log.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines() {
                    let Ok(line) = line else { break };
                    let mut log = log.lock().unwrap();
                    log.push_str(&line);
                    log.push('\n');
                }
            });
        }
        let peer = Peer { child, log };
        let deadline = Instant::now() + Duration::from_secs(20);
        while !peer.log().contains(ready) {
            assert!(
                Instant::now() < deadline,
                "{cmd:?} did not say '{ready}':\n{}",
                peer.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        peer
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A TCP port nobody listens on right now.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// socat serving the pty `path` on a local TCP port (one connection): the raw TCP bridge.
fn tcp_bridge(path: &Path) -> (Peer, u16) {
    let port = free_port();
    let peer = Peer::start(
        Command::new(tools::require("socat")).args([
            "-d".to_string(),
            "-d".to_string(),
            format!("TCP-LISTEN:{port},reuseaddr,bind=127.0.0.1"),
            format!("FILE:{},raw,echo=0", path.display()),
        ]),
        "listening on",
    );
    (peer, port)
}

/// esptool's RFC 2217 server in front of `socket://127.0.0.1:<tcp>`, verbose.
fn rfc2217_server(tcp: u16) -> (Peer, u16) {
    let port = free_port();
    let peer = Peer::start(
        Command::new(tools::require("esp_rfc2217_server"))
            .args(["-v", "-p", &port.to_string()])
            .arg(format!("socket://127.0.0.1:{tcp}")),
        "Waiting for connection",
    );
    (peer, port)
}

/// An esp32c3 bundle in `dir/fw` and the merged image of its plan.
fn bundle(dir: &Path) -> (PathBuf, Vec<u8>) {
    let build = generated_build(&dir.join("build"), &BuildSpec::new(Chip::Esp32c3));
    let fw = dir.join("fw");
    write_bundle(&fw, &[("esp32c3", &build)], None, true);
    let merged = dir.join("merged.bin");
    let out = flasher(&[
        "--chip",
        "esp32c3",
        "--flash_size",
        "4MB",
        "--firmware-dir",
        fw.to_str().unwrap(),
        "--merge-out",
        merged.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    (fw, fs::read(merged).unwrap())
}

fn run(fw: &Path, port: &str, extra: &[&str]) -> Output {
    let mut args = vec![
        "--port",
        port,
        "--chip",
        "esp32c3",
        "--flash_size",
        "4MB",
        "--firmware-dir",
        fw.to_str().unwrap(),
    ];
    args.extend(extra);
    flasher(&args)
}

fn report(path: &Path) -> Value {
    serde_json::from_slice(&fs::read(path).unwrap()).unwrap()
}

/// The board that answered in a report, whatever its layout (one board or several).
fn reported_device(r: &Value) -> Value {
    r.get("boards")
        .and_then(|b| b.get(0))
        .unwrap_or(r)
        .get("device")
        .cloned()
        .unwrap_or(Value::Null)
}

#[test]
fn rfc2217_carries_the_resets_and_the_baud_change() {
    let tmp = tempfile::tempdir().unwrap();
    let (fw, expected) = bundle(tmp.path());
    let board = SimBoard::start(BoardConfig::new(esp_sim::Chip::Esp32c3)).unwrap();
    let (_socat, tcp) = tcp_bridge(board.path());
    let (server, port) = rfc2217_server(tcp);
    let url = format!("rfc2217://127.0.0.1:{port}");
    let report_path = tmp.path().join("report.json");
    // Default reset before and after, and the default 921600 baud.
    let out = run(&fw, &url, &["--report", report_path.to_str().unwrap()]);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}\nserver:\n{}", server.log());
    assert!(board.flash() == expected, "the flash differs from the plan");
    assert_eq!(reported_device(&report(&report_path))["baud"], 921_600);
    assert!(err.contains("writing at 921600 baud"), "{err}");
    let changes: Vec<_> = board
        .commands()
        .into_iter()
        .filter(|c| c.command == Some(Opcode::ChangeBaudrate))
        .collect();
    assert_eq!(changes.len(), 1, "{changes:?}");
    // The server saw the SET-BAUDRATE and the DTR/RTS of both resets.
    std::thread::sleep(Duration::from_millis(300));
    let log = server.log();
    for line in [
        "set baud rate: 115200",
        "set baud rate: 921600",
        "Activating reset in thread",
        "Activating hard reset in thread",
    ] {
        assert!(
            log.contains(line),
            "'{line}' missing in the server log:\n{log}"
        );
    }
    drop(server);
    assert!(board.stop() == expected);
}

#[test]
fn socket_ports_go_through_a_plain_tcp_bridge() {
    let tmp = tempfile::tempdir().unwrap();
    let (fw, expected) = bundle(tmp.path());
    let board = SimBoard::start(BoardConfig::new(esp_sim::Chip::Esp32c3)).unwrap();
    let (_socat, tcp) = tcp_bridge(board.path());
    let url = format!("socket://127.0.0.1:{tcp}");
    let out = run(&fw, &url, &["--after", "no-reset"]);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("carries no DTR/RTS: the board must be in download mode"),
        "{err}"
    );
    // No baud change through a raw bridge.
    assert!(err.contains("writing at 115200 baud"), "{err}");
    assert!(board.stop() == expected, "the flash differs from the plan");
}

/// The run failed with `code`, and its only error line (the last line) has every word.
fn assert_failed(out: &Output, code: i32, words: &[&str], case: &str) {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(code), "{case}: {err}");
    let errors: Vec<&str> = err.lines().filter(|l| l.starts_with("error: ")).collect();
    assert_eq!(errors.len(), 1, "{case}: {err}");
    assert_eq!(err.lines().last(), Some(errors[0]), "{case}: {err}");
    for word in words {
        assert!(
            errors[0].contains(word),
            "{case}: '{word}' missing in: {err}"
        );
    }
}

#[test]
fn network_failures_are_one_line_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let (fw, _) = bundle(tmp.path());

    let port = free_port();
    let url = format!("rfc2217://127.0.0.1:{port}");
    let out = run(&fw, &url, &[]);
    assert_failed(
        &out,
        4,
        &[
            &format!("cannot reach {url}"),
            "refused",
            "esp_rfc2217_server",
        ],
        "unreachable",
    );
    assert_eq!(stderr(&out).lines().count(), 1, "{}", stderr(&out));

    // A server that accepts and never negotiates.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("rfc2217://{}", silent.local_addr().unwrap());
    let out = run(&fw, &url, &[]);
    assert_failed(
        &out,
        4,
        &["does not speak RFC 2217", "socket://"],
        "not rfc2217",
    );
    drop(silent);

    for bad in [
        "rfc2217://127.0.0.1",
        "telnet://127.0.0.1:23",
        "socket://h:1?x",
    ] {
        let out = run(&fw, bad, &[]);
        assert_failed(&out, 2, &["bad --port"], bad);
    }
}

#[test]
fn a_connection_dropped_midway_exits_4() {
    let tmp = tempfile::tempdir().unwrap();
    let (fw, _) = bundle(tmp.path());
    // The board pulls its cable in the middle of the app's data; socat then closes the TCP
    // connection, as a server whose board went away would.
    let board = SimBoard::start(
        BoardConfig::new(esp_sim::Chip::Esp32c3).faults("disconnect=40000".parse().unwrap()),
    )
    .unwrap();
    let (_socat, tcp) = tcp_bridge(board.path());
    let url = format!("socket://127.0.0.1:{tcp}");
    let out = run(&fw, &url, &["--after", "no-reset"]);
    let err = stderr(&out);
    assert!(
        err.contains("writing app"),
        "the drop came before the write: {err}"
    );
    assert_failed(
        &out,
        4,
        &[
            &format!("the connection to {url} was lost"),
            "closed the connection",
        ],
        "dropped",
    );
    assert!(board.is_disconnected());
}
