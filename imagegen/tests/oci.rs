//! The flash image as OCI tools see it: skopeo, umoci, the OCI JSON schemas, and reproducibility.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::process::Command;

use common::{imagegen, index_digest, layout_refs, sample, sample_layout};
use firmware::manifest::{Manifest, sha256_hex};
use serde_json::Value;
use testkit::tools::{oci_check, require, run_ok};

const INDEX_TAG: &str = "demo-1.2.0";

fn json(path: &Path) -> Value {
    serde_json::from_slice(&fs::read(path).unwrap()).unwrap()
}

fn blob(layout: &Path, digest: &str) -> Vec<u8> {
    fs::read(
        layout
            .join("blobs/sha256")
            .join(digest.trim_start_matches("sha256:")),
    )
    .unwrap()
}

/// Every file below `dir`, by relative path, with its sha256.
fn tree(dir: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p.strip_prefix(dir).unwrap().to_string_lossy().into_owned();
                out.insert(rel, sha256_hex(&fs::read(&p).unwrap()));
            }
        }
    }
    out
}

#[test]
fn flash_image_passes_skopeo_umoci_and_the_schemas() {
    let tmp = tempfile::tempdir().unwrap();
    let s = sample(tmp.path());
    let layout = tmp.path().join("layout");
    let archive = tmp.path().join("flash.tar");
    let mut args = s.args();
    args.extend([
        "--output".into(),
        layout.display().to_string(),
        "--archive".into(),
        archive.display().to_string(),
        "--tag".into(),
        "latest".into(),
    ]);
    let out = imagegen(&args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let digest = index_digest(&out);

    // Tags: index, extra, and one per platform with the short revision.
    let refs = layout_refs(&layout);
    let tags: Vec<&str> = refs.keys().map(String::as_str).collect();
    assert_eq!(
        tags,
        [
            "amd64-demo-1.2.0-0123456",
            "arm64-demo-1.2.0-0123456",
            "demo-1.2.0",
            "latest"
        ]
    );
    assert_eq!(refs[INDEX_TAG].0, digest);
    assert_eq!(refs["latest"].0, digest);
    assert!(refs[INDEX_TAG].1.ends_with("index.v1+json"));

    // Schemas, digests, sizes, diff_ids, platforms.
    let report = oci_check(&layout).unwrap_or_else(|e| panic!("OCI check failed:\n{e}"));
    println!("{report}");

    // skopeo reads the exact index bytes and copies every platform.
    let skopeo = require("skopeo");
    let raw = run_ok(
        Command::new(&skopeo)
            .args(["inspect", "--raw"])
            .arg(format!("oci:{}:{INDEX_TAG}", layout.display())),
    );
    assert_eq!(format!("sha256:{}", sha256_hex(&raw.stdout)), digest);
    let copy = tmp.path().join("copy");
    run_ok(
        Command::new(&skopeo)
            .args(["copy", "--all"])
            .arg(format!("oci:{}:{INDEX_TAG}", layout.display()))
            .arg(format!("oci:{}:{INDEX_TAG}", copy.display())),
    );
    let raw_copy = run_ok(
        Command::new(&skopeo)
            .args(["inspect", "--raw"])
            .arg(format!("oci:{}:{INDEX_TAG}", copy.display())),
    );
    assert_eq!(
        raw_copy.stdout, raw.stdout,
        "skopeo copy --all keeps the index byte for byte"
    );
    // The archive is a valid oci-archive too.
    let from_archive = run_ok(
        Command::new(&skopeo)
            .args(["inspect", "--raw"])
            .arg(format!("oci-archive:{}:{INDEX_TAG}", archive.display())),
    );
    assert_eq!(from_archive.stdout, raw.stdout);

    // The firmware layer is one blob shared by both platforms; the flasher layers differ.
    let index: Value = serde_json::from_slice(&raw.stdout).unwrap();
    let manifests: Vec<Value> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| serde_json::from_slice(&blob(&layout, d["digest"].as_str().unwrap())).unwrap())
        .collect();
    assert_eq!(manifests.len(), 2);
    assert_eq!(
        manifests[0]["layers"][1]["digest"],
        manifests[1]["layers"][1]["digest"]
    );
    assert_ne!(
        manifests[0]["layers"][0]["digest"],
        manifests[1]["layers"][0]["digest"]
    );

    // Each platform unpacks (umoci checks digests and diff_ids) to /flasher and /firmware.
    let umoci = require("umoci");
    for (arch, machine) in [("amd64", 62u16), ("arm64", 183u16)] {
        // The per-platform tag unpacks directly...
        let bundle = tmp.path().join(format!("bundle-{arch}"));
        run_ok(
            Command::new(&umoci)
                .args(["unpack", "--rootless", "--image"])
                .arg(format!("{}:{arch}-demo-1.2.0-0123456", layout.display()))
                .arg(&bundle),
        );
        // ...and the index tag after skopeo picks the platform.
        let single = tmp.path().join(format!("single-{arch}"));
        run_ok(
            Command::new(&skopeo)
                .args(["copy", "--override-arch", arch])
                .arg(format!("oci:{}:{INDEX_TAG}", layout.display()))
                .arg(format!("oci:{}:{INDEX_TAG}", single.display())),
        );
        let bundle2 = tmp.path().join(format!("bundle2-{arch}"));
        run_ok(
            Command::new(&umoci)
                .args(["unpack", "--rootless", "--image"])
                .arg(format!("{}:{INDEX_TAG}", single.display()))
                .arg(&bundle2),
        );

        for b in [&bundle, &bundle2] {
            let rootfs = b.join("rootfs");
            let flasher = fs::read(rootfs.join("flasher")).unwrap();
            assert_eq!(
                u16::from_le_bytes([flasher[18], flasher[19]]),
                machine,
                "{arch} flasher"
            );
            let config = json(&b.join("config.json"));
            assert_eq!(config["process"]["args"][0], "/flasher");
            let manifest =
                Manifest::from_json(&fs::read(rootfs.join("firmware/manifest.json")).unwrap())
                    .unwrap();
            let names: Vec<&str> = manifest.targets.iter().map(|t| t.name.as_str()).collect();
            assert_eq!(names, ["esp32", "esp32c3", "esp32s3r8"]);
            let files = tree(&rootfs.join("firmware"));
            let mut listed = 1; // manifest.json itself
            for t in &manifest.targets {
                for f in &t.files {
                    assert_eq!(files.get(&f.path), Some(&f.sha256), "{arch}: {}", f.path);
                    listed += 1;
                }
            }
            assert_eq!(
                files.len(),
                listed,
                "the firmware tree holds exactly the manifest's files"
            );
            let esp32 = manifest.target("esp32").unwrap();
            assert_eq!(esp32.bootloader_offset, 0x1000);
            assert_eq!(manifest.target("esp32c3").unwrap().bootloader_offset, 0);
            assert_eq!(esp32.app.name, "demo");
            assert_eq!(manifest.version.as_deref(), Some("1.2.0"));
        }
    }
}

