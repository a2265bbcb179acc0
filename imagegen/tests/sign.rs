//! Signed pushes against a real registry (docker-registry on loopback): the signatures imagegen
//! writes are accepted by the `sigstore` crate's cosign verification (the reference) and by
//! `imagegen verify`; a wrong key, a tampered payload and an unsigned image are refused; the
//! signatures land before any release tag, and a failed signature push leaves no tag at all.

mod common;
mod registry;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use common::{Sample, index_digest, sample};
use registry::{Proxy, Registry, Setup};
use serde_json::Value;
use sigstore::cosign::verification_constraint::{PublicKeyVerifier, VerificationConstraint};
use sigstore::cosign::{ClientBuilder, CosignCapabilities, verify_constraints};
use sigstore::crypto::signing_key::SigStoreKeyPair;
use sigstore::crypto::signing_key::ecdsa::{ECDSAKeys, EllipticCurve};
use sigstore::registry::oci_reference::OciReference;
use sigstore::registry::{Auth, ClientConfig, ClientProtocol};
use testkit::tools::{require, run_ok};

const PASSWORD: &str = "signing key password";

/// Runs imagegen with `args`, `env` set and `stdin` piped in, without the caller's credentials
/// or COSIGN_PASSWORD.
fn imagegen(args: &[String], env: &[(&str, &str)], stdin: Option<&str>) -> Output {
    let empty = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_imagegen"));
    cmd.args(args)
        .env_remove("SOURCE_DATE_EPOCH")
        .env_remove("COSIGN_PASSWORD")
        .env_remove("IMAGEGEN_REGISTRY_USERNAME")
        .env_remove("IMAGEGEN_REGISTRY_PASSWORD")
        .env("DOCKER_CONFIG", empty.path())
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("run imagegen");
    let mut input = child.stdin.take().unwrap();
    if let Some(text) = stdin {
        input.write_all(text.as_bytes()).unwrap();
    }
    drop(input);
    child.wait_with_output().unwrap()
}

fn strings(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "imagegen failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout(out)
}

/// Expects exit `code` and one `imagegen: error:` line containing every string of `expect`.
fn fails(out: &Output, code: i32, expect: &[&str]) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(code), "{stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "one line: {stderr}");
    assert!(stderr.starts_with("imagegen: error: "), "{stderr}");
    for e in expect {
        assert!(stderr.contains(e), "'{e}' missing from: {stderr}");
    }
    assert!(!stderr.contains(PASSWORD), "the password leaked: {stderr}");
    stderr
}

/// Key files made by independent tools: openssl (PKCS#8, SEC1, RSA) and the sigstore crate
/// (cosign's encrypted form), each private key with its public key.
struct Keys {
    pkcs8: (PathBuf, PathBuf),
    sec1: (PathBuf, PathBuf),
    encrypted: (PathBuf, PathBuf),
    rsa: PathBuf,
}

fn openssl(dir: &Path, args: &[&str]) {
    run_ok(Command::new(require("openssl")).current_dir(dir).args(args));
}

fn keys(dir: &Path) -> Keys {
    std::fs::create_dir_all(dir).unwrap();
    openssl(
        dir,
        &[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
            "pkcs8.key",
        ],
    );
    openssl(
        dir,
        &["pkey", "-in", "pkcs8.key", "-pubout", "-out", "pkcs8.pub"],
    );
    // `ecparam -genkey` writes an EC PARAMETERS block before the SEC1 key.
    openssl(
        dir,
        &[
            "ecparam",
            "-name",
            "prime256v1",
            "-genkey",
            "-out",
            "sec1.key",
        ],
    );
    openssl(
        dir,
        &["ec", "-in", "sec1.key", "-pubout", "-out", "sec1.pub"],
    );
    openssl(
        dir,
        &[
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
            "rsa.key",
        ],
    );
    let pair = SigStoreKeyPair::ECDSA(ECDSAKeys::new(EllipticCurve::P256).unwrap());
    let encrypted = pair
        .private_key_to_encrypted_pem(PASSWORD.as_bytes())
        .unwrap();
    assert!(encrypted.contains("ENCRYPTED SIGSTORE PRIVATE KEY"));
    std::fs::write(dir.join("cosign.key"), encrypted.as_bytes()).unwrap();
    std::fs::write(dir.join("cosign.pub"), pair.public_key_to_pem().unwrap()).unwrap();
    let f = |n: &str| dir.join(n);
    Keys {
        pkcs8: (f("pkcs8.key"), f("pkcs8.pub")),
        sec1: (f("sec1.key"), f("sec1.pub")),
        encrypted: (f("cosign.key"), f("cosign.pub")),
        rsa: f("rsa.key"),
    }
}

