//! The simulated eFuse controller against Espressif's espefuse (esptool 5.x): what `summary`
//! reads, what `burn-key`, `burn-key-digest` and `burn-efuse` burn, the protections they set,
//! and a power cut in the middle of a burn.

mod common;

use std::fs;
use std::path::Path;
use std::thread;

use esp_sim::{BoardConfig, Chip, EfuseImage, Security, SimBoard, SimProcess};
use serde_json::Value;

/// The chips whose eFuse controller is modelled.
const CHIPS: [Chip; 4] = [Chip::Esp32, Chip::Esp32c3, Chip::Esp32s3, Chip::Esp32c6];

/// `espefuse summary --format json`, parsed.
fn summary(port: &Path, chip: Chip) -> Value {
    let (ok, out) = common::run_espefuse(port, chip.name(), &["summary", "--format", "json"]);
    assert!(ok, "{chip}: summary\n{out}");
    let start = out
        .find("\n{")
        .unwrap_or_else(|| panic!("{chip}: no JSON\n{out}"));
    serde_json::Deserializer::from_str(&out[start..])
        .into_iter::<Value>()
        .next()
        .and_then(Result::ok)
        .unwrap_or_else(|| panic!("{chip}: bad JSON\n{out}"))
}

/// A field's raw value as a number.
fn raw(summary: &Value, field: &str) -> u64 {
    let text = summary[field]["raw_value"]
        .as_str()
        .unwrap_or_else(|| panic!("no {field} in the summary"));
    u64::from_str_radix(text.trim_start_matches("0x"), 16).unwrap()
}

/// Names and commands that differ between the ESP32 and the later chips.
struct Names {
    crypt_cnt: &'static str,
    key_block: &'static str,
    digest_block: &'static str,
    /// The image block index of the key and of the digest.
    key_index: usize,
    digest_index: usize,
}

fn names(chip: Chip) -> Names {
    match chip {
        Chip::Esp32 => Names {
            crypt_cnt: "FLASH_CRYPT_CNT",
            key_block: "BLOCK1",
            digest_block: "BLOCK2",
            key_index: 1,
            digest_index: 2,
        },
        _ => Names {
            crypt_cnt: "SPI_BOOT_CRYPT_CNT",
            key_block: "BLOCK_KEY0",
            digest_block: "BLOCK_KEY1",
            key_index: 4,
            digest_index: 5,
        },
    }
}

fn block_bytes(image: &EfuseImage, index: usize) -> Vec<u8> {
    image
        .block(index)
        .unwrap()
        .iter()
        .flat_map(|w| w.to_le_bytes())
        .collect()
}

