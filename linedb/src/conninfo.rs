//! `--db` URLs as libpq users write them: `postgres://user@host:port/db?sslmode=…`, the
//! password from `PGPASSWORD` or the password file (`PGPASSFILE`, else `~/.pgpass`), never from
//! the URL; `sslmode=verify-full` checks the server's certificate against `sslrootcert` (else
//! `~/.postgresql/root.crt`) and its name. Anything else is the embedded database's path.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use crate::DbError;

/// Which database a URL names.
pub(crate) enum Target {
    /// The embedded database at this path.
    Sqlite(PathBuf),
    /// A PostgreSQL server.
    Postgres(Box<PgInfo>),
}

/// How to connect to a PostgreSQL server.
pub(crate) struct PgInfo {
    /// The client's configuration, password included.
    pub config: postgres::Config,
    /// The TLS configuration for `sslmode=verify-full`.
    pub tls: Option<Arc<rustls::ClientConfig>>,
    /// `user@host:port/db`, for messages.
    pub target: String,
}

/// Parses `url`.
pub(crate) fn parse(url: &str) -> Result<Target, DbError> {
    let bad = |reason: String| DbError::Url {
        url: redact(url),
        reason,
    };
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return postgres_info(url)
            .map(|i| Target::Postgres(Box::new(i)))
            .map_err(bad);
    }
    let path = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .unwrap_or(url);
    if path.contains("://") {
        return Err(bad(
            "not a database URL; use postgres://USER@HOST:PORT/DB for a line, or sqlite:PATH (or a path) for one station".into(),
        ));
    }
    if path.is_empty() {
        return Err(bad("the embedded database needs a path: sqlite:PATH".into()));
    }
    Ok(Target::Sqlite(PathBuf::from(path)))
}

/// `url` with any password (user info or `password=` parameter) replaced by `***`.
fn redact(url: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let base = match base.split_once("://") {
        Some((scheme, rest)) => match rest.split_once('@') {
            Some((auth, host)) if auth.contains(':') => {
                let user = auth.split(':').next().unwrap_or_default();
                format!("{scheme}://{user}:***@{host}")
            }
            _ => base.to_string(),
        },
        None => base.to_string(),
    };
    let Some(query) = query else {
        return base;
    };
    let query: Vec<String> = query
        .split('&')
        .map(|p| match p.split_once('=') {
            Some(("password", _)) => "password=***".to_string(),
            _ => p.to_string(),
        })
        .collect();
    format!("{base}?{}", query.join("&"))
}

/// The client configuration of a `postgres://` URL.
fn postgres_info(url: &str) -> Result<PgInfo, String> {
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    if base
        .split_once("://")
        .and_then(|(_, rest)| rest.split_once('@'))
        .is_some_and(|(auth, _)| auth.contains(':'))
    {
        return Err(no_password_here());
    }
    let mut kept = Vec::new();
    let (mut sslmode, mut rootcert) = (None, None);
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        match key {
            "password" => return Err(no_password_here()),
            "sslmode" => sslmode = Some(value.to_string()),
            "sslrootcert" => rootcert = Some(PathBuf::from(value)),
            _ => kept.push(pair),
        }
    }
    let rebuilt = if kept.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    let mut config = postgres::Config::from_str(&rebuilt).map_err(|e| format!("{e}"))?;
    let (host, port) = host_and_port(&config)?;
    let user = config
        .get_user()
        .map(str::to_string)
        .or_else(|| std::env::var("PGUSER").ok())
        .or_else(|| std::env::var("USER").ok())
        .ok_or("the URL names no user: postgres://USER@HOST/DB")?;
    let db = config.get_dbname().unwrap_or(&user).to_string();
    config.user(&user).dbname(&db);
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(std::time::Duration::from_secs(5));
    }
    if let Some(password) = password(&host, port, &db, &user) {
        config.password(password);
    }
    let tls = tls_config(sslmode.as_deref(), rootcert.as_deref(), &mut config)?;
    Ok(PgInfo {
        config,
        tls,
        target: format!("{user}@{host}:{port}/{db}"),
    })
}

fn no_password_here() -> String {
    "a password does not belong in the URL (it would show in process lists and logs); set PGPASSWORD or put it in ~/.pgpass (HOST:PORT:DB:USER:PASSWORD, mode 0600)".into()
}

/// The one host and port of `config` (default port 5432).
fn host_and_port(config: &postgres::Config) -> Result<(String, u16), String> {
    let host = match config.get_hosts() {
        [] => return Err("the URL names no host: postgres://USER@HOST:PORT/DB".into()),
        [postgres::config::Host::Tcp(h)] => h.clone(),
        [postgres::config::Host::Unix(p)] => p.display().to_string(),
        _ => return Err("name one host in the URL".into()),
    };
    Ok((host, config.get_ports().first().copied().unwrap_or(5432)))
}

