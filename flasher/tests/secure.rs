//! Secured boards, through the real `flasher` binary and the simulated board on a pty: Secure
//! Download Mode writes exactly what esptool's merge-bin lays out, with nothing the ROM refuses;
//! a signed build is written byte-exact on a Secure Boot board and an unsigned one is refused;
//! a board with flash encryption on is refused. Refused boards stay untouched.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{BuildParts, esptool, esptool_merge, flasher, generated_build, stderr, write_bundle};
use esp_sim::protocol::Opcode;
use esp_sim::{BoardConfig, Security, SimBoard};
use firmware::chip::Chip;
use serde_json::Value;
use testkit::idf_build::BuildSpec;

const SDM: Security = Security {
    secure_download: true,
    secure_boot: false,
    flash_encryption: false,
};

/// The espsecure of the workspace's venv (or `$ESPSECURE`); panics, failing the test, when
/// there is none.
fn espsecure() -> PathBuf {
    if let Some(path) = std::env::var_os("ESPSECURE") {
        return path.into();
    }
    let venv = testkit::workspace_root().join(".venv/bin/espsecure");
    assert!(
        venv.is_file(),
        "espsecure not found: set ESPSECURE=/path/to/espsecure, or install esptool in .venv \
         (`python3 -m venv .venv && .venv/bin/pip install esptool`)"
    );
    venv
}

