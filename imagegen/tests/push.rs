//! Pushing to a real registry (docker-registry on loopback): the flash image and the OTA images
//! arrive byte for byte, a second push uploads nothing, authentication and TLS work, and every
//! failure is one clear line that leaves no tag on an incomplete image.

mod common;
mod registry;

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use common::{Sample, index_digest, sample};
use firmware::manifest::sha256_hex;
use registry::{PASSWORD, Proxy, Registry, Setup, USER, free_port};
use serde_json::Value;
use testkit::tools::{require, run_ok};

const INDEX_TAG: &str = "demo-1.2.0";

/// Runs imagegen with `args`, `stdin` piped in and `env` set, isolated from the caller's
/// credentials and certificates (empty Docker config and certs.d, no IMAGEGEN_REGISTRY_*
/// variables).
fn imagegen(args: &[String], stdin: Option<&str>, env: &[(&str, String)]) -> Output {
    let empty = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_imagegen"));
    cmd.args(args)
        .env_remove("SOURCE_DATE_EPOCH")
        .env_remove("IMAGEGEN_REGISTRY_USERNAME")
        .env_remove("IMAGEGEN_REGISTRY_PASSWORD")
        .env("DOCKER_CONFIG", empty.path())
        .env("IMAGEGEN_DOCKER_CERTS_D", empty.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("run imagegen");
    let mut input = child.stdin.take().unwrap();
    if let Some(text) = stdin {
        input.write_all(text.as_bytes()).unwrap();
    }
    drop(input);
    child.wait_with_output().unwrap()
}

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "imagegen failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Expects a one-line `imagegen: error:` containing every string of `expect`, exit code 1.
fn fails(out: &Output, expect: &[&str]) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "expected failure: {stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "one line: {stderr}");
    assert!(stderr.starts_with("imagegen: error: "), "{stderr}");
    for e in expect {
        assert!(stderr.contains(e), "'{e}' missing from: {stderr}");
    }
    assert!(!stderr.contains(PASSWORD), "the password leaked: {stderr}");
    println!("{}", stderr.trim_end());
    stderr
}

/// Builds the flash image layout of `s` at `root/name`; returns it and the index digest.
fn flash_layout(s: &Sample, root: &Path, name: &str, extra: &[&str]) -> (PathBuf, String) {
    let layout = root.join(name);
    let mut a = s.args();
    a.extend(["--output".to_string(), layout.display().to_string()]);
    a.extend(extra.iter().map(|s| s.to_string()));
    let out = imagegen(&a, None, &[]);
    ok(&out);
    (layout, index_digest(&out))
}

/// `imagegen push` arguments.
fn push_args(layout: &Path, dest: &str, extra: &[&str]) -> Vec<String> {
    let mut a = args(&["push", "--layout"]);
    a.push(layout.display().to_string());
    a.extend(extra.iter().map(|s| s.to_string()));
    a.push(dest.to_string());
    a
}

fn skopeo(registry: &Registry, cmd: &[&str], side: &str, rest: &[String]) -> Output {
    run_ok(
        Command::new(require("skopeo"))
            .args(cmd)
            .args(registry.skopeo_flags(side))
            .args(rest),
    )
}

/// The raw bytes `REPO:TAG` resolves to in the registry (the index for an index tag).
fn remote_raw(registry: &Registry, repo: &str, tag: &str) -> Vec<u8> {
    skopeo(
        registry,
        &["inspect", "--raw"],
        "",
        &[registry.docker_ref(repo, tag)],
    )
    .stdout
}

/// The digest `REPO:TAG` points at, if the tag exists.
fn remote_digest(registry: &Registry, repo: &str, tag: &str) -> Option<String> {
    let out = Command::new(require("skopeo"))
        .args(["inspect", "--raw"])
        .args(registry.skopeo_flags(""))
        .arg(registry.docker_ref(repo, tag))
        .output()
        .unwrap();
    out.status
        .success()
        .then(|| format!("sha256:{}", sha256_hex(&out.stdout)))
}

