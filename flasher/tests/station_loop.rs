//! `flasher --station`: the real binary runs as a child process watching `DIR/ttyUSB*`, and
//! simulated boards (each with its own MAC) appear and disappear as links in DIR to their
//! pseudo-terminals. Every board written is compared, byte for byte, with the plan for its
//! row (`--merge-out --nvs-row`). The live view is read by a real headless Chromium (the
//! page), Prometheus' own parser (`/metrics`) and serde (`/api/state`).

mod common;

use std::fs;
use std::io::{BufRead, Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::symlink;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use common::rows::{board, mac};
use common::{flasher, generated_build, stderr, write_bundle};
use esp_sim::SimBoard;
use firmware::chip::Chip;
use serde_json::Value;
use testkit::idf_build::BuildSpec;

const CONFIG: &str = "device,namespace,\nserial,data,string\nunit,data,u32\n";

/// A station under test: its bundle, rows, log and port directory, and the running flasher.
pub struct Shift {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    child: Option<Child>,
}

impl Shift {
    /// A bundle and `rows` rows in a new directory; the station is not started yet.
    pub fn new(rows: u32) -> Shift {
        Shift::with_app(rows, 96 * 1024)
    }

    /// As [`Shift::new`], with an app of `app_len` bytes.
    pub fn with_app(rows: u32, app_len: usize) -> Shift {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        let mut spec = BuildSpec::new(Chip::Esp32s3);
        spec.app_len = app_len;
        let build = generated_build(&dir.join("build"), &spec);
        write_bundle(&dir.join("fw"), &[("esp32s3", &build)], None, true);
        fs::write(dir.join("config.csv"), CONFIG).unwrap();
        let mut values = String::from("id,serial,unit\n");
        for n in 1..=rows {
            values.push_str(&format!("SN-{n:04},AB{n:06},{}\n", 7000 + n));
        }
        fs::write(dir.join("values.csv"), values).unwrap();
        fs::create_dir(dir.join("dev")).unwrap();
        Shift {
            _tmp: tmp,
            dir,
            child: None,
        }
    }

    fn path(&self, name: &str) -> String {
        self.dir.join(name).to_str().unwrap().to_string()
    }

    /// The one-shot options every run shares: the bundle and the rows.
    fn common_args(&self) -> Vec<String> {
        [
            "--chip",
            "esp32s3",
            "--flash_size",
            "4MB",
            "--before",
            "no-reset",
            "--after",
            "no-reset",
        ]
        .map(String::from)
        .into_iter()
        .chain([
            "--firmware-dir".into(),
            self.path("fw"),
            "--nvs-config".into(),
            self.path("config.csv"),
            "--nvs-values".into(),
            self.path("values.csv"),
        ])
        .collect()
    }

    /// Starts `flasher --station` on `DIR/dev/ttyUSB*` with `extra` options.
    pub fn start(&mut self, extra: &[&str]) {
        let mut args = self.common_args();
        args.extend(["--station".into(), "--port".into()]);
        args.push(self.path("dev/ttyUSB*"));
        args.extend(["--report-append".into(), self.path("shift.jsonl")]);
        args.extend(["--report".into(), self.path("report.json")]);
        args.extend(extra.iter().map(|s| s.to_string()));
        let err = fs::File::create(self.dir.join("stderr.txt")).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_flasher"))
            .args(&args)
            .stdout(Stdio::null())
            .stderr(err)
            .spawn()
            .unwrap();
        self.child = Some(child);
    }

    /// Plugs `board` in as `DIR/dev/ttyUSB<n>` (or puts it under the jig there).
    pub fn plug(&self, n: u8, board: &SimBoard) {
        let link = self.dir.join(format!("dev/ttyUSB{n}"));
        let tmp = self.dir.join(format!("dev/.plug{n}"));
        let _ = fs::remove_file(&tmp);
        symlink(board.path(), &tmp).unwrap();
        fs::rename(&tmp, link).unwrap();
    }

    /// Unplugs `DIR/dev/ttyUSB<n>`.
    pub fn unplug(&self, n: u8) {
        fs::remove_file(self.dir.join(format!("dev/ttyUSB{n}"))).unwrap();
    }

    /// The station's stderr so far.
    pub fn stderr(&self) -> String {
        fs::read_to_string(self.dir.join("stderr.txt")).unwrap_or_default()
    }

    /// The records in the shift's log.
    pub fn records(&self) -> Vec<Value> {
        fs::read_to_string(self.dir.join("shift.jsonl"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// Waits until the log holds `n` records.
    pub fn wait_records(&self, n: usize) -> Vec<Value> {
        self.wait_for(&format!("{n} records"), || self.records().len() >= n);
        self.records()
    }

    /// Waits until `ready`, failing with the station's stderr after a minute.
    pub fn wait_for(&self, what: &str, ready: impl Fn() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !ready() {
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; stderr:\n{}",
                self.stderr()
            );
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// Sends the station `signal`.
    pub fn signal(&self, signal: libc::c_int) {
        let pid = self.child.as_ref().unwrap().id() as libc::pid_t;
        // SAFETY: kill has no memory effects; the pid is our child's.
        assert_eq!(unsafe { libc::kill(pid, signal) }, 0);
    }

    /// Waits for the station to exit and returns its exit code.
    pub fn wait_exit(&mut self) -> i32 {
        let child = self.child.as_mut().unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                self.child = None;
                return status.code().unwrap_or(-1);
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("the station did not stop; stderr:\n{}", self.stderr());
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGTERM, then the exit code.
    pub fn stop(&mut self) -> i32 {
        self.signal(libc::SIGTERM);
        self.wait_exit()
    }

    /// The whole flash the plan gives the board of row `id`.
    pub fn plan_for(&self, id: &str) -> Vec<u8> {
        let out_path = self.dir.join(format!("plan-{id}.bin"));
        let mut args = self.common_args();
        args.extend(["--nvs-row".into(), id.into()]);
        args.extend(["--merge-out".into(), out_path.to_str().unwrap().into()]);
        let out = flasher(&args.iter().map(String::as_str).collect::<Vec<_>>());
        assert!(out.status.success(), "{}", stderr(&out));
        fs::read(out_path).unwrap()
    }

    /// Checks that `board` holds the plan of the row its last passing record names.
    pub fn assert_written(&self, board: &SimBoard, mac: &str) {
        let records = self.records();
        let record = records
            .iter()
            .rev()
            .find(|r| r["device"]["mac"] == mac && r["exit_code"] == 0)
            .unwrap_or_else(|| panic!("no passing record of {mac}: {records:?}"));
        let row = record["nvs_row"].as_str().unwrap();
        assert!(
            board.flash() == self.plan_for(row),
            "the flash of {mac} differs from the plan for row {row}"
        );
    }
}

impl Drop for Shift {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn ok(record: &Value) -> bool {
    record["outcome"] == "ok" && record["exit_code"] == 0
}

#[test]
fn one_board_then_three_at_once_each_written_once_with_its_own_row() {
    let mut shift = Shift::new(6);
    shift.start(&[]);
    let first = board(0, "", false);
    shift.plug(0, &first);
    let records = shift.wait_records(1);
    assert!(ok(&records[0]), "{}", records[0]);
    shift.assert_written(&first, &mac(0));

    let three: Vec<SimBoard> = (1..=3).map(|n| board(n, "", false)).collect();
    for (n, b) in three.iter().enumerate() {
        shift.plug(n as u8 + 1, b);
    }
    let records = shift.wait_records(4);
    // Still plugged in: nothing is written twice.
    thread::sleep(Duration::from_secs(2));
    assert_eq!(shift.records().len(), 4, "{}", shift.stderr());
    let mut rows: Vec<&str> = records
        .iter()
        .map(|r| r["nvs_row"].as_str().unwrap())
        .collect();
    rows.sort();
    rows.dedup();
    assert_eq!(rows.len(), 4, "each board its own row: {records:?}");
    for (n, b) in three.iter().enumerate() {
        shift.assert_written(b, &mac(n as u8 + 1));
    }
    assert_eq!(shift.stop(), 0, "{}", shift.stderr());
    let err = shift.stderr();
    assert!(err.contains("PASS (esp32s3 "), "{err}");
    assert!(err.contains("nvs: 4 rows done, 0 failed"), "{err}");
    let report: Value =
        serde_json::from_slice(&fs::read(shift.dir.join("report.json")).unwrap()).unwrap();
    assert_eq!(report["boards"].as_array().unwrap().len(), 4);
}

#[test]
fn a_failed_board_reseated_is_written_and_rows_running_out_fail_the_board() {
    let mut shift = Shift::new(2);
    shift.start(&[]);
    // The cable is pulled midway: the board fails.
    let pulled = board(1, "disconnect=20000", false);
    shift.plug(0, &pulled);
    let records = shift.wait_records(1);
    assert_eq!(records[0]["exit_code"], 6, "{}", records[0]);
    // Re-seated (the same board, its line back): written without any command, with the row
    // its MAC already holds.
    shift.unplug(0);
    thread::sleep(Duration::from_millis(800));
    let reseated = board(1, "", false);
    shift.plug(0, &reseated);
    let records = shift.wait_records(2);
    assert!(ok(&records[1]), "{}", records[1]);
    assert_eq!(records[1]["nvs_row"], records[0]["nvs_row"]);
    shift.assert_written(&reseated, &mac(1));
    // The second board takes the second row; a third finds none and is left unwritten.
    let second = board(2, "", false);
    shift.plug(1, &second);
    let records = shift.wait_records(3);
    assert!(ok(&records[2]), "{}", records[2]);
    assert_ne!(records[2]["nvs_row"], records[0]["nvs_row"]);
    let late = board(3, "", false);
    shift.plug(2, &late);
    let records = shift.wait_records(4);
    assert_eq!(records[3]["exit_code"], 10, "{}", records[3]);
    assert!(
        late.flash().iter().all(|&b| b == 0xFF),
        "a board without a row was written"
    );
    // The shift: board 1 passed at last, board 2 passed, board 3 had no row.
    assert_eq!(shift.stop(), 10, "{}", shift.stderr());
    let err = shift.stderr();
    assert!(err.contains("FAIL: no row of"), "{err}");
}

#[test]
fn sigterm_mid_write_lets_the_board_finish_and_starts_no_other() {
    let mut shift = Shift::new(4);
    shift.start(&[]);
    let slow = board(1, "", true);
    shift.plug(0, &slow);
    shift.wait_for("the write", || shift.stderr().contains("] writing"));
    shift.signal(libc::SIGTERM);
    shift.wait_for("the stop", || shift.stderr().contains("station: stopping"));
    let other = board(2, "", false);
    shift.plug(1, &other);
    assert_eq!(shift.wait_exit(), 0, "{}", shift.stderr());
    let records = shift.records();
    assert_eq!(records.len(), 1, "{records:?}");
    assert!(ok(&records[0]), "{}", records[0]);
    shift.assert_written(&slow, &mac(1));
    assert!(
        other.commands().is_empty(),
        "a board was started after the stop"
    );
}

#[test]
fn a_second_sigterm_stops_at_once_and_leaves_the_board_in_doubt() {
    let mut shift = Shift::new(4);
    shift.start(&[]);
    let slow = board(1, "", true);
    shift.plug(0, &slow);
    shift.wait_for("the write", || shift.stderr().contains("] writing"));
    shift.signal(libc::SIGTERM);
    shift.wait_for("the stop", || shift.stderr().contains("station: stopping"));
    shift.signal(libc::SIGTERM);
    assert_eq!(shift.wait_exit(), 12, "{}", shift.stderr());
    assert!(shift.records().is_empty());
    let err = shift.stderr();
    assert!(err.contains("the board is in doubt"), "{err}");
    // The row's station is gone with its claim open: the line database says it is in doubt.
    let db = linedb::Store::open(shift.dir.join("values.csv.db").to_str().unwrap()).unwrap();
    let rows = db.summary().unwrap();
    assert_eq!(rows.in_doubt, ["SN-0001"], "{rows:?}");
    assert_eq!(rows.done, 0, "{rows:?}");
}

#[test]
fn a_jig_takes_the_next_board_by_its_mac_on_the_same_port() {
    let mut shift = Shift::new(4);
    shift.start(&["--jig", "200ms"]);
    let first = board(1, "", false);
    shift.plug(0, &first);
    shift.wait_records(1);
    // The same board stays under the jig: not written again.
    thread::sleep(Duration::from_secs(2));
    assert_eq!(shift.records().len(), 1, "{}", shift.stderr());
    // The next board under the same port (the bridge stays).
    let second = board(2, "", false);
    shift.plug(0, &second);
    let records = shift.wait_records(2);
    assert!(ok(&records[1]), "{}", records[1]);
    assert_eq!(records[1]["port"], records[0]["port"]);
    shift.assert_written(&first, &mac(1));
    shift.assert_written(&second, &mac(2));
    assert_eq!(shift.stop(), 0, "{}", shift.stderr());
}

/// A board that comes back gets the row it had (issue 25's line database binds rows to MACs).
#[test]
fn a_replugged_done_board_gets_its_same_row() {
    let mut shift = Shift::new(4);
    shift.start(&[]);
    let b = board(1, "", false);
    shift.plug(0, &b);
    let first = shift.wait_records(1);
    shift.unplug(0);
    thread::sleep(Duration::from_millis(800));
    shift.plug(0, &b);
    let records = shift.wait_records(2);
    assert!(ok(&records[1]), "{}", records[1]);
    assert_eq!(records[1]["nvs_row"], first[0]["nvs_row"]);
    shift.assert_written(&b, &mac(1));
    assert_eq!(shift.stop(), 0, "{}", shift.stderr());
}

/// `program` on `$PATH` (or as `$VAR` says), or a failure saying which package installs it.
fn tool(program: &str, var: &str, package: &str) -> PathBuf {
    let on_path = || {
        std::env::split_paths(&std::env::var_os("PATH")?)
            .map(|dir| dir.join(program))
            .find(|p| p.is_file())
    };
    std::env::var_os(var)
        .map(PathBuf::from)
        .or_else(on_path)
        .unwrap_or_else(|| {
            panic!("{program} is missing: apt-get install {package} (scripts/setup-tests does)")
        })
}

/// One HTTP/1.1 exchange on `addr`: the status line's code and the body.
fn http(addr: &str, method: &str, path: &str, body: Option<&Value>) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).unwrap();
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut reader = std::io::BufReader::new(stream);
    let mut head = String::new();
    while !head.ends_with("\r\n\r\n") {
        let mut line = String::new();
        assert!(reader.read_line(&mut line).unwrap() > 0, "{head}");
        head.push_str(&line);
    }
    let code = head.split(' ').nth(1).unwrap().parse().unwrap();
    let lower = head.to_ascii_lowercase();
    let length = lower
        .split("\r\n")
        .find_map(|l| l.strip_prefix("content-length:"))
        .map(|n| n.trim().parse::<usize>().unwrap());
    let body = match length {
        // Servers may keep the connection open: read exactly the body.
        Some(n) => {
            let mut body = vec![0; n];
            reader.read_exact(&mut body).unwrap();
            String::from_utf8(body).unwrap()
        }
        None => {
            let mut body = String::new();
            reader.read_to_string(&mut body).unwrap();
            match lower.contains("transfer-encoding: chunked") {
                true => unchunk(&body),
                false => body,
            }
        }
    };
    (code, body)
}

/// A chunked body put back together.
fn unchunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let size = usize::from_str_radix(size.trim(), 16).unwrap();
        if size == 0 {
            break;
        }
        out.push_str(&rest[..size]);
        body = &rest[size + 2..];
    }
    out
}

/// The body of `GET path` on `addr`, which must answer 200.
fn get(addr: &str, path: &str) -> String {
    let (code, body) = http(addr, "GET", path, None);
    assert_eq!(code, 200, "{body}");
    body
}

/// Headless Chromium driven through Debian's chromedriver (WebDriver).
struct Browser {
    driver: Child,
    addr: String,
    session: String,
}

impl Browser {
    fn start() -> Browser {
        let driver_path = tool("chromedriver", "CHROMEDRIVER", "chromium-driver");
        let chromium = tool("chromium", "CHROMIUM", "chromium");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let driver = Command::new(driver_path)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let addr = format!("127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(&addr).is_err() {
            assert!(Instant::now() < deadline, "chromedriver does not answer");
            thread::sleep(Duration::from_millis(100));
        }
        let caps = serde_json::json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": ["--headless", "--no-sandbox", "--disable-gpu", "--window-size=1280,800"],
            },
        }}});
        let (code, body) = http(&addr, "POST", "/session", Some(&caps));
        assert_eq!(code, 200, "{body}");
        let reply: Value = serde_json::from_str(&body).unwrap();
        let session = reply["value"]["sessionId"].as_str().unwrap().to_string();
        Browser {
            driver,
            addr,
            session,
        }
    }

    fn command(&self, method: &str, what: &str, body: Option<Value>) -> Value {
        let path = format!("/session/{}/{what}", self.session);
        let (code, text) = http(&self.addr, method, &path, body.as_ref());
        assert_eq!(code, 200, "{what}: {text}");
        serde_json::from_str::<Value>(&text).unwrap()["value"].take()
    }

    fn open(&self, url: &str) {
        self.command("POST", "url", Some(serde_json::json!({ "url": url })));
    }

    /// What `script` returns in the page.
    fn eval(&self, script: &str) -> Value {
        let body = serde_json::json!({ "script": script, "args": [] });
        self.command("POST", "execute/sync", Some(body))
    }

    /// The page as a PNG.
    fn screenshot(&self) -> Vec<u8> {
        base64_decode(self.command("GET", "screenshot", None).as_str().unwrap())
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let path = format!("/session/{}", self.session);
        let _ = http(&self.addr, "DELETE", &path, None);
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// Standard base64 (WebDriver's screenshots) decoded.
fn base64_decode(text: &str) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0);
    for c in text
        .bytes()
        .filter(|c| *c != b'=' && !c.is_ascii_whitespace())
    {
        let v = ALPHABET.iter().position(|a| *a == c).unwrap() as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}

