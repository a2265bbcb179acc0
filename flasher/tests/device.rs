//! End to end against the simulated board on a pty, for every chip: the flash ends up equal to
//! the merged plan, a second run skips every region, and the wrong board is refused untouched.

mod common;

use std::fs;
use std::path::Path;
use std::process::Output;

use common::{
    bundle_build_dir, esptool_merge, flash_file_paths, flasher, generated_build, stderr,
    write_bundle,
};
use esp_sim::protocol::Opcode;
use esp_sim::{BoardConfig, SimBoard};
use firmware::chip::Chip;
use serde_json::Value;
use testkit::idf_build::BuildSpec;

fn sim_chip(chip: Chip) -> esp_sim::Chip {
    chip.name().parse().unwrap()
}

fn board(chip: Chip, flash: &str) -> SimBoard {
    SimBoard::start(BoardConfig::new(sim_chip(chip)).flash_size(flash.parse().unwrap())).unwrap()
}

/// A bundle for `chip` in `dir`, with a manifest.
fn bundle(dir: &Path, chip: Chip) {
    let mut spec = BuildSpec::new(chip);
    spec.seed = 100 + u64::from(chip.image_chip_id());
    let build = generated_build(&dir.join("build"), &spec);
    write_bundle(&dir.join("fw"), &[(chip.name(), &build)], None, true);
}

fn flash_args<'a>(dir: &'a str, port: &'a str, chip: &'a str, size: &'a str) -> Vec<&'a str> {
    vec![
        "--port",
        port,
        "--chip",
        chip,
        "--flash_size",
        size,
        "--firmware-dir",
        dir,
        "--before",
        "no-reset",
        "--after",
        "no-reset",
    ]
}

/// Whether the board received any command that writes or erases flash.
fn wrote_anything(board: &SimBoard) -> bool {
    board.commands().iter().any(|c| {
        matches!(
            c.command,
            Some(
                Opcode::FlashBegin
                    | Opcode::FlashData
                    | Opcode::FlashDeflBegin
                    | Opcode::FlashDeflData
            )
        )
    })
}

/// The record of the only board in the report at `path`, checked against the run's outcome.
fn report(path: &Path) -> Value {
    let run: Value = serde_json::from_slice(&fs::read(path).unwrap()).unwrap();
    let boards = run["boards"].as_array().unwrap();
    assert_eq!(boards.len(), 1, "{run}");
    assert_eq!(run["outcome"], boards[0]["outcome"], "{run}");
    assert_eq!(run["exit_code"], boards[0]["exit_code"], "{run}");
    boards[0].clone()
}

/// Every chip the simulated board models, as the firmware crate names it.
fn simulated_chips() -> impl Iterator<Item = Chip> {
    esp_sim::Chip::ALL.into_iter().map(|c| {
        c.name()
            .parse()
            .expect("a simulated chip the firmware crate knows")
    })
}

#[test]
fn every_chip_is_written_then_skipped() {
    for chip in simulated_chips() {
        let tmp = tempfile::tempdir().unwrap();
        bundle(tmp.path(), chip);
        let fw = tmp.path().join("fw");
        let fw = fw.to_str().unwrap();
        let merged = tmp.path().join("merged.bin");
        let out = flasher(&[
            "--chip",
            chip.name(),
            "--flash_size",
            "4MB",
            "--firmware-dir",
            fw,
            "--merge-out",
            merged.to_str().unwrap(),
        ]);
        assert!(out.status.success(), "{}", stderr(&out));
        let expected = fs::read(&merged).unwrap();

        let board = board(chip, "4MB");
        let port = board.path().to_str().unwrap().to_string();
        let report_path = tmp.path().join("report.json");
        let mut args = flash_args(fw, &port, chip.name(), "4MB");
        args.extend(["--report", report_path.to_str().unwrap()]);
        let first = flasher(&args);
        assert!(first.status.success(), "{chip}: {}", stderr(&first));
        assert!(
            board.flash() == expected,
            "{chip}: the flash differs from the merged plan"
        );
        let r = report(&report_path);
        assert_eq!(r["outcome"], "ok");
        assert_eq!(r["device"]["chip"], chip.name());
        assert_eq!(r["device"]["flash_size"], 4 << 20);
        assert_eq!(r["device"]["flash_id"], "1640ef", "{chip}: {r}");
        assert!(r["device"]["mac"].is_string());
        let regions = r["regions"].as_array().unwrap();
        assert_eq!(regions.len(), 4);
        // The erased otadata is already in place on a blank board.
        for x in regions {
            assert_eq!(x["skipped"], x["label"] == "otadata", "{chip}: {r}");
        }

        board.clear_commands();
        let second = flasher(&args);
        assert!(second.status.success(), "{chip}: {}", stderr(&second));
        let r = report(&report_path);
        assert!(
            r["regions"]
                .as_array()
                .unwrap()
                .iter()
                .all(|x| x["skipped"] == true),
            "{chip}: second run wrote again: {r}"
        );
        assert!(
            !board
                .commands()
                .iter()
                .any(|c| c.command == Some(Opcode::FlashDeflData)
                    || c.command == Some(Opcode::FlashData)),
            "{chip}: second run sent flash data"
        );
        assert!(board.stop() == expected);
    }
}

