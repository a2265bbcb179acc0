//! Shared helpers of the integration tests: firmware bundles from ESP-IDF build directories
//! (made by imagegen, or laid out as the original images did), running the flasher binary, and
//! finding esptool.

#![allow(dead_code)] // each test binary uses a part of these helpers

pub mod rows;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use firmware::chip::Chip;
use firmware::manifest;
use imagegen::bundle::{Bundle, Metadata};
use imagegen::inputs::{SourceFile, TargetInput};
use serde_json::Value;

/// The esptool 5.x executable: `$ESPTOOL`, else `<workspace>/.venv/bin/esptool`, else `PATH`.
/// Panics (failing the test) when there is none.
pub fn esptool() -> PathBuf {
    if let Some(path) = std::env::var_os("ESPTOOL") {
        return path.into();
    }
    let venv = testkit::workspace_root().join(".venv/bin/esptool");
    if venv.is_file() {
        return venv;
    }
    std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .map(|dir| dir.join("esptool"))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "esptool 5.x not found: set ESPTOOL=/path/to/esptool, or install it with \
                 `python3 -m venv .venv && .venv/bin/pip install esptool` in the workspace root, \
                 or put it on PATH"
            )
        })
}

/// Runs `esptool merge-bin` and returns the merged image.
pub fn esptool_merge(
    chip: Chip,
    flash_size: &str,
    mode: &str,
    freq: &str,
    parts: &[(u32, PathBuf)],
    out: &Path,
) -> Vec<u8> {
    let mut cmd = Command::new(esptool());
    cmd.args(["--chip", chip.name(), "merge-bin", "-o"])
        .arg(out)
        .args([
            "--flash-mode",
            mode,
            "--flash-freq",
            freq,
            "--flash-size",
            flash_size,
        ])
        .args(["--pad-to-size", flash_size]);
    for (offset, path) in parts {
        cmd.arg(format!("{offset:#x}")).arg(path);
    }
    let output = cmd.output().expect("esptool runs");
    assert!(
        output.status.success(),
        "esptool merge-bin failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    fs::read(out).expect("esptool wrote the merged image")
}

/// The parts of an ESP-IDF build directory, from its `flasher_args.json` and `sdkconfig`.
#[derive(Debug, Clone)]
pub struct BuildParts {
    pub dir: PathBuf,
    pub chip: Chip,
    pub mode: String,
    pub freq: String,
    pub size: String,
    pub bootloader: (u32, PathBuf),
    pub table: (u32, PathBuf),
    pub otadata: Option<(u32, PathBuf)>,
    pub app: (u32, PathBuf),
    /// Every file `flash_files` lists (what `esptool write-flash @flash_args` writes).
    pub flash_files: Vec<(u32, PathBuf)>,
}

fn hex(s: &str) -> u32 {
    u32::from_str_radix(s.trim_start_matches("0x"), 16).expect("hex offset")
}

fn offset(v: &Value) -> u32 {
    hex(v["offset"].as_str().expect("offset string"))
}

/// Reads a build directory (`partition-table` spelt either way, as ESP-IDF releases do).
pub fn read_build(dir: &Path) -> BuildParts {
    let args: Value =
        serde_json::from_slice(&fs::read(dir.join("flasher_args.json")).unwrap()).unwrap();
    let part = |key: &str| {
        let v = &args[key];
        (!v.is_null()).then(|| (offset(v), dir.join(v["file"].as_str().unwrap())))
    };
    let settings = &args["flash_settings"];
    let s = |k: &str| settings[k].as_str().unwrap().to_string();
    BuildParts {
        dir: dir.to_path_buf(),
        chip: args["extra_esptool_args"]["chip"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap(),
        mode: s("flash_mode"),
        freq: s("flash_freq"),
        size: s("flash_size"),
        bootloader: part("bootloader").unwrap(),
        table: part("partition-table")
            .or_else(|| part("partition_table"))
            .unwrap(),
        otadata: part("otadata"),
        app: part("app").unwrap(),
        flash_files: args["flash_files"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(o, f)| (hex(o), dir.join(f.as_str().unwrap())))
            .collect(),
    }
}

/// Writes a firmware bundle into `root` (which must not exist yet), one target per build (named
/// as given) plus the model. With `manifest`, imagegen makes it, as for a real image; without,
/// it is laid out as the original esptool-based images did: the same tree, no `manifest.json`.
pub fn write_bundle(
    root: &Path,
    builds: &[(&str, &BuildParts)],
    model: Option<&[u8]>,
    manifest: bool,
) {
    if manifest {
        let targets = builds
            .iter()
            .map(|(name, b)| TargetInput::from_build_dir(Some(name), &b.dir).unwrap())
            .collect();
        let model = model.map(|bytes| SourceFile {
            path: PathBuf::from(manifest::MODEL_FILE),
            bytes: bytes.to_vec(),
        });
        Bundle::new(targets, model, &Metadata::default())
            .unwrap()
            .write_dir(root)
            .unwrap();
        return;
    }
    for (name, b) in builds {
        let art = root.join(name).join(manifest::ARTIFACTS_DIR);
        fs::create_dir_all(&art).unwrap();
        let copy = |src: &Path, file: &str| fs::copy(src, art.join(file)).unwrap();
        copy(&b.bootloader.1, "bootloader.bin");
        copy(&b.table.1, "partition-table.bin");
        if let Some((_, path)) = &b.otadata {
            copy(path, "ota_data_initial.bin");
        }
        copy(&b.app.1, b.app.1.file_name().unwrap().to_str().unwrap());
        copy(&b.dir.join("sdkconfig"), "sdkconfig");
        if b.dir.join("partitions.csv").is_file() {
            copy(&b.dir.join("partitions.csv"), "partitions.csv");
        }
    }
    if let Some(data) = model {
        fs::write(root.join(manifest::MODEL_FILE), data).unwrap();
    }
}

/// Writes the bundle imagegen makes of the build directory `build` (target named after its
/// chip) into `root`.
pub fn bundle_build_dir(root: &Path, build: &Path) {
    let target = TargetInput::from_build_dir(None, build).unwrap();
    Bundle::new(vec![target], None, &Metadata::default())
        .unwrap()
        .write_dir(root)
        .unwrap();
}

/// The files of a generated build, by offset, as paths (what esptool is given).
pub fn flash_file_paths(build: &testkit::idf_build::Build) -> Vec<(u32, PathBuf)> {
    build
        .flash_files
        .iter()
        .map(|(o, p, _)| (*o, build.dir.join(p)))
        .collect()
}

/// A generated build of `spec` in `dir`.
pub fn generated_build(dir: &Path, spec: &testkit::idf_build::BuildSpec) -> BuildParts {
    testkit::idf_build::write_build(dir, spec).unwrap();
    read_build(dir)
}

/// Runs the flasher binary with `args`.
pub fn flasher(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_flasher"))
        .args(args)
        .output()
        .expect("flasher runs")
}

/// The flasher's stderr as text.
pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A model-like payload of `len` bytes.
pub fn model(len: usize) -> Vec<u8> {
    testkit::firmware::code_like(len, 77)
}
