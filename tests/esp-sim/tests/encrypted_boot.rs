//! Boot with flash encryption: a board whose crypt counter is odd reads its flash through the
//! burned key. Images encrypted by espsecure (`encrypt-flash-data`) boot; the wrong key,
//! plaintext flash, or encrypted flash on a board without encryption fail with the ROM's
//! `invalid header`.

mod common;

use std::fs;

use esp_sim::{BoardConfig, Chip, EfuseSetting, SimBoard};
use sha2::{Digest, Sha256};

const CHIPS: [Chip; 4] = [Chip::Esp32, Chip::Esp32c3, Chip::Esp32s3, Chip::Esp32c6];
const TABLE: u32 = 0x8000;
const APP: u32 = 0x1_0000;
const PROJECT: &str = "enc-demo";

/// An ESP image: `segments` (load address, data), checksum and SHA-256 appended.
fn image(chip: Chip, entry: u32, segments: &[(u32, Vec<u8>)]) -> Vec<u8> {
    let mut img = vec![0xE9, segments.len() as u8, 2, 0x20];
    img.extend_from_slice(&entry.to_le_bytes());
    img.extend_from_slice(&[0xEE, 0, 0, 0]);
    img.extend_from_slice(&chip.image_chip_id().to_le_bytes());
    img.extend_from_slice(&[0, 0, 0, 0xFF, 0xFF, 0, 0, 0, 0, 1]);
    let mut checksum = 0xEFu8;
    for (addr, data) in segments {
        img.extend_from_slice(&addr.to_le_bytes());
        img.extend_from_slice(&(data.len() as u32).to_le_bytes());
        img.extend_from_slice(data);
        checksum = data.iter().fold(checksum, |acc, b| acc ^ b);
    }
    while (img.len() + 1) % 16 != 0 {
        img.push(0);
    }
    img.push(checksum);
    let digest = Sha256::digest(&img);
    img.extend_from_slice(&digest);
    img
}

/// The app's first segment: an `esp_app_desc_t` naming the project.
fn app_desc() -> Vec<u8> {
    let mut desc = vec![0u8; 256];
    desc[..4].copy_from_slice(&0xABCD_5432u32.to_le_bytes());
    for (at, text) in [
        (16, "1.0.0"),
        (48, PROJECT),
        (80, "12:00:00"),
        (96, "Dec  7 2026"),
    ] {
        desc[at..at + text.len()].copy_from_slice(text.as_bytes());
    }
    desc[112..118].copy_from_slice(b"v5.2.1");
    desc
}

/// A partition table: nvs and a factory app at `APP`.
fn table() -> Vec<u8> {
    let mut table = Vec::new();
    for (ty, subtype, offset, size, label) in [
        (1u8, 2u8, 0x9000u32, 0x6000u32, "nvs"),
        (0, 0, APP, 0x10_0000, "factory"),
    ] {
        let mut e = vec![0xAA, 0x50, ty, subtype];
        e.extend_from_slice(&offset.to_le_bytes());
        e.extend_from_slice(&size.to_le_bytes());
        let mut name = [0u8; 16];
        name[..label.len()].copy_from_slice(label.as_bytes());
        e.extend_from_slice(&name);
        e.extend_from_slice(&[0; 4]);
        table.extend_from_slice(&e);
    }
    table.resize(0xC00, 0xFF);
    table
}

/// Bootloader, partition table and app: (flash offset, bytes).
fn build(chip: Chip) -> Vec<(u32, Vec<u8>)> {
    let code: Vec<u8> = (0..0x3000u32)
        .map(|i| (i * 7 + chip as u32) as u8)
        .collect();
    vec![
        (
            chip.bootloader_offset(),
            image(chip, 0x4008_0400, &[(0x3FFF_0000, code[..0x800].to_vec())]),
        ),
        (TABLE, table()),
        (
            APP,
            image(
                chip,
                0x4200_0000,
                &[(0x3F40_0020, app_desc()), (0x4200_0020, code)],
            ),
        ),
    ]
}

/// The regions laid out in an erased flash of `len` bytes.
fn layout(parts: &[(u32, Vec<u8>)], len: usize) -> Vec<u8> {
    let mut flash = vec![0xFF; len];
    for (at, data) in parts {
        flash[*at as usize..*at as usize + data.len()].copy_from_slice(data);
    }
    flash
}

