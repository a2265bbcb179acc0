//! Shared setup for imagegen's integration tests: generated builds and stand-in flashers.
#![allow(dead_code)] // each test crate uses a different part of this module

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use firmware::chip::Chip;
use testkit::elf::{EM_AARCH64, EM_X86_64, executable};
use testkit::idf_build::{BuildSpec, TableKind, write_build};

/// Paths of a generated sample: build directories and one flasher per platform.
pub struct Sample {
    pub builds: Vec<(String, PathBuf)>,
    pub amd64: PathBuf,
    pub arm64: PathBuf,
}

/// Three builds: esp32 (bootloader at 0x1000), esp32c3 (at 0x0) and esp32s3 named esp32s3r8
/// with OTA slots only.
pub fn sample(root: &Path) -> Sample {
    let mut builds = Vec::new();
    for (name, chip, table) in [
        ("esp32", Chip::Esp32, TableKind::FactoryAndOta),
        ("esp32c3", Chip::Esp32c3, TableKind::FactoryOnly),
        ("esp32s3r8", Chip::Esp32s3, TableKind::OtaOnly),
    ] {
        let mut spec = BuildSpec::new(chip);
        spec.table = table;
        spec.seed = chip.image_chip_id().into();
        let dir = root.join("builds").join(name);
        write_build(&dir, &spec).unwrap();
        builds.push((name.to_string(), dir));
    }
    let amd64 = root.join("flasher-amd64");
    let arm64 = root.join("flasher-arm64");
    std::fs::write(&amd64, executable(EM_X86_64, None)).unwrap();
    std::fs::write(&arm64, executable(EM_AARCH64, None)).unwrap();
    Sample {
        builds,
        amd64,
        arm64,
    }
}

impl Sample {
    /// `imagegen build` arguments for every build and both flashers.
    pub fn args(&self) -> Vec<String> {
        let mut args = vec!["build".to_string()];
        for (name, dir) in &self.builds {
            args.push("--target".into());
            args.push(format!("{name}={}", dir.display()));
        }
        args.push("--flasher".into());
        args.push(format!("linux/amd64={}", self.amd64.display()));
        args.push("--flasher".into());
        args.push(format!("linux/arm64={}", self.arm64.display()));
        args.extend(
            [
                "--app-type",
                "demo",
                "--version",
                "1.2.0",
                "--revision",
                "0123456789abcdef",
            ]
            .map(String::from),
        );
        args
    }
}

/// Runs imagegen with `args`.
pub fn imagegen(args: &[String]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_imagegen"))
        .args(args)
        .env_remove("SOURCE_DATE_EPOCH")
        .output()
        .expect("run imagegen")
}

/// The `index sha256:...` digest imagegen printed.
pub fn index_digest(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("index ").map(str::to_string))
        .expect("imagegen prints the index digest")
}

/// The tags of the OCI layout at `layout`, sorted, each with the digest and media type it
/// points at.
pub fn layout_refs(layout: &Path) -> std::collections::BTreeMap<String, (String, String)> {
    let top: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    top["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            let text = |v: &serde_json::Value| v.as_str().unwrap().to_string();
            (
                text(&d["annotations"]["org.opencontainers.image.ref.name"]),
                (text(&d["digest"]), text(&d["mediaType"])),
            )
        })
        .collect()
}

/// Builds the sample's flash image as a layout at `root/layout` and returns its path.
pub fn sample_layout(root: &Path, sample: &Sample) -> PathBuf {
    let layout = root.join("layout");
    let mut args = sample.args();
    args.extend(["--output".into(), layout.display().to_string()]);
    let out = imagegen(&args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    layout
}