/// A blank board (revision v3.0 for the ESP32: Secure Boot V2) read, burned with a flash
/// encryption key, a Secure Boot V2 key digest and the crypt counter, and read again.
fn burn_a_production_board(chip: Chip) {
    let dir = tempfile::tempdir().unwrap();
    let path = |n: &str| dir.path().join(n);
    let key: Vec<u8> = (0..32u8).map(|i| i.wrapping_mul(37) ^ chip as u8).collect();
    fs::write(path("key.bin"), &key).unwrap();
    let signing = path("signing.pem");
    let signing = signing.to_str().unwrap();
    common::run_espsecure(&[
        "generate-signing-key",
        "--version",
        "2",
        "--scheme",
        "rsa3072",
        signing,
    ]);
    let digest_file = path("digest.bin");
    common::run_espsecure(&[
        "digest-sbv2-public-key",
        "--keyfile",
        signing,
        "--output",
        digest_file.to_str().unwrap(),
    ]);
    let digest = fs::read(&digest_file).unwrap();

    let config = common::test_board(chip);
    let mac = config.effective_mac().to_string();
    let board = SimBoard::start(config).unwrap();
    let port = board.path();
    let n = names(chip);
    let before = summary(port, chip);
    assert!(
        before["MAC"]["value"].as_str().unwrap().starts_with(&mac),
        "{chip}: {}",
        before["MAC"]
    );
    assert_eq!(raw(&before, n.crypt_cnt), 0, "{chip}");
    assert_eq!(before[n.key_block]["readable"], true, "{chip}");

    let key_file = path("key.bin");
    let key_file = key_file.to_str().unwrap();
    let burns: Vec<Vec<&str>> = match chip {
        Chip::Esp32 => vec![
            vec!["burn-key", "flash_encryption", key_file],
            vec!["burn-key-digest", signing],
        ],
        _ => vec![
            vec!["burn-key", "BLOCK_KEY0", key_file, "XTS_AES_128_KEY"],
            vec![
                "burn-key-digest",
                "BLOCK_KEY1",
                signing,
                "SECURE_BOOT_DIGEST0",
            ],
        ],
    };
    for args in burns
        .iter()
        .map(Vec::as_slice)
        .chain([&["burn-efuse", n.crypt_cnt, "1"][..]])
    {
        let (ok, out) = common::run_espefuse(port, chip.name(), args);
        assert!(ok, "{chip}: {args:?}\n{out}");
        assert!(out.contains("Successful"), "{chip}: {args:?}\n{out}");
    }

    let after = summary(port, chip);
    assert_eq!(raw(&after, n.crypt_cnt), 1, "{chip}");
    // The key block is read- and write-protected and reads as zeros.
    let key_field = &after[n.key_block];
    assert_eq!(key_field["readable"], false, "{chip}: {key_field}");
    assert_eq!(key_field["writeable"], false, "{chip}: {key_field}");
    assert_eq!(
        key_field["raw_value"]
            .as_str()
            .unwrap()
            .trim_start_matches("0x"),
        "0".repeat(64),
        "{chip}"
    );
    // The digest reads back, in order, under its purpose.
    let shown: String = digest.iter().map(|b| format!("{b:02x} ")).collect();
    let digest_field = &after[n.digest_block];
    assert_eq!(
        digest_field["value"].as_str().unwrap(),
        shown.trim_end(),
        "{chip}"
    );
    if chip != Chip::Esp32 {
        assert_eq!(after["KEY_PURPOSE_0"]["value"], "XTS_AES_128_KEY", "{chip}");
        assert_eq!(
            after["KEY_PURPOSE_1"]["value"], "SECURE_BOOT_DIGEST0",
            "{chip}"
        );
        assert_eq!(after["KEY_PURPOSE_0"]["writeable"], false, "{chip}");
    }
    // Nothing else changed: every field but the ones burned reads as before.
    let burned = [
        n.crypt_cnt,
        n.key_block,
        n.digest_block,
        "WR_DIS",
        "RD_DIS",
        "KEY_PURPOSE_0",
        "KEY_PURPOSE_1",
    ];
    for (name, field) in before.as_object().unwrap() {
        if !burned.contains(&name.as_str()) {
            assert_eq!(
                after[name]["raw_value"], field["raw_value"],
                "{chip}: {name}"
            );
        }
    }

    // The chip holds the key, in the byte order espefuse burns for the hardware.
    let image = board.efuse_image().unwrap();
    let mut hardware_order = key.clone();
    hardware_order.reverse();
    assert_eq!(block_bytes(&image, n.key_index), hardware_order, "{chip}");
    assert_eq!(block_bytes(&image, n.digest_index), digest, "{chip}");

    // espefuse refuses to burn a write-protected field, and the key block again.
    let refused = match chip {
        Chip::Esp32 => vec!["burn-key", "flash_encryption", key_file],
        _ => vec!["burn-efuse", "KEY_PURPOSE_0", "5"],
    };
    let (ok, out) = common::run_espefuse(port, chip.name(), &refused);
    assert!(!ok, "{chip}: {out}");
    let why = match chip {
        Chip::Esp32 => "BLOCK1 is read-protected",
        _ => "KEY_PURPOSE_0 is write-protected. Burn is not possible.",
    };
    assert!(out.contains(why), "{chip}: {out}");
    assert_eq!(
        board.efuse_image().unwrap(),
        image,
        "{chip}: nothing burned"
    );
}

#[test]
fn espefuse_reads_and_burns_every_modelled_chip() {
    let threads: Vec<_> = CHIPS
        .into_iter()
        .map(|chip| (chip, thread::spawn(move || burn_a_production_board(chip))))
        .collect();
    let failures: Vec<_> = threads
        .into_iter()
        .filter_map(|(chip, t)| t.join().err().map(|_| chip))
        .collect();
    assert!(failures.is_empty(), "failed for {failures:?}");
}

/// A power cut in the middle of burning a key block (the line goes dead after the first
/// program command, half of whose words were burned) leaves the block half written: a board
/// started from the eFuses the first one kept shows its coding errors to espefuse, which
/// refuses to burn the block again. The board runs as a process: --efuse-dump, --efuse-load.
#[test]
fn a_power_cut_mid_burn_leaves_a_block_espefuse_refuses() {
    let dir = tempfile::tempdir().unwrap();
    let key: Vec<u8> = (0..32u8).map(|i| i ^ 0xA5).collect();
    let key_file = dir.path().join("key.bin");
    fs::write(&key_file, &key).unwrap();
    let key_file = key_file.to_str().unwrap();
    let dump = dir.path().join("efuses.txt");
    let burn = ["burn-key", "BLOCK_KEY0", key_file, "XTS_AES_128_KEY"];

    let config = BoardConfig::new(Chip::Esp32c3).faults("efuse-cut-mid=1".parse().unwrap());
    let mut args = config.to_args();
    args.extend(["--efuse-dump".to_owned(), dump.display().to_string()]);
    let sim = SimProcess::spawn(env!("CARGO_BIN_EXE_esp-sim"), &args).expect("esp-sim starts");
    let (ok, out) = common::run_espefuse(sim.path(), "esp32c3", &burn);
    assert!(!ok, "{out}");
    assert!(!out.contains("Successful"), "{out}");
    assert!(sim.stop().unwrap().success());

    let image = EfuseImage::parse(Chip::Esp32c3, &fs::read_to_string(&dump).unwrap()).unwrap();
    let mut hardware_order = key.clone();
    hardware_order.reverse();
    let block = block_bytes(&image, 4);
    assert_eq!(block[..16], hardware_order[..16], "the first half burned");
    assert_eq!(block[16..], [0; 16], "the second half not");
    assert_eq!(
        image.block(0),
        Some([0; 8]),
        "no purpose, no protection yet"
    );

    let sim = SimProcess::spawn(
        env!("CARGO_BIN_EXE_esp-sim"),
        ["--chip", "esp32c3", "--efuse-load", dump.to_str().unwrap()],
    )
    .expect("esp-sim starts");
    let (ok, out) = common::run_espefuse(sim.path(), "esp32c3", &["summary"]);
    assert!(ok, "{out}");
    assert!(out.contains("Error(s) in BLOCK4 [ERRORS:"), "{out}");
    let (ok, out) = common::run_espefuse(sim.path(), "esp32c3", &burn);
    assert!(!ok, "{out}");
    assert!(out.contains("Burn into BLOCK_KEY0 is forbidden"), "{out}");
    assert!(sim.stop().unwrap().success());
}

