//! A real PostgreSQL server for the tests: Debian's `postgresql`, initialised in a temporary
//! directory and started on a free loopback port with a password (scram-sha-256), as the
//! `postgres` user when the tests run as root (the server refuses root).
//!
//! [`PgServer::shared`] starts one server per test binary, stopped when the binary exits
//! (tests that panic included); a watcher process stops it as well if the binary is killed.
//! Each test takes its own database ([`PgServer::database`]).

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The user the server is initialised with.
pub const USER: &str = "line";

/// A running server.
#[derive(Debug)]
pub struct PgServer {
    dir: PathBuf,
    bin: PathBuf,
    port: u16,
    password: String,
}

static SHARED: OnceLock<PgServer> = OnceLock::new();
static DATABASES: AtomicUsize = AtomicUsize::new(0);

extern "C" fn stop_shared() {
    if let Some(server) = SHARED.get() {
        server.stop();
        let _ = std::fs::remove_dir_all(&server.dir);
    }
}

impl PgServer {
    /// The server of this test binary, started on first use.
    pub fn shared() -> &'static PgServer {
        SHARED.get_or_init(|| {
            let server = PgServer::start();
            // SAFETY: registers a plain function to run at process exit.
            unsafe { libc::atexit(stop_shared) };
            server
        })
    }

    /// Initialises and starts a new server.
    pub fn start() -> PgServer {
        let bin = server_bin();
        let dir = std::env::temp_dir().join(format!(
            "linedb-pg-{}-{}",
            std::process::id(),
            DATABASES.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::create_dir_all(dir.join("sock")).expect("make the server's directory");
        let password = format!("pw-{}", std::process::id());
        std::fs::write(dir.join("pw"), &password).expect("write the password file");
        set_owner(&dir);
        let server = PgServer {
            dir,
            bin,
            port: free_port(),
            password,
        };
        server.as_postgres(&format!(
            "{} -D {d}/pg -U {USER} --pwfile={d}/pw -A scram-sha-256 >{d}/initdb.log 2>&1",
            server.bin.join("initdb").display(),
            d = server.dir.display()
        ));
        server.resume();
        server.watch_parent();
        server
    }

    /// The port it listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The password of [`USER`] (give it as `PGPASSWORD`).
    pub fn password(&self) -> &str {
        &self.password
    }

    /// The URL of database `db` (no password in it).
    pub fn url(&self, db: &str) -> String {
        format!("postgres://{USER}@127.0.0.1:{}/{db}", self.port)
    }

    /// A new, empty database and its URL.
    pub fn database(&self, name: &str) -> String {
        let db = format!("{name}_{}", DATABASES.fetch_add(1, Ordering::SeqCst));
        self.psql("postgres", &format!("CREATE DATABASE {db}"));
        self.url(&db)
    }

    /// Runs `sql` on database `db` with `psql` and returns what it printed (unaligned, tuples
    /// only).
    pub fn psql(&self, db: &str, sql: &str) -> String {
        let out = Command::new("psql")
            .env("PGPASSWORD", &self.password)
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", sql])
            .arg(self.url(db))
            .output()
            .expect("psql runs (apt-get install postgresql-client)");
        assert!(
            out.status.success(),
            "psql `{sql}`: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// Stops the server at once (as a crash or power cut would).
    pub fn stop(&self) {
        self.as_postgres(&format!(
            "{} -D {}/pg -m immediate stop >/dev/null 2>&1 || true",
            self.bin.join("pg_ctl").display(),
            self.dir.display()
        ));
    }

    /// Starts the stopped server again on the same port and data.
    pub fn resume(&self) {
        self.as_postgres(&format!(
            "{} -D {d}/pg -l {d}/pg/log -o '-p {} -k {d}/sock -c listen_addresses=127.0.0.1 -c max_connections=200' -w start >/dev/null",
            self.bin.join("pg_ctl").display(),
            self.port,
            d = self.dir.display()
        ));
    }

    /// A data directory file, e.g. for TLS set-up (`pg/server.crt`).
    pub fn data_dir(&self) -> PathBuf {
        self.dir.join("pg")
    }

    /// Runs a shell command as the server's user.
    pub fn as_postgres(&self, script: &str) {
        let status = if is_root() {
            Command::new("su")
                .args(["postgres", "-s", "/bin/sh", "-c", script])
                .status()
        } else {
            Command::new("sh").args(["-c", script]).status()
        };
        let status = status.expect("run a shell");
        assert!(
            status.success(),
            "`{script}` failed ({status}); see {}",
            self.dir.display()
        );
    }

    /// A process that stops the server when this test binary is gone (killed included).
    fn watch_parent(&self) {
        let stop = format!(
            "{} -D {}/pg -m immediate stop",
            self.bin.join("pg_ctl").display(),
            self.dir.display()
        );
        let stop = if is_root() {
            format!("su postgres -s /bin/sh -c '{stop}'")
        } else {
            stop
        };
        let script = format!(
            "while kill -0 {} 2>/dev/null; do sleep 1; done; {stop} >/dev/null 2>&1; rm -rf {}",
            std::process::id(),
            self.dir.display()
        );
        let _ = Command::new("setsid")
            .args(["sh", "-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Debian's server binaries, `/usr/lib/postgresql/VERSION/bin` (the newest).
fn server_bin() -> PathBuf {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .map(|e| e.path().join("bin"))
        .filter(|b| b.join("initdb").is_file())
        .collect();
    versions.sort();
    versions.pop().unwrap_or_else(|| {
        panic!(
            "PostgreSQL's server is not installed (no /usr/lib/postgresql/*/bin/initdb): \
             run `apt-get install postgresql` (scripts/setup-tests does)"
        )
    })
}

fn is_root() -> bool {
    // SAFETY: reads the process's effective user id.
    unsafe { libc::geteuid() == 0 }
}

/// Gives `dir` (and what is in it) to the `postgres` user when running as root.
fn set_owner(dir: &Path) {
    if !is_root() {
        return;
    }
    let status = Command::new("chown")
        .args(["-R", "postgres:postgres"])
        .arg(dir)
        .status()
        .expect("chown runs");
    assert!(status.success(), "chown {}", dir.display());
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
}

/// A loopback port nothing listens on now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind a loopback port")
}
