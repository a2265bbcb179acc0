//! Secure production (`--security`), through the real `flasher` binary and simulated boards
//! whose eFuse controller espefuse drives: a full run per chip, then Espressif's own tools
//! agree with the record (`espefuse summary`), the flash holds exactly `espsecure`'s encryption
//! of each region, and the board boots with the burned key; the refusals, before anything is
//! burned; a power cut in the middle of the burns, then a second run that finishes the board.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{BuildParts, flasher, generated_build, stderr, write_bundle};
use esp_sim::{BoardConfig, EfuseSetting, SimBoard};
use firmware::chip::Chip;
use serde_json::Value;
use testkit::idf_build::BuildSpec;
use testkit::tools::{require, run_ok};

/// The board of each chip: a revision of a real part.
fn board_config(chip: Chip) -> BoardConfig {
    let revision = match chip {
        Chip::Esp32 => "v3.1",
        Chip::Esp32s3 => "v0.2",
        Chip::Esp32c3 => "v0.4",
        Chip::Esp32c6 => "v0.1",
        _ => "v1.0",
    };
    BoardConfig::new(chip.name().parse().unwrap())
        .flash_size("4MB".parse().unwrap())
        .revision(revision.parse().unwrap())
}

/// A generated build for `chip`, signed with `signing` if given, bundled in `dir/fw`.
fn bundle(dir: &Path, chip: Chip, signing: Option<&Path>) -> BuildParts {
    let mut spec = BuildSpec::new(chip);
    spec.seed = 900 + u64::from(chip.image_chip_id());
    spec.app_len = 40 * 1024 + 9;
    let build = generated_build(&dir.join("build"), &spec);
    if let Some(key) = signing {
        for file in [&build.bootloader.1, &build.app.1] {
            let signed = file.with_extension("signed");
            run_ok(
                Command::new(require("espsecure"))
                    .args(["sign-data", "--version", "2", "--keyfile"])
                    .arg(key)
                    .arg("--output")
                    .arg(&signed)
                    .arg(file),
            );
            fs::rename(&signed, file).unwrap();
        }
    }
    write_bundle(&dir.join("fw"), &[(chip.name(), &build)], None, true);
    build
}

/// An RSA-3072 signing key in `dir`, and its public half.
fn signing_key(dir: &Path) -> (PathBuf, PathBuf) {
    let key = dir.join("signing.pem");
    let public = dir.join("signing.pub.pem");
    let espsecure = require("espsecure");
    run_ok(
        Command::new(&espsecure)
            .args([
                "generate-signing-key",
                "--version",
                "2",
                "--scheme",
                "rsa3072",
            ])
            .arg(&key),
    );
    run_ok(
        Command::new(&espsecure)
            .args(["extract-public-key", "--version", "2", "--keyfile"])
            .arg(&key)
            .arg(&public),
    );
    (key, public)
}