/// Builds the flash image layout of `s` at `root/name`; returns it and the index digest.
fn flash_layout(s: &Sample, root: &Path) -> (PathBuf, String) {
    let layout = root.join("flash-layout");
    let mut a = s.args();
    a.extend(["--output".to_string(), layout.display().to_string()]);
    let out = imagegen(&a, &[], None);
    ok(&out);
    (layout, index_digest(&out))
}

fn push_args(layout: &Path, dest: &str, extra: &[&str]) -> Vec<String> {
    let mut a = strings(&["push", "--layout"]);
    a.push(layout.display().to_string());
    a.extend(strings(extra));
    a.push(dest.to_string());
    a
}

fn verify_args(public: &Path, reference: &str) -> Vec<String> {
    let mut a = strings(&["verify", "--key"]);
    a.push(public.display().to_string());
    a.push(reference.to_string());
    a
}

/// The sigstore crate's cosign verification of `REPO@DIGEST` with the public key `public`:
/// the `.sig` layers whose payload names the digest, at least one signed by the key.
fn sigstore_verifies(
    reg: &Registry,
    repo: &str,
    digest: &str,
    public: &Path,
) -> Result<(), String> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let mut client = ClientBuilder::default()
            .with_oci_client_config(ClientConfig {
                protocol: ClientProtocol::Http,
                ..ClientConfig::default()
            })
            .build()
            .map_err(|e| e.to_string())?;
        let image: OciReference = format!("{}/{repo}@{digest}", reg.addr)
            .parse()
            .map_err(|e| format!("{e:?}"))?;
        let layers = client
            .trusted_signature_layers(&Auth::Anonymous, &image)
            .await
            .map_err(|e| e.to_string())?;
        let key = std::fs::read(public).unwrap();
        let verifier = PublicKeyVerifier::try_from(&key).map_err(|e| e.to_string())?;
        let constraints: Vec<Box<dyn VerificationConstraint>> = vec![Box::new(verifier)];
        verify_constraints(&layers, constraints.iter()).map_err(|e| {
            format!(
                "{} unsatisfied constraints",
                e.unsatisfied_constraints.len()
            )
        })
    })
}

/// Every digest a flash layout's index lists: the index itself, then each platform manifest.
fn index_and_children(layout: &Path, index: &str) -> Vec<String> {
    let hex = index.strip_prefix("sha256:").unwrap();
    let doc: Value =
        serde_json::from_slice(&std::fs::read(layout.join("blobs/sha256").join(hex)).unwrap())
            .unwrap();
    let mut all = vec![index.to_string()];
    for m in doc["manifests"].as_array().unwrap() {
        all.push(m["digest"].as_str().unwrap().to_string());
    }
    all
}

/// The references of the manifest PUTs the registry logged for `repo`, in order.
fn manifest_puts(reg: &Registry, repo: &str) -> Vec<String> {
    let prefix = format!("\"PUT /v2/{repo}/manifests/");
    reg.log()
        .lines()
        .filter_map(|l| {
            let rest = &l[l.find(&prefix)? + prefix.len()..];
            Some(rest.split(' ').next()?.to_string())
        })
        .collect()
}

/// The tags of `repo`, through the registry's API (none when it has none).
fn tags(reg: &Registry, repo: &str) -> Vec<String> {
    let out = Command::new(require("skopeo"))
        .arg("list-tags")
        .args(reg.skopeo_flags(""))
        .arg(format!("docker://{}/{repo}", reg.addr))
        .output()
        .unwrap();
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        // docker-registry answers 404 for a repository that has no tag.
        assert!(stderr.contains("404"), "skopeo list-tags: {stderr}");
        return Vec::new();
    }
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut tags: Vec<String> = v["Tags"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|t| t.as_str().unwrap().to_string())
        .collect();
    tags.sort();
    tags
}

