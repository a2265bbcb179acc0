//! The allocation journal: distinct rows across threads, failed rows kept, release, replay,
//! torn last line, refused second open.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use mfg::RowId;
use mfg::journal::{Journal, JournalError, RowState};

fn rows(n: usize) -> Vec<RowId> {
    (1..=n).map(|i| RowId::new(&format!("SN-{i:04}"))).collect()
}

#[test]
fn threads_get_distinct_rows_and_all_of_them() {
    let dir = tempfile::tempdir().unwrap();
    let all = rows(200);
    let journal = Arc::new(Mutex::new(
        Journal::open(&dir.path().join("j"), &all).unwrap(),
    ));
    let handles: Vec<_> = (0..8)
        .map(|t| {
            let journal = Arc::clone(&journal);
            std::thread::spawn(move || {
                let mut got = Vec::new();
                loop {
                    let next = journal
                        .lock()
                        .unwrap()
                        .next(&format!("/dev/ttyUSB{t}"))
                        .unwrap();
                    let Some(alloc) = next else { break };
                    got.push(alloc.row().clone());
                    journal
                        .lock()
                        .unwrap()
                        .complete(alloc, &format!("aa:bb:cc:00:00:{t:02x}"))
                        .unwrap();
                }
                got
            })
        })
        .collect();
    let mut seen = HashSet::new();
    for handle in handles {
        for row in handle.join().unwrap() {
            assert!(seen.insert(row.clone()), "row {row} handed out twice");
        }
    }
    assert_eq!(seen, all.iter().cloned().collect::<HashSet<_>>());
    let summary = journal.lock().unwrap().summary();
    assert_eq!(summary.done.len(), 200);
    assert_eq!(summary.free, 0);
    drop(journal);
    // Replayed from disk, the same.
    let reopened = Journal::open(&dir.path().join("j"), &all).unwrap();
    assert_eq!(reopened.summary().done.len(), 200);
}

#[test]
fn failed_rows_are_kept_and_release_frees_them() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("values.csv.journal");
    let all = rows(3);
    let mut journal = Journal::open(&path, &all).unwrap();
    let first = journal.next("p0").unwrap().unwrap();
    assert_eq!(first.row(), &all[0]);
    journal.fail(first, "no answer from the ROM").unwrap();
    let second = journal.next("p0").unwrap().unwrap();
    assert_eq!(
        second.row(),
        &all[1],
        "a failed row is not handed out again"
    );
    journal.complete(second, "24:6f:28:00:00:01").unwrap();
    assert!(
        matches!(
            journal.release(&all[1]),
            Err(JournalError::NotReleasable { .. })
        ),
        "done rows stay done"
    );
    journal.release(&all[0]).unwrap();
    assert_eq!(journal.state(&all[0]), Some(&RowState::Free));
    let again = journal.next("p1").unwrap().unwrap();
    assert_eq!(again.row(), &all[0], "a released row is handed out again");
    assert!(
        matches!(
            journal.release(&all[0]),
            Err(JournalError::NotReleasable { .. })
        ),
        "not while being written"
    );
    journal.complete(again, "24:6f:28:00:00:02").unwrap();
    let third = journal.next("p1").unwrap().unwrap();
    assert_eq!(third.row(), &all[2]);
    journal.fail(third, "verify mismatch").unwrap();
    assert!(journal.next("p1").unwrap().is_none());
    drop(journal);

    let text = std::fs::read_to_string(&path).unwrap();
    let verbs: Vec<&str> = text.lines().map(|l| l.split(' ').next().unwrap()).collect();
    assert_eq!(
        verbs,
        [
            "assigned", "failed", "assigned", "done", "released", "assigned", "done", "assigned",
            "failed"
        ]
    );
    assert!(
        text.lines()
            .next()
            .unwrap()
            .starts_with("assigned SN-0001 to p0 at 20")
    );
    let summary = Journal::open(&path, &all).unwrap().summary();
    assert_eq!(
        summary.failed,
        vec![(all[2].clone(), "verify mismatch".to_string())]
    );
    assert_eq!(summary.done.len(), 2);
}