#[test]
fn same_inputs_give_the_same_digests() {
    let tmp = tempfile::tempdir().unwrap();
    let s = sample(tmp.path());
    let mut digests = Vec::new();
    let mut trees = Vec::new();
    for run in 0..2 {
        let layout = tmp.path().join(format!("layout{run}"));
        let mut args = s.args();
        args.extend(["--output".into(), layout.display().to_string()]);
        let out = imagegen(&args);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        digests.push(index_digest(&out));
        trees.push(tree(&layout));
    }
    assert_eq!(digests[0], digests[1]);
    assert_eq!(trees[0], trees[1], "layouts are identical file for file");

    // A different creation time changes the digest; SOURCE_DATE_EPOCH is honoured.
    let mut args = s.args();
    args.extend([
        "--output".into(),
        tmp.path().join("later").display().to_string(),
    ]);
    let out = Command::new(env!("CARGO_BIN_EXE_imagegen"))
        .args(&args)
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_ne!(index_digest(&out), digests[0]);
}

#[test]
fn the_checker_catches_a_broken_layout() {
    let tmp = tempfile::tempdir().unwrap();
    let s = sample(tmp.path());
    let layout = sample_layout(tmp.path(), &s);
    oci_check(&layout).unwrap();
    // Truncate the largest blob (a layer): its digest and size no longer hold.
    let blobs = layout.join("blobs/sha256");
    let biggest = fs::read_dir(&blobs)
        .unwrap()
        .map(|e| e.unwrap().path())
        .max_by_key(|p| fs::metadata(p).unwrap().len())
        .unwrap();
    let bytes = fs::read(&biggest).unwrap();
    fs::write(&biggest, &bytes[..bytes.len() / 2]).unwrap();
    let err = oci_check(&layout).unwrap_err();
    assert!(err.contains("does not match its digest"), "{err}");
}

