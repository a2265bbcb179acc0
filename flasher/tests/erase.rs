//! `--erase-all`, `--erase-parts` and `--erase-data-parts` against the simulated board: the
//! flash ends byte for byte as expected (erased parts 0xFF, regions written over them as
//! written, the rest untouched), the plan and the report show the erases, and an unknown label
//! names the table's labels.

mod common;

use std::fs;
use std::path::Path;

use common::{flasher, generated_build, stderr, write_bundle};
use esp_sim::{BoardConfig, SimBoard};
use firmware::chip::Chip;
use serde_json::Value;
use testkit::idf_build::BuildSpec;

/// nvs, otadata and phy_init of the generated table (offset, size).
const NVS: (usize, usize) = (0x9000, 0x6000);
const OTADATA: (usize, usize) = (0xF000, 0x2000);
const PHY: (usize, usize) = (0x11000, 0x1000);
/// Past the app in `factory`, inside `ota_1`: written by no region.
const UNUSED: (usize, usize) = (0x30_0000, 0x1000);

/// A bundle for the ESP32-C3 in `dir/fw`; returns its path and the merged plan (what an erased
/// board holds after a write).
fn bundle(dir: &Path) -> (String, Vec<u8>) {
    let build = generated_build(&dir.join("build"), &BuildSpec::new(Chip::Esp32c3));
    write_bundle(&dir.join("fw"), &[("esp32c3", &build)], None, true);
    let fw = dir.join("fw").to_str().unwrap().to_string();
    let merged = dir.join("merged.bin");
    let out = flasher(&[
        "--chip",
        "esp32c3",
        "--flash_size",
        "4MB",
        "--firmware-dir",
        &fw,
        "--merge-out",
        merged.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    (fw, fs::read(merged).unwrap())
}

/// A 4 MB flash with junk (0x00..) in nvs, otadata, phy_init and an unused sector.
fn junk_flash() -> Vec<u8> {
    let mut flash = vec![0xFF; 4 << 20];
    for (at, len) in [NVS, OTADATA, PHY, UNUSED] {
        for (i, b) in flash[at..at + len].iter_mut().enumerate() {
            *b = (i % 251) as u8;
        }
    }
    flash
}

/// `base` with the given ranges taken from `from`.
fn with_ranges(base: &[u8], from: &[u8], ranges: &[(usize, usize)]) -> Vec<u8> {
    let mut out = base.to_vec();
    for &(at, len) in ranges {
        out[at..at + len].copy_from_slice(&from[at..at + len]);
    }
    out
}

/// Writes the bundle at `fw` to a board preloaded with `flash`, with `extra` arguments;
/// returns the flash, stderr and the report's only record.
fn run(fw: &str, flash: Vec<u8>, extra: &[&str], dir: &Path) -> (Vec<u8>, String, Value) {
    let board =
        SimBoard::start(BoardConfig::new(esp_sim::Chip::Esp32c3).initial_flash(flash)).unwrap();
    let port = board.path().to_str().unwrap().to_string();
    let report = dir.join("report.json");
    let mut args = vec![
        "--port",
        &port,
        "--chip",
        "esp32c3",
        "--flash_size",
        "4MB",
        "--firmware-dir",
        fw,
        "--before",
        "no-reset",
        "--after",
        "no-reset",
        "--report",
        report.to_str().unwrap(),
    ];
    args.extend(extra);
    let out = flasher(&args);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    let run: Value = serde_json::from_slice(&fs::read(&report).unwrap()).unwrap();
    (board.stop(), err, run["boards"][0].clone())
}

#[test]
fn erase_parts_leaves_nvs_erased_and_the_rest_as_it_was() {
    let tmp = tempfile::tempdir().unwrap();
    let (fw, merged) = bundle(tmp.path());
    let junk = junk_flash();
    let (flash, err, record) = run(&fw, junk.clone(), &["--erase-parts", "nvs"], tmp.path());
    // Without the erase, the junk outside the regions would stay; nvs alone is erased.
    let expected = with_ranges(&merged, &junk, &[PHY, UNUSED]);
    assert!(
        flash == expected,
        "the flash differs from the plan with nvs erased"
    );
    assert!(
        err.contains("erasing nvs at 0x9000 (0x6000 bytes)"),
        "{err}"
    );
    assert_eq!(record["erased"][0]["label"], "nvs", "{record}");
    assert_eq!(record["erased"][0]["size"], 0x6000, "{record}");
}

#[test]
fn erase_data_parts_erases_every_data_partition_then_writes_otadata() {
    let tmp = tempfile::tempdir().unwrap();
    let (fw, merged) = bundle(tmp.path());
    let junk = junk_flash();
    let (flash, _, record) = run(&fw, junk.clone(), &["--erase-data-parts"], tmp.path());
    // nvs, otadata (written as the plan says) and phy_init end erased; the unused sector of
    // ota_1 is an app partition, kept.
    assert!(flash == with_ranges(&merged, &junk, &[UNUSED]));
    let labels: Vec<&str> = record["erased"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["label"].as_str().unwrap())
        .collect();
    assert_eq!(labels, ["nvs", "otadata", "phy_init"], "{record}");
    // With subtypes, as espflash: only those.
    let (flash, _, _) = run(
        &fw,
        junk.clone(),
        &["--erase-data-parts", "phy"],
        tmp.path(),
    );
    assert!(flash == with_ranges(&merged, &junk, &[NVS, UNUSED]));
}

#[test]
fn erase_all_leaves_0xff_everywhere_outside_the_plan() {
    let tmp = tempfile::tempdir().unwrap();
    let (fw, merged) = bundle(tmp.path());
    let mut junk = junk_flash();
    junk[0x3F_F000..].fill(0x00);
    let (flash, err, record) = run(&fw, junk, &["--erase-all"], tmp.path());
    assert!(flash == merged, "the flash differs from the merged plan");
    assert!(err.contains("erasing the whole flash"), "{err}");
    assert_eq!(record["erased"][0]["label"], "whole flash", "{record}");
}

#[test]
fn erases_show_in_the_plan_and_the_merged_image() {
    let tmp = tempfile::tempdir().unwrap();
    let (fw, merged) = bundle(tmp.path());
    let plan_args = [
        "--chip",
        "esp32c3",
        "--flash_size",
        "4MB",
        "--firmware-dir",
        &fw,
    ];
    let mut args = plan_args.to_vec();
    args.extend(["--erase-parts", "nvs,phy_init", "--dry-run"]);
    let out = flasher(&args);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        text.contains("erased before writing")
            && text.contains("0x0009000 nvs")
            && text.contains("0x0011000 phy_init"),
        "{text}"
    );
    let out_path = tmp.path().join("erased.bin");
    let mut args = plan_args.to_vec();
    args.extend(["--erase-all", "--merge-out", out_path.to_str().unwrap()]);
    let out = flasher(&args);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(fs::read(out_path).unwrap() == merged);
}

#[test]
fn an_unknown_label_names_the_table_labels() {
    let tmp = tempfile::tempdir().unwrap();
    let (fw, _) = bundle(tmp.path());
    let board = SimBoard::start(BoardConfig::new(esp_sim::Chip::Esp32c3)).unwrap();
    let port = board.path().to_str().unwrap().to_string();
    let out = flasher(&[
        "--port",
        &port,
        "--chip",
        "esp32c3",
        "--flash_size",
        "4MB",
        "--firmware-dir",
        &fw,
        "--before",
        "no-reset",
        "--erase-parts",
        "nvs,storage",
    ]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("--erase-parts storage")
            && err.contains("nvs, otadata, phy_init, factory, ota_0, ota_1"),
        "{err}"
    );
    let out = flasher(&[
        "--port",
        &port,
        "--chip",
        "esp32c3",
        "--flash_size",
        "4MB",
        "--firmware-dir",
        &fw,
        "--before",
        "no-reset-no-sync",
        "--erase-all",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("need the flasher stub"),
        "{}",
        stderr(&out)
    );
    assert!(board.commands().is_empty(), "the board was touched");
    let out = flasher(&[
        "--chip",
        "esp32c3",
        "--flash_size",
        "4MB",
        "--firmware-dir",
        &fw,
        "--erase-data-parts",
        "nvram",
        "--dry-run",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("unknown data partition subtype 'nvram'"));
}