fn run(tool: &Path, args: &[&str]) -> Output {
    let out = Command::new(tool).args(args).output().expect("tool runs");
    assert!(
        out.status.success(),
        "{} {args:?}: {}{}",
        tool.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A new RSA-3072 Secure Boot V2 signing key in `dir`.
fn signing_key(dir: &Path, name: &str) -> PathBuf {
    let key = dir.join(name);
    let key_text = key.to_str().unwrap();
    let args = [
        "generate-signing-key",
        "--version",
        "2",
        "--scheme",
        "rsa3072",
        key_text,
    ];
    run(&espsecure(), &args);
    key
}

/// The key digest `espsecure digest-sbv2-public-key` writes for `key`.
fn key_digest(key: &Path) -> [u8; 32] {
    let out = key.with_extension("digest");
    run(
        &espsecure(),
        &[
            "digest-sbv2-public-key",
            "--keyfile",
            key.to_str().unwrap(),
            "--output",
            out.to_str().unwrap(),
        ],
    );
    fs::read(&out)
        .unwrap()
        .try_into()
        .expect("a 32-byte digest")
}

/// Signs `file` in place with `key` (`espsecure sign-data --version 2`).
fn sign(file: &Path, key: &Path) {
    let signed = file.with_extension("signed");
    run(
        &espsecure(),
        &[
            "sign-data",
            "--version",
            "2",
            "--keyfile",
            key.to_str().unwrap(),
            "--output",
            signed.to_str().unwrap(),
            file.to_str().unwrap(),
        ],
    );
    fs::rename(&signed, file).unwrap();
}

/// A generated build for `chip` in `dir/build`, signed with `key` if given, and its bundle
/// (with a manifest) in `dir/fw`.
fn bundle(dir: &Path, chip: Chip, key: Option<&Path>) -> BuildParts {
    let mut spec = BuildSpec::new(chip);
    spec.seed = 300 + u64::from(chip.image_chip_id());
    spec.app_len = 48 * 1024;
    let build = generated_build(&dir.join("build"), &spec);
    if let Some(key) = key {
        sign(&build.bootloader.1, key);
        sign(&build.app.1, key);
    }
    write_bundle(&dir.join("fw"), &[(chip.name(), &build)], None, true);
    build
}

fn parts(build: &BuildParts) -> Vec<(u32, PathBuf)> {
    let mut parts = vec![
        build.bootloader.clone(),
        build.table.clone(),
        build.app.clone(),
    ];
    parts.extend(build.otadata.clone());
    parts
}

/// `esptool merge-bin` of `build`'s files as they are (flash settings kept), padded to 4 MB.
fn merge_as_built(build: &BuildParts, out: &Path) -> Vec<u8> {
    let mut args = vec![
        "--chip".to_string(),
        build.chip.name().into(),
        "merge-bin".into(),
        "-o".into(),
        out.display().to_string(),
        "--pad-to-size".into(),
        "4MB".into(),
    ];
    for (offset, path) in parts(build) {
        args.push(format!("{offset:#x}"));
        args.push(path.display().to_string());
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    run(&esptool(), &args);
    fs::read(out).unwrap()
}

fn board(chip: Chip, security: Security) -> SimBoard {
    board_trusting(chip, security, Vec::new())
}

/// A board that trusts the Secure Boot keys of `digests`.
fn board_trusting(chip: Chip, security: Security, digests: Vec<[u8; 32]>) -> SimBoard {
    let config = BoardConfig::new(chip.name().parse().unwrap())
        .flash_size("4MB".parse().unwrap())
        .security(security)
        .secure_boot_digests(digests);
    let config = if chip == Chip::Esp32 {
        // Secure Boot V2 (ABS_DONE_1) exists from revision v3.0.
        config.revision("v3.0".parse().unwrap())
    } else {
        config
    };
    SimBoard::start(config).unwrap()
}

/// Runs the flasher on `board` with the bundle in `dir/fw`; returns its output and the record.
fn flash(dir: &Path, chip: Chip, board: &SimBoard) -> (Output, Value) {
    let fw = dir.join("fw");
    let report = dir.join("report.json");
    let out = flasher(&[
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
    ]);
    let run: Value = serde_json::from_slice(&fs::read(&report).unwrap()).unwrap();
    (out, run["boards"][0].clone())
}

fn sent(board: &SimBoard, ops: &[Opcode]) -> Vec<Opcode> {
    board
        .commands()
        .iter()
        .filter_map(|c| c.command)
        .filter(|op| ops.contains(op))
        .collect()
}

const WRITES: [Opcode; 4] = [
    Opcode::FlashBegin,
    Opcode::FlashData,
    Opcode::FlashDeflBegin,
    Opcode::FlashDeflData,
];

/// What Secure Download Mode refuses, none of which the flasher may send there.
const REFUSED: [Opcode; 6] = [
    Opcode::ReadReg,
    Opcode::WriteReg,
    Opcode::MemBegin,
    Opcode::SpiFlashMd5,
    Opcode::FlashDeflBegin,
    Opcode::ReadFlashSlow,
];

/// Asserts the run failed with exit 5, one line naming `needle`, and the board untouched.
fn assert_refused(chip: Chip, out: &Output, record: &Value, board: SimBoard, needle: &str) {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(5), "{chip}: {err}");
    let line = err
        .lines()
        .find(|l| l.starts_with("error: "))
        .unwrap_or_else(|| panic!("{chip}: no error line: {err}"));
    assert!(line.contains(needle), "{chip}: {line}");
    assert_eq!(record["exit_code"], 5, "{chip}: {record}");
    assert!(
        sent(&board, &WRITES).is_empty(),
        "{chip}: wrote to the board"
    );
    assert!(
        board.stop().iter().all(|&b| b == 0xFF),
        "{chip}: the flash changed"
    );
}

fn sdm_write(chip: Chip) {
    let tmp = tempfile::tempdir().unwrap();
    let build = bundle(tmp.path(), chip, None);
    let expected = esptool_merge(
        chip,
        "4MB",
        &build.mode,
        &build.freq,
        &parts(&build),
        &tmp.path().join("theirs.bin"),
    );
    let board = board(chip, SDM);
    let (out, record) = flash(tmp.path(), chip, &board);
    let err = stderr(&out);
    assert!(out.status.success(), "{chip}: {err}");
    assert!(err.contains("in Secure Download Mode"), "{chip}: {err}");
    assert!(err.contains("not checked"), "{chip}: {err}");
    let device = &record["device"];
    assert_eq!(device["chip"], chip.name(), "{chip}: {record}");
    assert_eq!(device["secure_download"], true, "{chip}: {record}");
    assert_eq!(device["secure_boot"], false, "{chip}: {record}");
    assert_eq!(device["flash_encryption"], false, "{chip}: {record}");
    for what in ["mac", "flash_id", "flash_size", "md5"] {
        assert!(
            device["unchecked"]
                .as_array()
                .unwrap()
                .contains(&Value::from(what)),
            "{chip}: {what} not listed as unchecked: {record}"
        );
    }
    assert!(device["mac"].is_null(), "{chip}: {record}");
    let refused = sent(&board, &REFUSED);
    assert!(refused.is_empty(), "{chip}: sent {refused:?}");
    assert!(!sent(&board, &[Opcode::FlashData]).is_empty(), "{chip}");
    assert!(
        board.stop() == expected,
        "{chip}: the flash differs from esptool merge-bin"
    );
}

#[test]
fn secure_download_mode_writes_what_esptool_merges() {
    for chip in [Chip::Esp32s3, Chip::Esp32c3, Chip::Esp32c6, Chip::Esp32h2] {
        sdm_write(chip);
    }
}

/// espflash cannot connect to an ESP32-S2 in Secure Download Mode (its ROM refuses the chip
/// detection): the flasher says so in one line with exit 5, instead of a generic connect error,
/// and the board stays untouched.
#[test]
fn an_esp32s2_in_secure_download_mode_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    bundle(tmp.path(), Chip::Esp32s2, None);
    let board = board(Chip::Esp32s2, SDM);
    let (out, record) = flash(tmp.path(), Chip::Esp32s2, &board);
    let err = stderr(&out);
    assert!(
        err.contains("esptool --chip esp32s2 --no-stub write-flash"),
        "{err}"
    );
    assert_refused(
        Chip::Esp32s2,
        &out,
        &record,
        board,
        "the board is an ESP32-S2 in Secure Download Mode",
    );
}

/// A signed build on a Secure Boot board is written byte-exact: in Secure Download Mode (the
/// flags tell) and with readable eFuses (SECURE_BOOT_EN, the ESP32's ABS_DONE_1).
#[test]
fn signed_builds_are_written_exactly_on_secure_boot_boards() {
    let keys = tempfile::tempdir().unwrap();
    let key = signing_key(keys.path(), "key.pem");
    let cases = [
        (Chip::Esp32s3, true),
        (Chip::Esp32c6, true),
        (Chip::Esp32c3, false),
        (Chip::Esp32, false),
        // This ROM runs no stub under Secure Boot: the flasher writes through the ROM.
        (Chip::Esp32s3, false),
    ];
    for (chip, secure_download) in cases {
        let tmp = tempfile::tempdir().unwrap();
        let build = bundle(tmp.path(), chip, Some(&key));
        let expected = merge_as_built(&build, &tmp.path().join("theirs.bin"));
        let board = board(
            chip,
            Security {
                secure_download,
                secure_boot: true,
                flash_encryption: false,
            },
        );
        let (out, record) = flash(tmp.path(), chip, &board);
        let err = stderr(&out);
        assert!(out.status.success(), "{chip}: {err}");
        assert!(err.contains("Secure Boot is enabled"), "{chip}: {err}");
        if chip == Chip::Esp32s3 && !secure_download {
            assert!(
                err.contains("its ROM runs no flasher stub"),
                "{chip}: {err}"
            );
            let stub = board.commands().iter().any(|c| c.stub);
            assert!(!stub, "{chip}: a stub ran");
        }
        assert_eq!(record["device"]["secure_boot"], true, "{chip}: {record}");
        let flash = board.stop();
        assert!(
            flash == expected,
            "{chip}: the flash differs from merge-bin"
        );
        let bootloader = fs::read(&build.bootloader.1).unwrap();
        let at = build.bootloader.0 as usize;
        assert!(
            flash[at..at + bootloader.len()] == bootloader[..],
            "{chip}: the signed bootloader was changed"
        );
    }
}

#[test]
fn unsigned_builds_are_refused_on_secure_boot_boards() {
    for (chip, secure_download) in [
        (Chip::Esp32c6, true),
        (Chip::Esp32c3, false),
        (Chip::Esp32, false),
    ] {
        let tmp = tempfile::tempdir().unwrap();
        bundle(tmp.path(), chip, None);
        let board = board(
            chip,
            Security {
                secure_download,
                secure_boot: true,
                flash_encryption: false,
            },
        );
        let (out, record) = flash(tmp.path(), chip, &board);
        assert_refused(
            chip,
            &out,
            &record,
            board,
            "carries no Secure Boot V2 signature",
        );
        assert!(stderr(&out).contains("bootloader.bin"), "{}", stderr(&out));
    }
}

#[test]
fn boards_with_flash_encryption_are_refused() {
    let cases = [
        (Chip::Esp32c3, true, "SPI_BOOT_CRYPT_CNT"),
        (Chip::Esp32h2, false, "SPI_BOOT_CRYPT_CNT"),
        (Chip::Esp32, false, "FLASH_CRYPT_CNT"),
    ];
    for (chip, secure_download, counter) in cases {
        let tmp = tempfile::tempdir().unwrap();
        bundle(tmp.path(), chip, None);
        let board = board(
            chip,
            Security {
                secure_download,
                secure_boot: false,
                flash_encryption: true,
            },
        );
        let (out, record) = flash(tmp.path(), chip, &board);
        assert_eq!(
            record["device"]["flash_encryption"], true,
            "{chip}: {record}"
        );
        assert_refused(chip, &out, &record, board, "flash encryption enabled");
        assert!(stderr(&out).contains(counter), "{chip}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("--encrypt"),
            "{chip}: {}",
            stderr(&out)
        );
    }
}

const SECURE_BOOT: Security = Security {
    secure_download: false,
    secure_boot: true,
    flash_encryption: false,
};

/// Where the board's SECURE_BOOT_DIGEST key blocks can be read, the key is compared: a build
/// signed with a trusted key is written, one signed with another key is refused untouched. The
/// digest of a signature block is the one espsecure computes.
#[test]
fn builds_signed_with_another_key_are_refused() {
    let keys = tempfile::tempdir().unwrap();
    let trusted = signing_key(keys.path(), "trusted.pem");
    let other = signing_key(keys.path(), "other.pem");
    let (trusted_digest, other_digest) = (key_digest(&trusted), key_digest(&other));
    for chip in [Chip::Esp32c3, Chip::Esp32c6] {
        let tmp = tempfile::tempdir().unwrap();
        let build = bundle(tmp.path(), chip, Some(&other));
        let app = fs::read(&build.app.1).unwrap();
        assert_eq!(
            firmware::esp_image::signature_key_digests(&app).unwrap(),
            vec![other_digest],
            "{chip}: the signature block's key digest differs from espsecure's"
        );
        // The board trusts two keys, neither of them the build's.
        let digests = vec![[0x5A; 32], trusted_digest];
        let board = board_trusting(chip, SECURE_BOOT, digests.clone());
        let (out, record) = flash(tmp.path(), chip, &board);
        assert_refused(chip, &out, &record, board, "SECURE_BOOT_DIGEST");
        let hex: String = other_digest.iter().map(|b| format!("{b:02x}")).collect();
        assert!(stderr(&out).contains(&hex), "{chip}: {}", stderr(&out));

        let tmp = tempfile::tempdir().unwrap();
        let build = bundle(tmp.path(), chip, Some(&trusted));
        let expected = merge_as_built(&build, &tmp.path().join("theirs.bin"));
        let board = board_trusting(chip, SECURE_BOOT, digests);
        let (out, record) = flash(tmp.path(), chip, &board);
        let err = stderr(&out);
        assert!(out.status.success(), "{chip}: {err}");
        assert!(
            err.contains("signed with a key the board trusts"),
            "{chip}: {err}"
        );
        assert!(
            !record["device"]["unchecked"]
                .as_array()
                .is_some_and(|u| u.contains(&Value::from("secure_boot_key"))),
            "{chip}: {record}"
        );
        assert!(
            board.stop() == expected,
            "{chip}: the flash differs from merge-bin"
        );
    }
}