/// Every blob of a layout by digest.
fn blobs(layout: &Path) -> BTreeMap<String, Vec<u8>> {
    fs::read_dir(layout.join("blobs/sha256"))
        .unwrap()
        .map(|e| {
            let p = e.unwrap().path();
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                fs::read(&p).unwrap(),
            )
        })
        .collect()
}

#[test]
fn flash_and_ota_images_arrive_byte_for_byte_and_are_not_uploaded_twice() {
    let tmp = tempfile::tempdir().unwrap();
    let reg = Registry::start(&tmp.path().join("registry"), Setup::default());
    let s = sample(tmp.path());
    let (layout, digest) = flash_layout(&s, tmp.path(), "flash", &["--tag", "latest"]);
    let dest = format!("{}/demo/app-flash", reg.addr);

    // Plain HTTP is chosen by itself for a loopback registry.
    let out = ok(&imagegen(&push_args(&layout, &dest, &[]), None, &[]));
    assert!(out.contains("0 already there"), "{out}");
    assert!(
        out.contains(&format!("tag {dest}:{INDEX_TAG} {digest}")),
        "{out}"
    );
    let uploads = reg.uploads();
    assert!(uploads >= 5, "config, layers: {uploads}\n{}", reg.log());

    // The index is stored byte for byte, and every tag resolves.
    let raw = remote_raw(&reg, "demo/app-flash", INDEX_TAG);
    assert_eq!(format!("sha256:{}", sha256_hex(&raw)), digest);
    assert_eq!(
        remote_digest(&reg, "demo/app-flash", "latest").as_deref(),
        Some(digest.as_str())
    );
    assert!(remote_digest(&reg, "demo/app-flash", "arm64-demo-1.2.0-0123456").is_some());

    // skopeo pulls every platform back: the same blobs, byte for byte.
    let copy = tmp.path().join("copy");
    skopeo(
        &reg,
        &["copy", "--all"],
        "src",
        &[
            reg.docker_ref("demo/app-flash", INDEX_TAG),
            format!("oci:{}:{INDEX_TAG}", copy.display()),
        ],
    );
    assert_eq!(blobs(&copy), blobs(&layout));

    // A second push uploads no blob.
    let out = ok(&imagegen(&push_args(&layout, &dest, &[]), None, &[]));
    assert!(out.contains(": 0 blobs uploaded"), "{out}");
    assert_eq!(reg.uploads(), uploads, "no upload on the second push");

    // Another repository mounts the blobs instead of uploading them.
    let other = format!("{}/demo/mirror", reg.addr);
    let out = ok(&imagegen(
        &push_args(&layout, &other, &["--mount-from", "demo/app-flash"]),
        None,
        &[],
    ));
    assert!(out.contains(": 0 blobs uploaded"), "{out}");
    assert!(!out.contains(" 0 mounted"), "{out}");
    assert_eq!(reg.uploads(), uploads, "mounted, not uploaded");

    // The OTA images: built and pushed in one go, found by platform.
    let mut builds = sample(&tmp.path().join("ota-builds"));
    let mut spec = testkit::idf_build::BuildSpec::new(firmware::chip::Chip::Esp32s3);
    spec.seed = 77;
    let s3 = tmp.path().join("ota-builds/esp32s3");
    testkit::idf_build::write_build(&s3, &spec).unwrap();
    builds.builds.push(("esp32s3".into(), s3.clone()));
    let mut ota = args(&["ota"]);
    for (name, dir) in &builds.builds {
        ota.extend(["--target".into(), format!("{name}={}", dir.display())]);
    }
    ota.extend(args(&[
        "--app-type",
        "demo",
        "--version",
        "1.2.0",
        "--revision",
        "0123456789abcdef",
    ]));
    let ota_layout = tmp.path().join("ota");
    let mut a = ota.clone();
    a.extend([
        "--output".into(),
        ota_layout.display().to_string(),
        "--push".into(),
        format!("{}/demo/app", reg.addr),
    ]);
    let out = imagegen(&a, None, &[]);
    let stdout = ok(&out);
    let ota_digest = index_digest(&out);
    assert!(stdout.contains(&format!(
        "tag {}/demo/app:{INDEX_TAG} {ota_digest}",
        reg.addr
    )));
    let raw = remote_raw(&reg, "demo/app", INDEX_TAG);
    assert_eq!(format!("sha256:{}", sha256_hex(&raw)), ota_digest);
    for target in ["esp32s3", "esp32s3r8", "esp32"] {
        let out = skopeo(
            &reg,
            &[
                "inspect",
                "--override-os",
                "custom",
                "--override-arch",
                target,
            ],
            "",
            &[reg.docker_ref("demo/app", INDEX_TAG)],
        );
        let info: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(info["Architecture"], target);
        assert_eq!(info["Os"], "custom");
        assert!(remote_digest(&reg, "demo/app", &format!("{target}-demo-1.2.0-0123456")).is_some());
    }

    // Raw artifacts: one repository per target, tagged with the version; the first layer's
    // blob is the app binary, as an OTA server downloads it.
    let raw_dir = tmp.path().join("raw");
    let mut a = ota.clone();
    a.extend([
        "--raw".into(),
        "--output".into(),
        raw_dir.display().to_string(),
        "--push".into(),
        format!("{}/demo/fw", reg.addr),
    ]);
    ok(&imagegen(&a, None, &[]));
    let manifest: Value =
        serde_json::from_slice(&remote_raw(&reg, "demo/fw/esp32s3", "1.2.0")).unwrap();
    let layer = &manifest["layers"][0];
    assert_eq!(
        layer["mediaType"],
        "application/vnd.espressif.esp32.firmware.v1+binary"
    );
    let curl = require("curl");
    let body = run_ok(Command::new(curl).args(["-sf"]).arg(format!(
        "http://{}/v2/demo/fw/esp32s3/blobs/{}",
        reg.addr,
        layer["digest"].as_str().unwrap()
    )))
    .stdout;
    assert_eq!(body, fs::read(s3.join("demo.bin")).unwrap());
}

