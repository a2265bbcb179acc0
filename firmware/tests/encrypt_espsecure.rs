//! `firmware::encrypt` against `espsecure encrypt-flash-data` (esptool 5.x): every region of
//! real ESP-IDF builds at its real offset, and generated odd-sized data, byte for byte.

use std::path::{Path, PathBuf};
use std::process::Command;

use firmware::encrypt::{self, Key, Scheme};
use testkit::tools::{require, run_ok};

/// A key of `len` bytes that differs per test case, generated (never a fixed secret).
fn generated_key(len: usize, seed: u32) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2_654_435_761).wrapping_add(0x9E37_79B9);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x >> 24) as u8
        })
        .collect()
}

/// What `espsecure encrypt-flash-data` writes for `plain` at `address`.
fn espsecure(dir: &Path, key: &[u8], scheme: Scheme, address: u32, plain: &[u8]) -> Vec<u8> {
    let key_file = dir.join("key.bin");
    let in_file = dir.join("in.bin");
    let out_file = dir.join("out.bin");
    std::fs::write(&key_file, key).unwrap();
    std::fs::write(&in_file, plain).unwrap();
    let mut cmd = Command::new(require("espsecure"));
    cmd.arg("encrypt-flash-data")
        .arg("--keyfile")
        .arg(&key_file)
        .args(["--address", &format!("{address:#x}")])
        .arg("--output")
        .arg(&out_file);
    match scheme {
        Scheme::Esp32Aes { flash_crypt_config } => {
            cmd.args(["--flash-crypt-conf", &format!("{flash_crypt_config:#x}")]);
        }
        Scheme::XtsAes128 | Scheme::XtsAes256 => {
            cmd.arg("--aes-xts");
        }
    }
    run_ok(cmd.arg(&in_file));
    std::fs::read(&out_file).unwrap()
}

/// The regions of a fixture build as its `flasher_args.json` places them.
fn regions(build: &str) -> Vec<(u32, PathBuf)> {
    let dir = testkit::fixtures_dir().join(build);
    let args: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("flasher_args.json")).unwrap()).unwrap();
    let mut out: Vec<(u32, PathBuf)> = args["flash_files"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(offset, file)| {
            let offset = u32::from_str_radix(offset.trim_start_matches("0x"), 16).unwrap();
            (offset, dir.join(file.as_str().unwrap()))
        })
        .collect();
    out.sort();
    assert!(
        out.len() >= 3,
        "{build}: bootloader, table and app expected"
    );
    out
}

/// `plain` padded as esptool pads an image it writes encrypted: 0xFF to the scheme's unit.
fn padded(plain: &[u8], scheme: Scheme) -> Vec<u8> {
    let mut out = plain.to_vec();
    out.resize(plain.len().next_multiple_of(scheme.align()), 0xFF);
    out
}

/// Each region of `build` encrypted by us and by espsecure.
fn compare_build(build: &str, scheme: Scheme, seed: u32) {
    let tmp = tempfile::tempdir().unwrap();
    let key_bytes = generated_key(scheme.key_len(), seed);
    let key = Key::new(key_bytes.clone(), scheme).unwrap();
    for (address, path) in regions(build) {
        let plain = std::fs::read(&path).unwrap();
        let ours = encrypt::encrypt(&key, scheme, address, &plain).unwrap();
        let padded = padded(&plain, scheme);
        let theirs = espsecure(tmp.path(), &key_bytes, scheme, address, &padded);
        assert_eq!(ours.len(), theirs.len(), "{build} {}", path.display());
        assert!(
            ours == theirs,
            "{build}: {} at {address:#x} differs from espsecure ({})",
            path.display(),
            scheme.name()
        );
        assert_eq!(
            encrypt::decrypt(&key, scheme, address, &ours).unwrap(),
            padded
        );
    }
}

#[test]
fn esp32_regions_match_espsecure() {
    compare_build(
        "esp32-lifecycle-manager",
        Scheme::Esp32Aes {
            flash_crypt_config: encrypt::DEFAULT_FLASH_CRYPT_CONFIG,
        },
        1,
    );
}

#[test]
fn esp32c3_regions_match_espsecure() {
    compare_build("esp32c3-sht30", Scheme::XtsAes128, 2);
}

#[test]
fn esp32s3_regions_match_espsecure_with_both_key_sizes() {
    compare_build("esp32s3-smarthome", Scheme::XtsAes128, 3);
    compare_build("esp32s3-smarthome", Scheme::XtsAes256, 4);
}

#[test]
fn esp32c6_regions_match_espsecure() {
    compare_build("esp32c6-scd30-zigbee", Scheme::XtsAes128, 5);
}

/// Odd lengths, addresses inside an XTS unit, every kind of FLASH_CRYPT_CONFIG value and
/// addresses above 16 MiB.
#[test]
fn generated_data_matches_espsecure_at_odd_sizes_and_addresses() {
    let tmp = tempfile::tempdir().unwrap();
    let plain: Vec<u8> = (0..1001u32).map(|i| (i * 31 + 7) as u8).collect();
    let mut cases = vec![
        (Scheme::XtsAes128, 0x10010u32),
        (Scheme::XtsAes256, 0x1ff_ff90),
        (Scheme::XtsAes128, 0x0),
    ];
    for conf in [0x0u8, 0x1, 0x3, 0x5, 0xA, 0xF] {
        cases.push((
            Scheme::Esp32Aes {
                flash_crypt_config: conf,
            },
            0xab_c020,
        ));
    }
    cases.push((
        Scheme::Esp32Aes {
            flash_crypt_config: 0xF,
        },
        0x120_0000,
    ));
    for (i, (scheme, address)) in cases.into_iter().enumerate() {
        let key_bytes = generated_key(scheme.key_len(), 100 + i as u32);
        let key = Key::new(key_bytes.clone(), scheme).unwrap();
        let ours = encrypt::encrypt(&key, scheme, address, &plain).unwrap();
        let theirs = espsecure(
            tmp.path(),
            &key_bytes,
            scheme,
            address,
            &padded(&plain, scheme),
        );
        assert!(
            ours == theirs,
            "{scheme:?} at {address:#x} differs from espsecure"
        );
    }
}