#[test]
fn a_pinned_baud_rate_and_no_skip_rewrite_everything() {
    let tmp = tempfile::tempdir().unwrap();
    bundle(tmp.path(), Chip::Esp32c3);
    let fw = tmp.path().join("fw");
    let board = board(Chip::Esp32c3, "4MB");
    let port = board.path().to_str().unwrap().to_string();
    let mut args = flash_args(fw.to_str().unwrap(), &port, "esp32c3", "4MB");
    args.extend(["--baud", "460800"]);
    let out = flasher(&args);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("460800 baud"), "{}", stderr(&out));
    args.push("--no-skip");
    let again = flasher(&args);
    assert!(again.status.success(), "{}", stderr(&again));
    assert!(
        stderr(&again).contains("4 of 4 regions written"),
        "{}",
        stderr(&again)
    );
}

#[test]
fn another_chip_is_refused_untouched() {
    let tmp = tempfile::tempdir().unwrap();
    bundle(tmp.path(), Chip::Esp32s3);
    let fw = tmp.path().join("fw");
    let board = board(Chip::Esp32c3, "4MB");
    let port = board.path().to_str().unwrap().to_string();
    let report_path = tmp.path().join("r.json");
    let mut args = flash_args(fw.to_str().unwrap(), &port, "esp32s3", "4MB");
    args.extend(["--report", report_path.to_str().unwrap()]);
    let out = flasher(&args);
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("esp32c3") && err.contains("--chip esp32s3"),
        "{err}"
    );
    assert!(!wrote_anything(&board));
    assert!(board.stop().iter().all(|&b| b == 0xFF));
    let r = report(&report_path);
    assert_eq!(
        (r["outcome"].as_str(), r["exit_code"].as_u64()),
        (Some("failed"), Some(5))
    );
    assert_eq!(r["device"]["chip"], "esp32c3", "{r}");
}

#[test]
fn a_smaller_flash_is_refused_untouched() {
    let tmp = tempfile::tempdir().unwrap();
    bundle(tmp.path(), Chip::Esp32);
    let fw = tmp.path().join("fw");
    let board = board(Chip::Esp32, "2MB");
    let port = board.path().to_str().unwrap().to_string();
    let out = flasher(&flash_args(fw.to_str().unwrap(), &port, "esp32", "4MB"));
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
    assert!(stderr(&out).contains("2 MB of flash"), "{}", stderr(&out));
    assert!(!wrote_anything(&board));
    assert!(board.stop().iter().all(|&b| b == 0xFF));
}

fn faulty_board(chip: Chip, faults: &str) -> SimBoard {
    SimBoard::start(BoardConfig::new(sim_chip(chip)).faults(faults.parse().unwrap())).unwrap()
}

