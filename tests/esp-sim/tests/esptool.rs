//! Cross-validation with the reference client, esptool 5.x: every chip,
//! with and without the stub, compressed and not, through the `esp-sim`
//! binary; the dumped flash must equal `esptool merge-bin` of the parts.

mod common;

use std::fs;
use std::path::Path;
use std::thread;

use esp_sim::{BoardConfig, Chip, Security, SimProcess};

/// esptool's display name of a chip.
fn display_name(chip: Chip) -> String {
    let name = chip.name().to_ascii_uppercase();
    match name.strip_prefix("ESP32") {
        Some("") | None => name,
        Some(suffix) => format!("ESP32-{suffix}"),
    }
}

fn spawn_sim(config: &BoardConfig, dump: &Path, link: &Path) -> SimProcess {
    let mut args = config.to_args();
    args.extend(["--dump".into(), dump.display().to_string()]);
    args.extend(["--link".into(), link.display().to_string()]);
    SimProcess::spawn(env!("CARGO_BIN_EXE_esp-sim"), &args).expect("esp-sim starts")
}

/// `first` followed by `rest`.
fn concat<'a>(first: &[&'a str], rest: &[&'a str]) -> Vec<&'a str> {
    [first, rest].concat()
}

fn check(ok: bool, what: &str, output: &str) {
    assert!(ok, "{what} failed:\n{output}");
}

/// One esptool session per mode on a fresh board; returns nothing, panics
/// with esptool's output on any mismatch.
fn cross_validate(chip: Chip) {
    let config = common::test_board(chip);
    let size = config.flash_size;
    let name = chip.name();
    let modes = [(true, "-z"), (true, "-u"), (false, "-z"), (false, "-u")];
    for (round, (stub, compression)) in modes.into_iter().enumerate() {
        let dir = tempfile::tempdir().unwrap();
        let file = |n: &str| dir.path().join(n);
        let seed = (chip as u64) * 10 + round as u64;
        let parts = [
            (
                chip.bootloader_offset(),
                common::payload(seed, 0x4C00, true),
                "boot.bin",
            ),
            (0x8000, common::payload(seed + 1, 0xC00, true), "table.bin"),
            (
                0x1_0000,
                common::payload(seed + 2, 0x1_2344, false),
                "app.bin",
            ),
        ];
        let mut part_args = Vec::new();
        for (offset, data, file_name) in &parts {
            fs::write(file(file_name), data).unwrap();
            part_args.push(format!("{offset:#x}"));
            part_args.push(file(file_name).display().to_string());
        }
        let part_args: Vec<&str> = part_args.iter().map(String::as_str).collect();

        let sim = spawn_sim(&config, &file("dump.bin"), &file("port"));
        let port = file("port");
        let stub_args: &[&str] = if stub { &[] } else { &["--no-stub"] };

        if round < 2 {
            let (ok, out) = common::run_esptool(&port, name, &concat(stub_args, &["chip-id"]));
            check(ok, "chip-id", &out);
            assert_identity(&config, &out);
            let (ok, out) = common::run_esptool(&port, name, &concat(stub_args, &["flash-id"]));
            check(ok, "flash-id", &out);
            assert!(
                out.contains(&format!("Detected flash size: {size}")),
                "{out}"
            );
        }
        let mut write = concat(stub_args, &["write-flash", compression]);
        write.extend(&part_args);
        let (ok, out) = common::run_esptool(&port, name, &write);
        check(ok, "write-flash", &out);
        let mut verify = concat(stub_args, &["verify-flash"]);
        verify.extend(&part_args);
        let (ok, out) = common::run_esptool(&port, name, &verify);
        check(ok, "verify-flash", &out);
        let status = sim.stop().unwrap();
        assert!(status.success(), "esp-sim exited with {status}");

        let merged = file("merged.bin");
        let mut merge = vec!["merge-bin", "-o", merged.to_str().unwrap(), "--pad-to-size"];
        let size_text = size.to_string();
        merge.push(&size_text);
        merge.extend(&part_args);
        let (ok, out) = common::run_esptool(Path::new("unused"), name, &merge);
        check(ok, "merge-bin", &out);
        let expected = fs::read(&merged).unwrap();
        let dumped = fs::read(file("dump.bin")).unwrap();
        assert_eq!(dumped.len(), size.bytes() as usize);
        assert_eq!(
            common::first_difference(&dumped, &expected),
            None,
            "{name} stub={stub} {compression}: dump differs from merge-bin"
        );
        assert!(!port.exists(), "the link is removed on exit");
    }
}

/// esptool's connection banner names the chip, its revision, crystal and MAC
/// as the board was configured.
fn assert_identity(config: &BoardConfig, out: &str) {
    let chip = config.chip;
    assert!(
        out.contains(&format!("Connected to {} on", display_name(chip))),
        "{out}"
    );
    let chip_type = out
        .lines()
        .find(|l| l.starts_with("Chip type:"))
        .unwrap_or_else(|| panic!("no chip type in:\n{out}"));
    assert!(
        chip_type.ends_with(&format!("(revision {})", config.effective_revision())),
        "{chip}: {chip_type}"
    );
    assert!(
        out.contains(&format!(
            "Crystal frequency:  {}",
            config.effective_crystal()
        )),
        "{chip}: {out}"
    );
    // Chips with an IEEE 802.15.4 radio print the EUI-64 as MAC and the
    // factory MAC as BASE MAC.
    let mac = config.effective_mac().to_string();
    assert!(
        out.lines()
            .any(|l| (l.starts_with("MAC:") || l.starts_with("BASE MAC:")) && l.ends_with(&mac)),
        "{chip}: {out}"
    );
}

#[test]
fn esptool_cross_validation_every_chip() {
    let threads: Vec<_> = Chip::ALL
        .into_iter()
        .map(|chip| thread::spawn(move || cross_validate(chip)))
        .collect();
    let failures: Vec<_> = threads
        .into_iter()
        .zip(Chip::ALL)
        .filter_map(|(t, chip)| t.join().err().map(|_| chip))
        .collect();
    assert!(failures.is_empty(), "failed for {failures:?}");
}

#[test]
fn esptool_sees_psram_mac_and_preloaded_flash() {
    let dir = tempfile::tempdir().unwrap();
    let content = common::payload(99, 0x3000, true);
    let load = dir.path().join("load.bin");
    fs::write(&load, &content).unwrap();
    let config = BoardConfig::new(Chip::Esp32s3)
        .psram("8MB".parse().unwrap())
        .mac("aa:bb:cc:dd:ee:01".parse().unwrap());
    let mut args = config.to_args();
    args.extend(["--load".into(), load.display().to_string()]);
    let sim = SimProcess::spawn(env!("CARGO_BIN_EXE_esp-sim"), &args).unwrap();

    let (ok, out) = common::run_esptool(sim.path(), "esp32s3", &["--no-stub", "chip-id"]);
    check(ok, "chip-id", &out);
    assert!(out.contains("Embedded PSRAM 8MB"), "{out}");
    assert!(out.contains("aa:bb:cc:dd:ee:01"), "{out}");
    let (ok, out) = common::run_esptool(
        sim.path(),
        "esp32s3",
        &["verify-flash", "0x0", load.to_str().unwrap()],
    );
    check(ok, "verify-flash of the preloaded content", &out);
    assert!(sim.terminate().unwrap().success());
}

/// Revision, PSRAM and crystal are board options that esptool reads back:
/// the chip description carries the PSRAM size and revision
/// (`ESP32-C5NR8 (revision v1.1)`), the features the PSRAM vendor.
#[test]
fn esptool_sees_revision_psram_and_crystal_options() {
    let boards = [
        (
            BoardConfig::new(Chip::Esp32c5)
                .psram("8MB".parse().unwrap())
                .revision("v1.1".parse().unwrap()),
            "ESP32-C5NR8 (revision v1.1)",
            "Embedded PSRAM 8MB (AP_3v3)",
        ),
        (
            BoardConfig::new(Chip::Esp32c61)
                .psram("2MB".parse().unwrap())
                .revision("v1.0".parse().unwrap()),
            "ESP32-C61NR2 (revision v1.0)",
            "Embedded PSRAM 2MB",
        ),
        (
            BoardConfig::new(Chip::Esp32c2)
                .crystal("40MHz".parse().unwrap())
                .revision("v1.2".parse().unwrap()),
            "ESP32-C2 (revision v1.2)",
            "Single Core",
        ),
        (
            BoardConfig::new(Chip::Esp32s3).revision("v0.1".parse().unwrap()),
            "ESP32-S3 (QFN56) (revision v0.1)",
            "Dual Core + LP Core",
        ),
    ];
    for (config, description, feature) in boards {
        let sim = SimProcess::spawn(env!("CARGO_BIN_EXE_esp-sim"), config.to_args()).unwrap();
        let (ok, out) =
            common::run_esptool(sim.path(), config.chip.name(), &["--no-stub", "flash-id"]);
        check(ok, "flash-id", &out);
        assert!(
            out.contains(&format!("Chip type:          {description}")),
            "{out}"
        );
        assert!(out.contains(feature), "{out}");
        assert_identity(&config, &out);
        assert!(sim.terminate().unwrap().success());
    }
}

/// A chip without the option refuses it, naming what it takes.
#[test]
fn options_a_chip_lacks_are_refused() {
    let refused = [
        BoardConfig::new(Chip::Esp32c2).crystal("48MHz".parse().unwrap()),
        BoardConfig::new(Chip::Esp32p4).psram("8MB".parse().unwrap()),
        BoardConfig::new(Chip::Esp32c61).psram("4MB".parse().unwrap()),
        BoardConfig::new(Chip::Esp32).revision("v4.0".parse().unwrap()),
        BoardConfig::new(Chip::Esp32h2).revision("v4.0".parse().unwrap()),
        BoardConfig::new(Chip::Esp32).security(Security {
            secure_download: true,
            ..Security::default()
        }),
    ];
    for config in refused {
        let err = esp_sim::SimBoard::start(config.clone()).unwrap_err();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_esp-sim"))
            .args(config.to_args())
            .output()
            .unwrap();
        assert!(!out.status.success(), "{config:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(&err.to_string()), "{err}: {stderr}");
    }
}
