//! A station with per-board data: simulated boards written by the real `flasher` binary with
//! `--nvs-config`/`--nvs-values`. Each board's nvs partition must hold, byte for byte, what
//! ESP-IDF's `nvs_partition_gen.py` (the venv's `esp_idf_nvs_partition_gen`) makes of the
//! per-row CSV `mfg_gen.py` writes for its row; rows go to one board each (claimed by MAC in
//! the embedded database beside the values file), across failures, a SIGKILLed station, two
//! stations on one file and rows running out.

mod common;

use std::collections::BTreeSet;
use std::fs;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::rows::*;
use common::stderr;
use esp_sim::SimBoard;
use linedb::Query;
use serde_json::Value;

#[test]
fn boards_at_once_get_distinct_rows_recorded_without_their_values() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let shared = bundle(dir, 128 * 1024);
    batch(dir, 5);
    let boards: Vec<SimBoard> = (0..3).map(|n| board(n, "", false)).collect();
    let report = dir.join("report.json");
    let log = dir.join("shift.jsonl");
    let args = station_args(
        dir,
        &boards.iter().collect::<Vec<_>>(),
        &[
            "--report",
            report.to_str().unwrap(),
            "--report-append",
            log.to_str().unwrap(),
        ],
    );
    let out = run(&args);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(
        err.contains("nvs: 3 rows done, 0 failed, 0 in doubt, 2 free"),
        "{err}"
    );

    let rows = recorded_rows(dir);
    assert_eq!(
        rows.iter().cloned().collect::<BTreeSet<_>>(),
        ["SN-0001", "SN-0002", "SN-0003"].map(String::from).into(),
        "{rows:?}"
    );
    let in_db = db(dir).records(&Query::default()).unwrap();
    let run_report: Value = serde_json::from_slice(&fs::read(&report).unwrap()).unwrap();
    let records = run_report["boards"].as_array().unwrap();
    let logged = fs::read_to_string(&log).unwrap();
    assert_eq!(logged.lines().count(), 3);
    for (i, b) in boards.into_iter().enumerate() {
        let r = &records[i];
        let id = r["nvs_row"].as_str().unwrap().to_string();
        assert_eq!(r["device"]["mac"], mac(i as u8), "{r}");
        let nvs = r["regions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|g| g["label"] == "nvs")
            .unwrap();
        assert_eq!(nvs["offset"], NVS_OFFSET, "{r}");
        assert_eq!(nvs["source"], format!("generated: NVS row {id}"), "{r}");
        let entry = in_db
            .iter()
            .find(|e| e.row.as_deref() == Some(&id))
            .unwrap();
        assert_eq!(entry.mac.as_deref(), Some(mac(i as u8).as_str()));
        assert_eq!((entry.outcome.as_str(), entry.exit_code), ("ok", 0));
        assert!(entry.regions_md5.contains("\"nvs\":"), "{entry:?}");
        assert!(
            logged.contains(&format!("\"nvs_row\":\"{id}\"")),
            "{logged}"
        );
        let flash = b.stop();
        assert_board_holds(&flash, &shared, &id);
    }
    // The records hold row ids and MACs, never the values.
    for n in 1..=5 {
        let (_, serial, _, key) = row(n);
        assert!(
            !logged.contains(&serial) && !logged.contains(&key),
            "{logged}"
        );
        let bytes = db_bytes(dir);
        let has = |v: &str| bytes.windows(v.len()).any(|w| w == v.as_bytes());
        assert!(
            !has(&serial) && !has(&key),
            "the database holds row {n}'s values"
        );
    }
}

