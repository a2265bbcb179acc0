//! A real registry for the push tests: Debian's `docker-registry` on a free loopback port, with
//! optional htpasswd basic auth and TLS from a CA made here. Killed when dropped.
#![allow(dead_code)] // each test crate uses a different part of this module

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use testkit::tools::{require, run_ok};

/// User and password of the registry with authentication.
pub const USER: &str = "ci";
/// The right password.
pub const PASSWORD: &str = "correct-horse-battery";

/// How the registry is set up.
#[derive(Debug, Clone, Copy, Default)]
pub struct Setup {
    /// Require basic auth ([`USER`], [`PASSWORD`]).
    pub auth: bool,
    /// Serve HTTPS with a leaf certificate signed by a CA made for the test.
    pub tls: bool,
    /// With `tls`: serve a self-signed certificate instead, made as `openssl req -x509` makes
    /// it (basicConstraints CA:TRUE); `ca_dir` then holds it as `ca.crt`.
    pub self_signed: bool,
}

/// A running `docker-registry serve`.
pub struct Registry {
    child: Option<Child>,
    /// `127.0.0.1:PORT`.
    pub addr: String,
    /// Directory holding only `ca.crt` (for --ca-file and skopeo's --cert-dir), with TLS.
    pub ca_dir: Option<PathBuf>,
    root: PathBuf,
    config: PathBuf,
    log: PathBuf,
}

