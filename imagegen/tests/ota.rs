//! OTA images in a layout: per-target images under one index (as esp32-flashjob pulls them by
//! platform) and raw-binary artifacts (as otaflux-style servers read them).

mod common;

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{Sample, imagegen, index_digest, layout_refs, sample};
use firmware::chip::Chip;
use firmware::manifest::sha256_hex;
use flate2::read::GzDecoder;
use serde_json::Value;
use testkit::idf_build::{BuildSpec, write_build};
use testkit::tools::{oci_check, require, run_ok};

/// The sample builds (esp32, esp32c3, esp32s3r8) plus a plain esp32s3 build.
fn ota_sample(root: &Path) -> Sample {
    let mut s = sample(root);
    let mut spec = BuildSpec::new(Chip::Esp32s3);
    spec.seed = 77;
    let dir = root.join("builds/esp32s3");
    write_build(&dir, &spec).unwrap();
    s.builds.push(("esp32s3".into(), dir));
    s
}

/// `imagegen ota` arguments for every build of `s`.
fn ota_args(s: &Sample, output: &Path) -> Vec<String> {
    let mut args = vec!["ota".to_string()];
    for (name, dir) in &s.builds {
        args.push("--target".into());
        args.push(format!("{name}={}", dir.display()));
    }
    args.extend(
        [
            "--app-type",
            "demo",
            "--version",
            "1.2.0",
            "--revision",
            "0123456789abcdef",
            "--output",
        ]
        .map(String::from),
    );
    args.push(output.display().to_string());
    args
}

fn json(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).unwrap()
}

fn blob(layout: &Path, digest: &str) -> Vec<u8> {
    fs::read(
        layout
            .join("blobs/sha256")
            .join(digest.trim_start_matches("sha256:")),
    )
    .unwrap()
}

fn build_dir(s: &Sample, name: &str) -> PathBuf {
    s.builds.iter().find(|(n, _)| n == name).unwrap().1.clone()
}