/// Where the station's view listens, from its first line.
fn view_addr(shift: &Shift) -> String {
    shift.wait_for("the view", || shift.stderr().contains("live view is at"));
    let err = shift.stderr();
    let at = err.split("live view is at http://").nth(1).unwrap();
    at.split('/').next().unwrap().to_string()
}

#[test]
fn the_page_in_chromium_shows_a_tile_go_from_writing_to_pass() {
    let mut shift = Shift::with_app(4, 1024 * 1024);
    shift.start(&["--listen", "127.0.0.1:0"]);
    let url = format!("http://{}/", view_addr(&shift));
    let browser = Browser::start();
    browser.open(&url);
    let b = board(1, "", true);
    shift.plug(0, &b);
    // The same page, never reloaded: its tile follows the board through the events.
    const TILE: &str = "const t = document.getElementById('tile-ttyUSB0'); \
                        return t ? [t.dataset.state, t.innerText] : null;";
    let mut states: Vec<String> = Vec::new();
    let mut last_text = String::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    while states.last().map(String::as_str) != Some("pass") {
        assert!(
            Instant::now() < deadline,
            "states seen: {states:?}; {}",
            shift.stderr()
        );
        if let Value::Array(tile) = browser.eval(TILE) {
            let state = tile[0].as_str().unwrap().to_string();
            last_text = tile[1].as_str().unwrap().to_string();
            if states.last() != Some(&state) {
                states.push(state);
            }
        }
        thread::sleep(Duration::from_millis(100));
    }
    let writing = states.iter().position(|s| s == "writing");
    assert!(
        writing.is_some(),
        "the tile never showed writing: {states:?}"
    );
    assert!(last_text.contains("PASS"), "{last_text}");
    assert!(
        last_text.contains(&mac(1)) && last_text.contains("row SN-0001"),
        "{last_text}"
    );
    let link = browser.eval("return document.getElementById('link').textContent;");
    assert_eq!(link, "live");
    let passed = browser.eval("return document.getElementById('passed').firstChild.nodeValue;");
    assert_eq!(passed, "1");
    // More boards: one passes, one loses its cable, one is still being written.
    let (quick, pulled, slow) = (
        board(2, "", false),
        board(3, "disconnect=20000", false),
        board(4, "", true),
    );
    shift.plug(1, &quick);
    shift.plug(2, &pulled);
    shift.plug(3, &slow);
    const STATES: &str =
        "return [...document.querySelectorAll('.tile')].map(t => t.dataset.state);";
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let states = browser.eval(STATES);
        if states == serde_json::json!(["pass", "pass", "fail", "writing"]) {
            break;
        }
        assert!(Instant::now() < deadline, "{states}; {}", shift.stderr());
        thread::sleep(Duration::from_millis(100));
    }
    let reason =
        browser.eval("return document.querySelector('#tile-ttyUSB2 .reason').textContent;");
    assert!(
        reason.as_str().unwrap().contains("lost the board"),
        "{reason}"
    );
    if let Some(path) = std::env::var_os("STATION_SCREENSHOT") {
        fs::write(path, browser.screenshot()).unwrap();
    }
    assert_eq!(shift.stop(), 6, "{}", shift.stderr());
}