#[test]
fn a_failed_board_keeps_its_row_and_boards_beyond_the_rows_are_not_started() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let shared = bundle(dir, 128 * 1024);
    batch(dir, 3);
    // Board 1 loses its cable midway; three boards for three rows, so each gets one (which
    // board takes which row is a race: with more boards than rows it would decide whether the
    // failing board gets one).
    let boards: Vec<SimBoard> = (0..3)
        .map(|n| board(n, if n == 1 { "disconnect=20000" } else { "" }, false))
        .collect();
    let out = run(&station_args(dir, &boards.iter().collect::<Vec<_>>(), &[]));
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(6), "{err}");
    let failed = db(dir).summary().unwrap().failed;
    assert_eq!(failed.len(), 1, "{failed:?}");
    let failed_row = failed[0].clone();
    assert!(
        err.contains(&format!(
            "nvs: 2 rows done, 1 failed ({failed_row}), 0 in doubt, 0 free"
        )),
        "{err}"
    );
    for b in boards {
        assert!(
            !b.commands().is_empty(),
            "every board with a row is started"
        );
        b.stop();
    }

    // All rows taken: a new board is identified but not written, exit 10, with its own line.
    let fresh = board(9, "", false);
    let out = run(&station_args(dir, &[&fresh], &[]));
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(10), "{err}");
    assert!(
        err.lines()
            .any(|l| l.contains("no row of") && l.contains("so it was not written")),
        "{err}"
    );
    assert!(fresh.flash().iter().all(|&x| x == 0xFF));

    // The operator releases the failed row: the next board gets exactly that row.
    let release = station_args(dir, &[], &["--nvs-release", &failed_row]);
    let out = run(&release);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!("released row {failed_row} in sqlite:")),
        "{}",
        stderr(&out)
    );
    let out = run(&release);
    assert_eq!(
        out.status.code(),
        Some(2),
        "a free row is not released twice"
    );
    let out = run(&station_args(dir, &[&fresh], &[]));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(recorded_rows(dir).last().unwrap(), &failed_row);
    assert_board_holds(&fresh.stop(), &shared, &failed_row);
}