/// The flasher's common arguments for `board`, the bundle in `dir/fw`.
fn run(dir: &Path, chip: Chip, board: &SimBoard, extra: &[&str]) -> (Output, Value) {
    let report = dir.join("report.json");
    let _ = fs::remove_file(&report);
    let fw = dir.join("fw");
    let mut args = vec![
        "--port",
        board.path().to_str().unwrap(),
        "--chip",
        chip.name(),
        "--flash_size",
        "4MB",
        "--firmware-dir",
        fw.to_str().unwrap(),
        "--before",
        "no-reset",
        "--after",
        "no-reset",
        "--report",
        report.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let out = flasher(&args);
    let record = fs::read(&report)
        .ok()
        .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
        .map(|r| r["boards"][0].clone())
        .unwrap_or(Value::Null);
    (out, record)
}

/// The plan's plaintext, as the flasher lays it out (`--merge-out`).
fn plaintext(dir: &Path, chip: Chip) -> Vec<u8> {
    let merged = dir.join("plain.bin");
    let fw = dir.join("fw");
    let out = flasher(&[
        "--chip",
        chip.name(),
        "--flash_size",
        "4MB",
        "--firmware-dir",
        fw.to_str().unwrap(),
        "--merge-out",
        merged.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    fs::read(merged).unwrap()
}

/// `espefuse summary --format json` of the board on `port`.
fn summary(port: &Path, chip: Chip) -> Value {
    let out = Command::new(require("espefuse"))
        .args(["--chip", chip.name(), "--port"])
        .arg(port)
        .args(["--before", "no-reset", "summary", "--format", "json"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{chip}: espefuse summary: {text}");
    let start = text.find("\n{").expect("JSON in espefuse's output");
    serde_json::Deserializer::from_str(&text[start..])
        .into_iter::<Value>()
        .next()
        .unwrap()
        .unwrap()
}

fn raw(summary: &Value, field: &str) -> u64 {
    let text = summary[field]["raw_value"].as_str().unwrap_or("0x0");
    u64::from_str_radix(text.trim_start_matches("0x"), 16).unwrap()
}

/// `espsecure encrypt-flash-data` of `plain` at `address` under `key_file`.
fn espsecure_encrypt(dir: &Path, key_file: &Path, address: u32, plain: &[u8]) -> Vec<u8> {
    let input = dir.join("region.bin");
    let output = dir.join("region.enc");
    fs::write(&input, plain).unwrap();
    run_ok(
        Command::new(require("espsecure"))
            .args(["encrypt-flash-data", "--aes-xts", "--keyfile"])
            .arg(key_file)
            .args(["--address", &format!("{address:#x}"), "--output"])
            .arg(&output)
            .arg(&input),
    );
    fs::read(output).unwrap()
}

fn write_profile(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join("security.toml");
    fs::write(&path, text).unwrap();
    path
}

/// A full run on a blank board of `chip`: per-board key kept, Secure Boot with one key,
/// development mode; then espefuse, espsecure and the board's boot agree.
fn secure_a_board(chip: Chip) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (signing, public) = signing_key(dir);
    bundle(dir, chip, Some(&signing));
    fs::create_dir(dir.join("keys")).unwrap();
    let profile = write_profile(
        dir,
        &format!(
            "mode = \"development\"\n[flash-encryption]\nkeep-keys-in = \"keys\"\n\
             [secure-boot]\npublic-keys = [{:?}]\n",
            public.file_name().unwrap()
        ),
    );
    let config = board_config(chip);
    let mac = config.effective_mac().to_string();
    let board = SimBoard::start(config).unwrap();
    let (out, record) = run(
        dir,
        chip,
        &board,
        &["--security", profile.to_str().unwrap()],
    );
    assert!(out.status.success(), "{chip}: {}", stderr(&out));
    let secure = &record["secure"];
    assert_eq!(secure["verified"], true, "{chip}: {secure}");
    assert_eq!(secure["key_blocks"][0]["block"], "BLOCK_KEY0", "{chip}");
    assert_eq!(
        secure["key_blocks"][0]["purpose"], "XTS_AES_128_KEY",
        "{chip}"
    );
    assert_eq!(
        secure["key_blocks"][1]["purpose"], "SECURE_BOOT_DIGEST0",
        "{chip}"
    );

    // The kept key: 0600, named by MAC; never in the record.
    let key_file = dir
        .join("keys")
        .join(format!("{}.key", mac.replace(':', "-")));
    let key = fs::read(&key_file).unwrap();
    assert_eq!(key.len(), 32);
    let record_text = record.to_string();
    let key_hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
    assert!(
        !record_text.contains(&key_hex),
        "{chip}: the key is in the record"
    );

    // espefuse agrees with the record.
    let fuses = summary(board.path(), chip);
    assert_eq!(fuses["KEY_PURPOSE_0"]["value"], "XTS_AES_128_KEY", "{chip}");
    assert_eq!(
        fuses["KEY_PURPOSE_1"]["value"], "SECURE_BOOT_DIGEST0",
        "{chip}"
    );
    assert_eq!(fuses["BLOCK_KEY0"]["readable"], false, "{chip}");
    assert_eq!(raw(&fuses, "SPI_BOOT_CRYPT_CNT"), 1, "{chip}");
    assert_eq!(raw(&fuses, "SECURE_BOOT_EN"), 1, "{chip}");
    let digest = secure["secure_boot_key_digests"][0].as_str().unwrap();
    let shown = fuses["BLOCK_KEY1"]["value"]
        .as_str()
        .unwrap()
        .replace(' ', "");
    assert_eq!(shown, digest, "{chip}");

    // The flash holds espsecure's encryption of each region, and the plain NVS stays plain.
    let plain = plaintext(dir, chip);
    let flash = board.flash();
    let encrypted = secure["encrypted_regions"].as_array().unwrap();
    assert!(encrypted.len() >= 3, "{chip}: {secure}");
    for region in record["regions"].as_array().unwrap() {
        let offset = region["offset"].as_u64().unwrap() as usize;
        let size = region["size"].as_u64().unwrap() as usize;
        let label = region["label"].as_str().unwrap();
        let bytes = &plain[offset..offset + size.next_multiple_of(16)];
        if encrypted
            .iter()
            .any(|e| e["offset"].as_u64() == Some(offset as u64))
        {
            let expected = espsecure_encrypt(dir, &key_file, offset as u32, bytes);
            assert!(
                flash[offset..offset + expected.len()] == expected[..],
                "{chip}: {label} at {offset:#x} is not espsecure's encryption"
            );
        } else {
            assert_eq!(
                &flash[offset..offset + size],
                &bytes[..size],
                "{chip}: {label}"
            );
        }
    }

    // The board boots with the burned key.
    let log = board.boot_log();
    assert!(log.contains("Calling app_main()"), "{chip}:\n{log}");
}

#[test]
fn esp32c3_is_secured_end_to_end() {
    secure_a_board(Chip::Esp32c3);
}

#[test]
fn esp32s3_is_secured_end_to_end() {
    secure_a_board(Chip::Esp32s3);
}

#[test]
fn esp32c6_is_secured_end_to_end() {
    secure_a_board(Chip::Esp32c6);
}

/// Release mode: the crypt counter full and write-protected, the release fuses burned,
/// Secure Download Mode enabled last.
#[test]
fn release_mode_burns_what_esp_idf_burns() {
    let chip = Chip::Esp32c3;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    bundle(dir, chip, None);
    let profile = write_profile(dir, "mode = \"release\"\n[flash-encryption]\n");
    let board = SimBoard::start(board_config(chip)).unwrap();
    let (out, record) = run(
        dir,
        chip,
        &board,
        &["--security", profile.to_str().unwrap()],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(record["secure"]["key_source"], "per-board");
    let image = board.efuse_image().unwrap();
    let _ = image;
    let log = board.boot_log();
    assert!(log.contains("Calling app_main()"), "{log}");
    let names: Vec<&str> = record["secure"]["fuses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    for fuse in [
        "SPI_BOOT_CRYPT_CNT",
        "DIS_DOWNLOAD_MANUAL_ENCRYPT",
        "DIS_PAD_JTAG",
        "ENABLE_SECURITY_DOWNLOAD",
    ] {
        assert!(names.contains(&fuse), "{fuse} not in {names:?}");
    }
    assert_eq!(names.last(), Some(&"ENABLE_SECURITY_DOWNLOAD"));
}

/// Refusals before anything is burned: the board's eFuses stay as they were.
#[test]
fn boards_and_builds_the_profile_cannot_secure_are_refused_before_burning() {
    let chip = Chip::Esp32c3;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (_, public) = signing_key(dir);
    bundle(dir, chip, None);

    // Secure Boot requested for an unsigned build: refused before any board is touched.
    let profile = write_profile(
        dir,
        &format!(
            "mode = \"development\"\n[secure-boot]\npublic-keys = [{:?}]\n",
            public.file_name().unwrap()
        ),
    );
    let board = SimBoard::start(board_config(chip)).unwrap();
    let before = board.efuse_image().unwrap();
    let (out, _) = run(
        dir,
        chip,
        &board,
        &["--security", profile.to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("carries no Secure Boot V2 signature"),
        "{}",
        stderr(&out)
    );
    assert_eq!(board.efuse_image().unwrap(), before);

    // A profile that would leave no way to verify.
    let profile = write_profile(dir, "mode = \"release\"\n[secure-boot]\npublic-keys = []\n");
    let (out, _) = run(
        dir,
        chip,
        &board,
        &["--security", profile.to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("no way to verify"),
        "{}",
        stderr(&out)
    );

    // A key block already used by another flash encryption key this station does not have.
    let used = SimBoard::start(board_config(chip).efuses([
        "KEY_PURPOSE_0=4".parse::<EfuseSetting>().unwrap(),
        "RD_DIS=1".parse().unwrap(),
    ]))
    .unwrap();
    let before = used.efuse_image().unwrap();
    let profile = write_profile(dir, "mode = \"development\"\n[flash-encryption]\n");
    let (out, record) = run(dir, chip, &used, &["--security", profile.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
    assert!(stderr(&out).contains("BLOCK_KEY0"), "{}", stderr(&out));
    assert_eq!(record["outcome"], "failed");
    assert_eq!(used.efuse_image().unwrap(), before, "nothing burned");

    // A build signed with none of the profile's keys: no board could verify it.
    let other = tempfile::tempdir().unwrap();
    let (other_signing, _) = signing_key(other.path());
    let signed = tempfile::tempdir().unwrap();
    bundle(signed.path(), chip, Some(&other_signing));
    let profile = write_profile(
        signed.path(),
        &format!(
            "mode = \"development\"\n[secure-boot]\npublic-keys = [{:?}]\n",
            public.to_str().unwrap()
        ),
    );
    let (out, _) = run(
        signed.path(),
        chip,
        &board,
        &["--security", profile.to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("signed with none of the profile's public keys"),
        "{}",
        stderr(&out)
    );

    // An ECDSA key on a chip whose ROM verifies RSA only.
    let ecdsa = dir.join("ecdsa.pem");
    let ecdsa_public = dir.join("ecdsa.pub.pem");
    run_ok(
        Command::new(require("espsecure"))
            .args([
                "generate-signing-key",
                "--version",
                "2",
                "--scheme",
                "ecdsa256",
            ])
            .arg(&ecdsa),
    );
    run_ok(
        Command::new(require("espsecure"))
            .args(["extract-public-key", "--version", "2", "--keyfile"])
            .arg(&ecdsa)
            .arg(&ecdsa_public),
    );
    let profile = write_profile(
        dir,
        "mode = \"development\"\n[secure-boot]\npublic-keys = [\"ecdsa.pub.pem\"]\n",
    );
    let (out, _) = run(
        dir,
        chip,
        &board,
        &["--security", profile.to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("does not verify ecdsa256"),
        "{}",
        stderr(&out)
    );

    // XTS-AES-256 on a chip without it.
    let profile = write_profile(
        dir,
        "mode = \"development\"\n[flash-encryption]\nscheme = \"xts-aes-256\"\n",
    );
    let (out, _) = run(
        dir,
        chip,
        &board,
        &["--security", profile.to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("no xts-aes-256"), "{}", stderr(&out));
}

/// A board in Secure Download Mode: its eFuses cannot be read, so it is refused.
#[test]
fn a_board_in_secure_download_mode_is_refused() {
    let chip = Chip::Esp32c3;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    bundle(dir, chip, None);
    let profile = write_profile(dir, "mode = \"development\"\n[flash-encryption]\n");
    let board = SimBoard::start(board_config(chip).security(esp_sim::Security {
        secure_download: true,
        secure_boot: false,
        flash_encryption: false,
    }))
    .unwrap();
    let flash_before = board.flash();
    let (out, _) = run(
        dir,
        chip,
        &board,
        &["--security", profile.to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("Secure Download Mode, so its eFuses cannot be read"),
        "{}",
        stderr(&out)
    );
    assert!(board.flash() == flash_before, "nothing written");
}

/// The board of `config` after a power cut at the `cut`-th eFuse command: its eFuses and flash,
/// on a new board with the same MAC.
fn after_power_cut(dir: &Path, chip: Chip, profile: &Path, cut: &str) -> SimBoard {
    let board = SimBoard::start(board_config(chip).faults(cut.parse().unwrap())).unwrap();
    let (out, record) = run(
        dir,
        chip,
        &board,
        &["--security", profile.to_str().unwrap()],
    );
    assert!(
        !out.status.success(),
        "{cut}: the power cut must fail the run"
    );
    assert_eq!(out.status.code(), Some(11), "{cut}: {}", stderr(&out));
    assert!(stderr(&out).contains("failed ("), "{cut}: {}", stderr(&out));
    assert_ne!(record["secure"]["verified"], true, "{cut}: {record}");
    let image = board.efuse_image().unwrap();
    let flash = board.stop();
    SimBoard::start(board_config(chip).efuse_image(image).initial_flash(flash)).unwrap()
}

/// A power cut at each step of the burns, then a second run that finishes the board with the
/// kept key: the board boots, and espefuse sees one key block with its purpose.
#[test]
fn a_power_cut_mid_burn_leaves_a_board_the_next_run_finishes() {
    let chip = Chip::Esp32c3;
    // The eFuse commands of a run: key block (program, reload), purposes (program, reload),
    // protections (program, reload), crypt counter (program, reload).
    for cut in [
        "efuse-cut-mid=1",
        "efuse-cut=1",
        "efuse-cut=3",
        "efuse-cut=5",
        "efuse-cut=7",
    ] {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        bundle(dir, chip, None);
        fs::create_dir(dir.join("keys")).unwrap();
        let profile = write_profile(
            dir,
            "mode = \"development\"\n[flash-encryption]\nkeep-keys-in = \"keys\"\n",
        );
        let board = after_power_cut(dir, chip, &profile, cut);
        let (out, record) = run(
            dir,
            chip,
            &board,
            &["--security", profile.to_str().unwrap()],
        );
        assert!(out.status.success(), "{cut}: {}", stderr(&out));
        assert_eq!(record["secure"]["verified"], true, "{cut}");
        let fuses = summary(board.path(), chip);
        assert_eq!(fuses["KEY_PURPOSE_0"]["value"], "XTS_AES_128_KEY", "{cut}");
        assert_eq!(fuses["KEY_PURPOSE_1"]["value"], "USER", "{cut}");
        assert_eq!(raw(&fuses, "SPI_BOOT_CRYPT_CNT"), 1, "{cut}");
        let log = board.boot_log();
        assert!(log.contains("Calling app_main()"), "{cut}:\n{log}");
    }
}

/// A per-board key burned and read-protected, then the power went, and the profile kept no
/// copy: the next run refuses the board with the reason, and burns nothing.
#[test]
fn a_burned_key_that_was_not_kept_makes_the_next_run_refuse() {
    let chip = Chip::Esp32c3;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    bundle(dir, chip, None);
    let profile = write_profile(dir, "mode = \"development\"\n[flash-encryption]\n");
    let board = after_power_cut(dir, chip, &profile, "efuse-cut=5");
    let before = board.efuse_image().unwrap();
    let (out, record) = run(
        dir,
        chip,
        &board,
        &["--security", profile.to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("cannot be recovered"),
        "{}",
        stderr(&out)
    );
    assert_eq!(record["outcome"], "failed");
    assert_eq!(board.efuse_image().unwrap(), before, "nothing burned");
}

/// The ESP32: the key in BLOCK1 (read-protected), the digest in BLOCK2, FLASH_CRYPT_CONFIG
/// 0xF, FLASH_CRYPT_CNT and ABS_DONE_1; the flash holds espsecure's AES encryption; it boots.
#[test]
fn esp32_is_secured_end_to_end() {
    let chip = Chip::Esp32;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (signing, public) = signing_key(dir);
    bundle(dir, chip, Some(&signing));
    let key_file = dir.join("batch.key");
    let key: Vec<u8> = (0..32u8).map(|i| i.wrapping_mul(53) ^ 0x5C).collect();
    fs::write(&key_file, &key).unwrap();
    let profile = write_profile(
        dir,
        &format!(
            "mode = \"development\"\n[flash-encryption]\nkey-file = \"batch.key\"\n\
             [secure-boot]\npublic-keys = [{:?}]\n",
            public.file_name().unwrap()
        ),
    );
    let board = SimBoard::start(board_config(chip)).unwrap();
    let (out, record) = run(
        dir,
        chip,
        &board,
        &["--security", profile.to_str().unwrap()],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let secure = &record["secure"];
    assert_eq!(secure["key_blocks"][0]["block"], "BLOCK1", "{secure}");
    assert_eq!(secure["key_blocks"][1]["block"], "BLOCK2", "{secure}");
    assert_eq!(secure["key_source"], "batch");

    let fuses = summary(board.path(), chip);
    assert_eq!(fuses["BLOCK1"]["readable"], false);
    assert_eq!(raw(&fuses, "FLASH_CRYPT_CNT"), 1);
    assert_eq!(raw(&fuses, "FLASH_CRYPT_CONFIG"), 0xF);
    assert_eq!(raw(&fuses, "ABS_DONE_1"), 1);
    let digest = secure["secure_boot_key_digests"][0].as_str().unwrap();
    let shown = fuses["BLOCK2"]["value"].as_str().unwrap().replace(' ', "");
    assert_eq!(shown, digest);

    let plain = plaintext(dir, chip);
    let flash = board.flash();
    let encrypted = secure["encrypted_regions"].as_array().unwrap();
    assert!(encrypted.len() >= 3, "{secure}");
    for region in encrypted {
        let offset = region["offset"].as_u64().unwrap() as usize;
        let planned = record["regions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["offset"].as_u64() == Some(offset as u64))
            .unwrap();
        let size = planned["size"].as_u64().unwrap() as usize;
        let bytes = &plain[offset..offset + size.next_multiple_of(32)];
        let input = dir.join("region.bin");
        let output = dir.join("region.enc");
        fs::write(&input, bytes).unwrap();
        run_ok(
            Command::new(require("espsecure"))
                .args([
                    "encrypt-flash-data",
                    "--flash-crypt-conf",
                    "0xf",
                    "--keyfile",
                ])
                .arg(&key_file)
                .args(["--address", &format!("{offset:#x}"), "--output"])
                .arg(&output)
                .arg(&input),
        );
        let expected = fs::read(&output).unwrap();
        assert!(
            flash[offset..offset + expected.len()] == expected[..],
            "region at {offset:#x} is not espsecure's encryption"
        );
    }
    let log = board.boot_log();
    assert!(log.contains("Calling app_main()"), "{log}");
}

/// Secure Boot V2 on an ESP32 before v3.0: refused before anything is burned.
#[test]
fn the_wrong_chip_revision_for_the_profile_is_refused() {
    let chip = Chip::Esp32;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (signing, public) = signing_key(dir);
    bundle(dir, chip, Some(&signing));
    let profile = write_profile(
        dir,
        &format!(
            "mode = \"release\"\n[flash-encryption]\n[secure-boot]\npublic-keys = [{:?}]\n",
            public.file_name().unwrap()
        ),
    );
    let board = SimBoard::start(board_config(chip).revision("v1.0".parse().unwrap())).unwrap();
    let before = board.efuse_image().unwrap();
    let (out, record) = run(
        dir,
        chip,
        &board,
        &["--security", profile.to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("needs an ESP32 of revision v3.0 or later, this board is v1.0"),
        "{}",
        stderr(&out)
    );
    assert_eq!(record["outcome"], "failed");
    assert_eq!(board.efuse_image().unwrap(), before, "nothing burned");
}

/// A station run: two boards at once, each with its own key, both kept and both booting.
#[test]
fn a_station_secures_each_board_with_its_own_key() {
    let chip = Chip::Esp32c3;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    bundle(dir, chip, None);
    fs::create_dir(dir.join("keys")).unwrap();
    let profile = write_profile(
        dir,
        "mode = \"release\"\n[flash-encryption]\nkeep-keys-in = \"keys\"\n",
    );
    let boards: Vec<SimBoard> = [0x11u8, 0x12]
        .into_iter()
        .map(|last| {
            let mac = format!("24:0a:c4:5e:00:{last:02x}");
            SimBoard::start(board_config(chip).mac(mac.parse().unwrap())).unwrap()
        })
        .collect();
    let fw = dir.join("fw");
    let report = dir.join("station.json");
    let out = flasher(&[
        "--port",
        boards[0].path().to_str().unwrap(),
        "--port",
        boards[1].path().to_str().unwrap(),
        "--chip",
        chip.name(),
        "--flash_size",
        "4MB",
        "--firmware-dir",
        fw.to_str().unwrap(),
        "--before",
        "no-reset",
        "--after",
        "no-reset",
        "--security",
        profile.to_str().unwrap(),
        "--report",
        report.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let run: Value = serde_json::from_slice(&fs::read(&report).unwrap()).unwrap();
    for record in run["boards"].as_array().unwrap() {
        assert_eq!(record["secure"]["verified"], true, "{record}");
    }
    let keys: Vec<Vec<u8>> = ["24-0a-c4-5e-00-11", "24-0a-c4-5e-00-12"]
        .iter()
        .map(|mac| fs::read(dir.join("keys").join(format!("{mac}.key"))).unwrap())
        .collect();
    assert_ne!(keys[0], keys[1], "each board has its own key");
    assert_ne!(boards[0].flash(), boards[1].flash());
    for board in &boards {
        let log = board.boot_log();
        assert!(log.contains("Calling app_main()"), "{log}");
    }
}

/// The ESP32 after a power cut in the middle of the key burn and after the protections: the
/// next run finishes it with the kept key.
#[test]
fn an_esp32_cut_mid_burn_is_finished_by_the_next_run() {
    let chip = Chip::Esp32;
    for cut in ["efuse-cut-mid=1", "efuse-cut=5"] {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        bundle(dir, chip, None);
        fs::create_dir(dir.join("keys")).unwrap();
        let profile = write_profile(
            dir,
            "mode = \"development\"\n[flash-encryption]\nkeep-keys-in = \"keys\"\n",
        );
        let board = after_power_cut(dir, chip, &profile, cut);
        let (out, record) = run(
            dir,
            chip,
            &board,
            &["--security", profile.to_str().unwrap()],
        );
        assert!(out.status.success(), "{cut}: {}", stderr(&out));
        assert_eq!(record["secure"]["verified"], true, "{cut}");
        let fuses = summary(board.path(), chip);
        assert_eq!(fuses["BLOCK1"]["readable"], false, "{cut}");
        assert_eq!(raw(&fuses, "FLASH_CRYPT_CNT"), 1, "{cut}");
        let log = board.boot_log();
        assert!(log.contains("Calling app_main()"), "{cut}:\n{log}");
    }
}

/// A reply lost on the line during the burns: the next attempt of the same run reads the
/// eFuses again and finishes the board with the key in memory (none kept on disk).
#[test]
fn a_reply_lost_during_the_burns_is_taken_up_by_the_next_attempt() {
    let chip = Chip::Esp32c3;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    bundle(dir, chip, None);
    let profile = write_profile(dir, "mode = \"development\"\n[flash-encryption]\n");
    let mut retried = 0;
    // WRITE_REG (0x09) replies lost at points spread over the burns.
    for nth in [5, 15, 30, 45, 60, 75] {
        let faults = format!("mute=0x09#{nth}");
        let board = SimBoard::start(board_config(chip).faults(faults.parse().unwrap())).unwrap();
        let (out, record) = run(
            dir,
            chip,
            &board,
            &["--security", profile.to_str().unwrap()],
        );
        assert!(out.status.success(), "{faults}: {}", stderr(&out));
        assert_eq!(record["secure"]["verified"], true, "{faults}");
        retried += u32::from(record["attempts"].as_u64() > Some(1));
        let fuses = summary(board.path(), chip);
        assert_eq!(
            fuses["KEY_PURPOSE_0"]["value"], "XTS_AES_128_KEY",
            "{faults}"
        );
        assert_eq!(fuses["KEY_PURPOSE_1"]["value"], "USER", "{faults}");
        let log = board.boot_log();
        assert!(log.contains("Calling app_main()"), "{faults}:\n{log}");
    }
    assert!(retried > 0, "no lost reply fell in the burns");
}