/// esptool's GET_SECURITY_INFO agrees with what espefuse burned; in Secure Download Mode the
/// ROM refuses the eFuse reads and espefuse says so.
#[test]
fn security_info_follows_the_efuses() {
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("key.bin");
    fs::write(&key_file, [0x3C; 32]).unwrap();
    let board = SimBoard::start(BoardConfig::new(Chip::Esp32s3)).unwrap();
    let (ok, out) = common::run_esptool(board.path(), "esp32s3", &["get-security-info"]);
    assert!(ok, "{out}");
    assert!(out.contains("Flash Encryption: Disabled"), "{out}");
    let burns: [&[&str]; 3] = [
        &[
            "burn-key",
            "BLOCK_KEY2",
            key_file.to_str().unwrap(),
            "XTS_AES_128_KEY",
        ],
        &["burn-efuse", "SPI_BOOT_CRYPT_CNT", "1"],
        &["burn-efuse", "SECURE_BOOT_EN", "1", "DIS_PAD_JTAG", "1"],
    ];
    for args in burns {
        let (ok, out) = common::run_espefuse(board.path(), "esp32s3", args);
        assert!(ok, "{args:?}: {out}");
    }
    let (ok, out) = common::run_esptool(board.path(), "esp32s3", &["get-security-info"]);
    assert!(ok, "{out}");
    assert!(out.contains("Flags: 0x00000081"), "{out}");
    assert!(out.contains("SPI_BOOT_CRYPT_CNT): 0x1"), "{out}");
    assert!(out.contains("Key Purposes: (0, 0, 4, 0, 0, 0, 0)"), "{out}");
    assert!(out.contains("Secure Boot: Enabled"), "{out}");
    assert!(out.contains("Flash Encryption: Enabled"), "{out}");
    assert!(out.contains("JTAG: Permanently Disabled"), "{out}");
    drop(board);

    let sdm = Security {
        secure_download: true,
        ..Security::default()
    };
    let board = SimBoard::start(BoardConfig::new(Chip::Esp32c6).security(sdm)).unwrap();
    let (ok, out) = common::run_espefuse(board.path(), "esp32c6", &["summary"]);
    assert!(!ok, "{out}");
    assert!(
        out.contains("Secure Download Mode is enabled. The tool can not read eFuses."),
        "{out}"
    );
}

/// eFuse settings a chip cannot take are refused by the library and the binary alike, in one
/// line naming the setting.
#[test]
fn efuse_settings_a_chip_lacks_are_refused() {
    let setting = |s: &str| s.parse().unwrap();
    let refused = [
        (
            Chip::Esp32c2,
            "SPI_BOOT_CRYPT_CNT=1",
            "esp32c2 has no modelled eFuse controller",
        ),
        (
            Chip::Esp32c3,
            "SPI_BOOT_CRYPT_CNT=9",
            "`9` does not fit eFuse SPI_BOOT_CRYPT_CNT (3 bits",
        ),
        (
            Chip::Esp32,
            "KEY_PURPOSE_0=4",
            "esp32 has no eFuse field or block `KEY_PURPOSE_0`",
        ),
        (
            Chip::Esp32s3,
            "BLOCK_KEY0=0g",
            "`0g` does not fit eFuse BLOCK_KEY0",
        ),
    ];
    for (chip, text, why) in refused {
        let config = BoardConfig::new(chip).efuse(setting(text));
        let err = SimBoard::start(config.clone()).unwrap_err();
        assert!(err.to_string().contains(why), "{text}: {err}");
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_esp-sim"))
            .args(config.to_args())
            .output()
            .unwrap();
        assert!(!out.status.success(), "{text}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(why), "{text}: {stderr}");
    }
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_esp-sim"))
        .args(["--chip", "esp32c3", "--efuse", "SPI_BOOT_CRYPT_CNT"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("expected NAME=VALUE"), "{stderr}");
}
