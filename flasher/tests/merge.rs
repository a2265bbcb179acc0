//! `--merge-out` equals `esptool merge-bin` of the same parts, byte for byte, for every chip,
//! with the bundle's table and with each `--override_pt` layout; and for the real ESP-IDF builds.

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use common::{
    BuildParts, bundle_build_dir, esptool_merge, flash_file_paths, flasher, generated_build, model,
    read_build, stderr, write_bundle,
};
use esp_idf_part::PartitionTable;
use firmware::chip::Chip;
use testkit::idf_build::{ArgsFormat, BuildSpec};

const MODEL_LEN: usize = 200 * 1024;

/// The worked 8 MB tables for a table at 0x10000 (seed-flash-image.md section 5), as CSV.
fn worked_table_8mb(mode: &str) -> String {
    let fixed = "nvs,data,nvs,0x11000,0x6000,\nphy_init,data,phy,0x17000,0x1000,\notadata,data,ota,0x18000,0x2000,\n";
    let rest = match mode {
        "normal" => {
            "factory,app,factory,0x20000,0x2A0000,\nota_0,app,ota_0,0x2C0000,0x2A0000,\nota_1,app,ota_1,0x560000,0x2A0000,\n"
        }
        "no_factory" => "ota_0,app,ota_0,0x20000,0x3F0000,\nota_1,app,ota_1,0x410000,0x3F0000,\n",
        "normal_with_model" => {
            "factory,app,factory,0x20000,0x280000,\nota_0,app,ota_0,0x2A0000,0x280000,\nota_1,app,ota_1,0x520000,0x280000,\ntflite_model,data,spiffs,0x7CE000,0x32000,\n"
        }
        "no_factory_with_model" => {
            "ota_0,app,ota_0,0x20000,0x3D0000,\nota_1,app,ota_1,0x3F0000,0x3D0000,\ntflite_model,data,spiffs,0x7CE000,0x32000,\n"
        }
        other => panic!("no worked table for {other}"),
    };
    format!("# Name,Type,SubType,Offset,Size,Flags\n{fixed}{rest}")
}

fn run_merge(bundle: &Path, target: &str, size: &str, mode: Option<&str>, out: &Path) -> Vec<u8> {
    let out_s = out.to_str().unwrap();
    let mut args = vec![
        "--chip",
        target,
        "--flash_size",
        size,
        "--firmware-dir",
        bundle.to_str().unwrap(),
        "--merge-out",
        out_s,
    ];
    if let Some(mode) = mode {
        args.extend(["--override_pt", mode]);
    }
    let res = flasher(&args);
    assert!(
        res.status.success(),
        "flasher {args:?} failed: {}",
        stderr(&res)
    );
    fs::read(out).unwrap()
}

fn assert_same(ours: &[u8], theirs: &[u8], what: &str) {
    assert_eq!(ours.len(), theirs.len(), "{what}: lengths differ");
    if let Some(at) = ours.iter().zip(theirs).position(|(a, b)| a != b) {
        panic!(
            "{what}: first difference at {at:#x}: ours {:#04x}, esptool {:#04x}",
            ours[at], theirs[at]
        );
    }
}