/// The plan's flash image, merged by the flasher itself, for `chip` and a 4 MB flash.
fn merged(dir: &Path, fw: &str, chip: &str) -> Vec<u8> {
    let merged = dir.join("merged.bin");
    let out = flasher(&[
        "--chip",
        chip,
        "--flash_size",
        "4MB",
        "--firmware-dir",
        fw,
        "--merge-out",
        merged.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    fs::read(&merged).unwrap()
}

/// The commands of a clean flash of `chip` at the default rate, by opcode.
fn clean_flash_commands(chip: Chip) -> Vec<Option<Opcode>> {
    let tmp = tempfile::tempdir().unwrap();
    bundle(tmp.path(), chip);
    let fw = tmp.path().join("fw");
    let board = board(chip, "4MB");
    let port = board.path().to_str().unwrap().to_string();
    let out = flasher(&flash_args(fw.to_str().unwrap(), &port, chip.name(), "4MB"));
    assert!(out.status.success(), "{}", stderr(&out));
    board.commands().iter().map(|c| c.command).collect()
}

#[test]
fn the_stub_goes_at_the_writing_rate_where_the_rom_can_change_rate_first() {
    let position =
        |commands: &[Option<Opcode>], op| commands.iter().position(|c| *c == Some(op)).unwrap();
    for chip in [Chip::Esp32s3, Chip::Esp32c3, Chip::Esp32c2, Chip::Esp32h2] {
        let commands = clean_flash_commands(chip);
        assert!(
            position(&commands, Opcode::ChangeBaudrate) < position(&commands, Opcode::MemBegin),
            "{chip:?}: {commands:?}"
        );
    }
    // The ESP32's and ESP32-S2's ROMs are not trusted with it: the stub changes the rate.
    for chip in [Chip::Esp32, Chip::Esp32s2, Chip::Esp32c5, Chip::Esp32p4] {
        let commands = clean_flash_commands(chip);
        assert!(
            position(&commands, Opcode::ChangeBaudrate) > position(&commands, Opcode::MemEnd),
            "{chip:?}: {commands:?}"
        );
    }
}

#[test]
fn a_stub_left_running_changes_rate_before_the_next_upload_too() {
    let tmp = tempfile::tempdir().unwrap();
    bundle(tmp.path(), Chip::Esp32s3);
    let fw = tmp.path().join("fw");
    let board = board(Chip::Esp32s3, "4MB");
    let port = board.path().to_str().unwrap().to_string();
    let args = flash_args(fw.to_str().unwrap(), &port, "esp32s3", "4MB");
    assert!(flasher(&args).status.success());
    // `--after no-reset` left the stub running: the next run finds it there.
    board.clear_commands();
    let out = flasher(&args);
    assert!(out.status.success(), "{}", stderr(&out));
    let commands: Vec<_> = board.commands();
    let first = |op| commands.iter().position(|c| c.command == Some(op)).unwrap();
    assert!(
        first(Opcode::ChangeBaudrate) < first(Opcode::MemBegin),
        "{commands:?}"
    );
    assert!(commands[first(Opcode::ChangeBaudrate)].stub, "{commands:?}");
}

#[test]
fn a_fresh_board_costs_a_sector_md5_before_each_region_and_one_md5_after() {
    let commands = clean_flash_commands(Chip::Esp32c3);
    let stub: Vec<Opcode> = commands
        .iter()
        .flatten()
        .copied()
        .filter(|op| matches!(op, Opcode::SpiFlashMd5 | Opcode::FlashDeflBegin))
        .collect();
    use Opcode::{FlashDeflBegin as B, SpiFlashMd5 as M};
    // bootloader, partition table: differ; otadata: erased like the board (both MD5s match);
    // app: differs. Then one MD5 per region.
    assert_eq!(stub, [M, B, M, B, M, M, M, B, M, M, M, M], "{commands:?}");
}

/// A flash of the sample for `chip` through a board with `faults`, which must succeed and
/// leave the flash as planned.
struct FaultyFlash {
    /// What the flasher printed.
    err: String,
    /// The board's record.
    record: Value,
    /// The commands the board received.
    commands: Vec<esp_sim::CommandRecord>,
}

fn flash_through_faults(chip: Chip, faults: &str) -> FaultyFlash {
    let tmp = tempfile::tempdir().unwrap();
    bundle(tmp.path(), chip);
    let fw = tmp.path().join("fw");
    let fw_s = fw.to_str().unwrap();
    let expected = merged(tmp.path(), fw_s, chip.name());
    let board = faulty_board(chip, faults);
    let port = board.path().to_str().unwrap().to_string();
    let report_path = tmp.path().join("r.json");
    let mut args = flash_args(fw_s, &port, chip.name(), "4MB");
    args.extend(["--report", report_path.to_str().unwrap()]);
    let out = flasher(&args);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    let commands = board.commands();
    assert!(board.stop() == expected, "{err}");
    FaultyFlash {
        err,
        record: report(&report_path),
        commands,
    }
}

#[test]
fn a_garbled_byte_costs_one_block_not_the_rate() {
    // A byte garbled in the middle of the app's data, after the stub and the baud change.
    let run = flash_through_faults(Chip::Esp32s3, "corrupt=@120000");
    let (err, r) = (&run.err, &run.record);
    assert!(
        err.contains("was refused by the board") && err.contains("sent again"),
        "{err}"
    );
    assert!(!err.contains("retrying"), "{err}");
    assert_eq!(r["attempts"], 1, "{r}");
    assert_eq!(r["device"]["baud"], 921_600, "{r}");
    assert_eq!(r["line"]["resent_blocks"], 1, "{r}");
    assert_eq!(r["line"]["resumed_streams"], 0, "{r}");
    // One stream per region written (the erased otadata is in place already).
    let begins = run
        .commands
        .iter()
        .filter(|c| c.command == Some(Opcode::FlashDeflBegin))
        .count();
    assert_eq!(begins, 3, "{:?}", run.commands);
}

#[test]
fn a_lost_reply_takes_the_stream_up_where_the_board_holds_it() {
    // The reply to a block of the app vanishes: the board took the block, the flasher cannot
    // know, and sending it again would feed it to the stub's decoder twice.
    let run = flash_through_faults(Chip::Esp32c3, "mute=0x11#5");
    let (err, r) = (&run.err, &run.record);
    assert_eq!(r["attempts"], 1, "{err}\n{r}");
    assert_eq!(r["line"]["resumed_streams"], 1, "{err}\n{r}");
    assert!(err.contains("taken up again at byte"), "{err}");
}

#[test]
fn errors_that_persist_at_a_rate_step_it_down() {
    // A line that garbles about one byte in 5000 above 460800 baud and none at 460800.
    let run = flash_through_faults(Chip::Esp32s3, "seed=3,noisy-above=460800@0.0002");
    let (err, r) = (&run.err, &run.record);
    assert!(
        err.contains("retrying at the same rate") && err.contains("retrying at 460800 baud"),
        "{err}"
    );
    assert_eq!(r["line"]["same_rate_retries"], 1, "{r}");
    assert_eq!(r["line"]["stepped_down_to"][0], 460_800, "{r}");
}

#[test]
fn a_wrong_md5_is_retried_then_succeeds() {
    let tmp = tempfile::tempdir().unwrap();
    bundle(tmp.path(), Chip::Esp32h2);
    let fw = tmp.path().join("fw");
    let board = faulty_board(Chip::Esp32h2, "bad-md5=1");
    let port = board.path().to_str().unwrap().to_string();
    let mut args = flash_args(fw.to_str().unwrap(), &port, "esp32h2", "4MB");
    args.push("--no-skip");
    let out = flasher(&args);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("attempt 1 of 5 failed (verifying the flash failed"),
        "{err}"
    );
    let expected = {
        let merged = tmp.path().join("merged.bin");
        let out = flasher(&[
            "--chip",
            "esp32h2",
            "--flash_size",
            "4MB",
            "--firmware-dir",
            fw.to_str().unwrap(),
            "--merge-out",
            merged.to_str().unwrap(),
        ]);
        assert!(out.status.success());
        fs::read(merged).unwrap()
    };
    assert!(board.stop() == expected);
}

#[test]
fn a_verify_failure_that_persists_exits_6() {
    let tmp = tempfile::tempdir().unwrap();
    bundle(tmp.path(), Chip::Esp32h2);
    let fw = tmp.path().join("fw");
    let every_md5: Vec<String> = (1..=300).map(|k| format!("bad-md5={k}")).collect();
    let board = faulty_board(Chip::Esp32h2, &every_md5.join(","));
    let port = board.path().to_str().unwrap().to_string();
    let report_path = tmp.path().join("r.json");
    let mut args = flash_args(fw.to_str().unwrap(), &port, "esp32h2", "4MB");
    args.extend(["--report", report_path.to_str().unwrap()]);
    let out = flasher(&args);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(6), "{err}");
    let last = err.lines().last().unwrap();
    assert!(
        last.starts_with("error: verifying the flash failed"),
        "{err}"
    );
    let r = report(&report_path);
    assert_eq!(r["attempts"], 5, "{r}");
}