#[test]
fn auth_and_tls_from_flags_environment_and_docker_config() {
    let tmp = tempfile::tempdir().unwrap();
    let reg = Registry::start(
        &tmp.path().join("registry"),
        Setup {
            auth: true,
            tls: true,
            ..Setup::default()
        },
    );
    let ca = reg.ca_dir.as_ref().unwrap().join("ca.crt");
    let ca_flag = ["--ca-file", ca.to_str().unwrap()];
    let s = sample(tmp.path());
    let (layout, digest) = flash_layout(&s, tmp.path(), "flash", &[]);
    let repo = "acme/app-flash";
    let dest = format!("{}/{repo}", reg.addr);

    // Unknown CA: refused, with the fix.
    fails(
        &imagegen(&push_args(&layout, &dest, &[]), None, &[]),
        &[&dest, "TLS certificate is not trusted", "--ca-file"],
    );
    // The CA in a Docker-style certs.d directory, as docker trusts it: no --ca-file needed.
    let certs_d = tmp.path().join("certs.d");
    fs::create_dir_all(certs_d.join(&reg.addr)).unwrap();
    fs::copy(&ca, certs_d.join(&reg.addr).join("ca.crt")).unwrap();
    let env = [
        ("IMAGEGEN_DOCKER_CERTS_D", certs_d.display().to_string()),
        ("IMAGEGEN_REGISTRY_USERNAME", USER.to_string()),
        ("IMAGEGEN_REGISTRY_PASSWORD", PASSWORD.to_string()),
    ];
    let certs_dest = format!("{}/acme/certs-d", reg.addr);
    let out = ok(&imagegen(
        &push_args(&layout, &certs_dest, &["--tag", INDEX_TAG]),
        None,
        &env,
    ));
    assert!(
        out.contains(&format!("tag {certs_dest}:{INDEX_TAG} {digest}")),
        "{out}"
    );
    // Another registry's directory is not trusted for this one.
    fs::rename(certs_d.join(&reg.addr), certs_d.join("127.0.0.1:1")).unwrap();
    fails(
        &imagegen(&push_args(&layout, &certs_dest, &[]), None, &env),
        &[&certs_dest, "TLS certificate is not trusted", "certs.d"],
    );
    // No credentials.
    fails(
        &imagegen(&push_args(&layout, &dest, &ca_flag), None, &[]),
        &[
            "requires authentication (401)",
            "docker login",
            "--password-stdin",
        ],
    );
    // Wrong password.
    let mut flags = ca_flag.to_vec();
    flags.extend(["--username", USER, "--password-stdin"]);
    fails(
        &imagegen(&push_args(&layout, &dest, &flags), Some("wrong\n"), &[]),
        &[
            "authentication failed (401)",
            "user 'ci'",
            "check the user name and password",
        ],
    );
    assert_eq!(
        remote_digest(&reg, repo, INDEX_TAG),
        None,
        "no tag after failures"
    );

    // Right password on standard input.
    let out = imagegen(
        &push_args(&layout, &dest, &flags),
        Some(&format!("{PASSWORD}\n")),
        &[],
    );
    let stdout = ok(&out);
    assert!(!stdout.contains(PASSWORD));
    let raw = remote_raw(&reg, repo, INDEX_TAG);
    assert_eq!(format!("sha256:{}", sha256_hex(&raw)), digest);

    // From the environment.
    let env = [
        ("IMAGEGEN_REGISTRY_USERNAME", USER.to_string()),
        ("IMAGEGEN_REGISTRY_PASSWORD", PASSWORD.to_string()),
    ];
    let out = ok(&imagegen(&push_args(&layout, &dest, &ca_flag), None, &env));
    assert!(out.contains(": 0 blobs uploaded"), "{out}");

    // From a Docker config file.
    let docker = tmp.path().join("docker");
    fs::create_dir(&docker).unwrap();
    let auth = run_ok(
        Command::new("sh")
            .arg("-c")
            .arg(format!("printf %s '{USER}:{PASSWORD}' | base64 -w0")),
    )
    .stdout;
    fs::write(
        docker.join("config.json"),
        format!(
            r#"{{"auths":{{"{}":{{"auth":"{}"}}}}}}"#,
            reg.addr,
            String::from_utf8(auth).unwrap()
        ),
    )
    .unwrap();
    let out = ok(&imagegen(
        &push_args(&layout, &dest, &ca_flag),
        None,
        &[("DOCKER_CONFIG", docker.display().to_string())],
    ));
    assert!(out.contains(": 0 blobs uploaded"), "{out}");

    // --insecure against the TLS port: named as such.
    let mut flags = vec!["--insecure"];
    flags.extend(["--retries", "0"]);
    fails(
        &imagegen(&push_args(&layout, &dest, &flags), None, &env),
        &["speaks HTTPS", "drop --insecure"],
    );
}