#[test]
fn merged_image_equals_esptool_merge_bin_for_every_chip_and_mode() {
    let tmp = tempfile::tempdir().unwrap();
    let model_bytes = model(MODEL_LEN);
    for chip in Chip::ALL {
        let mut spec = BuildSpec::new(chip);
        spec.table_offset = 0x10000;
        spec.seed = chip.image_chip_id().into();
        let build = generated_build(&tmp.path().join(format!("build-{chip}")), &spec);
        let bundle = tmp.path().join(format!("bundle-{chip}"));
        write_bundle(&bundle, &[(chip.name(), &build)], Some(&model_bytes), true);
        let model_path = bundle.join("model.bin");

        // The bundle's own table: bootloader, table, otadata and app where the build put them.
        let ours = run_merge(
            &bundle,
            chip.name(),
            "8MB",
            None,
            &tmp.path().join("ours.bin"),
        );
        let mut parts = vec![
            build.bootloader.clone(),
            build.table.clone(),
            build.app.clone(),
        ];
        parts.extend(build.otadata.clone());
        let theirs = esptool_merge(
            chip,
            "8MB",
            &build.mode,
            &build.freq,
            &parts,
            &tmp.path().join("theirs.bin"),
        );
        assert_same(&ours, &theirs, &format!("{chip} without --override_pt"));

        for mode in [
            "normal",
            "normal_with_model",
            "no_factory",
            "no_factory_with_model",
        ] {
            let ours = run_merge(
                &bundle,
                chip.name(),
                "8mb",
                Some(mode),
                &tmp.path().join("ours.bin"),
            );
            let table = PartitionTable::try_from_str(worked_table_8mb(mode)).unwrap();
            table.validate().unwrap();
            let table_path = tmp.path().join("table.bin");
            fs::write(&table_path, table.to_bin().unwrap()).unwrap();
            let mut parts: Vec<(u32, PathBuf)> = vec![
                build.bootloader.clone(),
                (0x10000, table_path),
                (0x18000, build.otadata.clone().unwrap().1),
                (0x20000, build.app.1.clone()),
            ];
            if mode.ends_with("with_model") {
                parts.push((0x7CE000, model_path.clone()));
            }
            let theirs = esptool_merge(
                chip,
                "8MB",
                &build.mode,
                &build.freq,
                &parts,
                &tmp.path().join("theirs.bin"),
            );
            assert_same(&ours, &theirs, &format!("{chip} --override_pt {mode}"));
        }
    }
}

fn fixture(name: &str) -> BuildParts {
    read_build(&testkit::fixtures_dir().join(name))
}