/// The password: `PGPASSWORD`, else the first matching line of the password file.
fn password(host: &str, port: u16, db: &str, user: &str) -> Option<String> {
    if let Ok(p) = std::env::var("PGPASSWORD") {
        return Some(p);
    }
    let file = std::env::var_os("PGPASSFILE")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".pgpass")))?;
    let text = std::fs::read_to_string(file).ok()?;
    pgpass_lookup(&text, host, port, db, user)
}

/// The password of the first line of a `.pgpass` text matching the connection (`*` matches
/// anything; `\:` and `\\` escape).
pub(crate) fn pgpass_lookup(
    text: &str,
    host: &str,
    port: u16,
    db: &str,
    user: &str,
) -> Option<String> {
    let port = port.to_string();
    let wanted = [host, port.as_str(), db, user];
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .map(pgpass_fields)
        .filter(|f| f.len() == 5)
        .find(|f| {
            f.iter()
                .zip(wanted)
                .all(|(field, want)| field == "*" || field == want)
        })
        .map(|f| f[4].clone())
}

fn pgpass_fields(line: &str) -> Vec<String> {
    let mut fields = vec![String::new()];
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(next) = chars.next() {
                    fields.last_mut().expect("one field").push(next);
                }
            }
            ':' if fields.len() < 5 => fields.push(String::new()),
            c => fields.last_mut().expect("one field").push(c),
        }
    }
    fields
}

/// The TLS configuration `sslmode` asks for: none for `disable`, `allow` and `prefer` (and
/// without `sslmode`), certificate and name checks for `verify-full`; `require` and
/// `verify-ca` (no name check) are refused.
fn tls_config(
    sslmode: Option<&str>,
    rootcert: Option<&Path>,
    config: &mut postgres::Config,
) -> Result<Option<Arc<rustls::ClientConfig>>, String> {
    match sslmode {
        None | Some("disable" | "allow" | "prefer") => {
            config.ssl_mode(postgres::config::SslMode::Disable);
            return Ok(None);
        }
        Some("verify-full") => {}
        Some(other) => {
            return Err(format!(
                "sslmode={other} is not supported: use sslmode=verify-full&sslrootcert=CA.pem (the server's certificate and name checked), or no sslmode"
            ));
        }
    }
    let path = match rootcert {
        Some(p) => p.to_path_buf(),
        None => std::env::var_os("HOME")
            .map(|h| Path::new(&h).join(".postgresql/root.crt"))
            .ok_or("sslmode=verify-full needs sslrootcert=CA.pem")?,
    };
    let roots = root_store(&path)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.ssl_mode(postgres::config::SslMode::Require);
    Ok(Some(Arc::new(tls)))
}

/// The CA certificates of a PEM file.
fn root_store(path: &Path) -> Result<rustls::RootCertStore, String> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let what = |e: &dyn std::fmt::Display| format!("sslrootcert {}: {e}", path.display());
    let certs: Vec<CertificateDer> = CertificateDer::pem_file_iter(path)
        .map_err(|e| what(&e))?
        .collect::<Result<_, _>>()
        .map_err(|e| what(&e))?;
    if certs.is_empty() {
        return Err(what(&"no PEM certificate in it"));
    }
    let mut roots = rustls::RootCertStore::empty();
    for cert in certs {
        roots.add(cert).map_err(|e| what(&e))?;
    }
    Ok(roots)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pgpass_lines_match_with_wildcards_and_escapes() {
        let text = "# comment\nother:5432:*:line:no\n127.0.0.1:*:*:line:s\\:cret\\\\x\n";
        assert_eq!(
            pgpass_lookup(text, "127.0.0.1", 5433, "postgres", "line").as_deref(),
            Some("s:cret\\x")
        );
        assert_eq!(pgpass_lookup(text, "10.0.0.1", 5433, "db", "line"), None);
    }

    #[test]
    fn passwords_in_the_url_are_refused_and_never_repeated() {
        for url in [
            "postgres://line:secret@127.0.0.1/db",
            "postgres://line@127.0.0.1/db?password=secret",
        ] {
            let Err(e) = parse(url) else {
                panic!("{url} accepted")
            };
            let text = e.to_string();
            assert!(text.contains("PGPASSWORD"), "{text}");
            assert!(!text.contains("secret"), "{text}");
        }
    }

    #[test]
    fn other_schemes_and_unchecked_tls_are_refused() {
        for url in [
            "mysql://x@h/db",
            "postgres://line@h/db?sslmode=require",
            "postgres://line@h/db?sslmode=verify-full&sslrootcert=/nonexistent.pem",
        ] {
            assert!(parse(url).is_err(), "{url}");
        }
        assert!(matches!(parse("sqlite:a.db"), Ok(Target::Sqlite(p)) if p == Path::new("a.db")));
        assert!(matches!(parse("line.db"), Ok(Target::Sqlite(_))));
    }
}
