//! A station: eight simulated boards written by one flasher process. One is another chip and
//! one loses its cable midway; the other six end up with exactly the plan, and the report and
//! the shift log hold one record per board.

mod common;

use std::fs;
use std::path::Path;

use common::{flasher, generated_build, stderr, write_bundle};
use esp_sim::protocol::Opcode;
use esp_sim::{BoardConfig, SimBoard};
use firmware::chip::Chip;
use serde_json::Value;
use testkit::idf_build::BuildSpec;

/// A small esp32s3 bundle in `dir`/fw and its merged image.
fn bundle(dir: &Path) -> Vec<u8> {
    let mut spec = BuildSpec::new(Chip::Esp32s3);
    spec.app_len = 128 * 1024;
    let build = generated_build(&dir.join("build"), &spec);
    write_bundle(&dir.join("fw"), &[("esp32s3", &build)], None, true);
    let merged = dir.join("merged.bin");
    let out = flasher(&[
        "--chip",
        "esp32s3",
        "--flash_size",
        "4MB",
        "--firmware-dir",
        dir.join("fw").to_str().unwrap(),
        "--merge-out",
        merged.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    fs::read(merged).unwrap()
}

fn mac(n: u8) -> esp_sim::MacAddress {
    format!("02:00:00:00:10:{n:02x}").parse().unwrap()
}

fn board(chip: esp_sim::Chip, n: u8, faults: &str) -> SimBoard {
    SimBoard::start(
        BoardConfig::new(chip)
            .mac(mac(n))
            .faults(faults.parse().unwrap()),
    )
    .unwrap()
}

/// Bytes the host sends to write the bundle on a blank board, roughly (frames without SLIP
/// escapes), from a run against a reference board.
fn bytes_of_a_run(fw: &str) -> usize {
    let reference = board(esp_sim::Chip::Esp32s3, 0xff, "");
    let port = reference.path().to_str().unwrap().to_string();
    let argv = args(fw, &[port]);
    let out = flasher(&argv.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(out.status.success(), "{}", stderr(&out));
    reference.commands().iter().map(|c| c.data_len + 10).sum()
}

fn args(fw: &str, ports: &[String]) -> Vec<String> {
    let mut args: Vec<String> = [
        "--chip",
        "esp32s3",
        "--flash_size",
        "4MB",
        "--firmware-dir",
        fw,
        "--before",
        "no-reset",
        "--after",
        "no-reset",
    ]
    .map(String::from)
    .to_vec();
    for port in ports {
        args.extend(["--port".to_string(), port.clone()]);
    }
    args
}

#[test]
fn eight_boards_six_written_two_refused_each_recorded() {
    let tmp = tempfile::tempdir().unwrap();
    let expected = bundle(tmp.path());
    let fw = tmp.path().join("fw");
    let fw = fw.to_str().unwrap();
    let cut_at = bytes_of_a_run(fw) * 2 / 3;

    let wrong_chip = 3;
    let unplugged = 6;
    let boards: Vec<SimBoard> = (0..8u8)
        .map(|n| match n {
            n if n == wrong_chip => board(esp_sim::Chip::Esp32c3, n, ""),
            n if n == unplugged => {
                board(esp_sim::Chip::Esp32s3, n, &format!("disconnect={cut_at}"))
            }
            n => board(esp_sim::Chip::Esp32s3, n, ""),
        })
        .collect();
    let ports: Vec<String> = boards
        .iter()
        .map(|b| b.path().to_str().unwrap().to_string())
        .collect();
    let report = tmp.path().join("report.json");
    let log = tmp.path().join("shift.jsonl");
    fs::write(&log, "{\"earlier\":\"record\"}\n").unwrap();
    let mut argv = args(fw, &ports);
    argv.extend([
        "--report".into(),
        report.to_str().unwrap().into(),
        "--report-append".into(),
        log.to_str().unwrap().into(),
    ]);
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    let out = flasher(&argv);
    let err = stderr(&out);

    // A wrong chip (5) and a lost board (6): different reasons, exit 7.
    assert_eq!(out.status.code(), Some(7), "{err}");
    let name = |i: usize| ports[i].rsplit('/').next().unwrap().to_string();
    let wrong_line = format!("error: [{}] the board is an esp32c3", name(3));
    let lost_line = format!("error: [{}] lost the board on {}", name(6), ports[6]);
    for expected_line in [&wrong_line, &lost_line] {
        assert!(
            err.lines().any(|l| l.starts_with(expected_line.as_str())),
            "missing '{expected_line}' in: {err}"
        );
    }
    assert!(
        err.contains(&format!(
            "station: 6 of 8 boards written; failed: {} (exit 5), {} (exit 6)",
            name(3),
            name(6)
        )),
        "{err}"
    );
    for i in [0, 1, 2, 4, 5, 7] {
        assert!(
            err.contains(&format!("[{}] done: ", name(i))),
            "no progress line for board {i}: {err}"
        );
    }

    let run: Value = serde_json::from_slice(&fs::read(&report).unwrap()).unwrap();
    assert_eq!(
        (run["outcome"].as_str(), run["exit_code"].as_u64()),
        (Some("failed"), Some(7))
    );
    let records = run["boards"].as_array().unwrap();
    assert_eq!(records.len(), 8);
    for (i, r) in records.iter().enumerate() {
        assert_eq!(r["port"], ports[i].as_str(), "{r}");
        assert_eq!(
            r["device"]["mac"],
            mac(i as u8).to_string().to_lowercase(),
            "{r}"
        );
        match i as u8 {
            n if n == wrong_chip => {
                assert_eq!(r["exit_code"], 5, "{r}");
                assert_eq!(r["device"]["chip"], "esp32c3");
                assert!(
                    r["error"].as_str().unwrap().contains("--chip esp32s3"),
                    "{r}"
                );
            }
            n if n == unplugged => {
                assert_eq!(r["exit_code"], 6, "{r}");
                assert!(
                    r["error"].as_str().unwrap().contains("while writing"),
                    "{r}"
                );
            }
            _ => {
                assert_eq!(
                    (r["outcome"].as_str(), r["exit_code"].as_u64()),
                    (Some("ok"), Some(0)),
                    "{r}"
                );
                assert_eq!(r["attempts"], 1, "{r}");
            }
        }
    }

    // The log: the earlier line, then one whole line per board, in any order.
    let text = fs::read_to_string(&log).unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 9, "{text}");
    assert_eq!(lines[0]["earlier"], "record");
    let mut logged: Vec<&str> = lines[1..]
        .iter()
        .map(|l| l["port"].as_str().unwrap())
        .collect();
    logged.sort();
    let mut all: Vec<&str> = ports.iter().map(String::as_str).collect();
    all.sort();
    assert_eq!(logged, all);

    for (i, b) in boards.into_iter().enumerate() {
        let wrote = b
            .commands()
            .iter()
            .any(|c| matches!(c.command, Some(Opcode::FlashDeflBegin | Opcode::FlashBegin)));
        let unplugged_board = i as u8 == unplugged;
        if unplugged_board {
            assert!(b.is_disconnected());
        }
        let flash = b.stop();
        match i as u8 {
            n if n == wrong_chip => {
                assert!(!wrote, "the esp32c3 board was written to");
                assert!(flash.iter().all(|&x| x == 0xFF));
            }
            n if n == unplugged => assert!(flash != expected),
            _ => assert!(
                flash == expected,
                "board {i}: the flash differs from the plan"
            ),
        }
    }
}

#[test]
fn a_port_pattern_that_matches_nothing_is_a_usage_error() {
    let tmp = tempfile::tempdir().unwrap();
    let pattern = tmp.path().join("ttyNONE*");
    let out = flasher(&[
        "--chip",
        "esp32s3",
        "--flash_size",
        "4MB",
        "--port",
        pattern.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("matches no device"),
        "{}",
        stderr(&out)
    );
}
