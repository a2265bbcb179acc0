//! libpq conventions against a real server: the password from `~/.pgpass` (here through
//! `PGPASSFILE`; `PGPASSWORD` is never set in this binary), and `sslmode=verify-full`: the
//! server's certificate checked against `sslrootcert` and its name, by rustls. The
//! certificates are made by `openssl` for the test.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use linedb::{DbError, Store};
use testkit::pg::PgServer;

/// The server of this binary with TLS on, and the directory of its CA (`ca.crt`) and of a
/// CA that did not sign it (`other.crt`); the password file set up.
fn server() -> (&'static PgServer, &'static Path) {
    static CERTS: OnceLock<PathBuf> = OnceLock::new();
    let server = PgServer::shared();
    let certs = CERTS.get_or_init(|| {
        // Beside the server's data: removed with it.
        let certs = server.data_dir().with_file_name("certs");
        std::fs::create_dir_all(&certs).unwrap();
        make_certificates(&certs);
        for file in ["server.crt", "server.key"] {
            std::fs::copy(certs.join(file), server.data_dir().join(file)).unwrap();
        }
        let data = server.data_dir();
        use std::os::unix::fs::PermissionsExt;
        let key = std::fs::Permissions::from_mode(0o600);
        std::fs::set_permissions(data.join("server.key"), key).unwrap();
        if unsafe { libc::geteuid() } == 0 {
            let status = Command::new("chown")
                .args(["postgres:postgres"])
                .arg(data.join("server.crt"))
                .arg(data.join("server.key"))
                .status()
                .unwrap();
            assert!(status.success());
        }
        server.psql("postgres", "ALTER SYSTEM SET ssl = on");
        server.psql("postgres", "SELECT pg_reload_conf()");
        let pgpass = certs.join("pgpass");
        std::fs::write(
            &pgpass,
            format!("127.0.0.1:{}:*:line:{}\n", server.port(), server.password()),
        )
        .unwrap();
        // SAFETY: set once, before any store of this binary reads the environment.
        unsafe {
            std::env::remove_var("PGPASSWORD");
            std::env::set_var("PGPASSFILE", &pgpass);
        }
        certs
    });
    (server, certs)
}

/// A CA, a server certificate it signs for 127.0.0.1 only, and another CA.
fn make_certificates(dir: &Path) {
    let openssl = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl runs (apt-get install openssl; scripts/setup-tests does)");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    for ca in ["ca", "other"] {
        openssl(&[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            &format!("/CN=line test {ca}"),
            "-keyout",
            &format!("{ca}.key"),
            "-out",
            &format!("{ca}.crt"),
        ]);
    }
    openssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=127.0.0.1",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
    ]);
    std::fs::write(dir.join("san.ext"), "subjectAltName=IP:127.0.0.1\n").unwrap();
    openssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "san.ext",
        "-out",
        "server.crt",
    ]);
}

fn url(host: &str, db: &str, ca: &str) -> String {
    let (server, certs) = server();
    format!(
        "postgres://line@{host}:{}/{db}?sslmode=verify-full&sslrootcert={}",
        server.port(),
        certs.join(ca).display()
    )
}

#[test]
fn the_password_comes_from_the_password_file() {
    let (server, _) = server();
    let store = Store::open(&server.url("postgres")).unwrap();
    assert_eq!(store.summary().unwrap().free, 0);
}

#[test]
fn verify_full_connects_over_tls_to_the_certified_name_only() {
    let store = Store::open(&url("127.0.0.1", "postgres", "ca.crt")).unwrap();
    store.summary().unwrap();

    // A CA that did not sign the server's certificate: refused, one line, before any row.
    let e = Store::open(&url("127.0.0.1", "postgres", "other.crt")).unwrap_err();
    assert!(matches!(e, DbError::Refused { .. }), "{e}");
    assert!(e.to_string().contains("certificate"), "{e}");
    // The right CA but another name than the certificate's: refused as well.
    let e = Store::open(&url("localhost", "postgres", "ca.crt")).unwrap_err();
    assert!(e.to_string().contains("certificate"), "{e}");
}

#[test]
fn a_missing_root_certificate_is_a_bad_url() {
    let e = Store::open(&url("127.0.0.1", "postgres", "missing.crt")).unwrap_err();
    assert!(matches!(e, DbError::Url { .. }), "{e}");
    assert!(e.to_string().contains("sslrootcert"), "{e}");
}