#[test]
fn a_killed_station_leaves_its_rows_in_doubt_and_a_second_station_shares_the_rows() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let shared = bundle(dir, 1024 * 1024);
    batch(dir, 7);
    // Real-time boards, so that the station is killed while it writes them.
    let slow: Vec<SimBoard> = (0..2).map(|n| board(n, "", true)).collect();
    let args = station_args(dir, &slow.iter().collect::<Vec<_>>(), &[]);
    let mut child = Command::new(env!("CARGO_BIN_EXE_flasher"))
        .args(&args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !dir.join("values.csv.db").exists() || db(dir).summary().unwrap().writing < 2 {
        assert!(
            Instant::now() < deadline,
            "the station never started both boards"
        );
        if child.try_wait().unwrap().is_some() {
            let mut err = String::new();
            std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
            panic!("the station ended early: {err}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }

    // A second station on the same database writes its board with a row of its own.
    let other = board(7, "", false);
    let out = run(&station_args(dir, &[&other], &[]));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let other_row = recorded_rows(dir).pop().unwrap();

    // Both slow boards take about ten seconds to write: kill the station in the middle.
    assert!(
        child.try_wait().unwrap().is_none(),
        "the station ended early"
    );
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let before = db(dir).summary().unwrap().in_doubt;
    assert_eq!(before.len(), 2, "{before:?}");
    assert!(!before.contains(&other_row));
    drop(slow);

    let boards: Vec<SimBoard> = (2..6).map(|n| board(n, "", false)).collect();
    let out = run(&station_args(dir, &boards.iter().collect::<Vec<_>>(), &[]));
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    for row in &before {
        assert!(
            err.contains(&format!("warning: row {row} is in doubt")),
            "{err}"
        );
    }
    assert!(
        err.contains(&format!(
            "nvs: 5 rows done, 0 failed, 2 in doubt ({}), 0 free",
            before.join(", ")
        )),
        "{err}"
    );
    let run_rows: Vec<String> = recorded_rows(dir);
    let mut written = BTreeSet::new();
    for b in boards {
        let flash = b.stop();
        let id = run_rows
            .iter()
            .find(|id| flash[NVS_OFFSET..NVS_OFFSET + NVS_SIZE] == reference_image(number(id)))
            .expect("the board holds one of the rows it was given");
        assert!(!before.contains(id) && id != &other_row, "{id} reused");
        assert_board_holds(&flash, &shared, id);
        written.insert(id.to_string());
    }
    assert_eq!(written.len(), 4);
    assert_board_holds(&other.stop(), &shared, &other_row);
}

#[test]
fn a_bad_row_refuses_the_run_before_any_board() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    bundle(dir, 64 * 1024);
    let values = batch(dir, 600);
    let mut text = fs::read_to_string(&values).unwrap();
    text = text.replace(",7500,", ",4294967296,");
    fs::write(&values, text).unwrap();
    let b = board(0, "", false);
    let out = run(&station_args(dir, &[&b], &[]));
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    let line = err.lines().find(|l| l.starts_with("error: ")).unwrap();
    assert!(
        line.contains("1 of the 600 rows") && line.contains("row `SN-0500`, key `unit`"),
        "{err}"
    );
    assert!(b.commands().is_empty(), "the board was touched");
    assert!(!dir.join("values.csv.db").exists());
}

#[test]
fn dry_run_and_merge_out_show_one_rows_plan_without_a_database() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let shared = bundle(dir, 64 * 1024);
    batch(dir, 3);
    let merged = dir.join("board.bin");
    let out = run(&station_args(
        dir,
        &[],
        &[
            "--dry-run",
            "--nvs-row",
            "SN-0002",
            "--merge-out",
            merged.to_str().unwrap(),
        ],
    ));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let plan = String::from_utf8_lossy(&out.stdout);
    assert!(
        plan.lines()
            .any(|l| l.contains("0x0009000 nvs") && l.ends_with("generated: NVS row SN-0002")),
        "{plan}"
    );
    assert_board_holds(&fs::read(&merged).unwrap(), &shared, "SN-0002");
    assert!(!dir.join("values.csv.db").exists());

    // Without a row the plan notes what each board gets; an unknown row is refused.
    let out = run(&station_args(dir, &[], &["--dry-run"]));
    assert!(stderr(&out).contains("3 rows of"), "{}", stderr(&out));
    let out = run(&station_args(dir, &[], &["--dry-run", "--nvs-row", "SN-9"]));
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("row `SN-9` is not in the values file"));

    // The partition must be a data/nvs partition of the table written.
    let out = run(&station_args(
        dir,
        &[],
        &["--dry-run", "--nvs-partition", "cal"],
    ));
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("has no partition `cal` (it has: nvs, "),
        "{}",
        stderr(&out)
    );
    let out = run(&station_args(
        dir,
        &[],
        &["--dry-run", "--nvs-partition", "phy_init"],
    ));
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("`phy_init` is data/phy, not data/nvs (data/nvs partitions: nvs)"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_journal_of_the_file_based_station_is_imported_once() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let shared = bundle(dir, 64 * 1024);
    batch(dir, 5);
    fs::write(
        dir.join("values.csv.journal"),
        format!(
            "assigned SN-0001 to /dev/ttyUSB0 at 2026-12-01T10:16:22Z\n\
             done SN-0001 {}\n\
             assigned SN-0002 to /dev/ttyUSB1 at 2026-12-01T10:16:25Z\n\
             failed SN-0002 no answer from the ROM loader\n\
             assigned SN-0003 to /dev/ttyUSB2 at 2026-12-01T10:17:00Z\n",
            mac(0)
        ),
    )
    .unwrap();
    // Board 0 comes back (it holds SN-0001); board 1 is new.
    let boards: Vec<SimBoard> = (0..2).map(|n| board(n, "", false)).collect();
    let out = run(&station_args(dir, &boards.iter().collect::<Vec<_>>(), &[]));
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(err.contains("nvs: imported journal"), "{err}");
    assert!(err.contains("(1 done, 1 failed, 1 in doubt)"), "{err}");
    assert!(err.contains("warning: row SN-0003 is in doubt"), "{err}");
    assert!(
        err.contains("nvs: 2 rows done, 1 failed (SN-0002), 1 in doubt (SN-0003), 1 free"),
        "{err}"
    );
    let mut boards = boards.into_iter();
    assert_board_holds(&boards.next().unwrap().stop(), &shared, "SN-0001");
    assert_board_holds(&boards.next().unwrap().stop(), &shared, "SN-0004");

    // The next run does not import it again.
    let last = board(2, "", false);
    let out = run(&station_args(dir, &[&last], &[]));
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(!err.contains("imported journal"), "{err}");
    assert_board_holds(&last.stop(), &shared, "SN-0005");
}
