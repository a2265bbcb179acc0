//! The line database's costs (docs/benchmarks.md, "Line database"): what claiming a row,
//! finishing it and storing the board's record add to one board, on a local PostgreSQL server
//! (started here, testkit::pg) and on the embedded SQLite file; and the claims per second that
//! 8 concurrent clients sustain on the server. Prints a Markdown report.
//!
//! Targets (issue 25): at most 20 ms per board on a local server; at least 500 claims/s with
//! 8 clients.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use clap::Parser;
use linedb::{Claimant, Finish, NewRow, Record, Store};
use testkit::pg::PgServer;

/// Line database benchmark.
#[derive(Debug, Parser)]
struct Args {
    /// Boards for the per-board latency.
    #[arg(long, default_value_t = 500)]
    boards: usize,
    /// Concurrent clients for the throughput.
    #[arg(long, default_value_t = 8)]
    clients: usize,
    /// Claims per client for the throughput.
    #[arg(long, default_value_t = 500)]
    claims: usize,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let server = PgServer::start();
    // SAFETY: set before any store reads the environment, with one thread running.
    unsafe { std::env::set_var("PGPASSWORD", server.password()) };
    println!("## Line database\n");
    println!("| what | store | n | p50 | p95 | max | result |");
    println!("|---|---|---:|---:|---:|---:|---|");
    let pg = server.database("bench_board");
    per_board("PostgreSQL 127.0.0.1", &pg, args.boards)?;
    let dir = tempfile::tempdir()?;
    let sqlite = format!("sqlite:{}", dir.path().join("bench.db").display());
    per_board("embedded SQLite", &sqlite, args.boards)?;
    let pg = server.database("bench_claims");
    throughput(&pg, args.clients, args.claims)?;
    Ok(())
}

fn rows(prefix: &str, n: usize) -> Vec<NewRow> {
    (0..n)
        .map(|i| NewRow {
            id: format!("{prefix}{i:06}"),
            digest: format!("{i:064x}"),
        })
        .collect()
}

fn mac(client: usize, i: usize) -> String {
    format!(
        "02:{client:02x}:00:{:02x}:{:02x}:{:02x}",
        i >> 16 & 0xff,
        i >> 8 & 0xff,
        i & 0xff
    )
}

/// A board's share: claim, finish done, store a record the size of a real one.
fn per_board(what: &str, url: &str, boards: usize) -> Result<()> {
    let store = Store::open(url).with_context(|| format!("open {url}"))?;
    store.load_rows(&rows("B", boards))?;
    let who = Claimant {
        station: "bench".into(),
        port: "/dev/ttyUSB0".into(),
    };
    let json = format!("{{\"outcome\":\"ok\",\"pad\":\"{}\"}}", "x".repeat(2000));
    let mut times = Vec::with_capacity(boards);
    for i in 0..boards {
        let mac = mac(0, i);
        let started = Instant::now();
        let claim = store.claim(&mac, &who)?.context("a row for each board")?;
        store.finish(&claim.row, &mac, &Finish::Done)?;
        store.record(&Record {
            id: linedb::new_record_id(),
            time: "2026-12-07T10:00:00Z".into(),
            mac: Some(mac.clone()),
            row: Some(claim.row),
            outcome: "ok".into(),
            regions_md5: r#"{"app":"00112233445566778899aabbccddeeff"}"#.into(),
            json: json.clone(),
            ..Record::default()
        })?;
        times.push(started.elapsed());
    }
    times.sort();
    let pick = |q: f64| times[((times.len() - 1) as f64 * q) as usize];
    let max = *times.last().expect("boards > 0");
    let verdict = if pick(0.95) <= Duration::from_millis(20) {
        "p95 within 20 ms"
    } else {
        "p95 OVER 20 ms"
    };
    println!(
        "| claim + finish + record per board | {what} | {boards} | {} | {} | {} | {verdict} |",
        ms(pick(0.5)),
        ms(pick(0.95)),
        ms(max)
    );
    Ok(())
}

/// `clients` processes' worth of connections claiming `claims` rows each at once.
fn throughput(url: &str, clients: usize, claims: usize) -> Result<()> {
    Store::open(url)?.load_rows(&rows("T", clients * claims))?;
    let stores: Vec<Store> = (0..clients)
        .map(|_| Store::open(url))
        .collect::<Result<_, _>>()?;
    let started = Instant::now();
    let claimed: usize = std::thread::scope(|s| {
        let handles: Vec<_> = stores
            .iter()
            .enumerate()
            .map(|(c, store)| {
                s.spawn(move || {
                    let who = Claimant {
                        station: format!("bench{c}"),
                        port: "p".into(),
                    };
                    (0..claims)
                        .filter(|&i| matches!(store.claim(&mac(c + 1, i), &who), Ok(Some(_))))
                        .count()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or(0)).sum()
    });
    let elapsed = started.elapsed();
    ensure!(
        claimed == clients * claims,
        "{claimed} claims of {}",
        clients * claims
    );
    let rate = claimed as f64 / elapsed.as_secs_f64();
    let verdict = if rate >= 500.0 {
        "at least 500/s"
    } else {
        "UNDER 500/s"
    };
    println!(
        "| claims/s, {clients} clients at once | PostgreSQL 127.0.0.1 | {claimed} | | | | {rate:.0} claims/s in {:.2} s: {verdict} |",
        elapsed.as_secs_f64()
    );
    Ok(())
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}
