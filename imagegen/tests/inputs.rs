//! Inputs other than generated build directories: real ESP-IDF builds, explicit files, a model.

mod common;

use std::fs;
use std::process::Command;

use common::{imagegen, sample};
use firmware::chip::Chip;
use firmware::manifest::{Manifest, Role};
use testkit::idf_build::{ArgsFormat, BuildSpec};
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

/// The bundle imagegen makes of one build directory.
fn bundle_of(dir: &std::path::Path) -> imagegen::error::Result<imagegen::bundle::Bundle> {
    let input = imagegen::inputs::TargetInput::from_build_dir(None, dir)?;
    imagegen::bundle::Bundle::new(vec![input], None, &imagegen::bundle::Metadata::default())
}

const FORMATS: [ArgsFormat; 4] = [
    ArgsFormat::Idf5,
    ArgsFormat::Idf43,
    ArgsFormat::Hyphenated,
    ArgsFormat::FlashArgsOnly,
];

#[test]
fn every_chip_and_every_build_description_gives_the_same_bundle() {
    let tmp = tempfile::tempdir().unwrap();
    for chip in Chip::ALL {
        let mut reference = None;
        for format in FORMATS {
            let mut spec = BuildSpec::new(chip);
            spec.format = format;
            if format == ArgsFormat::Idf43 {
                spec.size_arg = Some("detect".into());
            }
            let dir = tmp.path().join(format!("{chip}-{format:?}"));
            let build = testkit::idf_build::write_build(&dir, &spec).unwrap();
            let bundle = bundle_of(&dir).unwrap_or_else(|e| panic!("{chip} {format:?}: {e}"));
            let m = bundle.manifest();
            assert_eq!(
                m.manifest_version, 1,
                "{chip} {format:?}: no data, version 1"
            );
            let t = m.target(chip.name()).unwrap();
            assert_eq!(t.chip, chip);
            assert_eq!(t.bootloader_offset, chip.bootloader_offset());
            let flashed: Vec<(u32, u64)> = t
                .files
                .iter()
                .filter_map(|f| f.offset.map(|o| (o, f.size)))
                .collect();
            let mut expected: Vec<(u32, u64)> = build
                .flash_files
                .iter()
                .map(|(o, _, b)| (*o, b.len() as u64))
                .collect();
            expected.sort();
            let mut flashed_sorted = flashed.clone();
            flashed_sorted.sort();
            assert_eq!(
                flashed_sorted, expected,
                "{chip} {format:?}: every flash_files entry"
            );
            // The same files whatever the description (the flash size as the build states it).
            let files: Vec<_> = t.files.iter().map(|f| f.sha256.clone()).collect();
            match &reference {
                None => reference = Some(files),
                Some(r) => assert_eq!(&files, r, "{chip} {format:?}"),
            }
        }
    }
}

#[test]
fn data_images_are_bundled_by_name_with_manifest_version_2() {
    let tmp = tempfile::tempdir().unwrap();
    for chip in Chip::ALL {
        for format in FORMATS {
            let mut spec = BuildSpec::new(chip).with_model_pack(291_042);
            spec.format = format;
            spec.data.push(testkit::idf_build::DataImage {
                key: None,
                file: "storage.bin".into(),
                partition: "storage".into(),
                partition_size: 0x2_0000,
                len: 0x2_0000,
            });
            let dir = tmp.path().join(format!("{chip}-{format:?}"));
            let build = testkit::idf_build::write_build(&dir, &spec).unwrap();
            let bundle = bundle_of(&dir).unwrap_or_else(|e| panic!("{chip} {format:?}: {e}"));
            let m = bundle.manifest();
            assert_eq!(m.manifest_version, 2);
            let t = m.target(chip.name()).unwrap();
            let data: Vec<_> = t.files.iter().filter(|f| f.role == Role::Data).collect();
            let named = if format == ArgsFormat::FlashArgsOnly {
                "srmodels.bin"
            } else {
                "model"
            };
            assert_eq!(data.len(), 2, "{chip} {format:?}");
            assert_eq!(data[0].name.as_deref(), Some(named));
            assert_eq!(data[0].size, 291_042);
            assert_eq!(data[0].path, format!("{chip}/artifacts/data/srmodels.bin"));
            assert_eq!(data[1].name.as_deref(), Some("storage.bin"));
            let (offset, _, bytes) = &build.flash_files[build.flash_files.len() - 2];
            assert_eq!(data[0].offset, Some(*offset));
            assert!(data[0].matches(bytes));
            let stored: Vec<&str> = bundle.files().map(|(p, _)| p).collect();
            assert!(stored.contains(&data[0].path.as_str()));
        }
    }
}

