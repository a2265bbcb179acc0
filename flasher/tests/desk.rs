//! At the desk: the help shows every command, `--before no-reset-no-sync` says what it does not
//! know, `--info` reads boards without writing them.

mod common;

use std::path::Path;

use common::{flasher, generated_build, stderr, write_bundle};
use esp_sim::protocol::Opcode;
use esp_sim::{BoardConfig, SimBoard};
use firmware::chip::Chip;
use testkit::idf_build::BuildSpec;

/// A bundle for `chip` in `dir/fw`, with a manifest; returns its path.
fn bundle(dir: &Path, chip: Chip) -> String {
    let spec = BuildSpec::new(chip);
    let build = generated_build(&dir.join("build"), &spec);
    write_bundle(&dir.join("fw"), &[(chip.name(), &build)], None, true);
    dir.join("fw").to_str().unwrap().to_string()
}

/// Whether the board received any command that writes or erases flash (a FLASH_BEGIN of size
/// 0, the clients' way of leaving the stub without a reset, erases nothing).
fn touched_flash(board: &SimBoard) -> bool {
    board.commands().iter().any(|c| {
        let begin_of_nothing = c.command == Some(Opcode::FlashBegin) && c.args.first() == Some(&0);
        !begin_of_nothing
            && matches!(
                c.command,
                Some(
                    Opcode::FlashBegin
                        | Opcode::FlashData
                        | Opcode::FlashDeflBegin
                        | Opcode::FlashDeflData
                        | Opcode::EraseFlash
                        | Opcode::EraseRegion
                )
            )
    })
}

