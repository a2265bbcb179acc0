//! The server stopped and started again under a running store: operations fail as
//! "unavailable" while it is away, records wait in the spool, and everything goes on on a new
//! connection once it is back, nothing lost and nothing stored twice.

use linedb::spool::Spool;
use linedb::{Claimant, Finish, NewRow, Query, Record, Store};
use testkit::pg::PgServer;

#[test]
fn a_restart_loses_nothing_and_the_spool_sends_each_record_once() {
    let server = PgServer::start();
    // SAFETY: the only test of this binary, before any store reads the environment.
    unsafe { std::env::set_var("PGPASSWORD", server.password()) };
    let url = server.database("restart");
    let store = Store::open(&url).unwrap();
    let rows: Vec<NewRow> = (1..=3)
        .map(|i| NewRow {
            id: format!("R{i}"),
            digest: format!("d{i}"),
        })
        .collect();
    store.load_rows(&rows).unwrap();
    let who = Claimant {
        station: "st".into(),
        port: "p".into(),
    };
    let first = store.claim("02:00:00:00:00:01", &who).unwrap().unwrap();

    server.stop();
    let e = store.claim("02:00:00:00:00:02", &who).unwrap_err();
    assert!(e.is_unavailable(), "{e}");
    let e = store
        .finish(&first.row, "02:00:00:00:00:01", &Finish::Done)
        .unwrap_err();
    assert!(e.is_unavailable(), "{e}");
    let dir = tempfile::tempdir().unwrap();
    let spool = Spool::new(&dir.path().join("spool"));
    let record = Record {
        id: linedb::new_record_id(),
        time: "2026-12-07T10:00:00Z".into(),
        mac: Some("02:00:00:00:00:01".into()),
        row: Some(first.row.clone()),
        outcome: "ok".into(),
        regions_md5: "{}".into(),
        json: "{}".into(),
        ..Record::default()
    };
    let kept = spool.keep(&record).unwrap();
    assert!(kept.is_file());
    assert!(
        spool
            .send(&store)
            .unwrap_err()
            .to_string()
            .contains("cannot be reached")
    );
    assert!(kept.is_file(), "a record not sent stays in the spool");

    server.resume();
    store
        .finish(&first.row, "02:00:00:00:00:01", &Finish::Done)
        .unwrap();
    assert_eq!(spool.send(&store).unwrap(), 1);
    assert!(!kept.exists());
    // Sent again (a crash between storing and removing the file): kept once.
    spool.keep(&record).unwrap();
    assert_eq!(spool.send(&store).unwrap(), 1);
    assert_eq!(store.records(&Query::default()).unwrap(), [record]);
    let second = store.claim("02:00:00:00:00:02", &who).unwrap().unwrap();
    assert_eq!(second.row, "R2");
    let summary = store.summary().unwrap();
    assert_eq!((summary.done, summary.writing, summary.free), (1, 1, 1));
}
