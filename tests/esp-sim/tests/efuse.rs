//! The simulated eFuse controller against Espressif's espefuse (esptool 5.x): what `summary`
//! reads, what `burn-key`, `burn-key-digest` and `burn-efuse` burn, the protections they set,
//! and a power cut in the middle of a burn.

mod common;

use std::fs;
use std::path::Path;
use std::thread;

use esp_sim::{BoardConfig, Chip, EfuseImage, SimBoard};
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