#[test]
fn registry_down_is_named_with_the_fix() {
    let tmp = tempfile::tempdir().unwrap();
    let s = sample(tmp.path());
    let (layout, _) = flash_layout(&s, tmp.path(), "flash", &[]);
    let dest = format!("127.0.0.1:{}/demo/app-flash", free_port());
    fails(
        &imagegen(&push_args(&layout, &dest, &["--retries", "1"]), None, &[]),
        &[
            &dest,
            "cannot reach the registry",
            "after 1 retry",
            "check that it is running",
        ],
    );
}

#[test]
fn registry_dying_mid_push_leaves_the_previous_image_tagged() {
    let tmp = tempfile::tempdir().unwrap();
    let mut reg = Registry::start(&tmp.path().join("registry"), Setup::default());
    let s = sample(tmp.path());
    let (old, old_digest) = flash_layout(&s, tmp.path(), "old", &[]);
    let (new, new_digest) = flash_layout(&s, tmp.path(), "new", &["--created", "1700000000"]);
    assert_ne!(old_digest, new_digest);
    let repo = "demo/app-flash";
    ok(&imagegen(
        &push_args(&old, &format!("{}/{repo}", reg.addr), &[]),
        None,
        &[],
    ));

    // The registry dies when the first manifest arrives: every blob is in, no manifest is.
    let pid = reg.pid();
    let proxy = Proxy::start(&reg.addr, "/manifests/", 1, move || {
        let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
    });
    let dest = format!("{}/{repo}", proxy.addr);
    fails(
        &imagegen(&push_args(&new, &dest, &["--retries", "2"]), None, &[]),
        &[&dest, "cannot reach the registry", "after 2 retries"],
    );
    assert!(proxy.triggered());

    reg.restart();
    assert_eq!(
        remote_digest(&reg, repo, INDEX_TAG).as_deref(),
        Some(old_digest.as_str()),
        "the tag still names the previous complete image"
    );
    // Pushing again completes the new image, uploading only what was missing.
    let uploads = reg.uploads();
    let out = ok(&imagegen(
        &push_args(&new, &format!("{}/{repo}", reg.addr), &[]),
        None,
        &[],
    ));
    assert!(out.contains(": 0 blobs uploaded"), "{out}");
    assert_eq!(reg.uploads(), uploads);
    assert_eq!(
        remote_digest(&reg, repo, INDEX_TAG).as_deref(),
        Some(new_digest.as_str())
    );
}

