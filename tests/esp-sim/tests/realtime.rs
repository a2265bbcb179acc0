//! Real-time pacing: a ROM write can never beat the wire.

mod common;

use std::time::Instant;

use esp_sim::pacing::{DEFAULT_BAUD, wire_time};
use esp_sim::{BoardConfig, Chip, SimBoard};

#[test]
fn rom_write_of_64_kib_takes_at_least_its_wire_time() {
    let board = SimBoard::start(BoardConfig::new(Chip::Esp32c3).realtime(true)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("app.bin");
    std::fs::write(&image, common::payload(64, 0x1_0000, false)).unwrap();

    let started = Instant::now();
    let (ok, out) = common::run_esptool(
        board.path(),
        "esp32c3",
        &[
            "--no-stub",
            "--baud",
            "115200",
            "write-flash",
            "-u",
            "0x10000",
            image.to_str().unwrap(),
        ],
    );
    let elapsed = started.elapsed();
    assert!(ok, "{out}");

    // Every packet the board received, headers included (SLIP escapes and
    // delimiters not counted, so this is a lower bound of the line bytes).
    let packet_bytes: u64 = board.commands().iter().map(|c| 8 + c.data_len as u64).sum();
    let predicted = wire_time(packet_bytes, DEFAULT_BAUD);
    println!(
        "64 KiB ROM write at {DEFAULT_BAUD} baud: {packet_bytes} bytes to the board, \
         wire time {predicted:.2?}, measured {elapsed:.2?}"
    );
    assert!(packet_bytes > 0x1_0000);
    assert!(
        elapsed >= predicted,
        "finished in {elapsed:?}, wire time is {predicted:?}"
    );
    let flash = board.stop();
    assert_eq!(
        &flash[0x1_0000..0x2_0000],
        &common::payload(64, 0x1_0000, false)[..]
    );
}

/// The page program time is a board parameter: the same ROM write costs
/// 256 pages × the difference more flash time on a 0.7 ms part than on a
/// 0.4 ms one (the figures `SimBoard::stats` reports and pacing sleeps).
#[test]
fn page_program_time_is_a_board_parameter() {
    let image = common::payload(65, 0x1_0000, false);
    let flash_time = |time: &str| {
        let config = BoardConfig::new(Chip::Esp32c3).page_program(time.parse().unwrap());
        let board = SimBoard::start(config).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app.bin");
        std::fs::write(&path, &image).unwrap();
        let (ok, out) = common::run_esptool(
            board.path(),
            "esp32c3",
            &[
                "--no-stub",
                "write-flash",
                "-u",
                "0x10000",
                path.to_str().unwrap(),
            ],
        );
        assert!(ok, "{out}");
        let stats = board.stats();
        assert_eq!(&board.stop()[0x1_0000..0x2_0000], &image[..]);
        stats.flash_time
    };
    let fast = flash_time("400us");
    let slow = flash_time("0.7ms");
    assert_eq!(slow - fast, std::time::Duration::from_micros(300) * 256);
}