#[test]
fn an_interrupted_write_resumes_where_the_board_stops() {
    let tmp = tempfile::tempdir().unwrap();
    bundle(tmp.path(), Chip::Esp32c3);
    let fw = tmp.path().join("fw");
    let fw_s = fw.to_str().unwrap();
    let expected = merged(tmp.path(), fw_s, "esp32c3");
    // A board left by an interrupted run: everything up to 0x27000 bytes into the app written,
    // then half a sector, the rest erased.
    let app = 0x2_0000;
    let held = 0x2_7000;
    let mut partial = expected[..app + held + 0x800].to_vec();
    partial.resize(app + 0x3_0000, 0xFF);
    let board =
        SimBoard::start(BoardConfig::new(esp_sim::Chip::Esp32c3).initial_flash(partial)).unwrap();
    let port = board.path().to_str().unwrap().to_string();
    let out = flasher(&flash_args(fw_s, &port, "esp32c3", "4MB"));
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains(&format!("app: written from byte {held} of")),
        "{err}"
    );
    let begins: Vec<u32> = board
        .commands()
        .iter()
        .filter(|c| matches!(c.command, Some(Opcode::FlashDeflBegin | Opcode::FlashBegin)))
        .filter_map(|c| c.args.get(3).copied())
        .collect();
    assert!(
        begins.contains(&((app + held) as u32)) && !begins.contains(&(app as u32)),
        "the part in place was written again: {begins:x?}"
    );
    assert!(board.stop() == expected);
}