#[test]
fn signed_flash_image_verifies_with_sigstore_and_imagegen_and_tags_come_last() {
    let tmp = tempfile::tempdir().unwrap();
    let keys = keys(&tmp.path().join("keys"));
    let s = sample(tmp.path());
    let (layout, index) = flash_layout(&s, tmp.path());
    let reg = Registry::start(&tmp.path().join("registry"), Setup::default());
    let dest = format!("{}/acme/app-flash", reg.addr);
    let (key, public) = &keys.encrypted;
    let out = imagegen(
        &push_args(&layout, &dest, &["--sign-key", key.to_str().unwrap()]),
        &[("COSIGN_PASSWORD", PASSWORD)],
        None,
    );
    let text = ok(&out);
    let digests = index_and_children(&layout, &index);
    assert_eq!(digests.len(), 3, "index and two platforms");
    for d in &digests {
        let tag = format!("{}.sig", d.replace(':', "-"));
        assert!(
            text.contains(&format!("signature {dest}:{tag} {d}")),
            "{text}"
        );
        sigstore_verifies(&reg, "acme/app-flash", d, public)
            .unwrap_or_else(|e| panic!("sigstore refused {d}: {e}"));
        assert!(
            sigstore_verifies(&reg, "acme/app-flash", d, &keys.pkcs8.1).is_err(),
            "sigstore accepted {d} with another key"
        );
    }

    // Order: every manifest by digest, then the signatures, then the release tags.
    let puts = manifest_puts(&reg, "acme/app-flash");
    let kind = |r: &String| match r {
        r if r.starts_with("sha256:") => 0,
        r if r.ends_with(".sig") => 1,
        _ => 2,
    };
    let kinds: Vec<i32> = puts.iter().map(kind).collect();
    assert!(
        kinds.windows(2).all(|w| w[0] <= w[1]),
        "PUT order: {puts:?}"
    );
    assert_eq!(kinds.iter().filter(|k| **k == 1).count(), 3, "{puts:?}");
    assert!(kinds.contains(&2), "{puts:?}");

    // imagegen verify, by digest: one line per manifest.
    let reference = format!("{dest}@{index}");
    let out = imagegen(&verify_args(public, &reference), &[], None);
    let lines = ok(&out);
    assert_eq!(lines.lines().count(), 3, "{lines}");
    assert!(
        lines.starts_with(&format!("verified {index} index")),
        "{lines}"
    );
    assert!(
        lines.contains(" linux/amd64") && lines.contains(" linux/arm64"),
        "{lines}"
    );
    assert!(lines.lines().all(|l| l.starts_with("verified ")), "{lines}");

    // The wrong key: every manifest BAD, exit 3.
    let out = imagegen(&verify_args(&keys.sec1.1, &reference), &[], None);
    fails(&out, 3, &["3 of 3 manifests", "no valid signature"]);
    let lines = stdout(&out);
    assert_eq!(lines.matches("BAD ").count(), 3, "{lines}");
    assert!(lines.contains("does not match the key"), "{lines}");

    // A mirror in an OCI layout (skopeo copies the image and its signature tags): the same
    // checks with --layout.
    let mirror = tmp.path().join("mirror");
    let copy = |from: String, to: &str| {
        run_ok(
            Command::new(require("skopeo"))
                .args(["copy", "--all", "--preserve-digests"])
                .args(reg.skopeo_flags("src"))
                .arg(from)
                .arg(format!("oci:{}:{to}", mirror.display())),
        );
    };
    copy(
        format!("docker://{}/acme/app-flash@{index}", reg.addr),
        "demo-1.2.0",
    );
    for d in &digests {
        let tag = format!("{}.sig", d.replace(':', "-"));
        copy(reg.docker_ref("acme/app-flash", &tag), &tag);
    }
    let layout_verify = |public: &Path| {
        let mut a = strings(&["verify", "--layout"]);
        a.push(mirror.display().to_string());
        a.extend([
            "--key".into(),
            public.display().to_string(),
            "demo-1.2.0".into(),
        ]);
        imagegen(&a, &[], None)
    };
    let lines = ok(&layout_verify(public));
    assert_eq!(lines.matches("verified ").count(), 3, "{lines}");
    fails(&layout_verify(&keys.sec1.1), 3, &["3 of 3 manifests"]);
}

