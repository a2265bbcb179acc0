//! The store's interface against both databases: a real PostgreSQL server started by this
//! test binary (testkit::pg) and the embedded SQLite file.

use std::collections::HashSet;
use std::sync::OnceLock;

use linedb::{Claimant, DbError, Finish, ImportedState, NewRow, Query, Record, Store};
use testkit::pg::PgServer;

/// The shared server, with its password in `PGPASSWORD` for every store of this binary.
fn server() -> &'static PgServer {
    static ENV: OnceLock<()> = OnceLock::new();
    let server = PgServer::shared();
    ENV.get_or_init(|| {
        // SAFETY: set once, before any store of this binary reads the environment.
        unsafe { std::env::set_var("PGPASSWORD", server.password()) };
    });
    server
}

/// A fresh database of each kind: (PostgreSQL URL, SQLite URL), the SQLite file in `dir`.
fn urls(name: &str, dir: &tempfile::TempDir) -> [String; 2] {
    [
        server().database(name),
        format!("sqlite:{}", dir.path().join(format!("{name}.db")).display()),
    ]
}

fn rows(n: usize) -> Vec<NewRow> {
    (1..=n)
        .map(|i| NewRow {
            id: format!("R{i:03}"),
            digest: format!("digest-{i}"),
        })
        .collect()
}

fn station(port: &str) -> Claimant {
    Claimant {
        station: "st1".into(),
        port: port.into(),
    }
}

fn mac(i: usize) -> String {
    format!("02:00:00:00:{:02x}:{:02x}", i / 256, i % 256)
}

#[test]
fn loading_is_idempotent_and_a_changed_row_is_refused_by_its_id() {
    let dir = tempfile::tempdir().unwrap();
    for url in urls("load", &dir) {
        let store = Store::open(&url).unwrap();
        let first = store.load_rows(&rows(5)).unwrap();
        assert_eq!((first.added, first.known), (5, 0), "{url}");
        let again = store.load_rows(&rows(7)).unwrap();
        assert_eq!((again.added, again.known), (2, 5), "{url}");
        let mut changed = rows(8);
        changed[3].digest = "other".into();
        let e = store.load_rows(&changed).unwrap_err();
        assert!(
            matches!(&e, DbError::RowChanged { id } if id == "R004"),
            "{url}: {e}"
        );
        assert!(e.to_string().contains("R004"), "{e}");
        // Nothing of the refused load went in: R008 is still unknown.
        assert_eq!(store.summary().unwrap().free, 7, "{url}");
    }
}

#[test]
fn a_mac_keeps_its_row_and_rows_run_out() {
    let dir = tempfile::tempdir().unwrap();
    for url in urls("claim", &dir) {
        let store = Store::open(&url).unwrap();
        store.load_rows(&rows(3)).unwrap();
        let a = store.claim(&mac(1), &station("p1")).unwrap().unwrap();
        assert_eq!((a.row.as_str(), a.again), ("R001", false), "{url}");
        let b = store.claim(&mac(2), &station("p2")).unwrap().unwrap();
        assert_eq!(b.row, "R002");
        // The first board comes back (a retry, or a second run): its own row again.
        let a2 = store.claim(&mac(1), &station("p1")).unwrap().unwrap();
        assert_eq!((a2.row.as_str(), a2.again), ("R001", true), "{url}");
        store.finish("R001", &mac(1), &Finish::Done).unwrap();
        store
            .finish("R002", &mac(2), &Finish::Failed("verify failed".into()))
            .unwrap();
        let c = store.claim(&mac(3), &station("p3")).unwrap().unwrap();
        assert_eq!(c.row, "R003");
        store
            .finish("R003", &mac(3), &Finish::InDoubt("station stopped".into()))
            .unwrap();
        assert_eq!(store.claim(&mac(4), &station("p4")).unwrap(), None, "{url}");
        let summary = store.summary().unwrap();
        assert_eq!(summary.done, 1);
        assert_eq!(summary.failed, ["R002"]);
        assert_eq!(summary.in_doubt, ["R003"]);
        assert_eq!((summary.free, summary.writing), (0, 0));
        // A board's outcome for a row it does not hold is refused.
        assert!(matches!(
            store.finish("R001", &mac(9), &Finish::Done),
            Err(DbError::NotClaimed { .. })
        ));
    }
}