#[test]
fn a_reply_that_crashes_the_serial_library_is_retried() {
    let tmp = tempfile::tempdir().unwrap();
    bundle(tmp.path(), Chip::Esp32c3);
    let fw = tmp.path().join("fw");
    // Garbled while connecting: espflash slices a reply by its corrupt length field and panics.
    let board = faulty_board(Chip::Esp32c3, "corrupt=@656:tx,drop=@769:tx");
    let port = board.path().to_str().unwrap().to_string();
    let out = flasher(&flash_args(fw.to_str().unwrap(), &port, "esp32c3", "4MB"));
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("a garbled reply broke the serial library") && err.contains("retrying"),
        "{err}"
    );
    assert!(
        err.lines()
            .filter(|l| l.starts_with("warning: "))
            .all(|l| l.contains("panicked at") || l.contains("attempts were needed")),
        "{err}"
    );
}

/// A build with a model pack whose length is not a multiple of 4, flashed through the pty for
/// every simulated chip: the board's flash ends byte-identical to esptool merge-bin of the
/// build's flash_files, and the report names the data image.
#[test]
fn a_build_with_a_data_image_is_flashed_as_esptool_would() {
    for chip in simulated_chips() {
        let tmp = tempfile::tempdir().unwrap();
        let mut spec = BuildSpec::new(chip).with_model_pack(291_042);
        spec.seed = 300 + u64::from(chip.image_chip_id());
        let build = testkit::idf_build::write_build(&tmp.path().join("build"), &spec).unwrap();
        let fw = tmp.path().join("fw");
        bundle_build_dir(&fw, &build.dir);
        let expected = esptool_merge(
            chip,
            "8MB",
            "dio",
            testkit::firmware::default_freq(chip),
            &flash_file_paths(&build),
            &tmp.path().join("esptool.bin"),
        );
        let board = board(chip, "8MB");
        let port = board.path().to_str().unwrap().to_string();
        let report_path = tmp.path().join("report.json");
        let mut args = flash_args(fw.to_str().unwrap(), &port, chip.name(), "8MB");
        args.extend(["--report", report_path.to_str().unwrap()]);
        let out = flasher(&args);
        assert!(out.status.success(), "{chip}: {}", stderr(&out));
        let flash = board.flash();
        if let Some(at) = flash.iter().zip(&expected).position(|(a, b)| a != b) {
            panic!("{chip}: the board differs from esptool merge-bin at {at:#x}");
        }
        assert_eq!(flash.len(), expected.len());
        let r = report(&report_path);
        let data = r["regions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["label"] == "data")
            .unwrap_or_else(|| panic!("{chip}: no data region in {r}"));
        assert_eq!(data["size"], 291_044, "{chip}: padded to 4 bytes");
        assert!(
            data["source"].as_str().unwrap().contains("data 'model'"),
            "{chip}: {r}"
        );
    }
}

/// An app built for a later chip revision than the board's is refused with exit 5 before
/// anything is written, for every simulated chip; a range that includes the board is written.
#[test]
fn an_image_for_another_chip_revision_is_refused_untouched() {
    for chip in simulated_chips() {
        let tmp = tempfile::tempdir().unwrap();
        let spec = BuildSpec::new(chip);
        let build = testkit::idf_build::write_build(&tmp.path().join("build"), &spec).unwrap();
        let app = build.dir.join(&build.flash_files[2].1);
        let mut bytes = fs::read(&app).unwrap();
        testkit::firmware::set_revision_range(&mut bytes, 9900, 0xFFFF);
        fs::write(&app, &bytes).unwrap();
        let fw = tmp.path().join("fw");
        bundle_build_dir(&fw, &build.dir);
        let board = board(chip, "4MB");
        let port = board.path().to_str().unwrap().to_string();
        let out = flasher(&flash_args(fw.to_str().unwrap(), &port, chip.name(), "4MB"));
        assert_eq!(out.status.code(), Some(5), "{chip}: {}", stderr(&out));
        let err = stderr(&out);
        let line = err
            .lines()
            .find(|l| l.contains("requires chip revision"))
            .unwrap_or_else(|| panic!("{chip}: {err}"));
        assert!(line.contains("v99.0 or higher"), "{chip}: {line}");
        assert!(!wrote_anything(&board), "{chip}: the board was written");

        testkit::firmware::set_revision_range(&mut bytes, 0, 0xFFFF);
        fs::write(&app, &bytes).unwrap();
        let fw = tmp.path().join("fw2");
        bundle_build_dir(&fw, &build.dir);
        let out = flasher(&flash_args(fw.to_str().unwrap(), &port, chip.name(), "4MB"));
        assert!(out.status.success(), "{chip}: {}", stderr(&out));
    }
}

/// Whether `c` may change the flash.
fn may_write(c: &esp_sim::CommandRecord) -> bool {
    matches!(
        c.command,
        Some(
            Opcode::FlashBegin
                | Opcode::FlashData
                | Opcode::FlashEnd
                | Opcode::FlashDeflBegin
                | Opcode::FlashDeflData
                | Opcode::FlashDeflEnd
                | Opcode::EraseFlash
                | Opcode::EraseRegion
                | Opcode::WriteReg
        )
    )
}

#[test]
fn no_reset_sends_nothing_that_can_write_after_the_final_check() {
    let tmp = tempfile::tempdir().unwrap();
    bundle(tmp.path(), Chip::Esp32c3);
    let fw = tmp.path().join("fw");
    let board = board(Chip::Esp32c3, "4MB");
    let port = board.path().to_str().unwrap().to_string();
    let out = flasher(&flash_args(fw.to_str().unwrap(), &port, "esp32c3", "4MB"));
    assert!(out.status.success(), "{}", stderr(&out));
    let commands = board.commands();
    let last_check = commands
        .iter()
        .rposition(|c| c.command == Some(Opcode::SpiFlashMd5))
        .expect("the regions were checked");
    let after: Vec<_> = commands[last_check + 1..]
        .iter()
        .filter(|c| may_write(c))
        .collect();
    assert!(after.is_empty(), "sent after the final check: {after:?}");
    // The board stays in the stub, which a second run connects to and skips everything on.
    assert!(commands[last_check].stub);
    let again = flasher(&flash_args(fw.to_str().unwrap(), &port, "esp32c3", "4MB"));
    assert!(again.status.success(), "{}", stderr(&again));
    assert!(
        stderr(&again).contains("0 of 4 regions written"),
        "{}",
        stderr(&again)
    );
}

/// A board whose second FLASH_DEFL_BEGIN (the partition table's, at 0x8000) arrives with bit 20
/// of its offset flipped: the stub writes the table at 0x108000, in the gap after the app; the
/// chunk's MD5 differs, and the retry writes the right place.
fn stray_write_board() -> SimBoard {
    faulty_board(Chip::Esp32c3, "flip=0x10#2@14.4")
}

#[test]
fn check_untouched_fails_a_board_written_outside_the_plan() {
    let tmp = tempfile::tempdir().unwrap();
    bundle(tmp.path(), Chip::Esp32c3);
    let fw = tmp.path().join("fw");
    let board = stray_write_board();
    let port = board.path().to_str().unwrap().to_string();
    let report_path = tmp.path().join("r.json");
    let log_path = tmp.path().join("log.jsonl");
    let mut args = flash_args(fw.to_str().unwrap(), &port, "esp32c3", "4MB");
    args.extend([
        "--report",
        report_path.to_str().unwrap(),
        "--report-append",
        log_path.to_str().unwrap(),
        "--check-untouched",
    ]);
    let out = flasher(&args);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(9), "{err}");
    assert!(err.contains("outside the plan changed"), "{err}");
    let flash = board.stop();
    assert!(
        flash[0x108000..0x108000 + 0x1000]
            .iter()
            .any(|&b| b != 0xFF)
    );
    let r = report(&report_path);
    assert_eq!(
        (r["outcome"].as_str(), r["exit_code"].as_u64()),
        (Some("failed"), Some(9))
    );
    let changed = r["changed_outside"].as_array().unwrap();
    assert_eq!(changed.len(), 1, "{r}");
    let (offset, size) = (
        changed[0]["offset"].as_u64().unwrap(),
        changed[0]["size"].as_u64().unwrap(),
    );
    assert!(offset <= 0x108000 && 0x109000 <= offset + size, "{r}");
    assert!(
        err.contains(&format!("{offset:#x}..{:#x}", offset + size)),
        "{err}"
    );
    let line: Value = serde_json::from_str(fs::read_to_string(&log_path).unwrap().trim()).unwrap();
    assert_eq!(line["changed_outside"], r["changed_outside"]);
}