/// Each region encrypted by `espsecure encrypt-flash-data` for its address.
fn encrypt(chip: Chip, parts: &[(u32, Vec<u8>)], key: &[u8]) -> Vec<(u32, Vec<u8>)> {
    let dir = tempfile::tempdir().unwrap();
    let file = |n: &str| dir.path().join(n).to_str().unwrap().to_owned();
    fs::write(file("key.bin"), key).unwrap();
    parts
        .iter()
        .map(|(at, data)| {
            let mut padded = data.clone();
            padded.resize(data.len().next_multiple_of(16), 0xFF);
            fs::write(file("plain.bin"), &padded).unwrap();
            let address = format!("{at:#x}");
            let (key_file, out, plain) = (file("key.bin"), file("enc.bin"), file("plain.bin"));
            let mut args = vec!["encrypt-flash-data", "--keyfile", &key_file];
            if chip == Chip::Esp32 {
                args.extend(["--flash-crypt-conf", "0xf"]);
            } else {
                args.push("--aes-xts");
            }
            args.extend(["--address", &address, "--output", &out, &plain]);
            common::run_espsecure(&args);
            (*at, fs::read(&out).unwrap())
        })
        .collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The eFuses of a board with `key` burned as espefuse burns it (bytes reversed) for flash
/// encryption, and the crypt counter at `crypt_cnt`.
fn efuses(chip: Chip, key: &[u8], crypt_cnt: u32) -> Vec<EfuseSetting> {
    let mut burned = key.to_vec();
    burned.reverse();
    let settings = match chip {
        Chip::Esp32 => vec![
            format!("BLOCK1={}", hex(&burned)),
            "FLASH_CRYPT_CONFIG=0xF".to_owned(),
            format!("FLASH_CRYPT_CNT={crypt_cnt}"),
        ],
        _ => vec![
            format!("BLOCK_KEY0={}", hex(&burned)),
            "KEY_PURPOSE_0=4".to_owned(),
            format!("SPI_BOOT_CRYPT_CNT={crypt_cnt}"),
        ],
    };
    settings.iter().map(|s| s.parse().unwrap()).collect()
}

fn boot(chip: Chip, flash: Vec<u8>, settings: Vec<EfuseSetting>) -> String {
    let config = BoardConfig::new(chip).initial_flash(flash).efuses(settings);
    SimBoard::start(config).unwrap().boot_log()
}

fn key_for(chip: Chip, salt: u8) -> Vec<u8> {
    (0..32u8)
        .map(|i| i.wrapping_mul(29) ^ salt ^ chip as u8)
        .collect()
}

fn boots(chip: Chip, log: &str) {
    assert!(
        log.contains("main_task: Calling app_main()"),
        "{chip}:\n{log}"
    );
    assert!(
        log.contains(&format!("Project name:     {PROJECT}")),
        "{chip}:\n{log}"
    );
}

fn fails_in_the_rom(chip: Chip, log: &str) {
    assert!(log.contains("invalid header: 0x"), "{chip}:\n{log}");
    assert!(!log.contains("entry 0x"), "{chip}:\n{log}");
}

fn encrypted_boot(chip: Chip) {
    let plain = build(chip);
    let key = key_for(chip, 0);
    let encrypted = layout(&encrypt(chip, &plain, &key), 0x40_0000);

    // The right key: the bootloader says flash encryption is on, the app starts.
    let log = boot(chip, encrypted.clone(), efuses(chip, &key, 1));
    boots(chip, &log);
    let left = if chip == Chip::Esp32 { 3 } else { 1 };
    let enabled = format!("flash encryption is enabled ({left} plaintext flashes left)");
    assert!(log.contains(&enabled), "{chip}:\n{log}");
    assert!(
        log.contains("Flash encryption mode is DEVELOPMENT (not secure)"),
        "{chip}"
    );

    // Another key, plaintext flash, or no flash encryption: the ROM finds no image.
    let wrong = boot(
        chip,
        encrypted.clone(),
        efuses(chip, &key_for(chip, 0x55), 1),
    );
    fails_in_the_rom(chip, &wrong);
    let plaintext = boot(chip, layout(&plain, 0x40_0000), efuses(chip, &key, 1));
    fails_in_the_rom(chip, &plaintext);
    let off = boot(chip, encrypted.clone(), efuses(chip, &key, 0));
    fails_in_the_rom(chip, &off);
    // Plaintext on a board without flash encryption boots as before.
    boots(
        chip,
        &boot(chip, layout(&plain, 0x40_0000), efuses(chip, &key, 0)),
    );

    // Release mode: the crypt counter write-protected (WR_DIS bit 2 on the ESP32, 4 after).
    let mut release = efuses(chip, &key, 1);
    let bit = if chip == Chip::Esp32 { 2 } else { 4 };
    release.push(format!("WR_DIS={:#x}", 1 << bit).parse().unwrap());
    let log = boot(chip, encrypted, release);
    boots(chip, &log);
    assert!(log.contains("(0 plaintext flashes left)"), "{chip}:\n{log}");
    assert!(
        log.contains("Flash encryption mode is RELEASE"),
        "{chip}:\n{log}"
    );
}

#[test]
fn espsecure_encrypted_flash_boots_only_with_the_burned_key() {
    let threads: Vec<_> = CHIPS
        .into_iter()
        .map(|chip| (chip, std::thread::spawn(move || encrypted_boot(chip))))
        .collect();
    let failures: Vec<_> = threads
        .into_iter()
        .filter_map(|(chip, t)| t.join().err().map(|_| chip))
        .collect();
    assert!(failures.is_empty(), "failed for {failures:?}");
}

/// The whole station sequence with Espressif's tools: images encrypted by espsecure, written
/// to the board, the key burned by `espefuse burn-key` (XTS-AES-256 on the ESP32-S3, from a
/// 64-byte key that espefuse splits over two key blocks), then the crypt counter by
/// `burn-efuse`: the board boots.
fn espefuse_burned_board_boots(chip: Chip) {
    let key: Vec<u8> = match chip {
        Chip::Esp32s3 => (0..64u8).map(|i| i.wrapping_mul(13) ^ 0x5A).collect(),
        _ => key_for(chip, 0x21),
    };
    let flash = layout(&encrypt(chip, &build(chip), &key), 0x40_0000);
    let board = SimBoard::start(BoardConfig::new(chip).initial_flash(flash)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("key.bin");
    fs::write(&key_file, &key).unwrap();
    let key_file = key_file.to_str().unwrap();
    let burns: Vec<Vec<&str>> = match chip {
        Chip::Esp32 => vec![
            vec!["burn-key", "flash_encryption", key_file],
            vec![
                "burn-efuse",
                "FLASH_CRYPT_CONFIG",
                "0xF",
                "FLASH_CRYPT_CNT",
                "1",
            ],
        ],
        Chip::Esp32s3 => vec![
            vec!["burn-key", "BLOCK_KEY0", key_file, "XTS_AES_256_KEY"],
            vec!["burn-efuse", "SPI_BOOT_CRYPT_CNT", "1"],
        ],
        _ => vec![
            vec!["burn-key", "BLOCK_KEY3", key_file, "XTS_AES_128_KEY"],
            vec!["burn-efuse", "SPI_BOOT_CRYPT_CNT", "1"],
        ],
    };
    assert!(
        !board.boot_log().contains("flash encryption is enabled"),
        "{chip}"
    );
    for args in &burns {
        let (ok, out) = common::run_espefuse(board.path(), chip.name(), args);
        assert!(ok, "{chip}: {args:?}\n{out}");
    }
    let log = board.boot_log();
    boots(chip, &log);
    assert!(
        log.contains("flash encryption is enabled"),
        "{chip}:\n{log}"
    );
}

#[test]
fn boards_burned_by_espefuse_boot_espsecure_encrypted_flash() {
    let threads: Vec<_> = CHIPS
        .into_iter()
        .map(|chip| {
            (
                chip,
                std::thread::spawn(move || espefuse_burned_board_boots(chip)),
            )
        })
        .collect();
    let failures: Vec<_> = threads
        .into_iter()
        .filter_map(|(chip, t)| t.join().err().map(|_| chip))
        .collect();
    assert!(failures.is_empty(), "failed for {failures:?}");
}