#[test]
fn a_second_open_is_refused_naming_the_holder() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j");
    let first = Journal::open(&path, &rows(2)).unwrap();
    let err = Journal::open(&path, &rows(2)).unwrap_err();
    assert!(matches!(err, JournalError::Locked { .. }), "{err}");
    assert!(
        err.to_string()
            .contains(&format!("process {}", std::process::id())),
        "{err}"
    );
    drop(first);
    Journal::open(&path, &rows(2)).expect("free again once the holder is gone");
}

#[test]
fn replay_keeps_unfinished_rows_in_doubt_and_cuts_a_torn_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j");
    let all = rows(4);
    let mut journal = Journal::open(&path, &all).unwrap();
    let a = journal.next("p").unwrap().unwrap();
    journal.complete(a, "m1").unwrap();
    let _in_doubt = journal.next("p").unwrap().unwrap();
    drop(journal);
    let before = std::fs::read(&path).unwrap();
    std::fs::write(
        &path,
        [before.as_slice(), b"assigned SN-0003 to p at 2026-"].concat(),
    )
    .unwrap();

    let mut journal = Journal::open(&path, &all).unwrap();
    let torn = journal.torn_tail().expect("the torn line is reported");
    assert_eq!(torn.text, "assigned SN-0003 to p at 2026-");
    assert_eq!(
        std::fs::read(&path).unwrap(),
        before,
        "the torn line is cut off"
    );
    let summary = journal.summary();
    assert_eq!(summary.in_doubt.len(), 1);
    assert_eq!(summary.in_doubt[0].row, all[1]);
    assert_eq!(summary.free, 2);
    assert_eq!(
        journal.next("p").unwrap().unwrap().row(),
        &all[2],
        "the in-doubt row is skipped, the torn one reused"
    );
}

#[test]
fn damaged_or_foreign_journals_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j");
    std::fs::write(&path, "assigned SN-0001 to p at t\nshipped SN-0001\n").unwrap();
    let err = Journal::open(&path, &rows(2)).unwrap_err();
    assert!(
        matches!(err, JournalError::Corrupt { line: 2, .. }),
        "{err}"
    );
    std::fs::write(&path, "done SN-0001 m\n").unwrap();
    let err = Journal::open(&path, &rows(2)).unwrap_err();
    assert!(
        matches!(err, JournalError::Corrupt { line: 1, .. }),
        "a row done before it was assigned: {err}"
    );
    std::fs::write(&path, "assigned OTHER-1 to p at t\n").unwrap();
    let err = Journal::open(&path, &rows(2)).unwrap_err();
    assert!(matches!(err, JournalError::UnknownRow { .. }), "{err}");
    assert!(err.to_string().contains("OTHER-1"), "{err}");
}

#[test]
fn default_path_sits_beside_the_values_file() {
    assert_eq!(
        Journal::default_path(std::path::Path::new("batch/values.csv")),
        std::path::Path::new("batch/values.csv.journal")
    );
}

#[test]
fn a_completion_that_cannot_be_recorded_leaves_the_row_in_doubt() {
    let dir = tempfile::tempdir().unwrap();
    let all = rows(2);
    let mut journal = Journal::open(&dir.path().join("j"), &all).unwrap();
    let alloc = journal.next("p").unwrap().unwrap();
    let err = journal.complete(alloc, "").unwrap_err();
    assert!(matches!(err, JournalError::Empty("MAC")), "{err}");
    let summary = journal.summary();
    assert_eq!(summary.in_doubt.len(), 1, "{summary:?}");
    assert!(summary.in_progress.is_empty());
    assert_eq!(journal.next("p").unwrap().unwrap().row(), &all[1]);
}