/// The `--check-untouched` run of a clean ESP32-C3 board, whose flash and commands follow.
fn check_untouched_run(fw: &str, board: &SimBoard) -> Output {
    let port = board.path().to_str().unwrap().to_string();
    let mut args = flash_args(fw, &port, "esp32c3", "4MB");
    args.push("--check-untouched");
    flasher(&args)
}

fn md5s(board: &SimBoard) -> usize {
    board
        .commands()
        .iter()
        .filter(|c| c.command == Some(Opcode::SpiFlashMd5))
        .count()
}

/// A gap's digest garbled on its way back after writing is read again and found unchanged:
/// the good board passes, at the cost of one more SPI_FLASH_MD5.
#[test]
fn check_untouched_reads_a_differing_gap_again() {
    let tmp = tempfile::tempdir().unwrap();
    bundle(tmp.path(), Chip::Esp32c3);
    let fw = tmp.path().join("fw");
    let fw = fw.to_str().unwrap();
    let clean = board(Chip::Esp32c3, "4MB");
    let out = check_untouched_run(fw, &clean);
    assert!(out.status.success(), "{}", stderr(&out));
    // The last MD5 of a clean run is the last gap's, after the final check.
    let total = md5s(&clean);
    let expected = clean.stop();
    let board = faulty_board(Chip::Esp32c3, &format!("bad-md5={total}"));
    let out = check_untouched_run(fw, &board);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(!err.contains("outside the plan changed"), "{err}");
    assert_eq!(md5s(&board), total + 1, "one gap read again");
    assert!(board.stop() == expected);
}

