//! A station killed with SIGKILL mid-board, then restarted, reuses no row and skips none.
//!
//! This test binary is its own child: with `MFG_JOURNAL_CHILD` set it runs a station loop
//! (one row at a time, printing each step) instead of the test.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use mfg::RowId;
use mfg::journal::Journal;

const ROWS: usize = 30;

fn rows() -> Vec<RowId> {
    (1..=ROWS)
        .map(|i| RowId::new(&format!("row-{i}")))
        .collect()
}

/// The station: takes rows until none is free; on row `MFG_JOURNAL_HANG` it stops mid-board.
fn child(path: &str) {
    let hang = std::env::var("MFG_JOURNAL_HANG").ok();
    let delay = std::env::var("MFG_JOURNAL_DELAY_MS").map_or(0, |ms| ms.parse().unwrap());
    let mut journal =
        Journal::open(std::path::Path::new(path), &rows()).expect("child opens the journal");
    while let Some(alloc) = journal.next("/dev/ttyACM0").expect("assign") {
        println!("writing {}", alloc.row());
        if hang.as_deref() == Some(alloc.row().as_str()) {
            std::thread::sleep(std::time::Duration::from_secs(120));
        }
        std::thread::sleep(std::time::Duration::from_millis(delay));
        let row = alloc.row().clone();
        journal
            .complete(alloc, "24:0a:c4:00:00:01")
            .expect("complete");
        println!("done {row}");
    }
    println!("finished");
}

/// Runs the station; kills it with SIGKILL once it prints `kill_at`. Returns its lines.
fn run_station(path: &std::path::Path, hang: Option<&str>, kill_at: Option<&str>) -> Vec<String> {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.env("MFG_JOURNAL_CHILD", path)
        .env("MFG_JOURNAL_DELAY_MS", "15")
        .stdout(Stdio::piped());
    if let Some(hang) = hang {
        cmd.env("MFG_JOURNAL_HANG", hang);
    }
    let mut child = cmd.spawn().unwrap();
    let mut lines = Vec::new();
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        let stop = kill_at == Some(line.as_str());
        lines.push(line);
        if stop {
            child.kill().unwrap();
            break;
        }
    }
    let status = child.wait().unwrap();
    match kill_at {
        Some(_) => {
            use std::os::unix::process::ExitStatusExt;
            assert_eq!(
                status.signal(),
                Some(9),
                "the station was killed by SIGKILL"
            );
        }
        None => assert!(status.success(), "station exit: {status}"),
    }
    lines
}

fn written(lines: &[String]) -> Vec<String> {
    lines
        .iter()
        .filter_map(|l| l.strip_prefix("writing ").map(str::to_string))
        .collect()
}

fn killed_mid_board_then_restarted() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("values.csv.journal");
    let all = rows();

    let first = run_station(&path, Some("row-5"), Some("writing row-5"));
    assert_eq!(
        written(&first),
        ["row-1", "row-2", "row-3", "row-4", "row-5"]
    );

    let journal = Journal::open(&path, &all).expect("the killed station's lock is gone");
    let summary = journal.summary();
    assert_eq!(summary.done.len(), 4);
    assert_eq!(summary.in_doubt.len(), 1);
    assert_eq!(summary.in_doubt[0].row.as_str(), "row-5");
    assert_eq!(summary.in_doubt[0].port, "/dev/ttyACM0");
    assert_eq!(summary.free, ROWS - 5);
    drop(journal);

    let second = run_station(&path, None, None);
    let expected: Vec<String> = (6..=ROWS).map(|i| format!("row-{i}")).collect();
    assert_eq!(
        written(&second),
        expected,
        "the restart skips the in-doubt row and no other"
    );
    assert_eq!(second.last().map(String::as_str), Some("finished"));

    let journal = Journal::open(&path, &all).unwrap();
    let summary = journal.summary();
    assert_eq!(summary.done.len(), ROWS - 1);
    assert_eq!(summary.in_doubt.len(), 1);
    assert_eq!(summary.free, 0);
}

/// Kills land at different points of a board (between the assignment and its completion,
/// 15 ms apart); the journal then tells, not the station's output, what was handed out.
fn killed_at_several_points() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j");
    let mut seen: Vec<String> = Vec::new();
    for kill_after in [3, 1, 6, 2] {
        let lines = run_station(
            &path,
            None,
            Some(&format!("writing row-{}", seen.len() + kill_after)),
        );
        seen.extend(written(&lines));
        // Every board the station started stays out of later hands: count what it left in doubt.
        let in_doubt = Journal::open(&path, &rows())
            .unwrap()
            .summary()
            .in_doubt
            .len();
        assert!(in_doubt <= seen.len());
    }
    let last = run_station(&path, None, None);
    seen.extend(written(&last));
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(
        unique.len(),
        seen.len(),
        "no row handed out twice: {seen:?}"
    );
    assert_eq!(seen.len(), ROWS, "every row handed out once: {seen:?}");

    let text = std::fs::read_to_string(&path).unwrap();
    for row in rows() {
        let assigned = text
            .lines()
            .filter(|l| l.starts_with(&format!("assigned {row} ")))
            .count();
        assert_eq!(assigned, 1, "{row} assigned once in the journal");
    }
    let summary = Journal::open(&path, &rows()).unwrap().summary();
    assert_eq!(summary.in_doubt.len(), 4, "one board in doubt per kill");
    assert_eq!(summary.done.len(), ROWS - 4);
    assert_eq!(summary.free, 0);
}

fn main() {
    if let Ok(path) = std::env::var("MFG_JOURNAL_CHILD") {
        child(&path);
        return;
    }
    let tests: [(&str, fn()); 2] = [
        (
            "killed_mid_board_then_restarted",
            killed_mid_board_then_restarted,
        ),
        ("killed_at_several_points", killed_at_several_points),
    ];
    let mut failed = 0;
    for (name, test) in tests {
        match std::panic::catch_unwind(test) {
            Ok(()) => println!("test {name} ... ok"),
            Err(_) => {
                println!("test {name} ... FAILED");
                failed += 1;
            }
        }
    }
    println!("{} passed, {failed} failed", tests.len() - failed);
    std::process::exit(i32::from(failed > 0));
}
