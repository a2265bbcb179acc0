//! Shared test helpers: the reference generator from the workspace's venv.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// The venv's Python, which must have `esp-idf-nvs-partition-gen` installed.
pub fn python() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the crate sits in the workspace");
    let python = root.join(".venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: create the venv and `pip install esp-idf-nvs-partition-gen` (bash .ci/run does)",
        python.display()
    );
    python
}

/// Runs the reference generator on `csv` in `dir` (where `file` rows are resolved) and
/// returns the image.
pub fn reference_image_in(dir: &Path, csv: &str, size: u32) -> Vec<u8> {
    std::fs::write(dir.join("input.csv"), csv).unwrap();
    let out = dir.join("out.bin");
    let _ = std::fs::remove_file(&out);
    let output = Command::new(python())
        .args([
            "-m",
            "esp_idf_nvs_partition_gen",
            "generate",
            "input.csv",
            "out.bin",
            &format!("{size:#x}"),
        ])
        .current_dir(dir)
        .output()
        .expect("run the reference generator");
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success(),
        "reference generator failed on\n{csv}\n{log}"
    );
    assert!(
        !log.contains("Traceback"),
        "reference generator crashed on\n{csv}\n{log}"
    );
    let image = std::fs::read(&out)
        .unwrap_or_else(|e| panic!("reference generator wrote no image ({e}):\n{log}"));
    assert_eq!(image.len(), size as usize, "reference image size\n{log}");
    image
}

/// Runs the reference generator on `csv` with `files` written beside it.
pub fn reference_image(csv: &str, size: u32, files: &[(&str, &[u8])]) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    for (name, bytes) in files {
        std::fs::write(dir.path().join(name), bytes).unwrap();
    }
    reference_image_in(dir.path(), csv, size)
}

/// Our image for `csv` with `files` written beside it.
pub fn our_image(csv: &str, size: u32, files: &[(&str, &[u8])]) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    for (name, bytes) in files {
        std::fs::write(dir.path().join(name), bytes).unwrap();
    }
    mfg::nvs::image_from_csv(csv, dir.path(), size).unwrap_or_else(|e| panic!("{e}\n{csv}"))
}

/// Asserts both generators give the same image, naming the first differing offset.
pub fn assert_same(csv: &str, size: u32, files: &[(&str, &[u8])]) {
    let ours = our_image(csv, size, files);
    let reference = reference_image(csv, size, files);
    assert_same_bytes(&ours, &reference, csv);
}

/// Asserts two images are equal, naming the first differing offset.
pub fn assert_same_bytes(ours: &[u8], reference: &[u8], what: &str) {
    assert_eq!(ours.len(), reference.len(), "image length for\n{what}");
    if let Some(at) = ours.iter().zip(reference).position(|(a, b)| a != b) {
        let page = at / 4096;
        let entry = (at % 4096).saturating_sub(64) / 32;
        panic!(
            "images differ at {at:#x} (page {page}, entry {entry}): ours {:02x?} reference {:02x?}\nfor\n{what}",
            &ours[at & !31..(at & !31) + 32],
            &reference[at & !31..(at & !31) + 32]
        );
    }
}

/// A small deterministic generator for test data.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next() as u8).collect()
    }
}

pub const HEADER: &str = "key,type,encoding,value\n";