#[test]
fn without_check_untouched_a_retry_is_a_warning() {
    let tmp = tempfile::tempdir().unwrap();
    bundle(tmp.path(), Chip::Esp32c3);
    let fw = tmp.path().join("fw");
    let board = stray_write_board();
    let port = board.path().to_str().unwrap().to_string();
    let report_path = tmp.path().join("r.json");
    let mut args = flash_args(fw.to_str().unwrap(), &port, "esp32c3", "4MB");
    args.extend(["--report", report_path.to_str().unwrap()]);
    let out = flasher(&args);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("warning: 2 attempts were needed"), "{err}");
    let r = report(&report_path);
    assert_eq!(r["attempts"], 2, "{r}");
    let warnings = r["warnings"].as_array().unwrap();
    assert!(
        warnings[0].as_str().unwrap().contains("--check-untouched"),
        "{r}"
    );
    assert!(r.get("changed_outside").is_none(), "{r}");
}

#[test]
fn on_a_pty_the_default_resets_are_skipped_and_a_failed_final_reset_warns() {
    let tmp = tempfile::tempdir().unwrap();
    bundle(tmp.path(), Chip::Esp32c3);
    let fw = tmp.path().join("fw");
    let fw = fw.to_str().unwrap();
    let board = board(Chip::Esp32c3, "4MB");
    let port = board.path().to_str().unwrap().to_string();
    let report_path = tmp.path().join("r.json");
    // The default --before default-reset and --after hard-reset.
    let out = flasher(&[
        "--port",
        &port,
        "--chip",
        "esp32c3",
        "--flash_size",
        "4MB",
        "--firmware-dir",
        fw,
        "--report",
        report_path.to_str().unwrap(),
    ]);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("cannot drive DTR/RTS"), "{err}");
    assert!(
        err.contains("warning: all regions written and verified, but resetting the board failed"),
        "{err}"
    );
    let r = report(&report_path);
    assert_eq!(
        (r["outcome"].as_str(), r["exit_code"].as_u64()),
        (Some("ok"), Some(0))
    );
    assert!(
        r["warnings"][0]
            .as_str()
            .unwrap()
            .contains("resetting the board failed"),
        "{r}"
    );
    let merged = tmp.path().join("merged.bin");
    let out = flasher(&[
        "--chip",
        "esp32c3",
        "--flash_size",
        "4MB",
        "--firmware-dir",
        fw,
        "--merge-out",
        merged.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(board.stop() == fs::read(&merged).unwrap());
}

#[test]
fn expected_erased_gaps_are_checked_without_a_first_pass() {
    use flasher::device::{self, Console, Contact, Options, Untouched};
    use flasher::error::DeviceError;
    use flasher::port::ResolvedPort;

    let tmp = tempfile::tempdir().unwrap();
    bundle(tmp.path(), Chip::Esp32c3);
    let plan = flasher::plan::make(&flasher::plan::Request {
        firmware_dir: tmp.path().join("fw"),
        target: "esp32c3".parse().unwrap(),
        flash_size: "4MB".parse().unwrap(),
        override_pt: None,
    })
    .unwrap();
    let gaps = device::gaps(&plan);
    let last = *gaps.last().unwrap();
    assert_eq!(u64::from(last.0 + last.1), 4 << 20, "{gaps:x?}");
    let opts = Options {
        baud: None,
        before: flasher::cli::Before::NoReset,
        after: flasher::cli::After::NoReset,
        verify: true,
        skip: true,
        console: Console::shared("erased", None),
        boot: None,
        check_untouched: Some(Untouched::Erased),
        streams: Default::default(),
        secure: None,
        per_board: None,
    };
    let target = "esp32c3".parse().unwrap();
    let write = |board: &SimBoard| {
        let port = ResolvedPort::device(board.path().to_str().unwrap());
        device::write(&plan, &target, &port, &opts, &mut Contact::default())
    };
    // An erased board: the gaps read as erased, and only after writing (no MD5 before it).
    let blank = board(Chip::Esp32c3, "4MB");
    write(&blank).unwrap();
    let commands = blank.commands();
    let first_write = commands
        .iter()
        .position(|c| c.command == Some(Opcode::FlashDeflBegin))
        .unwrap();
    let md5s_before: Vec<_> = commands[..first_write]
        .iter()
        .filter(|c| c.command == Some(Opcode::SpiFlashMd5))
        .map(|c| c.args[0])
        .collect();
    assert!(
        md5s_before.iter().all(|a| plan
            .regions
            .iter()
            .any(|r| r.offset <= *a && u64::from(*a) < r.end())),
        "a gap was hashed before writing: {md5s_before:x?}"
    );
    // A board with old bytes in the last gap is not as the plan expects.
    let mut old = vec![0xFF; 4 << 20];
    old[last.0 as usize + 0x1000] = 0;
    let dirty = SimBoard::start(
        BoardConfig::new(esp_sim::Chip::Esp32c3)
            .flash_size("4MB".parse().unwrap())
            .initial_flash(old),
    )
    .unwrap();
    match write(&dirty) {
        Err(DeviceError::Untouched { changed }) => assert_eq!(changed, vec![last]),
        other => panic!("expected a changed gap, got {other:?}"),
    }
}