#[test]
fn unpack_extracts_each_platform_and_checks_digests() {
    let tmp = tempfile::tempdir().unwrap();
    let s = sample(tmp.path());
    let layout = sample_layout(tmp.path(), &s);
    for (arch, machine) in [("amd64", 62u16), ("arm64", 183u16)] {
        let root = tmp.path().join(format!("root-{arch}"));
        let out = imagegen(&[
            "unpack".into(),
            "--layout".into(),
            layout.display().to_string(),
            "--tag".into(),
            INDEX_TAG.into(),
            "--platform".into(),
            format!("linux/{arch}"),
            "--to".into(),
            root.display().to_string(),
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let flasher = fs::read(root.join("flasher")).unwrap();
        assert_eq!(u16::from_le_bytes([flasher[18], flasher[19]]), machine);
        let manifest =
            Manifest::from_json(&fs::read(root.join("firmware/manifest.json")).unwrap()).unwrap();
        for t in &manifest.targets {
            for f in &t.files {
                assert!(f.matches(&fs::read(root.join("firmware").join(&f.path)).unwrap()));
            }
        }
    }
    // A corrupted blob is refused and nothing is extracted.
    let blobs = layout.join("blobs/sha256");
    for e in fs::read_dir(&blobs).unwrap() {
        let p = e.unwrap().path();
        if fs::metadata(&p).unwrap().len() > 100_000 {
            let mut b = fs::read(&p).unwrap();
            b[5000] ^= 1;
            fs::write(&p, b).unwrap();
        }
    }
    let root = tmp.path().join("root-bad");
    let out = imagegen(&[
        "unpack".into(),
        "--layout".into(),
        layout.display().to_string(),
        "--to".into(),
        root.display().to_string(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not match its digest"));
    assert!(!root.exists());
}

/// The digests of the sample image built from fixed inputs, as this version of imagegen makes
/// them: a change to how images are assembled or serialized shows here first. Both ways of
/// fixing the creation time give the same image.
#[test]
fn sample_image_digests_are_pinned() {
    const INDEX: &str = "sha256:ae171c5aeab78d57e8f501b77fcda9301170e8f8755e2b1ab59c207c60720301";
    const ARCHIVE: &str = "8dcd764418a7a0598b7d778b3806b44e30306a80b6414d253641d41c2f4975fc";
    let tmp = tempfile::tempdir().unwrap();
    let s = sample(tmp.path());
    let mut digests = Vec::new();
    for (run, created) in [("flag", Some("1700000000")), ("env", None)] {
        let layout = tmp.path().join(format!("layout-{run}"));
        let archive = tmp.path().join(format!("flash-{run}.tar"));
        let mut args = s.args();
        if let Some(c) = created {
            args.extend(["--created".into(), c.into()]);
        }
        args.extend([
            "--output".into(),
            layout.display().to_string(),
            "--archive".into(),
            archive.display().to_string(),
            "--archive-platform".into(),
            "linux/amd64".into(),
        ]);
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_imagegen"));
        cmd.args(&args).env_remove("SOURCE_DATE_EPOCH");
        if created.is_none() {
            cmd.env("SOURCE_DATE_EPOCH", "2023-11-14T22:13:20Z");
        }
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let index = index_digest(&out);
        assert_eq!(layout_refs(&layout)["demo-1.2.0"].0, index);
        digests.push((index, sha256_hex(&fs::read(&archive).unwrap())));
    }
    for (index, archive) in &digests {
        assert_eq!(index, INDEX, "index digest of the sample image");
        assert_eq!(archive, ARCHIVE, "sha256 of the sample archive");
    }
}

/// `--platforms` builds an image for fewer platforms on purpose: one image in the index, and
/// the archive loads under the index tag.
#[test]
fn explicit_platforms_build_a_smaller_image() {
    let host = match std::env::consts::ARCH {
        "aarch64" => "linux/arm64",
        _ => "linux/amd64",
    };
    let other = if host == "linux/amd64" {
        "linux/arm64"
    } else {
        "linux/amd64"
    };
    let tmp = tempfile::tempdir().unwrap();
    let s = sample(tmp.path());
    let layout = tmp.path().join("layout");
    let archive = tmp.path().join("flash.tar");
    let mut args = s.args();
    let at = args
        .iter()
        .position(|a| a.starts_with(&format!("{other}=")))
        .unwrap();
    args.drain(at - 1..=at);
    args.extend([
        "--platforms".into(),
        host.into(),
        "--output".into(),
        layout.display().to_string(),
        "--archive".into(),
        archive.display().to_string(),
    ]);
    let out = imagegen(&args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let digest = index_digest(&out);
    let index: Value = serde_json::from_slice(&blob(&layout, &digest)).unwrap();
    let platforms: Vec<String> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            format!(
                "{}/{}",
                m["platform"]["os"].as_str().unwrap(),
                m["platform"]["architecture"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(platforms, [host]);
    // docker load's manifest.json gives the single image the index tag.
    let mut tar = tar::Archive::new(fs::File::open(&archive).unwrap());
    let manifest = tar
        .entries()
        .unwrap()
        .map(|e| e.unwrap())
        .find(|e| e.path().unwrap().to_str() == Some("manifest.json"))
        .map(|mut e| {
            let mut text = String::new();
            std::io::Read::read_to_string(&mut e, &mut text).unwrap();
            text
        })
        .unwrap();
    let manifest: Value = serde_json::from_str(&manifest).unwrap();
    let tags = manifest[0]["RepoTags"].as_array().unwrap();
    assert!(
        tags.iter().any(|t| t == "demo-flash:demo-1.2.0"),
        "{manifest}"
    );
}