#[test]
fn metrics_parse_as_prometheus_text_and_the_state_as_json() {
    let mut shift = Shift::new(1);
    shift.start(&["--listen", "127.0.0.1:0"]);
    let addr = view_addr(&shift);
    let (good, late) = (board(1, "", false), board(2, "", false));
    shift.plug(0, &good);
    shift.wait_records(1);
    shift.plug(1, &late);
    shift.wait_records(2);
    let state = || -> Value { serde_json::from_str(&get(&addr, "/api/state")).unwrap() };
    shift.wait_for("both boards on the view", || {
        state()["last"].as_array().unwrap().len() == 2
    });

    let state = state();
    assert_eq!(state["counts"]["passed"], 1, "{state}");
    assert_eq!(state["counts"]["failed"], 1, "{state}");
    assert_eq!(state["counts"]["rows_left"], 0, "{state}");
    assert_eq!(state["ports"][0]["state"], "pass", "{state}");
    assert_eq!(state["ports"][0]["row"], "SN-0001", "{state}");
    assert_eq!(state["ports"][1]["state"], "fail", "{state}");
    assert_eq!(state["last"].as_array().unwrap().len(), 2, "{state}");

    let families = parse_metrics(&get(&addr, "/metrics"));
    let sample = |name: &str, labels: &[(&str, &str)]| -> f64 {
        families
            .as_object()
            .unwrap()
            .values()
            .flat_map(|f| f["samples"].as_array().unwrap())
            .find(|s| s["name"] == name && labels.iter().all(|(k, v)| s["labels"][*k] == *v))
            .unwrap_or_else(|| panic!("no {name} {labels:?} in {families}"))["value"]
            .as_f64()
            .unwrap()
    };
    assert_eq!(families["flasher_boards"]["type"], "counter");
    assert_eq!(sample("flasher_boards_total", &[("outcome", "pass")]), 1.0);
    assert_eq!(sample("flasher_boards_total", &[("outcome", "fail")]), 1.0);
    assert_eq!(families["flasher_board_seconds"]["type"], "histogram");
    assert_eq!(sample("flasher_board_seconds_count", &[]), 2.0);
    assert_eq!(
        sample("flasher_board_seconds_bucket", &[("le", "+Inf")]),
        2.0
    );
    let port0 = shift.path("dev/ttyUSB0");
    assert_eq!(families["flasher_port_state"]["type"], "gauge");
    let state_of = |state| sample("flasher_port_state", &[("port", &port0), ("state", state)]);
    assert_eq!((state_of("pass"), state_of("writing")), (1.0, 0.0));
    assert_eq!(sample("flasher_rows_free", &[]), 0.0);
    assert_eq!(shift.stop(), 10, "{}", shift.stderr());
}