#[test]
fn bad_tags_and_repository_names_are_refused_before_sending() {
    let tmp = tempfile::tempdir().unwrap();
    let reg = Registry::start(&tmp.path().join("registry"), Setup::default());
    let s = sample(tmp.path());
    let (layout, _) = flash_layout(&s, tmp.path(), "flash", &[]);

    // A repository name the distribution spec refuses.
    fails(
        &imagegen(
            &push_args(&layout, &format!("{}/Demo/App", reg.addr), &[]),
            None,
            &[],
        ),
        &["repository name 'Demo/App' is invalid", "lowercase"],
    );
    // A tag given with the repository.
    fails(
        &imagegen(
            &push_args(&layout, &format!("{}/demo/app:1.0", reg.addr), &[]),
            None,
            &[],
        ),
        &["carries a tag", "--tag"],
    );
    // A layout whose tag has bad characters.
    let index_path = layout.join("index.json");
    let index = fs::read_to_string(&index_path).unwrap();
    fs::write(
        &index_path,
        index.replacen("\"demo-1.2.0\"", "\"demo 1.2.0!\"", 1),
    )
    .unwrap();
    fails(
        &imagegen(
            &push_args(&layout, &format!("{}/demo/app", reg.addr), &[]),
            None,
            &[],
        ),
        &["'demo 1.2.0!' is not a valid image tag"],
    );
    // A tag the layout does not have.
    fails(
        &imagegen(
            &push_args(
                &layout,
                &format!("{}/demo/app", reg.addr),
                &["--tag", "nope"],
            ),
            None,
            &[],
        ),
        &["has no tag 'nope'", "pick one of"],
    );
    assert_eq!(reg.uploads(), 0, "nothing was sent:\n{}", reg.log());
}