#[test]
fn help_lists_list_ports_and_info_without_requiring_chip() {
    let out = flasher(&["--help"]);
    let help = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{help}");
    let usage = help.lines().find(|l| l.starts_with("Usage:")).unwrap();
    assert!(
        !usage.contains("--chip") && !usage.contains("--flash_size"),
        "{usage}"
    );
    let options = &help[help.find("Options:").unwrap()..];
    for option in ["--list-ports", "--info", "--json", "--chip", "--flash_size"] {
        assert!(options.contains(option), "{option} missing from:\n{help}");
    }
    // Without --list-ports or --info, a flash still needs both.
    let out = flasher(&["--port", "/dev/null", "--chip", "esp32"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("--flash_size"), "{}", stderr(&out));
}

/// `--chip`'s help names every chip of the chip table and the PSRAM variants.
#[test]
fn help_lists_every_chip() {
    let out = flasher(&["--help"]);
    let help = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{help}");
    let start = help.find("--chip <CHIP>").unwrap();
    let end = start + help[start..].find("--flash_size").unwrap();
    let chip_help = help[start..end]
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    let words: Vec<&str> = chip_help
        .split(|c: char| !c.is_ascii_alphanumeric())
        .collect();
    for chip in Chip::ALL {
        assert!(words.contains(&chip.name()), "{chip} missing: {chip_help}");
    }
    assert!(
        chip_help.contains("PSRAM variant such as esp32s3r8"),
        "{chip_help}"
    );
}

#[test]
fn no_reset_no_sync_says_the_flash_size_is_unknown() {
    let tmp = tempfile::tempdir().unwrap();
    let fw = bundle(tmp.path(), Chip::Esp32c3);
    let board = SimBoard::start(
        BoardConfig::new(esp_sim::Chip::Esp32c3).flash_size("8MB".parse().unwrap()),
    )
    .unwrap();
    let port = board.path().to_str().unwrap().to_string();
    let out = flasher(&[
        "--port",
        &port,
        "--chip",
        "esp32c3",
        "--flash_size",
        "32MB",
        "--firmware-dir",
        &fw,
        "--before",
        "no-reset-no-sync",
        "--after",
        "no-reset",
    ]);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    let board_line = err.lines().find(|l| l.starts_with("board: ")).unwrap();
    assert!(
        board_line.contains("flash size unknown") && !board_line.contains(" MB "),
        "{err}"
    );
    assert!(
        err.contains("flash size is unknown; --flash_size 32MB is taken on trust")
            && !err.contains("checked"),
        "{err}"
    );
}

#[test]
fn info_reads_several_boards_and_touches_nothing() {
    let s3 = SimBoard::start(
        BoardConfig::new(esp_sim::Chip::Esp32s3)
            .flash_size("8MB".parse().unwrap())
            .psram("8MB".parse().unwrap())
            .initial_flash(vec![0x5A; 0x3000]),
    )
    .unwrap();
    let c3 = SimBoard::start(BoardConfig::new(esp_sim::Chip::Esp32c3)).unwrap();
    let ports = [s3.path().to_str().unwrap(), c3.path().to_str().unwrap()];
    let base = ["--before", "no-reset", "--after", "no-reset", "--info"];
    let mut args = vec!["--port", ports[0], "--port", ports[1]];
    args.extend(base);
    let out = flasher(&args);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{}", stderr(&out));
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(
        lines[0].contains("esp32s3")
            && lines[0].contains("flash 8 MB (id 1740ef)")
            && lines[0].contains("PSRAM 8 MB embedded")
            && lines[0].contains("crystal 40 MHz")
            && lines[0].contains("secure boot off"),
        "{text}"
    );
    assert!(
        lines[1].contains("esp32c3") && lines[1].contains("flash 4 MB (id 1640ef)"),
        "{text}"
    );
    args.push("--json");
    let out = flasher(&args);
    assert!(out.status.success(), "{}", stderr(&out));
    let objects: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(objects.len(), 2);
    assert_eq!(objects[0]["port"], ports[0]);
    assert_eq!(objects[0]["chip"], "esp32s3");
    assert_eq!(objects[0]["psram"]["mb"], 8);
    assert_eq!(objects[0]["flash_size"], 8 << 20);
    assert_eq!(objects[0]["mac"], s3_mac(&s3));
    assert_eq!(objects[1]["chip"], "esp32c3");
    assert_eq!(objects[1]["psram"]["kind"], "not_recorded");
    assert_eq!(objects[1]["security"]["flash_encryption"], false);
    for board in [&s3, &c3] {
        assert!(!touched_flash(board), "--info wrote or erased flash");
    }
    let flash = s3.stop();
    assert!(
        flash[..0x3000].iter().all(|&b| b == 0x5A) && flash[0x3000..].iter().all(|&b| b == 0xFF)
    );
    assert!(c3.stop().iter().all(|&b| b == 0xFF));
}

/// The MAC address `board` reports, as the flasher writes it.
fn s3_mac(_board: &SimBoard) -> String {
    BoardConfig::new(esp_sim::Chip::Esp32s3)
        .effective_mac()
        .to_string()
        .to_ascii_lowercase()
}

#[test]
fn info_needs_a_port_and_takes_no_plan_options() {
    let out = flasher(&["--info"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("missing --port"), "{}", stderr(&out));
    let out = flasher(&["--info", "--port", "/dev/null", "--dry-run"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let out = flasher(&[
        "--info",
        "--port",
        "/dev/null",
        "--before",
        "no-reset-no-sync",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("pass --chip"), "{}", stderr(&out));
}

#[test]
fn info_checks_the_board_against_chip_and_flash_size_when_given() {
    let board =
        SimBoard::start(BoardConfig::new(esp_sim::Chip::Esp32s3).psram("2MB".parse().unwrap()))
            .unwrap();
    let port = board.path().to_str().unwrap().to_string();
    let run = |extra: &[&str]| {
        let mut args = vec![
            "--port", &port, "--info", "--before", "no-reset", "--after", "no-reset",
        ];
        args.extend(extra);
        flasher(&args)
    };
    let out = run(&["--chip", "esp32s3r2", "--flash_size", "4MB"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = run(&["--chip", "esp32s3r8"]);
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("record 2 MB embedded"),
        "{}",
        stderr(&out)
    );
    let out = run(&["--chip", "esp32c3"]);
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
    let out = run(&["--flash_size", "16MB"]);
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
    assert!(stderr(&out).contains("4 MB of flash"), "{}", stderr(&out));
    assert!(!touched_flash(&board));
}
