//! `flasher records --db URL [--mac M] [--row ID] [--since T] [--json|--csv]`: the boards'
//! records in the line's database, oldest first, as a table, JSON lines or CSV.

use std::io::Write;

use linedb::{DbError, Query, Record, Store};

use crate::cli::Records;
use crate::error::ExitKind;

/// Prints the records `query` asks for; returns the exit code (2 for a bad URL, 1 when the
/// database refuses or is away).
pub fn records(query: &Records) -> u8 {
    match print(query) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("error: {e}");
            let kind = match e {
                DbError::Url { .. } => ExitKind::Usage,
                _ => ExitKind::Other,
            };
            kind.code()
        }
    }
}

fn print(query: &Records) -> Result<(), DbError> {
    check_file(&query.db)?;
    let store = Store::open(&query.db)?;
    let found = store.records(&Query {
        mac: query.mac.as_ref().map(|m| m.to_ascii_lowercase()),
        row: query.row.clone(),
        since: query.since.clone(),
    })?;
    let text = if query.json {
        found.iter().map(|r| format!("{}\n", r.json)).collect()
    } else if query.csv {
        csv_text(&found)
    } else {
        table(&found)
    };
    // A closed pipe (`| head`) is not an error.
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
    Ok(())
}

/// Refuses an embedded database that does not exist (opening it would make an empty one).
fn check_file(url: &str) -> Result<(), DbError> {
    if url.contains("://") && !url.starts_with("sqlite://") {
        return Ok(());
    }
    let path = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .unwrap_or(url);
    if std::path::Path::new(path).is_file() {
        return Ok(());
    }
    Err(DbError::Url {
        url: url.to_string(),
        reason: "no such database file; a station's embedded database is VALUES.csv.db beside its values file".into(),
    })
}

/// The records as CSV, a header first.
fn csv_text(found: &[Record]) -> String {
    let mut out = csv::Writer::from_writer(Vec::new());
    let header = [
        "id",
        "time",
        "mac",
        "chip",
        "revision",
        "flash_id",
        "row",
        "station",
        "port",
        "outcome",
        "exit_code",
        "reason",
        "image_digest",
        "regions_md5",
    ];
    out.write_record(header).expect("writing to memory");
    for r in found {
        let o = |v: &Option<String>| v.clone().unwrap_or_default();
        out.write_record([
            r.id.clone(),
            r.time.clone(),
            o(&r.mac),
            o(&r.chip),
            o(&r.revision),
            o(&r.flash_id),
            o(&r.row),
            o(&r.station),
            o(&r.port),
            r.outcome.clone(),
            r.exit_code.to_string(),
            o(&r.reason),
            o(&r.image_digest),
            r.regions_md5.clone(),
        ])
        .expect("writing to memory");
    }
    String::from_utf8(out.into_inner().expect("writing to memory")).expect("CSV of UTF-8")
}

/// The records as a table: time, MAC, row, station, outcome (with the exit code and reason
/// of a failure).
fn table(found: &[Record]) -> String {
    let mut out = format!(
        "{:<20}  {:<17}  {:<12}  {:<12}  outcome\n",
        "time", "mac", "row", "station"
    );
    for r in found {
        let outcome = match &r.reason {
            Some(reason) => format!("{} (exit {}): {reason}", r.outcome, r.exit_code),
            None => r.outcome.clone(),
        };
        out.push_str(&format!(
            "{:<20}  {:<17}  {:<12}  {:<12}  {outcome}\n",
            r.time,
            r.mac.as_deref().unwrap_or("-"),
            r.row.as_deref().unwrap_or("-"),
            r.station.as_deref().unwrap_or("-"),
        ));
    }
    out
}