/// A second push signed with another key keeps the first signature, as cosign does: both keys
/// verify, by imagegen and by sigstore; a third key does not; signing again with the first key
/// puts no signature manifest.
#[test]
fn a_second_key_adds_its_signature_and_keeps_the_first() {
    let tmp = tempfile::tempdir().unwrap();
    let keys = keys(&tmp.path().join("keys"));
    let s = sample(tmp.path());
    let (layout, index) = flash_layout(&s, tmp.path());
    let reg = Registry::start(&tmp.path().join("registry"), Setup::default());
    let dest = format!("{}/acme/app-flash", reg.addr);
    let push = |key: &Path| {
        ok(&imagegen(
            &push_args(&layout, &dest, &["--sign-key", key.to_str().unwrap()]),
            &[],
            None,
        ))
    };
    let (key_a, public_a) = &keys.pkcs8;
    let (key_b, public_b) = &keys.sec1;
    push(key_a);
    push(key_b);
    let reference = format!("{dest}@{index}");
    for public in [public_a, public_b] {
        let lines = ok(&imagegen(&verify_args(public, &reference), &[], None));
        assert_eq!(lines.matches("verified ").count(), 3, "{lines}");
        for d in index_and_children(&layout, &index) {
            sigstore_verifies(&reg, "acme/app-flash", &d, public)
                .unwrap_or_else(|e| panic!("sigstore refused {d}: {e}"));
        }
    }
    let out = imagegen(&verify_args(&keys.encrypted.1, &reference), &[], None);
    fails(&out, 3, &["3 of 3 manifests", "no valid signature"]);
    assert!(
        sigstore_verifies(&reg, "acme/app-flash", &index, &keys.encrypted.1).is_err(),
        "sigstore accepted a third key"
    );

    let sig_puts = || {
        manifest_puts(&reg, "acme/app-flash")
            .into_iter()
            .filter(|r| r.ends_with(".sig"))
            .count()
    };
    let before = sig_puts();
    push(key_a);
    assert_eq!(sig_puts(), before, "the same signature was put again");
    let lines = ok(&imagegen(&verify_args(public_b, &reference), &[], None));
    assert_eq!(lines.matches("verified ").count(), 3, "{lines}");
}

/// Replaces the payload of the signature of `digest` in `repo` by `tamper(payload)`, keeping the
/// signature: a new payload blob and a new manifest under the same `.sig` tag.
fn tamper_signature(reg: &Registry, repo: &str, digest: &str, tamper: impl Fn(&str) -> String) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let http = reqwest::Client::new();
        let base = format!("http://{}/v2/{repo}", reg.addr);
        let tag = format!("{}.sig", digest.replace(':', "-"));
        let get = |url: String| {
            let request = http.get(url).header(reqwest::header::ACCEPT, MANIFEST);
            async move {
                let answer = request.send().await.unwrap().error_for_status().unwrap();
                answer.bytes().await.unwrap().to_vec()
            }
        };
        let mut manifest: Value =
            serde_json::from_slice(&get(format!("{base}/manifests/{tag}")).await).unwrap();
        let layer = &mut manifest["layers"][0];
        let old = layer["digest"].as_str().unwrap().to_string();
        let payload = get(format!("{base}/blobs/{old}")).await;
        let forged = tamper(std::str::from_utf8(&payload).unwrap()).into_bytes();
        assert_ne!(forged, payload, "the tampering changes the payload");
        let forged_digest = format!("sha256:{}", firmware::manifest::sha256_hex(&forged));
        let opened = http
            .post(format!("{base}/blobs/uploads/"))
            .send()
            .await
            .unwrap()
            .error_for_status()
            .unwrap();
        let location = opened.headers()[reqwest::header::LOCATION]
            .to_str()
            .unwrap();
        let location = if location.starts_with("http") {
            location.to_string()
        } else {
            format!("http://{}{location}", reg.addr)
        };
        http.put(location)
            .query(&[("digest", forged_digest.as_str())])
            .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
            .body(forged.clone())
            .send()
            .await
            .unwrap()
            .error_for_status()
            .unwrap();
        layer["digest"] = forged_digest.into();
        layer["size"] = forged.len().into();
        http.put(format!("{base}/manifests/{tag}"))
            .header(reqwest::header::CONTENT_TYPE, MANIFEST)
            .body(serde_json::to_vec(&manifest).unwrap())
            .send()
            .await
            .unwrap()
            .error_for_status()
            .unwrap();
    });
}

