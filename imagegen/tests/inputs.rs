//! Inputs other than generated build directories: real ESP-IDF builds, explicit files, a model.

mod common;

use std::fs;
use std::process::Command;

use common::{imagegen, sample};
use flasher::bundle::{Manifest, Role};
use flasher::chip::Chip;
use testkit::tools::{require, run_ok};

/// Reads `/firmware/manifest.json` out of the amd64 image of `layout`.
fn manifest_of(layout: &std::path::Path, tag: &str, scratch: &std::path::Path) -> Manifest {
    let bundle = scratch.join("unpacked");
    run_ok(
        Command::new(require("umoci"))
            .args(["unpack", "--rootless", "--image"])
            .arg(format!("{}:{tag}", layout.display()))
            .arg(&bundle),
    );
    Manifest::from_json(&fs::read(bundle.join("rootfs/firmware/manifest.json")).unwrap()).unwrap()
}

#[test]
fn real_esp_idf_builds() {
    let fixtures = testkit::fixtures_dir();
    if !fixtures.is_dir() {
        println!(
            "NOTICE: {} is absent; real-build checks not run (generated builds cover the same paths)",
            fixtures.display()
        );
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let s = sample(tmp.path());
    let layout = tmp.path().join("layout");
    let mut args = vec!["build".to_string()];
    for name in [
        "esp32-lifecycle-manager",
        "esp32s3-smarthome",
        "esp32c6-scd30-zigbee",
        "esp32s2-rotary",
    ] {
        args.extend(["--target".into(), fixtures.join(name).display().to_string()]);
    }
    args.extend([
        "--flasher".into(),
        format!("linux/amd64={}", s.amd64.display()),
        "--flasher".into(),
        format!("linux/arm64={}", s.arm64.display()),
        "--app-type".into(),
        "fixtures".into(),
        "--version".into(),
        "1.0.0".into(),
        "--output".into(),
        layout.display().to_string(),
    ]);
    let out = imagegen(&args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let m = manifest_of(&layout, "amd64-fixtures-1.0.0", tmp.path());

    let esp32 = m.target("esp32").unwrap();
    assert_eq!(esp32.chip, Chip::Esp32);
    assert_eq!(
        (esp32.bootloader_offset, esp32.partition_table_offset),
        (0x1000, 0x8000)
    );
    assert_eq!(esp32.file(Role::App).unwrap().offset, Some(0x20000));
    assert_eq!(esp32.file(Role::OtaData).unwrap().offset, Some(0xe000));
    assert_eq!(esp32.app.name, "esp32-lifecycle-manager");

    let s3 = m.target("esp32s3").unwrap();
    assert_eq!(s3.bootloader_offset, 0);
    assert_eq!(s3.flash.size, "16MB");
    assert_eq!(
        s3.file(Role::App).unwrap().path,
        "esp32s3/artifacts/smartHome.bin"
    );

    let c6 = m.target("esp32c6").unwrap();
    assert_eq!(c6.flash.size, "detect");
    assert!(
        c6.file(Role::OtaData).is_none(),
        "no otadata partition, no OTA data"
    );

    // This build ships no partitions.csv: the bundle carries one made from the binary table.
    let s2 = m.target("esp32s2").unwrap();
    let csv = s2.file(Role::PartitionsCsv).unwrap();
    assert!(csv.size > 0);
    assert_eq!(s2.app.name, "read_rotary");
}

#[test]
fn explicit_files_and_a_model() {
    let tmp = tempfile::tempdir().unwrap();
    let s = sample(tmp.path());
    let b = &s.builds[0].1; // esp32
    let model = tmp.path().join("model.tflite");
    fs::write(&model, vec![0x5A; 5000]).unwrap();
    let spec = format!(
        "name=esp32,bootloader={},partition-table={},app={},sdkconfig={},ota-data={}",
        b.join("bootloader/bootloader.bin").display(),
        b.join("partition_table/partition-table.bin").display(),
        b.join("demo.bin").display(),
        b.join("sdkconfig").display(),
        b.join("ota_data_initial.bin").display(),
    );
    let layout = tmp.path().join("layout");
    let args: Vec<String> = [
        "build",
        "--target-files",
        &spec,
        "--flasher",
        &format!("linux/amd64={}", s.amd64.display()),
        "--platforms",
        "linux/amd64",
        "--model",
        &model.display().to_string(),
        "--output",
        &layout.display().to_string(),
    ]
    .map(String::from)
    .to_vec();
    let out = imagegen(&args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Without --app-type/--version the tags come from the app descriptor.
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("tag demo-1.0.0 "), "{stdout}");
    let m = manifest_of(&layout, "amd64-demo-1.0.0", tmp.path());
    let t = m.target("esp32").unwrap();
    // Offsets come from sdkconfig and the partition table.
    assert_eq!(t.bootloader_offset, 0x1000);
    assert_eq!(t.file(Role::App).unwrap().offset, Some(0x20000));
    assert_eq!(t.file(Role::OtaData).unwrap().offset, Some(0xf000));
    let model_entry = m.model.as_ref().unwrap();
    assert_eq!(
        (model_entry.path.as_str(), model_entry.size),
        ("model.bin", 5000)
    );
}

#[test]
fn explicit_files_spec_errors_name_the_fix() {
    let out = imagegen(
        &[
            "build",
            "--target-files",
            "name=esp32,boot=x",
            "--flasher",
            "linux/amd64=x",
            "--output",
            "y",
        ]
        .map(String::from),
    );
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("unknown key 'boot'") && err.contains("expected name=T,bootloader=P"),
        "{err}"
    );
}