#[test]
fn builds_that_cannot_be_written_exactly_are_refused_in_one_line() {
    let tmp = tempfile::tempdir().unwrap();
    let refused = |name: &str, spec: &BuildSpec, edit: &dyn Fn(&std::path::Path)| {
        let dir = tmp.path().join(name);
        testkit::idf_build::write_build(&dir, spec).unwrap();
        edit(&dir);
        let e = bundle_of(&dir)
            .err()
            .unwrap_or_else(|| panic!("{name} accepted"));
        let line = e.to_string();
        assert!(!line.contains('\n'), "{line}");
        line
    };
    let chip = Chip::Esp32s3;
    let mut spec = BuildSpec::new(chip);
    spec.encrypted = true;
    let line = refused("encrypted", &spec, &|_| {});
    assert!(
        line.contains("written encrypted") && line.contains("idf.py encrypted-flash"),
        "{line}"
    );
    let spec = BuildSpec::new(chip).with_model_pack(1000);
    let line = refused("too-large", &spec, &|dir| {
        fs::write(dir.join("srmodels/srmodels.bin"), vec![0u8; 0x10_0001]).unwrap();
    });
    assert!(
        line.contains("'model'") && line.contains("larger than"),
        "{line}"
    );
    let line = refused("outside", &BuildSpec::new(chip), &|dir| {
        let path = dir.join("flasher_args.json");
        let text = fs::read_to_string(&path).unwrap();
        let text = text.replacen(
            "\"flash_files\": {",
            "\"flash_files\": {\n    \"0x3f0000\": \"stray.bin\",",
            1,
        );
        fs::write(&path, text).unwrap();
        fs::write(dir.join("stray.bin"), b"data").unwrap();
    });
    assert!(
        line.contains("stray.bin") && line.contains("no partition"),
        "{line}"
    );
}

#[test]
fn every_real_build_is_bundled_with_every_file_it_flashes() {
    let fixtures = testkit::fixtures_dir();
    if !fixtures.is_dir() {
        println!(
            "NOTICE: {} is absent; real-build checks not run",
            fixtures.display()
        );
        return;
    }
    let builds = [
        ("esp32-lifecycle-manager", Chip::Esp32, 4),
        ("esp32s2-rotary", Chip::Esp32s2, 3),
        ("esp32s3-smarthome", Chip::Esp32s3, 4),
        ("esp32c2-gatt-server", Chip::Esp32c2, 3),
        ("esp32c3-sht30", Chip::Esp32c3, 3),
        ("esp32c5-wifi-sniff", Chip::Esp32c5, 3),
        ("esp32c6-scd30-zigbee", Chip::Esp32c6, 3),
        ("esp32p4-enip-scale", Chip::Esp32p4, 4),
    ];
    for (name, chip, flashed) in builds {
        let bundle = bundle_of(&fixtures.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        let t = &bundle.manifest().targets[0];
        assert_eq!(t.chip, chip, "{name}");
        assert_eq!(t.bootloader_offset, chip.bootloader_offset(), "{name}");
        let n = t.files.iter().filter(|f| f.offset.is_some()).count();
        assert_eq!(n, flashed, "{name}: every flash_files entry");
        assert_eq!(bundle.manifest().manifest_version, 1, "{name}");
    }
}