/// `text` parsed by prometheus-client's parser, as `{family: {type, samples: [{name, labels,
/// value}]}}` (keyed by the family name the parser gives: counters lose `_total`).
fn parse_metrics(text: &str) -> Value {
    const PARSE: &str = "import json, sys\n\
from prometheus_client.parser import text_string_to_metric_families\n\
out = {f.name: {'type': f.type, 'samples': [{'name': s.name, 'labels': s.labels, 'value': s.value} for s in f.samples]} for f in text_string_to_metric_families(sys.stdin.read())}\n\
print(json.dumps(out))\n";
    let python = testkit::workspace_root().join(".venv/bin/python");
    assert!(
        python.is_file(),
        "{} is missing: run scripts/setup-tests (a venv with prometheus-client)",
        python.display()
    );
    let mut child = Command::new(&python)
        .args(["-c", PARSE])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "prometheus-client refused the metrics ({}; pip install prometheus-client into .venv if \
         it is missing):\n{text}",
        stderr(&out)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn station_options_that_cannot_work_are_refused_in_one_line_with_exit_2() {
    let shift = Shift::new(1);
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let busy = busy.local_addr().unwrap().to_string();
    let pattern = shift.path("dev/ttyUSB*");
    let cases: [(&[&str], &str); 4] = [
        (&["--station"], "--port"),
        (&["--station", "--port", &pattern, "--dry-run"], "--dry-run"),
        (
            &["--station", "--port", &pattern, "--listen", "nowhere"],
            "is not HOST:PORT or PORT",
        ),
        (
            &["--station", "--port", &pattern, "--listen", &busy],
            "pass a free HOST:PORT",
        ),
    ];
    for (extra, expected) in cases {
        let mut args = shift.common_args();
        args.extend(extra.iter().map(|s| s.to_string()));
        let out = flasher(&args.iter().map(String::as_str).collect::<Vec<_>>());
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{extra:?}: {err}");
        assert!(err.contains(expected), "{extra:?}: {err}");
        assert_eq!(
            err.trim_end()
                .lines()
                .filter(|l| l.starts_with("error:"))
                .count(),
            1,
            "{err}"
        );
    }
}
