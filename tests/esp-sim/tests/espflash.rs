//! espflash 4.7 (the library) against the simulated board.

mod common;

use std::str::FromStr;
use std::time::Duration;

use esp_sim::{BoardConfig, Chip, Opcode, SimBoard};
use espflash::connection::{Connection, ResetAfterOperation, ResetBeforeOperation};
use espflash::flasher::Flasher;
use espflash::image_format::Segment;
use espflash::target::{self, ProgressCallbacks};
use serialport::{FlowControl, UsbPortInfo};

struct Quiet;

impl ProgressCallbacks for Quiet {
    fn init(&mut self, _addr: u32, _total: usize) {}
    fn update(&mut self, _current: usize) {}
    fn verifying(&mut self) {}
    fn finish(&mut self, _skipped: bool) {}
}

fn connect(board: &SimBoard, use_stub: bool) -> Flasher {
    let serial = serialport::new(board.path().to_string_lossy(), 115_200)
        .flow_control(FlowControl::None)
        .timeout(Duration::from_secs(3))
        .open_native()
        .expect("open the board's pty");
    let port_info = UsbPortInfo {
        vid: 0,
        pid: 0,
        serial_number: None,
        manufacturer: None,
        product: None,
    };
    let connection = Connection::new(
        serial,
        port_info,
        ResetAfterOperation::NoReset,
        ResetBeforeOperation::NoReset,
        115_200,
    );
    let chip = target::Chip::from_str(board.chip().name()).expect("espflash knows the chip");
    Flasher::connect(connection, use_stub, true, true, Some(chip), None)
        .unwrap_or_else(|e| panic!("{} (stub {use_stub}): connect: {e:?}", board.chip()))
}

fn opcodes(board: &SimBoard) -> Vec<Opcode> {
    board.commands().iter().filter_map(|c| c.command).collect()
}

fn write_and_verify(chip: Chip, use_stub: bool) {
    let config = common::test_board(chip);
    let flash_size = config.flash_size;
    let board = SimBoard::start(config.clone()).unwrap();
    let boot = common::payload(chip as u64, 0x5000, true);
    let app = common::payload(100 + chip as u64, 0x9000, false);
    let parts = [(chip.bootloader_offset(), &boot[..]), (0x1_0000, &app[..])];
    let segments: Vec<_> = parts.iter().map(|(a, d)| Segment::new(*a, d)).collect();

    let mut flasher = connect(&board, use_stub);
    let info = flasher.device_info().unwrap();
    assert_eq!(info.chip.to_string(), chip.name());
    assert_eq!(
        info.flash_size.size(),
        flash_size.bytes(),
        "{chip}: flash size"
    );
    let revision = config.effective_revision();
    assert_eq!(
        info.revision,
        Some((revision.major, revision.minor)),
        "{chip}: revision"
    );
    assert_eq!(
        info.crystal_frequency.to_string(),
        format!("{} MHz", config.effective_crystal().0),
        "{chip}: crystal"
    );
    assert_eq!(
        info.mac_address,
        Some(config.effective_mac().to_string()),
        "{chip}: MAC"
    );
    flasher
        .write_bins_to_flash(&segments, &mut Quiet)
        .unwrap_or_else(|e| panic!("{chip} stub {use_stub}: write: {e:?}"));
    drop(flasher);

    let expected = common::expected_flash(flash_size.bytes() as usize, &parts);
    let flash = board.flash();
    assert_eq!(
        common::first_difference(&flash, &expected),
        None,
        "{chip} stub {use_stub}: flash content"
    );
    let first = opcodes(&board);
    let begin = if use_stub {
        Opcode::FlashDeflBegin
    } else {
        Opcode::FlashBegin
    };
    assert!(first.contains(&begin), "{chip}: {first:?}");
    assert_eq!(first.contains(&Opcode::MemEnd), use_stub);

    // A second session on the same board: everything is skipped by MD5.
    board.clear_commands();
    let mut flasher = connect(&board, use_stub);
    flasher.write_bins_to_flash(&segments, &mut Quiet).unwrap();
    drop(flasher);
    let second = opcodes(&board);
    assert_eq!(
        second
            .iter()
            .filter(|&&op| op == Opcode::SpiFlashMd5)
            .count(),
        2,
        "{chip}: {second:?}"
    );
    assert!(
        !second
            .iter()
            .any(|op| matches!(op, Opcode::FlashData | Opcode::FlashDeflData)),
        "{chip}: {second:?}"
    );
    assert_eq!(board.stop(), expected);
}

fn all_chips(use_stub: bool) {
    let threads: Vec<_> = Chip::ALL
        .into_iter()
        .map(|chip| std::thread::spawn(move || write_and_verify(chip, use_stub)))
        .collect();
    for thread in threads {
        thread.join().expect("session succeeded");
    }
}

#[test]
fn espflash_rom_writes_every_chip() {
    all_chips(false);
}

#[test]
fn espflash_stub_writes_every_chip() {
    all_chips(true);
}

#[test]
fn espflash_sees_mac_and_psram() {
    let config = BoardConfig::new(Chip::Esp32s2)
        .mac("aa:bb:cc:dd:ee:01".parse().unwrap())
        .psram("2MB".parse().unwrap());
    let board = SimBoard::start(config).unwrap();
    let mut flasher = connect(&board, false);
    let info = flasher.device_info().unwrap();
    assert_eq!(info.mac_address.as_deref(), Some("aa:bb:cc:dd:ee:01"));
    assert!(
        info.features.iter().any(|f| f == "Embedded PSRAM 2MB"),
        "{:?}",
        info.features
    );
}

/// espflash reads the crystal the board was given: the ESP32-C2's UART
/// divider (26 or 40 MHz), the ESP32-C5's PCR_SYSCLK_CONF field (40 or 48).
#[test]
fn espflash_sees_the_crystal_variants() {
    for (chip, crystal) in [
        (Chip::Esp32c2, "26MHz"),
        (Chip::Esp32c2, "40MHz"),
        (Chip::Esp32c5, "40MHz"),
        (Chip::Esp32c5, "48MHz"),
    ] {
        let config = BoardConfig::new(chip).crystal(crystal.parse().unwrap());
        let board = SimBoard::start(config).unwrap();
        let mut flasher = connect(&board, false);
        let info = flasher.device_info().unwrap();
        assert_eq!(
            info.crystal_frequency.to_string(),
            crystal.replace("MHz", " MHz"),
            "{chip}"
        );
    }
}