/// A free loopback port.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Registry {
    /// Starts a registry storing under `root` (created) and waits until it answers.
    pub fn start(root: &Path, setup: Setup) -> Registry {
        std::fs::create_dir_all(root).unwrap();
        let port = free_port();
        let addr = format!("127.0.0.1:{port}");
        let mut config = format!(
            "version: 0.1\nlog:\n  level: info\n  formatter: text\n  accesslog:\n    disabled: false\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {addr}\n  secret: test-secret\n",
            root.join("data").display()
        );
        let mut ca_dir = None;
        if setup.tls {
            let (dir, cert, key) = if setup.self_signed {
                make_self_signed(&root.join("pki"))
            } else {
                make_certificates(&root.join("pki"))
            };
            config.push_str(&format!(
                "  tls:\n    certificate: {}\n    key: {}\n",
                cert.display(),
                key.display()
            ));
            ca_dir = Some(dir);
        }
        if setup.auth {
            let htpasswd = require("htpasswd");
            let out = run_ok(Command::new(htpasswd).args(["-Bbn", USER, PASSWORD]));
            let file = root.join("htpasswd");
            std::fs::write(&file, out.stdout).unwrap();
            config.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: basic-realm\n    path: {}\n",
                file.display()
            ));
        }
        let config_path = root.join("config.yml");
        std::fs::write(&config_path, config).unwrap();
        let mut registry = Registry {
            child: None,
            addr,
            ca_dir,
            root: root.to_path_buf(),
            config: config_path,
            log: root.join("registry.log"),
        };
        registry.restart();
        registry
    }

    /// Starts the registry again (same port, same storage) after [`Registry::kill`].
    pub fn restart(&mut self) {
        self.kill();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let child = Command::new(require("docker-registry"))
            .arg("serve")
            .arg(&self.config)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start docker-registry");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(&self.addr).is_err() {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("docker-registry exited ({status}):\n{}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "docker-registry did not listen on {}:\n{}",
                self.addr,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Kills the registry (its storage stays).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The process id of the running registry.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// Everything the registry logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// How many blob uploads (`POST .../blobs/uploads/` without a mount) it has answered.
    pub fn uploads(&self) -> usize {
        self.log()
            .lines()
            .filter(|l| l.contains("\"POST /v2/") && l.contains("/blobs/uploads/ HTTP"))
            .count()
    }

    /// `docker://ADDR/REPO:TAG` for skopeo.
    pub fn docker_ref(&self, repo: &str, tag: &str) -> String {
        format!("docker://{}/{repo}:{tag}", self.addr)
    }

    /// skopeo flags reaching this registry (TLS/CA and credentials) for source (`src`) or
    /// destination (`dest`) or plain commands (``).
    pub fn skopeo_flags(&self, side: &str) -> Vec<String> {
        let p = |f: &str| {
            if side.is_empty() {
                format!("--{f}")
            } else {
                format!("--{side}-{f}")
            }
        };
        let mut flags = Vec::new();
        match &self.ca_dir {
            Some(dir) => flags.push(format!("{}={}", p("cert-dir"), dir.display())),
            None => flags.push(format!("{}=false", p("tls-verify"))),
        }
        if self.root.join("htpasswd").is_file() {
            flags.push(format!("{}={USER}:{PASSWORD}", p("creds")));
        }
        flags
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A CA and a leaf certificate for 127.0.0.1 and localhost (rustls refuses a CA certificate as
/// the server's own). Returns the directory holding only `ca.crt`, the leaf and its key.
fn make_certificates(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let openssl = require("openssl");
    std::fs::create_dir_all(dir).unwrap();
    let ca_dir = dir.join("ca");
    std::fs::create_dir_all(&ca_dir).unwrap();
    let f = |n: &str| dir.join(n);
    let quiet = |c: &mut Command| {
        run_ok(c.current_dir(dir));
    };
    quiet(
        Command::new(&openssl)
            .args([
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "2",
                "-subj",
                "/CN=test CA",
                "-keyout",
                "ca.key",
                "-out",
            ])
            .arg(ca_dir.join("ca.crt")),
    );
    quiet(Command::new(&openssl).args([
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=localhost",
        "-keyout",
        "leaf.key",
        "-out",
        "leaf.csr",
    ]));
    std::fs::write(
        f("leaf.ext"),
        "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n",
    )
    .unwrap();
    quiet(
        Command::new(&openssl)
            .args(["x509", "-req", "-in", "leaf.csr", "-CA"])
            .arg(ca_dir.join("ca.crt"))
            .args([
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-days",
                "2",
                "-extfile",
                "leaf.ext",
                "-out",
                "leaf.crt",
            ]),
    );
    (ca_dir, f("leaf.crt"), f("leaf.key"))
}

/// A self-signed certificate for 127.0.0.1 and localhost, with openssl's defaults for
/// `req -x509` (a CA certificate). Returns the directory holding it as `ca.crt`, the certificate
/// and its key.
fn make_self_signed(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let openssl = require("openssl");
    let ca_dir = dir.join("ca");
    std::fs::create_dir_all(&ca_dir).unwrap();
    let cert = ca_dir.join("ca.crt");
    let key = dir.join("self.key");
    run_ok(
        Command::new(&openssl)
            .args([
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            ])
            .args(["-subj", "/CN=localhost"])
            .args(["-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert),
    );
    let text = run_ok(
        Command::new(&openssl)
            .args(["x509", "-noout", "-text", "-in"])
            .arg(&cert),
    );
    assert!(
        String::from_utf8_lossy(&text.stdout).contains("CA:TRUE"),
        "openssl made a CA certificate, as users' self-signed ones are"
    );
    (ca_dir, cert, key)
}

/// A TCP proxy in front of a registry that runs `on_trigger` (e.g. kills the registry) and drops
/// the connection when the client sends the `nth` request containing `needle`.
pub struct Proxy {
    /// `127.0.0.1:PORT` to push to.
    pub addr: String,
    triggered: Arc<AtomicBool>,
}

impl Proxy {
    /// Listens on a free port and forwards to `upstream`.
    pub fn start(
        upstream: &str,
        needle: &'static str,
        nth: usize,
        on_trigger: impl FnOnce() + Send + 'static,
    ) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let upstream = upstream.to_string();
        let triggered = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(AtomicUsize::new(0));
        let on_trigger = Arc::new(std::sync::Mutex::new(Some(on_trigger)));
        let flag = triggered.clone();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(mut client) = client else { continue };
                if flag.load(Ordering::SeqCst) {
                    continue; // the registry is gone: drop the connection
                }
                let Ok(mut server) = TcpStream::connect(&upstream) else {
                    continue;
                };
                let (mut client_r, mut server_w) =
                    (client.try_clone().unwrap(), server.try_clone().unwrap());
                let (flag, seen, on_trigger) = (flag.clone(), seen.clone(), on_trigger.clone());
                std::thread::spawn(move || {
                    let mut buf = vec![0u8; 64 * 1024];
                    loop {
                        let n = match client_r.read(&mut buf) {
                            Ok(0) | Err(_) => break,
                            Ok(n) => n,
                        };
                        let chunk = &buf[..n];
                        let hits = chunk
                            .windows(needle.len())
                            .filter(|w| *w == needle.as_bytes())
                            .count();
                        if hits > 0 && seen.fetch_add(hits, Ordering::SeqCst) + hits >= nth {
                            flag.store(true, Ordering::SeqCst);
                            if let Some(f) = on_trigger.lock().unwrap().take() {
                                f();
                            }
                            let _ = client_r.shutdown(std::net::Shutdown::Both);
                            let _ = server_w.shutdown(std::net::Shutdown::Both);
                            break;
                        }
                        if server_w.write_all(chunk).is_err() {
                            break;
                        }
                    }
                });
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut server, &mut client);
                    let _ = client.shutdown(std::net::Shutdown::Both);
                });
            }
        });
        Proxy { addr, triggered }
    }

    /// Whether the trigger fired.
    pub fn triggered(&self) -> bool {
        self.triggered.load(Ordering::SeqCst)
    }
}