/// The media type of a signature manifest.
const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

#[test]
fn ota_index_and_raw_artifacts_are_signed_and_tampering_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let keys = keys(&tmp.path().join("keys"));
    let s = sample(tmp.path());
    let reg = Registry::start(&tmp.path().join("registry"), Setup::default());
    let ota = |raw: bool, key: &Path, repo: &str| {
        let mut a = strings(&["ota"]);
        for (name, dir) in &s.builds {
            a.extend(["--target".into(), format!("{name}={}", dir.display())]);
        }
        a.extend(strings(&[
            "--app-type",
            "demo",
            "--version",
            "1.2.0",
            "--output",
        ]));
        a.push(
            tmp.path()
                .join(repo.replace('/', "-"))
                .display()
                .to_string(),
        );
        if raw {
            a.push("--raw".into());
        }
        a.extend(["--push".into(), format!("{}/{repo}", reg.addr)]);
        a.extend(["--sign-key".into(), key.display().to_string()]);
        ok(&imagegen(&a, &[], None))
    };

    // The OTA index (PKCS#8 key): the index and each custom/<target> image.
    let text = ota(false, &keys.pkcs8.0, "acme/app");
    let index = text.lines().find_map(|l| l.strip_prefix("index ")).unwrap();
    let reference = format!("{}/acme/app@{index}", reg.addr);
    let lines = ok(&imagegen(
        &verify_args(&keys.pkcs8.1, &reference),
        &[],
        None,
    ));
    assert_eq!(lines.lines().count(), 4, "index and three targets: {lines}");
    for target in ["esp32", "esp32c3", "esp32s3r8"] {
        assert!(lines.contains(&format!(" custom/{target}\n")), "{lines}");
    }
    sigstore_verifies(&reg, "acme/app", index, &keys.pkcs8.1).unwrap();

    // Raw artifacts (SEC1 key): one repository per target, tagged with the version.
    let text = ota(true, &keys.sec1.0, "acme/fw");
    for target in ["esp32", "esp32c3", "esp32s3r8"] {
        let digest = text
            .lines()
            .find_map(|l| l.strip_prefix(&format!("artifact {target} 1.2.0 ")))
            .unwrap();
        let repo = format!("acme/fw/{target}");
        sigstore_verifies(&reg, &repo, digest, &keys.sec1.1).unwrap();
        let reference = format!("{}/{repo}:1.2.0", reg.addr);
        let lines = ok(&imagegen(&verify_args(&keys.sec1.1, &reference), &[], None));
        assert_eq!(lines, format!("verified {digest} manifest\n"));
    }

    // A payload changed after signing (it now names another digest) is refused by both.
    let digest = text
        .lines()
        .find_map(|l| l.strip_prefix("artifact esp32 1.2.0 "))
        .unwrap();
    tamper_signature(&reg, "acme/fw/esp32", digest, |p| {
        p.replace(&digest[7..17], "0000000000")
    });
    assert!(sigstore_verifies(&reg, "acme/fw/esp32", digest, &keys.sec1.1).is_err());
    let out = imagegen(
        &verify_args(
            &keys.sec1.1,
            &format!("{}/acme/fw/esp32@{digest}", reg.addr),
        ),
        &[],
        None,
    );
    fails(&out, 3, &["1 of 1 manifests", "no valid signature"]);
    assert!(stdout(&out).contains("BAD ") && stdout(&out).contains("does not match the key"));

    // An image pushed without a key: every manifest MISSING.
    let (layout, index) = flash_layout(&s, tmp.path());
    let dest = format!("{}/acme/unsigned", reg.addr);
    ok(&imagegen(&push_args(&layout, &dest, &[]), &[], None));
    let out = imagegen(
        &verify_args(&keys.sec1.1, &format!("{dest}@{index}")),
        &[],
        None,
    );
    fails(&out, 3, &["3 of 3 manifests"]);
    assert_eq!(
        stdout(&out).matches("MISSING ").count(),
        3,
        "{}",
        stdout(&out)
    );
}