#[test]
fn real_builds_merge_like_esptool_with_and_without_manifest() {
    if !testkit::fixtures_dir().is_dir() {
        println!(
            "NOTICE: {} is absent: real ESP-IDF builds not compared (generated builds are, above)",
            testkit::fixtures_dir().display()
        );
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let cases = [
        ("esp32-lifecycle-manager", "esp32", "4MB"),
        ("esp32s3-smarthome", "esp32s3r8", "16MB"),
        ("esp32c6-scd30-zigbee", "esp32c6", "4MB"),
        ("esp32s2-rotary", "esp32s2", "2MB"),
        ("esp32c2-gatt-server", "esp32c2", "2MB"),
        ("esp32c3-sht30", "esp32c3", "2MB"),
        ("esp32c5-wifi-sniff", "esp32c5", "8MB"),
        ("esp32p4-enip-scale", "esp32p4", "4MB"),
    ];
    for (name, target, size) in cases {
        let build = fixture(name);
        for manifest in [true, false] {
            let bundle = tmp.path().join(format!("{name}-{manifest}"));
            write_bundle(&bundle, &[(target, &build)], None, manifest);
            let ours = run_merge(&bundle, target, size, None, &tmp.path().join("ours.bin"));
            let theirs = esptool_merge(
                build.chip,
                size,
                &build.mode,
                &build.freq,
                &build.flash_files,
                &tmp.path().join("theirs.bin"),
            );
            assert_same(&ours, &theirs, &format!("{name} (manifest: {manifest})"));
        }
    }
}

#[test]
fn bundles_without_manifest_say_they_were_not_verified() {
    let tmp = tempfile::tempdir().unwrap();
    let mut spec = testkit::idf_build::BuildSpec::new(firmware::chip::Chip::Esp32s2);
    spec.flash_size = 2 << 20;
    spec.app_slot = 0x8_0000;
    let dir = tmp.path().join("build");
    testkit::idf_build::write_build(&dir, &spec).unwrap();
    let build = read_build(&dir);
    let bundle = tmp.path().join("bundle");
    write_bundle(&bundle, &[("esp32s2", &build)], None, false);
    let out = flasher(&[
        "--chip",
        "esp32s2",
        "--flash_size",
        "2MB",
        "--firmware-dir",
        bundle.to_str().unwrap(),
        "--dry-run",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("no integrity check was possible"),
        "{}",
        stderr(&out)
    );
    let plan = String::from_utf8_lossy(&out.stdout);
    assert!(plan.contains("not verified"), "{plan}");
    assert!(plan.contains("demo.bin"), "{plan}");
}

const FORMATS: [ArgsFormat; 4] = [
    ArgsFormat::Idf5,
    ArgsFormat::Idf43,
    ArgsFormat::Hyphenated,
    ArgsFormat::FlashArgsOnly,
];

/// Every chip, every way a build describes its files, with a model pack of a length that is not
/// a multiple of 4 and a second data image: the merged image is esptool's of all the files.
#[test]
fn builds_with_data_images_merge_like_esptool_for_every_chip_and_format() {
    let tmp = tempfile::tempdir().unwrap();
    for chip in Chip::ALL {
        for format in FORMATS {
            let mut spec = BuildSpec::new(chip).with_model_pack(291_042);
            spec.format = format;
            spec.seed = u64::from(chip.image_chip_id()) + 7;
            spec.size_arg = match format {
                ArgsFormat::Idf43 => Some("detect".into()),
                ArgsFormat::Hyphenated => Some("keep".into()),
                _ => None,
            };
            let name = format!("{chip}-{format:?}");
            let build =
                testkit::idf_build::write_build(&tmp.path().join(format!("b-{name}")), &spec)
                    .unwrap();
            let bundle = tmp.path().join(format!("fw-{name}"));
            bundle_build_dir(&bundle, &build.dir);
            let ours = run_merge(&bundle, chip.name(), "8MB", None, &tmp.path().join("o.bin"));
            let theirs = esptool_merge(
                chip,
                "8MB",
                "dio",
                testkit::firmware::default_freq(chip),
                &flash_file_paths(&build),
                &tmp.path().join("t.bin"),
            );
            assert_same(&ours, &theirs, &name);
        }
    }
}

#[test]
fn data_images_are_shown_by_name_and_refused_where_an_override_table_has_no_partition() {
    let tmp = tempfile::tempdir().unwrap();
    let spec = BuildSpec::new(Chip::Esp32s3).with_model_pack(291_042);
    let build = testkit::idf_build::write_build(&tmp.path().join("b"), &spec).unwrap();
    let bundle = tmp.path().join("fw");
    bundle_build_dir(&bundle, &build.dir);
    let fw = bundle.to_str().unwrap();
    let base = [
        "--chip",
        "esp32s3",
        "--flash_size",
        "8MB",
        "--firmware-dir",
        fw,
    ];
    let dry = flasher(&[&base[..], &["--dry-run"]].concat());
    assert!(dry.status.success(), "{}", stderr(&dry));
    let text = String::from_utf8_lossy(&dry.stdout);
    let line = text
        .lines()
        .find(|l| l.contains("srmodels.bin"))
        .unwrap_or_else(|| panic!("no data region in {text}"));
    assert!(
        line.contains("data 'model'") && line.contains("291044 bytes"),
        "{line}"
    );

    let out = flasher(&[&base[..], &["--override_pt", "normal", "--dry-run"]].concat());
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(
        err.contains("esp32s3/artifacts/data/srmodels.bin") && err.contains("partition model"),
        "{err}"
    );
}

#[test]
fn a_bundle_asking_for_encrypted_writes_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let spec = BuildSpec::new(Chip::Esp32c3);
    let build = testkit::idf_build::write_build(&tmp.path().join("b"), &spec).unwrap();
    let bundle = tmp.path().join("fw");
    bundle_build_dir(&bundle, &build.dir);
    let path = bundle.join(firmware::manifest::MANIFEST_FILE);
    let text = fs::read_to_string(&path).unwrap();
    let text = text.replacen(
        "\"role\": \"app\",",
        "\"role\": \"app\",\n      \"encrypted\": true,",
        1,
    );
    fs::write(&path, text).unwrap();
    let fw = bundle.to_str().unwrap();
    let out = flasher(&[
        "--chip",
        "esp32c3",
        "--flash_size",
        "4MB",
        "--firmware-dir",
        fw,
        "--dry-run",
    ]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("must be written encrypted") && err.contains("encrypted-flash"),
        "{err}"
    );
}