fn success(out: &std::process::Output) {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn ota_index_has_one_custom_platform_image_per_target() {
    let tmp = tempfile::tempdir().unwrap();
    let s = ota_sample(tmp.path());
    let layout = tmp.path().join("ota");
    let out = imagegen(&ota_args(&s, &layout));
    success(&out);
    let digest = index_digest(&out);

    // Tags: the index, and one per target with the short revision.
    let tags: Vec<(String, String)> = layout_refs(&layout)
        .into_iter()
        .map(|(tag, (digest, _))| (tag, digest))
        .collect();
    let names: Vec<&str> = tags.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(
        names,
        [
            "demo-1.2.0",
            "esp32-demo-1.2.0-0123456",
            "esp32c3-demo-1.2.0-0123456",
            "esp32s3-demo-1.2.0-0123456",
            "esp32s3r8-demo-1.2.0-0123456",
        ]
    );
    assert_eq!(tags[0].1, digest);

    let report = oci_check(&layout).unwrap_or_else(|e| panic!("OCI check failed:\n{e}"));
    println!("{report}");

    // Each platform: custom/<target>, one layer whose only entry is firmware/demo.bin, holding
    // exactly the build's app.
    let index = json(&blob(&layout, &digest));
    let manifests = index["manifests"].as_array().unwrap();
    assert_eq!(manifests.len(), 4);
    for d in manifests {
        let target = d["platform"]["architecture"].as_str().unwrap();
        assert_eq!(d["platform"]["os"], "custom");
        let manifest = json(&blob(&layout, d["digest"].as_str().unwrap()));
        let config = json(&blob(
            &layout,
            manifest["config"]["digest"].as_str().unwrap(),
        ));
        assert_eq!(config["os"], "custom");
        assert_eq!(config["architecture"], target);
        assert!(config["config"]["Entrypoint"].is_null());
        let layers = manifest["layers"].as_array().unwrap();
        assert_eq!(layers.len(), 1);
        let gz = blob(&layout, layers[0]["digest"].as_str().unwrap());
        let mut tar = tar::Archive::new(GzDecoder::new(gz.as_slice()));
        let mut entries = Vec::new();
        for e in tar.entries().unwrap() {
            let mut e = e.unwrap();
            let path = e.path().unwrap().to_string_lossy().into_owned();
            let mut bytes = Vec::new();
            e.read_to_end(&mut bytes).unwrap();
            entries.push((path, e.header().entry_type(), bytes));
        }
        assert_eq!(entries.len(), 1, "{target}: one tar entry");
        let (path, kind, bytes) = &entries[0];
        assert_eq!(path, "firmware/demo.bin");
        assert!(kind.is_file());
        let app = fs::read(build_dir(&s, target).join("demo.bin")).unwrap();
        assert_eq!(sha256_hex(bytes), sha256_hex(&app), "{target}: the app");
    }

    // skopeo picks each target by platform; the suffix must match exactly.
    let skopeo = require("skopeo");
    for target in ["esp32s3", "esp32s3r8", "esp32c3"] {
        let out = run_ok(
            Command::new(&skopeo)
                .args([
                    "inspect",
                    "--override-os",
                    "custom",
                    "--override-arch",
                    target,
                ])
                .arg(format!("oci:{}:demo-1.2.0", layout.display())),
        );
        let info = json(&out.stdout);
        assert_eq!(info["Architecture"], target);
        assert_eq!(info["Os"], "custom");
    }

    // Reproducible: a second run gives the same digest.
    let again = tmp.path().join("again");
    let out = imagegen(&ota_args(&s, &again));
    success(&out);
    assert_eq!(index_digest(&out), digest);
}

#[test]
fn raw_artifacts_hold_the_app_binary_tagged_with_its_version() {
    let tmp = tempfile::tempdir().unwrap();
    let s = ota_sample(tmp.path());
    let out_dir = tmp.path().join("raw");
    let mut args = ota_args(&s, &out_dir);
    args.push("--raw".into());
    let out = imagegen(&args);
    success(&out);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let skopeo = require("skopeo");
    for (target, _) in &s.builds {
        let layout = out_dir.join(target);
        let raw = run_ok(
            Command::new(&skopeo)
                .args(["inspect", "--raw"])
                .arg(format!("oci:{}:1.2.0", layout.display())),
        );
        let digest = format!("sha256:{}", sha256_hex(&raw.stdout));
        assert!(
            stdout.contains(&format!("artifact {target} 1.2.0 {digest}")),
            "{stdout}"
        );
        let manifest = json(&raw.stdout);
        assert_eq!(
            manifest["artifactType"],
            "application/vnd.espressif.esp32.firmware.v1+binary"
        );
        assert_eq!(
            manifest["config"]["mediaType"],
            "application/vnd.oci.empty.v1+json"
        );
        let layers = manifest["layers"].as_array().unwrap();
        assert_eq!(layers.len(), 1);
        assert_eq!(
            layers[0]["mediaType"],
            "application/vnd.espressif.esp32.firmware.v1+binary"
        );
        let app = fs::read(build_dir(&s, target).join("demo.bin")).unwrap();
        assert_eq!(
            blob(&layout, layers[0]["digest"].as_str().unwrap()),
            app,
            "{target}: the first layer is the raw app"
        );
        assert_eq!(layers[0]["size"], app.len());
    }
}

#[test]
fn raw_artifacts_need_a_semantic_version() {
    let tmp = tempfile::tempdir().unwrap();
    let s = ota_sample(tmp.path());
    let out_dir = tmp.path().join("raw");
    let mut args = ota_args(&s, &out_dir);
    let v = args.iter().position(|a| a == "1.2.0").unwrap();
    args[v] = "v1.2".into();
    args.push("--raw".into());
    let out = imagegen(&args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with("imagegen: error: "), "{stderr}");
    assert!(
        stderr.contains("'v1.2' is not a semantic version"),
        "{stderr}"
    );
    assert!(stderr.contains("--version MAJOR.MINOR.PATCH"), "{stderr}");
    assert!(!out_dir.exists());
}

/// The digests of the OTA index and of every raw artifact of the sample, built with a fixed
/// creation time, as this version of imagegen makes them.
#[test]
fn ota_digests_are_pinned() {
    const INDEX: &str = "sha256:e070ed5b2c992520d27df8c1c1babbdeb93cf9b9d02d4e2128edef7a45d16fa8";
    const RAW: &str = "2968af8870e00f4ce7597d8ac5086458abdd928b526859f535509e5cdcd57780";
    let tmp = tempfile::tempdir().unwrap();
    let s = ota_sample(tmp.path());
    let mut args = ota_args(&s, &tmp.path().join("ota"));
    args.extend(["--created".into(), "1700000000".into()]);
    let out = imagegen(&args);
    success(&out);
    assert_eq!(index_digest(&out), INDEX, "OTA index digest");
    let mut args = ota_args(&s, &tmp.path().join("raw"));
    args.extend(["--created".into(), "1700000000".into(), "--raw".into()]);
    let out = imagegen(&args);
    success(&out);
    let artifacts: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.starts_with("artifact "))
        .map(str::to_string)
        .collect();
    assert_eq!(artifacts.len(), s.builds.len());
    assert_eq!(
        sha256_hex(artifacts.join("\n").as_bytes()),
        RAW,
        "raw artifact digests: {artifacts:#?}"
    );
}