#[test]
fn publish_script_pushes_flash_and_ota_images() {
    let tmp = tempfile::tempdir().unwrap();
    let reg = Registry::start(&tmp.path().join("registry"), Setup::default());
    let s = sample(tmp.path());
    let flashers = tmp.path().join("flashers");
    for (arch, exe) in [("amd64", &s.amd64), ("arm64", &s.arm64)] {
        fs::create_dir_all(flashers.join(arch)).unwrap();
        let dest = flashers.join(arch).join("flasher");
        fs::copy(exe, &dest).unwrap();
        let mut perms = fs::metadata(&dest).unwrap().permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
        fs::set_permissions(&dest, perms).unwrap();
    }
    let targets: Vec<String> = s
        .builds
        .iter()
        .map(|(n, d)| format!("{n}={}", d.display()))
        .collect();
    let empty = tmp.path().join("docker");
    fs::create_dir(&empty).unwrap();
    let out = Command::new("bash")
        .arg(testkit::workspace_root().join("scripts/publish"))
        .env("REGISTRY", &reg.addr)
        .env("REPO", "demo/app")
        .env("RAW_REPO", "demo/fw")
        .env("TARGETS", targets.join(" "))
        .env("APP_TYPE", "demo")
        .env("VERSION", "1.2.0")
        .env("REVISION", "0123456789abcdef")
        .env("EXTRA_TAGS", "latest")
        .env("OUT", tmp.path().join("out"))
        .env("FLASHER_DIR", &flashers)
        .env("IMAGEGEN", env!("CARGO_BIN_EXE_imagegen"))
        .env("DOCKER_CONFIG", &empty)
        .env_remove("SOURCE_DATE_EPOCH")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let layout_digest = |dir: &str| {
        let index: Value = serde_json::from_slice(
            &fs::read(tmp.path().join("out").join(dir).join("index.json")).unwrap(),
        )
        .unwrap();
        index["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["annotations"]["org.opencontainers.image.ref.name"] == INDEX_TAG)
            .unwrap()["digest"]
            .as_str()
            .unwrap()
            .to_string()
    };
    for (repo, dir) in [
        ("demo/app-flash", "flash-layout"),
        ("demo/app", "ota-layout"),
    ] {
        for tag in [INDEX_TAG, "latest"] {
            assert_eq!(
                remote_digest(&reg, repo, tag),
                Some(layout_digest(dir)),
                "{repo}:{tag}"
            );
        }
    }
    for (target, _) in &s.builds {
        assert!(remote_digest(&reg, &format!("demo/fw/{target}"), "1.2.0").is_some());
    }
}

/// A registry with a self-signed certificate (openssl's default, a CA certificate that TLS
/// libraries refuse as a server's own): trusted when given with --ca-file or in certs.d, for
/// the server presenting exactly it; another server's certificate is still refused.
#[test]
fn a_self_signed_registry_certificate_given_is_trusted_for_that_registry() {
    let tmp = tempfile::tempdir().unwrap();
    let tls = |self_signed| Setup {
        tls: true,
        self_signed,
        ..Setup::default()
    };
    let reg = Registry::start(&tmp.path().join("self-signed"), tls(true));
    let other = Registry::start(&tmp.path().join("other"), tls(false));
    let cert = reg.ca_dir.as_ref().unwrap().join("ca.crt");
    let s = sample(tmp.path());
    let (layout, digest) = flash_layout(&s, tmp.path(), "flash", &[]);
    let dest = format!("{}/acme/app-flash", reg.addr);

    fails(
        &imagegen(&push_args(&layout, &dest, &["--retries", "0"]), None, &[]),
        &[&dest, "TLS certificate is not trusted", "--ca-file"],
    );
    let ca_flag = ["--ca-file", cert.to_str().unwrap()];
    let out = ok(&imagegen(&push_args(&layout, &dest, &ca_flag), None, &[]));
    assert!(
        out.contains(&format!("tag {dest}:{INDEX_TAG} {digest}")),
        "{out}"
    );
    assert_eq!(
        format!(
            "sha256:{}",
            sha256_hex(&remote_raw(&reg, "acme/app-flash", INDEX_TAG))
        ),
        digest
    );

    // In certs.d, as docker reads it.
    let certs_d = tmp.path().join("certs.d");
    fs::create_dir_all(certs_d.join(&reg.addr)).unwrap();
    fs::copy(&cert, certs_d.join(&reg.addr).join("ca.crt")).unwrap();
    let env = [("IMAGEGEN_DOCKER_CERTS_D", certs_d.display().to_string())];
    let out = ok(&imagegen(&push_args(&layout, &dest, &[]), None, &env));
    assert!(out.contains("0 blobs uploaded"), "{out}");

    // The pinned certificate vouches for no other server.
    let other_dest = format!("{}/acme/app-flash", other.addr);
    let mut flags = ca_flag.to_vec();
    flags.extend(["--retries", "0"]);
    fails(
        &imagegen(&push_args(&layout, &other_dest, &flags), None, &[]),
        &[&other_dest, "TLS certificate is not trusted"],
    );
    assert_eq!(remote_digest(&other, "acme/app-flash", INDEX_TAG), None);
}
