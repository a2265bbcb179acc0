//! Bad input: one line naming the file and the fix, a non-zero exit, and nothing written.

mod common;

use std::fs;
use std::path::Path;

use common::{Sample, imagegen, sample};
use firmware::chip::Chip;
use testkit::elf::{EM_AARCH64, EM_X86_64, executable};
use testkit::idf_build::{BuildSpec, write_build};

/// Runs imagegen with the sample's arguments after `mutate`, expecting a failure whose one-line
/// message contains every string of `expect`; checks that no output was left behind.
fn fails(mutate: impl FnOnce(&Path, &Sample, &mut Vec<String>), expect: &[&str]) {
    let tmp = tempfile::tempdir().unwrap();
    let s = sample(tmp.path());
    let out_dir = tmp.path().join("out");
    fs::create_dir(&out_dir).unwrap();
    let mut args = s.args();
    mutate(tmp.path(), &s, &mut args);
    args.extend([
        "--output".into(),
        out_dir.join("layout").display().to_string(),
        "--archive".into(),
        out_dir.join("flash.tar").display().to_string(),
    ]);
    let out = imagegen(&args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "expected failure, got success: {stderr}"
    );
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "one line: {stderr}");
    assert!(stderr.starts_with("imagegen: error: "), "{stderr}");
    for e in expect {
        assert!(stderr.contains(e), "'{e}' missing from: {stderr}");
    }
    let left: Vec<_> = fs::read_dir(&out_dir).unwrap().collect();
    assert!(left.is_empty(), "nothing may be written, found {left:?}");
    assert!(out.stdout.is_empty());
}

fn build_dir<'a>(s: &'a Sample, name: &str) -> &'a Path {
    &s.builds.iter().find(|(n, _)| n == name).unwrap().1
}

#[test]
fn missing_app_file() {
    fails(
        |_, s, _| fs::remove_file(build_dir(s, "esp32").join("demo.bin")).unwrap(),
        &["esp32/demo.bin", "cannot read", "check the path"],
    );
}

#[test]
fn missing_build_directory() {
    fails(
        |root, _, args| {
            args.extend([
                "--target".into(),
                root.join("nowhere").display().to_string(),
            ]);
        },
        &["nowhere", "not a directory", "ESP-IDF build directory"],
    );
}

#[test]
fn flasher_for_the_wrong_machine() {
    fails(
        |_, s, _| fs::write(&s.arm64, executable(EM_X86_64, None)).unwrap(),
        &[
            "flasher-arm64",
            "built for linux/amd64",
            "--flasher linux/arm64=PATH",
        ],
    );
}

#[test]
fn dynamically_linked_flasher() {
    fails(
        |_, s, _| {
            fs::write(
                &s.amd64,
                executable(EM_X86_64, Some("/lib64/ld-linux-x86-64.so.2")),
            )
            .unwrap()
        },
        &[
            "flasher-amd64",
            "dynamically linked",
            "scripts/build-flasher",
        ],
    );
}

#[test]
fn flasher_that_is_not_an_elf() {
    fails(
        |_, s, _| fs::write(&s.arm64, b"#!/bin/sh\nexit 0\n").unwrap(),
        &["flasher-arm64", "not an ELF", "static linux/arm64"],
    );
}

#[test]
fn bootloader_for_another_chip() {
    fails(
        |_, s, _| {
            let c3 = fs::read(build_dir(s, "esp32c3").join("bootloader/bootloader.bin")).unwrap();
            fs::write(build_dir(s, "esp32").join("bootloader/bootloader.bin"), c3).unwrap();
        },
        &[
            "esp32/bootloader/bootloader.bin",
            "built for esp32c3, but the target is esp32",
            "bootloader of the esp32 build",
        ],
    );
}

#[test]
fn corrupted_app_image() {
    fails(
        |_, s, _| {
            let path = build_dir(s, "esp32c3").join("demo.bin");
            let mut app = fs::read(&path).unwrap();
            app[1000] ^= 0xFF;
            fs::write(&path, app).unwrap();
        },
        &["esp32c3/demo.bin", "not a valid app image", "checksum"],
    );
}

#[test]
fn app_larger_than_its_partition() {
    fails(
        |root, _, args| {
            let mut spec = BuildSpec::new(Chip::Esp32s3);
            spec.app_len = 0x12_0000;
            let dir = root.join("big");
            write_build(&dir, &spec).unwrap();
            args.extend(["--target".into(), format!("esp32s3={}", dir.display())]);
        },
        &[
            "big/demo.bin",
            "larger than its partition 'factory'",
            "enlarge the partition",
        ],
    );
}

#[test]
fn unreadable_flasher_args() {
    fails(
        |_, s, _| {
            fs::write(
                build_dir(s, "esp32c3").join("flasher_args.json"),
                "{ not json",
            )
            .unwrap()
        },
        &[
            "esp32c3/flasher_args.json",
            "not valid JSON",
            "idf.py build",
        ],
    );
}

#[test]
fn flasher_args_without_the_app() {
    fails(
        |_, s, _| {
            let path = build_dir(s, "esp32c3").join("flasher_args.json");
            let mut v: serde_json::Value =
                serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
            v.as_object_mut().unwrap().remove("app");
            fs::write(&path, serde_json::to_vec(&v).unwrap()).unwrap();
        },
        &[
            "esp32c3/flasher_args.json",
            "no \"app\" entry",
            "idf.py build",
        ],
    );
}

#[test]
fn duplicate_target() {
    fails(
        |_, s, args| {
            args.extend([
                "--target".into(),
                build_dir(s, "esp32").display().to_string(),
            ]);
        },
        &["duplicate target 'esp32'", "--target NAME=DIR"],
    );
}

