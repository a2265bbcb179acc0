//! PSRAM variants (`--chip esp32s3r8`, `esp32s2r2`) against the simulated board's eFuses: the
//! right PSRAM is written, other PSRAM (or none) is refused untouched with exit 5.

mod common;

use std::path::Path;

use common::{flasher, generated_build, stderr, write_bundle};
use esp_sim::{BoardConfig, SimBoard};
use firmware::chip::Chip;
use testkit::idf_build::BuildSpec;

/// A bundle whose only target is `target` (a PSRAM variant of `chip`); returns its path.
fn bundle(dir: &Path, chip: Chip, target: &str) -> String {
    let build = generated_build(&dir.join("build"), &BuildSpec::new(chip));
    write_bundle(&dir.join("fw"), &[(target, &build)], None, true);
    dir.join("fw").to_str().unwrap().to_string()
}

/// Writes `target` from `fw` to a `chip` board with `psram` (none when `None`); returns the
/// exit code, stderr and the final flash.
fn write(
    fw: &str,
    chip: esp_sim::Chip,
    psram: Option<&str>,
    target: &str,
) -> (i32, String, Vec<u8>) {
    let mut config = BoardConfig::new(chip);
    config.psram = psram.map(|p| p.parse().unwrap());
    let board = SimBoard::start(config).unwrap();
    let port = board.path().to_str().unwrap().to_string();
    let out = flasher(&[
        "--port",
        &port,
        "--chip",
        target,
        "--flash_size",
        "4MB",
        "--firmware-dir",
        fw,
        "--before",
        "no-reset",
        "--after",
        "no-reset",
    ]);
    (out.status.code().unwrap(), stderr(&out), board.stop())
}

#[test]
fn a_psram_variant_is_checked_against_the_efuses() {
    let tmp = tempfile::tempdir().unwrap();
    let fw = bundle(tmp.path(), Chip::Esp32s3, "esp32s3r8");
    let (code, err, flash) = write(&fw, esp_sim::Chip::Esp32s3, Some("8MB"), "esp32s3r8");
    assert_eq!(code, 0, "{err}");
    assert!(flash.iter().any(|&b| b != 0xFF));

    let (code, err, flash) = write(&fw, esp_sim::Chip::Esp32s3, Some("2MB"), "esp32s3r8");
    assert_eq!(code, 5, "{err}");
    let errors: Vec<&str> = err.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "{err}");
    assert!(
        errors[0].contains("--chip esp32s3r8 needs 8 MB of PSRAM")
            && errors[0].contains("record 2 MB embedded"),
        "{err}"
    );
    assert!(
        flash.iter().all(|&b| b == 0xFF),
        "a refused board was written"
    );

    let (code, err, flash) = write(&fw, esp_sim::Chip::Esp32s3, None, "esp32s3r8");
    assert_eq!(code, 5, "{err}");
    assert!(err.contains("record no embedded PSRAM"), "{err}");
    assert!(flash.iter().all(|&b| b == 0xFF));
}

#[test]
fn esp32s2_psram_version_is_read() {
    let tmp = tempfile::tempdir().unwrap();
    let fw = bundle(tmp.path(), Chip::Esp32s2, "esp32s2r2");
    let (code, err, _) = write(&fw, esp_sim::Chip::Esp32s2, Some("2MB"), "esp32s2r2");
    assert_eq!(code, 0, "{err}");
    let (code, err, flash) = write(&fw, esp_sim::Chip::Esp32s2, Some("4MB"), "esp32s2r2");
    assert_eq!(code, 5, "{err}");
    assert!(
        err.contains("needs 2 MB of PSRAM") && err.contains("record 4 MB embedded"),
        "{err}"
    );
    assert!(flash.iter().all(|&b| b == 0xFF));
}

#[test]
fn esp32_psram_outside_the_package_is_not_checked() {
    let tmp = tempfile::tempdir().unwrap();
    let fw = bundle(tmp.path(), Chip::Esp32, "esp32r2");
    let (code, err, _) = write(&fw, esp_sim::Chip::Esp32, None, "esp32r2");
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("do not record PSRAM") && err.contains("not checked"),
        "{err}"
    );
    let (code, err, _) = write(&fw, esp_sim::Chip::Esp32, Some("2MB"), "esp32r2");
    assert_eq!(code, 0, "{err}");
    assert!(!err.contains("not checked"), "{err}");
}
