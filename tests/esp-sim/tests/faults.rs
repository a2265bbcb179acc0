//! Each injected fault makes esptool react as on a real board: retry a
//! block, time out, report a lost connection or a digest mismatch.

mod common;

use std::thread;

use esp_sim::{BoardConfig, Chip, SimBoard};

const IMAGE_LEN: usize = 0x1_0000;

/// Writes 64 KiB through the ROM (one FLASH_DATA packet per KiB) under
/// `faults`; returns esptool's success and its trace output.
fn write_under(faults: &str) -> (bool, String, SimBoard) {
    let config = BoardConfig::new(Chip::Esp32c3).faults(faults.parse().unwrap());
    let board = SimBoard::start(config).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("app.bin");
    std::fs::write(&image, common::payload(7, IMAGE_LEN, false)).unwrap();
    let (ok, out) = common::run_esptool(
        board.path(),
        "esp32c3",
        &[
            "--no-stub",
            "--trace",
            "write-flash",
            "-u",
            "0x10000",
            image.to_str().unwrap(),
        ],
    );
    (ok, out, board)
}

fn written_correctly(board: SimBoard) -> bool {
    board.stop()[0x1_0000..0x2_0000] == common::payload(7, IMAGE_LEN, false)[..]
}

/// Fault spec, and what esptool must show.
#[derive(Clone, Copy)]
enum Expect {
    /// esptool retries a block and the write succeeds.
    RetryAndSucceed,
    /// esptool gives up with this message.
    Fail(&'static str),
    /// Succeeds unharmed.
    Succeed,
}

const CASES: &[(&str, Expect)] = &[
    // A byte lost inside a FLASH_DATA packet: the ROM rejects the short
    // packet (0x05), esptool resends the block.
    ("drop=@20000", Expect::RetryAndSucceed),
    // A flipped byte inside a FLASH_DATA packet: checksum error (0x07),
    // esptool resends the block.
    ("corrupt=@20000", Expect::RetryAndSucceed),
    // Noisy replies: esptool cannot keep step with the board.
    ("seed=3,drop=0.02:tx", Expect::Fail("")),
    ("seed=3,corrupt=0.02:tx", Expect::Fail("")),
    // A short stall is absorbed by the 3 s command timeout.
    ("stall=200ms@20000", Expect::Succeed),
    // A stall beyond it is not.
    ("stall=4000ms@20000", Expect::Fail("No more data to read")),
    // Pulled cable: esptool tries to reconnect, then gives up.
    (
        "disconnect=20000",
        Expect::Fail("Lost connection, retrying"),
    ),
    // A wrong digest after the write.
    (
        "bad-md5=1",
        Expect::Fail("MD5 of file does not match data in flash"),
    ),
];

#[test]
fn every_fault_kind_upsets_esptool_as_on_hardware() {
    let runs: Vec<_> = CASES
        .iter()
        .map(|&(spec, expect)| thread::spawn(move || (spec, expect, write_under(spec))))
        .collect();
    for run in runs {
        let (spec, expect, (ok, out, board)) = run.join().unwrap();
        let tail: String = out.lines().rev().take(8).collect::<Vec<_>>().join("\n");
        let retried = out.contains("retrying");
        match expect {
            Expect::RetryAndSucceed => {
                assert!(
                    ok && retried,
                    "{spec}: expected a retry and success:\n{tail}"
                );
                assert!(written_correctly(board), "{spec}: flash content");
            }
            Expect::Succeed => {
                assert!(ok, "{spec}: expected success:\n{tail}");
                assert!(written_correctly(board), "{spec}: flash content");
            }
            Expect::Fail(message) => {
                assert!(!ok, "{spec}: expected esptool to fail:\n{tail}");
                assert!(
                    out.contains(message),
                    "{spec}: expected `{message}`:\n{tail}"
                );
                println!(
                    "{spec}: esptool failed as expected: {}",
                    tail.lines().find(|l| l.contains("rror")).unwrap_or("")
                );
            }
        }
    }
}

#[test]
fn disconnect_closes_the_line() {
    let (ok, _, board) = write_under("disconnect=5000");
    assert!(!ok);
    assert!(board.is_disconnected());
}
