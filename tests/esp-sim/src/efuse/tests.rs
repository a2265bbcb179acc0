use super::*;

const C3: u32 = 0x6000_8800;

fn c3() -> EfuseController {
    let mut regs = HashMap::from([(C3 + 0x44, 0x1122_3344), (0x6000_2000, 7)]);
    let efuses = EfuseController::new(Chip::Esp32c3, &mut regs).unwrap();
    // The MAC word moved into the controller; other registers stay.
    assert_eq!(regs, HashMap::from([(0x6000_2000, 7)]));
    efuses
}

fn wait_idle(efuses: &mut EfuseController) {
    let deadline = Instant::now() + Duration::from_secs(1);
    while efuses.read(C3 + 0x1D4) != 0 {
        assert!(Instant::now() < deadline, "CMD never cleared");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Programs `data` into `block` as espefuse does, with the right check bytes unless `spoil`.
fn burn(efuses: &mut EfuseController, block: u32, data: [u32; 8], spoil: bool) {
    let mut check = [0u32; 3];
    if block > 0 {
        let bytes: [u8; 32] = bytes_of(&data).try_into().unwrap();
        check = words(&coding::rs_check(&bytes));
        if spoil {
            check[1] ^= 0x0101;
        }
    }
    for (i, w) in data.iter().chain(&check).enumerate() {
        efuses.write(C3 + 4 * i as u32, *w, u32::MAX, Burn::Whole);
    }
    efuses.write(C3 + 0x1CC, WRITE_OP, u32::MAX, Burn::Whole);
    efuses.write(C3 + 0x1D4, PGM_CMD | (block << 2), u32::MAX, Burn::Whole);
    assert_ne!(efuses.read(C3 + 0x1D4), 0, "a burn takes time");
    wait_idle(efuses);
    efuses.write(C3 + 0x1CC, READ_OP, u32::MAX, Burn::Whole);
    efuses.write(C3 + 0x1D4, READ_CMD, u32::MAX, Burn::Whole);
    wait_idle(efuses);
}

#[test]
fn a_burn_shows_after_the_read_command_and_only_sets_bits() {
    let mut efuses = c3();
    assert_eq!(efuses.read(C3 + 0x44), 0x1122_3344);
    let key: [u32; 8] = core::array::from_fn(|i| 0x0101_0101 * (i as u32 + 1));
    burn(&mut efuses, 4, key, false);
    for (i, w) in key.iter().enumerate() {
        assert_eq!(efuses.read(C3 + 0x9C + 4 * i as u32), *w);
    }
    assert_eq!(efuses.read(C3 + 0x1C0), 0, "no coding errors");
    // KEY_PURPOSE_0 = 4 (XTS_AES_128_KEY), then a second burn can only add bits.
    burn(&mut efuses, 0, [0, 0, 4 << 24, 0, 0, 0, 0, 0], false);
    burn(&mut efuses, 0, [0, 0, 1 << 24, 0, 0, 0, 0, 0], false);
    assert_eq!(efuses.key_purposes()[0], 5);
    assert_eq!(efuses.read(C3 + 0x34), 5 << 24);
}

#[test]
fn read_protection_hides_a_key_block_and_write_protection_keeps_bits() {
    let mut efuses = c3();
    burn(&mut efuses, 5, [0xAAAA_5555; 8], false);
    // RD_DIS bit 1 (BLOCK_KEY1), WR_DIS bit 24 (BLOCK_KEY1) and bit 4 (SPI_BOOT_CRYPT_CNT).
    burn(
        &mut efuses,
        0,
        [(1 << 24) | (1 << 4), 1 << 1, 0, 0, 0, 0, 0, 0],
        false,
    );
    assert_eq!(efuses.read(C3 + 0xBC), 0, "read-protected");
    assert_eq!(
        efuses.block_bytes(5)[0],
        0x55,
        "the key logic still reads it"
    );
    burn(&mut efuses, 5, [u32::MAX; 8], false);
    assert_eq!(efuses.block_bytes(5)[..4], [0x55, 0x55, 0xAA, 0xAA]);
    burn(&mut efuses, 0, [0, 0, 1 << 18, 0, 0, 0, 0, 0], false);
    assert_eq!(efuses.crypt_cnt(), 0, "write-protected field");
}

#[test]
fn wrong_check_bytes_show_as_errors() {
    let mut efuses = c3();
    burn(&mut efuses, 4, [0x1234_5678; 8], true);
    let err0 = efuses.read(C3 + 0x1C0);
    // BLOCK_KEY0: 2 wrong check bytes in bits 12..14; the C3's fail bit sits one block on (19).
    assert_eq!((err0 >> 12) & 7, 2, "{err0:#x}");
    assert_ne!(err0 & (1 << 19), 0, "{err0:#x}");
}

#[test]
fn a_half_burn_leaves_a_block_with_errors() {
    let mut efuses = c3();
    let data: [u32; 8] = core::array::from_fn(|i| 0x1111_1111 << (i % 3));
    let bytes: [u8; 32] = bytes_of(&data).try_into().unwrap();
    let check: [u32; 3] = words(&coding::rs_check(&bytes));
    for (i, w) in data.iter().chain(&check).enumerate() {
        efuses.write(C3 + 4 * i as u32, *w, u32::MAX, Burn::Whole);
    }
    efuses.write(C3 + 0x1CC, WRITE_OP, u32::MAX, Burn::Whole);
    efuses.write(C3 + 0x1D4, PGM_CMD | (6 << 2), u32::MAX, Burn::Half);
    efuses.reload();
    assert_eq!(efuses.block_bytes(6)[..16], bytes[..16]);
    assert_eq!(efuses.block_bytes(6)[16..], [0; 16]);
    assert_ne!(efuses.read(C3 + 0x1C0), 0);
}

#[test]
fn settings_and_images() {
    let mut efuses = c3();
    for s in [
        "SPI_BOOT_CRYPT_CNT=1",
        "KEY_PURPOSE_1=9",
        "BLOCK_KEY1=000102030405060708090a0b0c0d0e0f",
        "secure_boot_en=1",
    ] {
        efuses.apply(Chip::Esp32c3, &s.parse().unwrap()).unwrap();
    }
    assert_eq!(efuses.crypt_cnt(), 1);
    assert!(efuses.secure_boot());
    assert_eq!(efuses.key_purposes(), [0, 9, 0, 0, 0, 0]);
    assert_eq!(efuses.read(C3 + 0xBC), 0x0302_0100);
    assert_eq!(
        efuses.read(C3 + 0x1C0),
        0,
        "factory-burned blocks carry their check"
    );
    let bad = |s: &str| efuses_err(&mut c3(), s);
    assert!(matches!(
        bad("SPI_BOOT_CRYPT_CNT=8"),
        EfuseError::BadValue { .. }
    ));
    assert!(matches!(bad("NO_SUCH=1"), EfuseError::UnknownName { .. }));
    assert!(matches!(bad("BLOCK4=xyz"), EfuseError::BadValue { .. }));

    let image = efuses.image();
    assert_eq!(image.field(Chip::Esp32c3, "SPI_BOOT_CRYPT_CNT"), Ok(1));
    assert_eq!(image.field(Chip::Esp32c3, "KEY_PURPOSE_1"), Ok(9));
    assert_eq!(image.field(Chip::Esp32c3, "KEY_PURPOSE_0"), Ok(0));
    assert!(image.field(Chip::Esp32c3, "BLOCK_KEY1").is_err());
    assert!(image.field(Chip::Esp32c3, "FLASH_CRYPT_CONFIG").is_err());
    let text = image.to_string();
    assert!(
        text.contains("BLOCK_KEY1 000102030405060708090a0b0c0d0e0f"),
        "{text}"
    );
    let parsed = EfuseImage::parse(Chip::Esp32c3, &text).unwrap();
    assert_eq!(parsed, image);
    let mut fresh = c3();
    fresh.restore(&parsed);
    assert_eq!(fresh.image(), image);
    assert!(EfuseImage::parse(Chip::Esp32c2, &text).is_err());
    assert!(EfuseImage::parse(Chip::Esp32c3, "BLOCK_KEY9 00").is_err());
}

fn efuses_err(efuses: &mut EfuseController, setting: &str) -> EfuseError {
    efuses
        .apply(Chip::Esp32c3, &setting.parse().unwrap())
        .unwrap_err()
}

#[test]
fn esp32_burns_every_block_from_its_write_registers() {
    const BASE: u32 = 0x3FF5_A000;
    let mut regs = HashMap::new();
    let mut efuses = EfuseController::new(Chip::Esp32, &mut regs).unwrap();
    let key: [u32; 8] = core::array::from_fn(|i| 0x1000_0001 * i as u32);
    for (i, w) in key.iter().enumerate() {
        efuses.write(BASE + 0x98 + 4 * i as u32, *w, u32::MAX, Burn::Whole);
    }
    // FLASH_CRYPT_CNT bit 20 and FLASH_CRYPT_CONFIG 0xF in BLOCK0's write registers.
    efuses.write(BASE + 0x1C, 1 << 20, u32::MAX, Burn::Whole);
    efuses.write(BASE + 0x1C + 20, 0xF000_0000, u32::MAX, Burn::Whole);
    efuses.write(BASE + 0xFC, WRITE_OP, u32::MAX, Burn::Whole);
    efuses.write(BASE + 0x104, PGM_CMD, u32::MAX, Burn::Whole);
    std::thread::sleep(BURN_TIME);
    assert_eq!(efuses.read(BASE + 0x104), 0);
    assert_eq!(
        efuses.read(BASE + 0x38),
        0,
        "not shown before the read command"
    );
    efuses.write(BASE + 0xFC, READ_OP, u32::MAX, Burn::Whole);
    efuses.write(BASE + 0x104, READ_CMD, u32::MAX, Burn::Whole);
    assert_eq!(efuses.read(BASE + 0x3C), key[1]);
    assert_eq!(efuses.crypt_cnt(), 1);
    assert_eq!(efuses.flash_crypt_config(), 0xF);
    assert_eq!(efuses.read(BASE + 0x11C), 0);
}

#[test]
fn esp32_three_four_coding_is_checked() {
    const BASE: u32 = 0x3FF5_A000;
    let mut efuses = EfuseController::new(Chip::Esp32, &mut HashMap::new()).unwrap();
    efuses
        .apply(Chip::Esp32, &"CODING_SCHEME=1".parse().unwrap())
        .unwrap();
    let plain: Vec<u8> = (0..24).collect();
    let coded: Vec<u8> = plain
        .chunks(6)
        .flat_map(|g| coding::three_four_encode(g.try_into().unwrap()))
        .collect();
    let mut raw = words::<8>(&coded);
    raw[7] ^= 1 << 31; // spoil the last group
    for (i, w) in raw.iter().enumerate() {
        efuses.write(BASE + 0xB8 + 4 * i as u32, *w, u32::MAX, Burn::Whole);
    }
    efuses.write(BASE + 0xFC, WRITE_OP, u32::MAX, Burn::Whole);
    efuses.write(BASE + 0x104, PGM_CMD, u32::MAX, Burn::Whole);
    efuses.reload();
    assert_eq!(efuses.block_bytes(2)[..18], plain[..18]);
    assert_eq!(efuses.read(BASE + 0x11C), 1 << 4, "one bad group in BLOCK2");
}
