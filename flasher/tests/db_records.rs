//! Every board's record in the line's database without per-board rows (`--db URL`, no
//! `--nvs-values`): real `flasher` processes write simulated boards, and the records hold each
//! board's MAC, chip, outcome and the MD5 of every region as the board holds it. A database
//! away when a board finishes keeps its record in the spool, sent exactly once at the next
//! start; a database that cannot be opened is one line before any board is touched; without
//! `--db` no database and no spool are made.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::rows::{board, bundle, mac, records, server};
use common::stderr;
use esp_sim::SimBoard;
use linedb::Record;
use md5::{Digest, Md5};
use testkit::pg::PgServer;

/// A one-shot run's command line: the bundle in `dir`, `boards`, then `extra` (no rows).
fn args(dir: &Path, boards: &[&SimBoard], extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = [
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
    .to_vec();
    args.extend(["--firmware-dir".into(), path(&dir.join("fw"))]);
    for b in boards {
        args.extend(["--port".into(), b.path().to_str().unwrap().into()]);
    }
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

fn path(p: &Path) -> String {
    p.to_str().unwrap().to_string()
}

/// A flasher with `args`, in `cwd`, with `password` in `PGPASSWORD`.
fn flasher(cwd: &Path, args: &[String], password: &str) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_flasher"));
    command
        .args(args)
        .current_dir(cwd)
        .env("PGPASSWORD", password)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    command
}

fn run(cwd: &Path, args: &[String], password: &str) -> Output {
    flasher(cwd, args, password).output().unwrap()
}

/// `flasher records --db URL --json`: one JSON value per record.
fn queried(url: &str, password: &str) -> Vec<serde_json::Value> {
    let out = Command::new(env!("CARGO_BIN_EXE_flasher"))
        .args(["records", "--db", url, "--json"])
        .env("PGPASSWORD", password)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn md5_hex(bytes: &[u8]) -> String {
    Md5::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Checks that `records` (from `flasher records --json`) and `stored` (the database's
/// columns) say what each of `boards` holds: its MAC, chip, outcome ok, no row, and every
/// region's MD5 as read back from the board's flash.
fn check(records: &[serde_json::Value], stored: &[Record], boards: Vec<SimBoard>) {
    assert_eq!(records.len(), boards.len(), "{records:?}");
    assert_eq!(stored.len(), boards.len(), "{stored:?}");
    for (n, b) in boards.into_iter().enumerate() {
        let mac = mac(n as u8);
        let json = records
            .iter()
            .find(|r| r["device"]["mac"] == mac.as_str())
            .unwrap_or_else(|| panic!("no record of {mac}: {records:?}"));
        assert_eq!(json["outcome"], "ok", "{json}");
        assert_eq!(json["device"]["chip"], "esp32s3", "{json}");
        assert!(json.get("nvs_row").is_none_or(|r| r.is_null()), "{json}");
        let column = stored
            .iter()
            .find(|r| r.mac.as_deref() == Some(&mac))
            .unwrap();
        assert_eq!((column.outcome.as_str(), column.exit_code), ("ok", 0));
        assert_eq!(column.row, None);
        assert!(column.chip.is_some() && column.station.as_deref() == Some("bench"));
        let md5: serde_json::Value = serde_json::from_str(&column.regions_md5).unwrap();
        let flash = b.stop();
        let regions = json["regions"].as_array().unwrap();
        assert!(regions.len() >= 3, "{json}");
        for region in regions {
            let offset = region["offset"].as_u64().unwrap() as usize;
            let size = region["size"].as_u64().unwrap() as usize;
            let held = md5_hex(&flash[offset..offset + size]);
            assert_eq!(region["md5"], held.as_str(), "{region}");
            assert_eq!(md5[region["label"].as_str().unwrap()], held.as_str());
        }
    }
}

#[test]
fn a_one_shot_run_without_rows_stores_every_boards_record_in_postgres() {
    let server = server();
    let url = server.database("plain");
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    bundle(dir, 64 * 1024);
    let boards: Vec<SimBoard> = (0..2).map(|n| board(n, "", false)).collect();
    let refs: Vec<&SimBoard> = boards.iter().collect();
    let extra = ["--db", &url, "--station-name", "bench"];
    let out = run(dir, &args(dir, &refs, &extra), server.password());
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    check(&queried(&url, server.password()), &records(&url), boards);
    assert!(!dir.join("flasher-spool").exists(), "nothing was spooled");
}

#[test]
fn the_embedded_database_keeps_the_records_of_a_run_without_rows() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    bundle(dir, 64 * 1024);
    let boards: Vec<SimBoard> = (0..2).map(|n| board(n, "", false)).collect();
    let refs: Vec<&SimBoard> = boards.iter().collect();
    let url = format!("sqlite:{}", dir.join("line.db").display());
    let extra = ["--db", &url, "--station-name", "bench"];
    let out = run(dir, &args(dir, &refs, &extra), "");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    check(&queried(&url, ""), &records(&url), boards);
}

#[test]
fn a_record_kept_while_the_database_is_away_is_sent_once_at_the_next_start() {
    let _shared = server();
    let own = PgServer::start();
    let url = own.database("away");
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    bundle(dir, 1024 * 1024);
    let log = path(&dir.join("shift.jsonl"));
    let extra = [
        "--db",
        &url,
        "--report-append",
        &log,
        "--station-name",
        "bench",
    ];

    // The database goes away while the board is being written: the board finishes, and its
    // record waits in the spool beside the log.
    let slow = board(0, "", true);
    let mut first = flasher(dir, &args(dir, &[&slow], &extra), own.password())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while slow.commands().is_empty() {
        assert!(Instant::now() < deadline, "the board was never reached");
        assert!(first.try_wait().unwrap().is_none(), "the run ended early");
        std::thread::sleep(Duration::from_millis(20));
    }
    own.stop();
    let out = first.wait_with_output().unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(err.contains("the board's record is kept in"), "{err}");
    let spool = dir.join("shift.jsonl.spool");
    assert_eq!(std::fs::read_dir(&spool).unwrap().count(), 1, "{err}");

    // The next start sends it, once; the new board's record follows.
    own.resume();
    let next = board(1, "", false);
    let out = run(dir, &args(dir, &[&next], &extra), own.password());
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(err.contains("db: 1 records kept in"), "{err}");
    assert_eq!(std::fs::read_dir(&spool).unwrap().count(), 0);
    let stored = records(&url);
    let ids: BTreeSet<&str> = stored.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids.len(), 2, "{stored:?}");
    let json = queried(&url, own.password());
    check(&json, &stored, vec![slow, next]);
    // The log has both boards too, as before.
    let lines = std::fs::read_to_string(&log).unwrap();
    assert_eq!(lines.lines().count(), 2, "{lines}");
}

#[test]
fn a_database_that_cannot_be_opened_is_one_line_before_any_board() {
    let server = server();
    let url = server.database("refused");
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    bundle(dir, 64 * 1024);
    let untouched = board(0, "", false);
    let cases: [(&str, &str, i32, &str); 2] = [
        (&url, "wrong", 1, "password authentication failed"),
        ("mysql://line@db/line", "", 2, "not a database URL"),
    ];
    for (db, password, code, says) in cases {
        let out = run(dir, &args(dir, &[&untouched], &["--db", db]), password);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(code), "{err}");
        let errors: Vec<&str> = err.lines().filter(|l| l.starts_with("error")).collect();
        assert_eq!(errors.len(), 1, "{err}");
        assert!(errors[0].contains(says), "{err}");
    }
    assert!(untouched.commands().is_empty(), "the board was touched");
}

#[test]
fn without_db_and_rows_no_database_and_no_spool_are_made() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    bundle(dir, 64 * 1024);
    let before: BTreeSet<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    let b = board(0, "", false);
    let out = run(dir, &args(dir, &[&b], &[]), "");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let after: BTreeSet<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(before, after);
    // --spool and --station-name mean nothing without a database: refused.
    let out = run(dir, &args(dir, &[&b], &["--spool", "kept"]), "");
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("<--db <URL>|--nvs-values <FILE.csv>>"),
        "{err}"
    );
    assert_eq!(err.lines().filter(|l| l.starts_with("error")).count(), 1);
}