#[test]
fn target_named_after_another_chip() {
    fails(
        |_, s, args| {
            args.extend([
                "--target".into(),
                format!("esp32s2={}", build_dir(s, "esp32").display()),
            ]);
        },
        &[
            "is a build for esp32, but the target is named esp32s2",
            "name it esp32",
        ],
    );
}

#[test]
fn corrupted_partition_table() {
    fails(
        |_, s, _| {
            let path = build_dir(s, "esp32").join("partition_table/partition-table.bin");
            let mut table = fs::read(&path).unwrap();
            table[5] ^= 0x01;
            fs::write(&path, table).unwrap();
        },
        &[
            "esp32/partition_table/partition-table.bin",
            "not a valid partition table",
            "same build",
        ],
    );
}

#[test]
fn tag_with_bad_characters() {
    fails(
        |_, _, args| args.extend(["--tag".into(), "1.0+build".into()]),
        &["'1.0+build' is not a valid image tag", "--tag"],
    );
}

#[test]
fn bad_creation_time() {
    fails(
        |_, _, args| args.extend(["--created".into(), "yesterday".into()]),
        &["--created 'yesterday' is not a time", "RFC 3339"],
    );
}

#[test]
fn flasher_given_twice() {
    fails(
        |_, s, args| {
            fs::write(&s.arm64, executable(EM_AARCH64, None)).unwrap();
            args.extend([
                "--flasher".into(),
                format!("linux/arm64={}", s.arm64.display()),
            ]);
        },
        &["--flasher linux/arm64 is given twice"],
    );
}

#[test]
fn nothing_to_write_is_a_usage_error() {
    let tmp = tempfile::tempdir().unwrap();
    let s = sample(tmp.path());
    let out = imagegen(&s.args());
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("add --output DIR"));
}

/// The platform of the machine the tests run on, and the other one.
fn host_and_other() -> (&'static str, &'static str) {
    match std::env::consts::ARCH {
        "aarch64" => ("linux/arm64", "linux/amd64"),
        _ => ("linux/amd64", "linux/arm64"),
    }
}

/// Drops the `--flasher` of `platform` from `args`.
fn drop_flasher(args: &mut Vec<String>, platform: &str) {
    let at = args
        .iter()
        .position(|a| a.starts_with(&format!("{platform}=")))
        .unwrap();
    args.drain(at - 1..=at);
}

#[test]
fn one_flasher_without_platforms_is_refused() {
    fails(
        |_, _, args| drop_flasher(args, "linux/arm64"),
        &[
            "no flasher for linux/arm64",
            "add --flasher linux/arm64=PATH",
            "--platforms linux/amd64",
        ],
    );
}

#[test]
fn platforms_without_their_flasher_are_refused() {
    fails(
        |_, _, args| {
            drop_flasher(args, "linux/arm64");
            args.extend(["--platforms".into(), "linux/amd64,linux/arm64".into()]);
        },
        &[
            "--platforms names linux/arm64",
            "no --flasher linux/arm64=PATH",
        ],
    );
    fails(
        |_, _, args| args.extend(["--platforms".into(), "linux/amd64".into()]),
        &["--flasher linux/arm64 is not in --platforms linux/amd64"],
    );
}

#[test]
fn archive_platform_missing_from_the_image_is_refused() {
    let (host, other) = host_and_other();
    // Built for the other platform only: the default (this machine's) has no image.
    fails(
        |_, _, args| {
            drop_flasher(args, host);
            args.extend(["--platforms".into(), other.into()]);
        },
        &[
            &format!("default platform {host} (this machine's) is not in the image"),
            "no 'demo-1.2.0' image",
            &format!("--archive-platform {other}"),
        ],
    );
    // Named explicitly.
    fails(
        |_, _, args| {
            drop_flasher(args, other);
            args.extend([
                "--platforms".into(),
                host.into(),
                "--archive-platform".into(),
                other.into(),
            ]);
        },
        &[
            &format!("--archive-platform {other} is not in the image"),
            &format!("--archive-platform {host}"),
            &format!("--flasher {other}=PATH"),
        ],
    );
}

/// Runs imagegen with `args` and checks the one-line usage error with exit 1.
fn usage_error(args: &[&str], expect: &[&str]) {
    let out = imagegen(&args.iter().map(|a| a.to_string()).collect::<Vec<_>>());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "one line: {stderr}");
    assert!(stderr.starts_with("imagegen: error: "), "{stderr}");
    for e in expect {
        assert!(stderr.contains(e), "'{e}' missing from: {stderr}");
    }
    assert!(out.stdout.is_empty());
}

#[test]
fn usage_errors_are_one_line_with_exit_1() {
    usage_error(
        &["build", "--bogus"],
        &["unexpected argument '--bogus'", "see imagegen build --help"],
    );
    usage_error(
        &["build", "--output", "x"],
        &[
            "required arguments were not provided",
            "--flasher",
            "imagegen build --help",
        ],
    );
    usage_error(
        &[
            "unpack",
            "--layout",
            "l",
            "--to",
            "t",
            "--platform",
            "sparc",
        ],
        &[
            "unknown platform 'sparc'",
            "linux/amd64 or linux/arm64",
            "imagegen unpack --help",
        ],
    );
    usage_error(&[], &["no subcommand given", "imagegen --help"]);
    usage_error(&["bild"], &["unrecognized subcommand 'bild'", "'build'"]);
    for flag in ["--help", "--version"] {
        let out = imagegen(&[flag.to_string()]);
        assert_eq!(out.status.code(), Some(0), "{flag}");
        assert!(out.stderr.is_empty(), "{flag}");
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("imagegen"),
            "{flag}"
        );
    }
    let out = imagegen(&["build".into(), "--help".into()]);
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("--platforms"));
}