#[test]
fn failed_signature_push_leaves_no_release_tag() {
    let tmp = tempfile::tempdir().unwrap();
    let keys = keys(&tmp.path().join("keys"));
    let s = sample(tmp.path());
    let (layout, _) = flash_layout(&s, tmp.path());
    let reg = Registry::start(&tmp.path().join("registry"), Setup::default());
    // The proxy cuts the connection at the first request naming a .sig tag, and every later one.
    let proxy = Proxy::start(&reg.addr, ".sig HTTP", 1, || {});
    let dest = format!("{}/acme/app-flash", proxy.addr);
    let out = imagegen(
        &push_args(
            &layout,
            &dest,
            &[
                "--sign-key",
                keys.pkcs8.0.to_str().unwrap(),
                "--retries",
                "0",
            ],
        ),
        &[],
        None,
    );
    fails(&out, 1, &["putting the signature sha256-", ".sig"]);
    assert!(proxy.triggered());
    let puts = manifest_puts(&reg, "acme/app-flash");
    assert!(
        puts.iter().any(|r| r.starts_with("sha256:")),
        "manifests went first: {puts:?}"
    );
    assert_eq!(
        tags(&reg, "acme/app-flash"),
        Vec::<String>::new(),
        "no tag at all"
    );
}

/// A signing key refused: the key, the environment, what the message names.
type Refusal<'a> = (&'a Path, Vec<(&'a str, &'a str)>, Vec<&'a str>);

#[test]
fn key_kinds_and_passwords() {
    let tmp = tempfile::tempdir().unwrap();
    let keys = keys(&tmp.path().join("keys"));
    let s = sample(tmp.path());
    let (layout, index) = flash_layout(&s, tmp.path());
    let reg = Registry::start(&tmp.path().join("registry"), Setup::default());
    let dest = |name: &str| format!("{}/keys/{name}", reg.addr);
    let key = |p: &Path| p.display().to_string();

    // The password from standard input.
    let (encrypted, public) = &keys.encrypted;
    let args = push_args(
        &layout,
        &dest("stdin"),
        &["--sign-key", &key(encrypted), "--sign-password-stdin"],
    );
    ok(&imagegen(&args, &[], Some(&format!("{PASSWORD}\n"))));
    let reference = format!("{}@{index}", dest("stdin"));
    ok(&imagegen(&verify_args(public, &reference), &[], None));

    // The older label of the same format (cosign before sigstore's rename).
    let older = tmp.path().join("keys/older-cosign.key");
    let text = std::fs::read_to_string(encrypted).unwrap();
    std::fs::write(
        &older,
        text.replace("SIGSTORE PRIVATE KEY", "COSIGN PRIVATE KEY"),
    )
    .unwrap();
    let args = push_args(&layout, &dest("older"), &["--sign-key", &key(&older)]);
    ok(&imagegen(&args, &[("COSIGN_PASSWORD", PASSWORD)], None));
    let reference = format!("{}@{index}", dest("older"));
    ok(&imagegen(&verify_args(public, &reference), &[], None));

    // Refused before anything is sent: no password, a wrong one, an RSA key, a public key.
    let cases: [Refusal; 4] = [
        (encrypted, vec![], vec!["is encrypted", "COSIGN_PASSWORD"]),
        (
            encrypted,
            vec![("COSIGN_PASSWORD", "wrong")],
            vec!["cannot be opened with this password", "COSIGN_PASSWORD"],
        ),
        (
            &keys.rsa,
            vec![],
            vec!["is an RSA key", "ECDSA P-256", "cosign generate-key-pair"],
        ),
        (
            public,
            vec![],
            vec!["holds a 'PUBLIC KEY' block", "ECDSA P-256"],
        ),
    ];
    for (i, (path, env, expect)) in cases.iter().enumerate() {
        let repo = format!("refused{i}");
        let args = push_args(&layout, &dest(&repo), &["--sign-key", &key(path)]);
        fails(&imagegen(&args, env, None), 1, expect);
        assert!(manifest_puts(&reg, &format!("keys/{repo}")).is_empty());
    }
}