#[test]
fn a_station_without_rows_stores_each_boards_record_as_it_finishes() {
    let server = server();
    let url = server.database("station");
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    bundle(dir, 64 * 1024);
    std::fs::create_dir(dir.join("dev")).unwrap();
    let log = dir.join("shift.jsonl");
    let mut args = args(dir, &[], &["--db", &url, "--station-name", "bench"]);
    args.extend([
        "--station".into(),
        "--port".into(),
        path(&dir.join("dev/ttyUSB*")),
    ]);
    args.extend(["--report-append".into(), path(&log)]);
    let mut station = flasher(dir, &args, server.password()).spawn().unwrap();
    let b = board(0, "", false);
    std::os::unix::fs::symlink(b.path(), dir.join("dev/ttyUSB0")).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::fs::read_to_string(&log).unwrap_or_default().is_empty() {
        assert!(Instant::now() < deadline, "the board was never written");
        assert!(station.try_wait().unwrap().is_none(), "the station ended");
        std::thread::sleep(Duration::from_millis(50));
    }
    // The record is in the database before it is in the log.
    let stored = records(&url);
    // SAFETY: kill has no memory effects; the pid is our child's.
    assert_eq!(unsafe { libc::kill(station.id() as i32, libc::SIGTERM) }, 0);
    let out = station.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    check(&queried(&url, server.password()), &stored, vec![b]);
}