#[test]
fn only_failed_and_in_doubt_rows_are_given_back() {
    let dir = tempfile::tempdir().unwrap();
    for url in urls("release", &dir) {
        let store = Store::open(&url).unwrap();
        store.load_rows(&rows(3)).unwrap();
        for i in 1..=3 {
            store.claim(&mac(i), &station("p")).unwrap();
        }
        store.finish("R001", &mac(1), &Finish::Done).unwrap();
        store
            .finish("R002", &mac(2), &Finish::Failed("no".into()))
            .unwrap();
        let e = store.release("R001").unwrap_err();
        assert!(e.to_string().contains("`R001` is done"), "{e}");
        assert!(matches!(
            store.release("R003"),
            Err(DbError::NotReleasable { .. })
        ));
        assert!(matches!(store.release("R404"), Err(DbError::NoSuchRow(_))));
        store.release("R002").unwrap();
        // The released row goes to the next new board, not to its old one by MAC.
        let next = store.claim(&mac(7), &station("p")).unwrap().unwrap();
        assert_eq!(next.row, "R002", "{url}");
    }
}

#[test]
fn a_claim_whose_station_went_away_is_in_doubt_on_postgresql() {
    let url = server().database("gone");
    let other = Store::open(&url).unwrap();
    other.load_rows(&rows(2)).unwrap();
    {
        let station = Store::open(&url).unwrap();
        station
            .claim(&mac(1), &station_of("gone"))
            .unwrap()
            .unwrap();
        let live = other.summary().unwrap();
        assert_eq!((live.writing, live.in_doubt.len()), (1, 0));
    }
    // The station's connection is closed: its claim is in doubt, and can be given back.
    let mut summary = other.summary().unwrap();
    for _ in 0..50 {
        if !summary.in_doubt.is_empty() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
        summary = other.summary().unwrap();
    }
    assert_eq!(summary.in_doubt, ["R001"]);
    other.release("R001").unwrap();
}

fn station_of(name: &str) -> Claimant {
    Claimant {
        station: name.into(),
        port: "p".into(),
    }
}

#[test]
fn concurrent_clients_claim_each_row_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    for url in urls("race", &dir) {
        Store::open(&url).unwrap().load_rows(&rows(120)).unwrap();
        let claimed: Vec<String> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|t| {
                    let url = url.clone();
                    s.spawn(move || {
                        let store = Store::open(&url).unwrap();
                        (0..20)
                            .filter_map(|i| {
                                store
                                    .claim(&mac(t * 100 + i), &station("p"))
                                    .unwrap()
                                    .map(|c| c.row)
                            })
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().unwrap())
                .collect()
        });
        let distinct: HashSet<&String> = claimed.iter().collect();
        assert_eq!((claimed.len(), distinct.len()), (120, 120), "{url}");
    }
}

