//! A line of stations on one PostgreSQL server (started by this test binary, testkit::pg):
//! real `flasher` processes write simulated boards, each with its own MAC, from one pool of
//! rows. Every row goes to one board, byte-identical to ESP-IDF's generator's image for it;
//! boards beyond the rows are refused untouched; a station killed mid-write leaves its rows in
//! doubt while the others go on; a server stopped mid-shift loses nothing. The embedded
//! default does the same on one station.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::rows::*;
use common::stderr;
use esp_sim::SimBoard;
use linedb::{Query, Record, Store};
use testkit::pg::PgServer;

/// A station on `url` writing `boards`, started (not waited for).
fn station(dir: &Path, url: &str, name: &str, boards: &[&SimBoard], password: &str) -> Child {
    let args = station_args(dir, boards, &["--db", url, "--station-name", name]);
    Command::new(env!("CARGO_BIN_EXE_flasher"))
        .args(&args)
        .env("PGPASSWORD", password)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn finish(child: Child) -> (Option<i32>, String) {
    let out: Output = child.wait_with_output().unwrap();
    (out.status.code(), stderr(&out))
}

/// Waits until `rows` rows are being written on `url` (the stations have claimed them).
fn wait_writing(url: &str, rows: usize, child: &mut Child) {
    let store = Store::open(url).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while store.summary().unwrap().writing < rows {
        assert!(Instant::now() < deadline, "the boards were never claimed");
        if child.try_wait().unwrap().is_some() {
            let mut err = String::new();
            std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
            panic!("the station ended early: {err}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Checks that each board holds the row its record names, or nothing when it was refused
/// (exit 10); returns the rows written.
fn check_boards(boards: Vec<SimBoard>, all: &[Record], shared: &[u8]) -> BTreeSet<String> {
    let mut written = BTreeSet::new();
    for (i, b) in boards.into_iter().enumerate() {
        let mac = mac(i as u8);
        let mine: Vec<&Record> = all
            .iter()
            .filter(|r| r.mac.as_deref() == Some(&mac))
            .collect();
        assert_eq!(mine.len(), 1, "{mac}: {mine:?}");
        let flash = b.stop();
        match (&mine[0].row, mine[0].exit_code) {
            (Some(row), 0) => {
                assert_board_holds(&flash, shared, row);
                assert!(written.insert(row.clone()), "{row} written twice");
            }
            (None, 10) => assert!(flash.iter().all(|&x| x == 0xFF), "{mac} was touched"),
            other => panic!("{mac}: {other:?}"),
        }
    }
    written
}

#[test]
fn three_stations_write_twelve_boards_from_ten_rows_each_row_once() {
    let server = server();
    let url = server.database("line");
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let shared = bundle(dir, 64 * 1024);
    batch(dir, 10);
    let boards: Vec<SimBoard> = (0..12).map(|n| board(n, "", false)).collect();
    let refs: Vec<&SimBoard> = boards.iter().collect();
    let stations: Vec<Child> = refs
        .chunks(4)
        .enumerate()
        .map(|(k, chunk)| station(dir, &url, &format!("st{k}"), chunk, server.password()))
        .collect();
    let mut refused = 0;
    for child in stations {
        let (code, err) = finish(child);
        assert!(matches!(code, Some(0 | 10)), "{code:?}: {err}");
        refused += err.matches("so it was not written").count();
    }
    assert_eq!(refused, 2);
    let all = records(&url);
    assert_eq!(all.len(), 12, "{all:?}");
    let digests: BTreeSet<&str> = all
        .iter()
        .filter_map(|r| r.image_digest.as_deref())
        .collect();
    assert_eq!(digests.len(), 1, "one firmware, one digest: {digests:?}");
    assert!(
        digests
            .iter()
            .all(|d| d.starts_with("sha256:") && d.len() == 71)
    );
    let stations: BTreeSet<&str> = all.iter().filter_map(|r| r.station.as_deref()).collect();
    assert_eq!(stations, ["st0", "st1", "st2"].into());
    let written = check_boards(boards, &all, &shared);
    assert_eq!(written.len(), 10);
    let summary = Store::open(&url).unwrap().summary().unwrap();
    assert_eq!((summary.done, summary.free, summary.writing), (10, 0, 0));
    // The records hold row ids, never the values.
    let text: String = all.iter().map(|r| r.json.clone()).collect();
    for n in 1..=10 {
        let (_, serial, _, key) = row(n);
        assert!(!text.contains(&serial) && !text.contains(&key));
    }
    query_records(&url, &all);
}

/// `flasher records` on the line's records `all`.
fn query_records(url: &str, all: &[Record]) {
    let records = |extra: &[&str], password: &str| {
        let out = Command::new(env!("CARGO_BIN_EXE_flasher"))
            .args(["records", "--db", url])
            .args(extra)
            .env("PGPASSWORD", password)
            .output()
            .unwrap();
        let text = String::from_utf8(out.stdout).unwrap();
        (
            out.status.code(),
            text,
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let password = server().password();
    let (code, text, err) = records(&["--row", "SN-0003", "--json"], password);
    assert_eq!(code, Some(0), "{err}");
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1, "{text}");
    assert_eq!(lines[0]["nvs_row"], "SN-0003");
    let refused = all.iter().find(|r| r.exit_code == 10).unwrap();
    let mac = refused.mac.as_deref().unwrap().to_ascii_uppercase();
    let (code, text, _) = records(&["--mac", &mac], password);
    assert_eq!(code, Some(0));
    assert_eq!(text.lines().count(), 2, "{text}");
    assert!(
        text.lines()
            .nth(1)
            .unwrap()
            .contains("failed (exit 10): no row of"),
        "{text}"
    );
    let (_, text, _) = records(&["--csv", "--since", "2000-01-01"], password);
    assert_eq!(text.lines().count(), 13, "{text}");
    assert!(text.starts_with("id,time,mac,chip,"), "{text}");
    let (_, text, _) = records(&["--since", "2999-01-01T00:00:00Z"], password);
    assert_eq!(text.lines().count(), 1, "{text}");
    let (code, _, err) = records(&["--since", "yesterday"], password);
    assert_eq!(code, Some(2), "{err}");
    let (code, text, err) = records(&[], "wrong");
    assert_eq!((code, text.as_str()), (Some(1), ""), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("password authentication failed"), "{err}");
}

#[test]
fn a_killed_station_leaves_its_rows_in_doubt_and_the_others_go_on() {
    let server = server();
    let url = server.database("kill");
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let shared = bundle(dir, 1024 * 1024);
    batch(dir, 6);
    // Real-time boards, so that the station is killed while it writes them.
    let slow: Vec<SimBoard> = (0..2).map(|n| board(n, "", true)).collect();
    let mut killed = station(
        dir,
        &url,
        "a",
        &slow.iter().collect::<Vec<_>>(),
        server.password(),
    );
    wait_writing(&url, 2, &mut killed);
    let fast: Vec<SimBoard> = (2..4).map(|n| board(n, "", false)).collect();
    let other = station(
        dir,
        &url,
        "b",
        &fast.iter().collect::<Vec<_>>(),
        server.password(),
    );
    killed.kill().unwrap(); // SIGKILL
    killed.wait().unwrap();
    let (code, err) = finish(other);
    assert_eq!(code, Some(0), "{err}");

    let store = Store::open(&url).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let in_doubt = loop {
        let summary = store.summary().unwrap();
        if summary.in_doubt.len() == 2 || Instant::now() > deadline {
            break summary.in_doubt;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(in_doubt.len(), 2, "{in_doubt:?}");
    drop(slow);

    let later: Vec<SimBoard> = (4..6).map(|n| board(n, "", false)).collect();
    let (code, err) = finish(station(
        dir,
        &url,
        "c",
        &later.iter().collect::<Vec<_>>(),
        server.password(),
    ));
    assert_eq!(code, Some(0), "{err}");
    for row in &in_doubt {
        assert!(
            err.contains(&format!("warning: row {row} is in doubt")),
            "{err}"
        );
    }
    assert!(
        err.contains(&format!(
            "nvs: 4 rows done, 0 failed, 2 in doubt ({}), 0 free",
            in_doubt.join(", ")
        )),
        "{err}"
    );
    let all = records(&url);
    for (i, b) in fast.into_iter().chain(later).enumerate() {
        let mac = mac(i as u8 + 2);
        let rec = all.iter().find(|r| r.mac.as_deref() == Some(&mac)).unwrap();
        let row = rec.row.as_deref().unwrap();
        assert!(!in_doubt.iter().any(|d| d == row), "{row} reused");
        assert_board_holds(&b.stop(), &shared, row);
    }
}

#[test]
fn a_server_stopped_mid_shift_loses_nothing_and_stores_nothing_twice() {
    let _shared = server();
    let own = PgServer::start();
    let url = own.database("restart");
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let shared = bundle(dir, 1024 * 1024);
    batch(dir, 4);
    let slow: Vec<SimBoard> = (0..2).map(|n| board(n, "", true)).collect();
    let mut first = station(
        dir,
        &url,
        "a",
        &slow.iter().collect::<Vec<_>>(),
        own.password(),
    );
    wait_writing(&url, 2, &mut first);
    own.stop();

    // A board not yet started while the database is away: one clear line, nothing touched.
    let waiting = board(2, "", false);
    let (code, err) = finish(station(dir, &url, "b", &[&waiting], own.password()));
    assert_eq!(code, Some(1), "{err}");
    let line = err.lines().find(|l| l.starts_with("error: ")).unwrap();
    assert!(line.contains("cannot be reached"), "{err}");
    assert!(waiting.commands().is_empty(), "the board was touched");

    // The boards in flight finish; their records wait on the station's disk.
    let (code, err) = finish(first);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(
        err.matches("the board's record is kept in").count(),
        2,
        "{err}"
    );

    own.resume();
    let (code, err) = finish(station(dir, &url, "b", &[&waiting], own.password()));
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains("db: 2 records kept in"), "{err}");
    assert!(
        err.contains("nvs: 3 rows done, 0 failed, 0 in doubt, 1 free"),
        "{err}"
    );
    let all = records(&url);
    assert_eq!(all.len(), 3, "{all:?}");
    let ids: BTreeSet<&str> = all.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids.len(), 3);
    let mut boards = slow;
    boards.push(waiting);
    assert_eq!(check_boards(boards, &all, &shared).len(), 3);
    assert_eq!(
        std::fs::read_dir(dir.join("values.csv.spool"))
            .unwrap()
            .count(),
        0,
        "the spool is empty once sent"
    );
}

#[test]
fn one_station_on_the_embedded_default_writes_twelve_boards_from_ten_rows() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let shared = bundle(dir, 64 * 1024);
    batch(dir, 10);
    let boards: Vec<SimBoard> = (0..12).map(|n| board(n, "", false)).collect();
    let out = run(&station_args(dir, &boards.iter().collect::<Vec<_>>(), &[]));
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(10), "{err}");
    assert_eq!(err.matches("so it was not written").count(), 2, "{err}");
    let all = db(dir).records(&Query::default()).unwrap();
    assert_eq!(all.len(), 12);
    assert_eq!(check_boards(boards, &all, &shared).len(), 10);

    // `flasher records` reads the station's file; a path that is not one is refused.
    let db_file = dir.join("values.csv.db");
    let url = format!("sqlite:{}", db_file.display());
    let out = common::flasher(&["records", "--db", &url, "--row", "SN-0007"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(text.lines().count(), 2, "{text}");
    assert!(
        text.contains("SN-0007") && text.lines().nth(1).unwrap().ends_with(" ok"),
        "{text}"
    );
    let missing = format!("sqlite:{}", dir.join("typo.db").display());
    let out = common::flasher(&["records", "--db", &missing]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("no such database file"),
        "{}",
        stderr(&out)
    );
    assert!(!dir.join("typo.db").exists());
}