fn record(id: &str, mac: &str, row: &str, time: &str) -> Record {
    Record {
        id: id.into(),
        time: time.into(),
        mac: Some(mac.into()),
        chip: Some("esp32s3".into()),
        row: Some(row.into()),
        station: Some("st1".into()),
        outcome: "ok".into(),
        regions_md5: r#"{"app":"00112233445566778899aabbccddeeff"}"#.into(),
        json: format!(r#"{{"outcome":"ok","nvs_row":"{row}"}}"#),
        ..Record::default()
    }
}

#[test]
fn records_are_kept_once_by_id_and_queried_by_mac_row_and_time() {
    let dir = tempfile::tempdir().unwrap();
    for url in urls("records", &dir) {
        let store = Store::open(&url).unwrap();
        let a = record("id-a", &mac(1), "R001", "2026-12-01T08:00:00Z");
        let b = record("id-b", &mac(2), "R002", "2026-12-02T09:30:00Z");
        assert!(store.record(&a).unwrap());
        assert!(store.record(&b).unwrap());
        assert!(
            !store.record(&a).unwrap(),
            "{url}: a record sent twice is kept once"
        );
        let all = store.records(&Query::default()).unwrap();
        assert_eq!(all, [a.clone(), b.clone()], "{url}");
        let by_mac = Query {
            mac: Some(mac(2)),
            ..Query::default()
        };
        assert_eq!(store.records(&by_mac).unwrap(), std::slice::from_ref(&b));
        let by_row = Query {
            row: Some("R001".into()),
            ..Query::default()
        };
        assert_eq!(store.records(&by_row).unwrap(), std::slice::from_ref(&a));
        for since in ["2026-12-02", "2026-12-02T00:00:00Z"] {
            let q = Query {
                since: Some(since.into()),
                ..Query::default()
            };
            assert_eq!(
                store.records(&q).unwrap(),
                std::slice::from_ref(&b),
                "{url} since {since}"
            );
        }
    }
}

#[test]
fn a_journal_is_imported_once() {
    let dir = tempfile::tempdir().unwrap();
    for url in urls("import", &dir) {
        let store = Store::open(&url).unwrap();
        store.load_rows(&rows(4)).unwrap();
        let journal = [
            ("R001".to_string(), ImportedState::Done(mac(1))),
            ("R002".to_string(), ImportedState::Failed("verify".into())),
            ("R003".to_string(), ImportedState::InDoubt),
            ("R004".to_string(), ImportedState::Free),
        ];
        assert!(
            store
                .import_journal("values.csv.journal", &journal)
                .unwrap()
        );
        let summary = store.summary().unwrap();
        assert_eq!(summary.done, 1);
        assert_eq!(summary.failed, ["R002"]);
        assert_eq!(summary.in_doubt, ["R003"]);
        assert_eq!(summary.free, 1);
        // The done row's board keeps its row; a second import changes nothing.
        store.claim(&mac(9), &station("p")).unwrap();
        assert!(
            !store
                .import_journal("values.csv.journal", &journal)
                .unwrap()
        );
        let again = store.claim(&mac(1), &station("p")).unwrap().unwrap();
        assert_eq!((again.row.as_str(), again.again), ("R001", true), "{url}");
    }
}

#[test]
fn a_wrong_password_and_a_server_away_are_one_clear_line() {
    let server = server();
    let url = server.database("auth");
    server.psql("postgres", "CREATE ROLE intruder LOGIN PASSWORD 'other'");
    let intruder = url.replacen("line@", "intruder@", 1);
    let e = Store::open(&intruder).unwrap_err();
    assert!(matches!(e, DbError::Refused { .. }), "{e}");
    let text = e.to_string();
    assert!(text.contains("password authentication failed"), "{text}");
    assert!(text.contains("PGPASSWORD or ~/.pgpass"), "{text}");
    assert!(!text.contains(server.password()), "{text}");
    assert!(!text.contains('\n'), "{text}");

    let nobody = format!("postgres://line@127.0.0.1:{}/x", testkit::pg::free_port());
    let e = Store::open(&nobody).unwrap_err();
    assert!(e.is_unavailable(), "{e}");
    assert!(
        e.to_string().starts_with("the database line@127.0.0.1:"),
        "{e}"
    );
}

#[test]
fn tables_that_cannot_be_made_are_one_clear_line() {
    let server = server();
    let url = server.database("noschema");
    server.psql(
        "postgres",
        &format!("CREATE ROLE visitor LOGIN PASSWORD '{}'", server.password()),
    );
    // PostgreSQL 15 lets only the database's owner create tables in `public`.
    let visitor = url.replacen("line@", "visitor@", 1);
    let e = Store::open(&visitor).unwrap_err();
    assert!(matches!(e, DbError::Schema { .. }), "{e}");
    let text = e.to_string();
    assert!(text.contains("has no usable line tables"), "{text}");
    assert!(text.contains("permission denied"), "{text}");
    assert!(!text.contains('\n'), "{text}");
}
