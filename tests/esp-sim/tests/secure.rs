//! Secured boards (Secure Download Mode, Secure Boot, flash encryption)
//! against esptool 5.x and espflash 4.7.

mod common;

use std::fs;
use std::path::Path;
use std::str::FromStr;
use std::thread;
use std::time::Duration;

use esp_sim::{BoardConfig, Chip, Opcode, Security, SimBoard, SimProcess};
use espflash::connection::{Connection, ResetAfterOperation, ResetBeforeOperation};
use espflash::flasher::Flasher;
use espflash::image_format::Segment;
use espflash::target::{self, ProgressCallbacks};
use serialport::{FlowControl, UsbPortInfo};

const SDM: Security = Security {
    secure_download: true,
    secure_boot: false,
    flash_encryption: false,
};

fn sdm_chips() -> impl Iterator<Item = Chip> {
    Chip::ALL
        .into_iter()
        .filter(|chip| chip.has_secure_download_mode())
}

fn spawn(config: &BoardConfig, dump: &Path) -> SimProcess {
    let mut args = config.to_args();
    args.extend(["--dump".into(), dump.display().to_string()]);
    SimProcess::spawn(env!("CARGO_BIN_EXE_esp-sim"), &args).expect("esp-sim starts")
}

/// `esptool --no-stub write-flash` on a board in Secure Download Mode writes
/// exactly what `merge-bin` lays out; `get-security-info` shows the flags
/// and the chip id.
fn sdm_write(chip: Chip) {
    let config = common::test_board(chip).security(SDM);
    let size = config.flash_size;
    let dir = tempfile::tempdir().unwrap();
    let file = |n: &str| dir.path().join(n);
    let seed = 500 + chip as u64;
    let parts = [
        (
            chip.bootloader_offset(),
            common::payload(seed, 0x4C00, true),
        ),
        (0x8000, common::payload(seed + 1, 0xC00, true)),
        (0x1_0000, common::payload(seed + 2, 0x1_2344, false)),
    ];
    let mut part_args = Vec::new();
    for (i, (offset, data)) in parts.iter().enumerate() {
        let path = file(&format!("part{i}.bin"));
        fs::write(&path, data).unwrap();
        part_args.push(format!("{offset:#x}"));
        part_args.push(path.display().to_string());
    }
    let part_args: Vec<&str> = part_args.iter().map(String::as_str).collect();

    let sim = spawn(&config, &file("dump.bin"));
    let (ok, out) = common::run_esptool(sim.path(), chip.name(), &["get-security-info"]);
    assert!(ok, "{chip}: get-security-info\n{out}");
    assert!(out.contains("in Secure Download Mode"), "{chip}: {out}");
    assert!(out.contains("Flags: 0x00000004"), "{chip}: {out}");
    if chip != Chip::Esp32s2 {
        let id = format!("Chip ID: {}", chip.image_chip_id());
        assert!(out.contains(&id), "{chip}: {out}");
    }
    let mut write = vec!["--no-stub", "write-flash"];
    write.extend(&part_args);
    let (ok, out) = common::run_esptool(sim.path(), chip.name(), &write);
    assert!(ok, "{chip}: write-flash\n{out}");
    assert!(
        out.contains("Cannot verify written data if encrypted or in secure download mode"),
        "{chip}: {out}"
    );
    assert!(sim.stop().unwrap().success());

    let merged = file("merged.bin");
    let size_text = size.to_string();
    let mut merge = vec![
        "merge-bin",
        "-o",
        merged.to_str().unwrap(),
        "--pad-to-size",
        &size_text,
    ];
    merge.extend(&part_args);
    let (ok, out) = common::run_esptool(Path::new("unused"), chip.name(), &merge);
    assert!(ok, "merge-bin: {out}");
    let dumped = fs::read(file("dump.bin")).unwrap();
    assert_eq!(
        common::first_difference(&dumped, &fs::read(&merged).unwrap()),
        None,
        "{chip}: dump differs from merge-bin"
    );
}

#[test]
fn esptool_writes_every_chip_in_secure_download_mode() {
    let threads: Vec<_> = sdm_chips()
        .map(|chip| (chip, thread::spawn(move || sdm_write(chip))))
        .collect();
    let failures: Vec<_> = threads
        .into_iter()
        .filter_map(|(chip, t)| t.join().err().map(|_| chip))
        .collect();
    assert!(failures.is_empty(), "failed for {failures:?}");
}

/// The refusals reach esptool as the ROM's: a compressed write fails with
/// "not supported in Secure Download Mode", and an ESP32-S2 (whose security
/// info has no chip id) is detected by its refused READ_REG.
#[test]
fn esptool_meets_the_refusals() {
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("app.bin");
    fs::write(&image, common::payload(3, 0x8000, true)).unwrap();
    let board = SimBoard::start(BoardConfig::new(Chip::Esp32c3).security(SDM)).unwrap();
    let (ok, out) = common::run_esptool(
        board.path(),
        "esp32c3",
        &[
            "--no-stub",
            "write-flash",
            "-z",
            "0x10000",
            image.to_str().unwrap(),
        ],
    );
    assert!(!ok, "{out}");
    assert!(
        out.contains("This command (0x10) is not supported in Secure Download Mode"),
        "{out}"
    );
    assert_eq!(board.stop()[0x1_0000..0x1_0004], [0xFF; 4]);

    let board = SimBoard::start(BoardConfig::new(Chip::Esp32s2).security(SDM)).unwrap();
    let (ok, out) = common::run_esptool(board.path(), "auto", &["get-security-info"]);
    assert!(ok, "{out}");
    assert!(out.contains("Detecting chip type... ESP32-S2"), "{out}");
    assert!(out.contains("ESP32-S2 in Secure Download Mode"), "{out}");
    let commands = board.commands();
    assert!(
        commands.iter().any(|c| c.command == Some(Opcode::ReadReg)),
        "esptool probed the magic register: {commands:?}"
    );
}

/// Secure Boot and flash encryption show in the security info flags and in
/// the eFuses esptool reads when not in Secure Download Mode.
#[test]
fn esptool_reads_secure_boot_and_flash_encryption() {
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("app.bin");
    fs::write(&image, common::payload(4, 0x2000, false)).unwrap();
    let image = image.to_str().unwrap();
    let secured = Security {
        secure_download: false,
        secure_boot: true,
        flash_encryption: true,
    };
    for chip in [Chip::Esp32s3, Chip::Esp32c2, Chip::Esp32c5, Chip::Esp32p4] {
        let board = SimBoard::start(BoardConfig::new(chip).security(secured)).unwrap();
        let (ok, out) = common::run_esptool(board.path(), chip.name(), &["get-security-info"]);
        assert!(ok, "{chip}: {out}");
        assert!(out.contains("Flags: 0x00000001"), "{chip}: {out}");
        assert!(out.contains("Secure Boot: Enabled"), "{chip}: {out}");
        assert!(out.contains("Flash Encryption: Enabled"), "{chip}: {out}");
        assert!(out.contains("Stub flasher running."), "{chip}: {out}");
        if chip == Chip::Esp32s3 {
            // This ROM runs no RAM code under Secure Boot: esptool starts the
            // stub through the ROM's flash read hook and READ_FLASH_SLOW.
            let commands = board.commands();
            let hook = commands
                .iter()
                .position(|c| c.command == Some(Opcode::ReadFlashSlow))
                .expect("READ_FLASH_SLOW sent");
            assert!(
                !commands[hook].stub && commands[hook + 1].stub,
                "{commands:?}"
            );
        }
        // esptool reads SECURE_BOOT_EN from the eFuses and leaves the image
        // header alone.
        let (ok, out) = common::run_esptool(
            board.path(),
            chip.name(),
            &["--no-stub", "write-flash", "0x10000", image],
        );
        assert!(ok, "{chip}: {out}");
        assert!(
            out.contains("Security features enabled, so not changing any flash settings"),
            "{chip}: {out}"
        );
    }

    // Flash encryption in Secure Download Mode: esptool will not write
    // plaintext unless forced.
    let both = Security {
        secure_download: true,
        ..secured
    };
    let board = SimBoard::start(BoardConfig::new(Chip::Esp32c3).security(both)).unwrap();
    let write = ["--no-stub", "write-flash", "0x10000", image];
    let (ok, out) = common::run_esptool(board.path(), "esp32c3", &write);
    assert!(!ok, "{out}");
    assert!(
        out.contains("Detected flash encryption and secure download mode enabled"),
        "{out}"
    );
    let forced = ["--no-stub", "write-flash", "--force", "0x10000", image];
    let (ok, out) = common::run_esptool(board.path(), "esp32c3", &forced);
    assert!(ok, "{out}");
    assert_eq!(
        board.stop()[0x1_0000..0x1_2000],
        common::payload(4, 0x2000, false)[..]
    );

    // The ESP32 has no security info: esptool reads ABS_DONE_1 (revision
    // v3.0 and later) and FLASH_CRYPT_CNT from the eFuse words.
    let config = BoardConfig::new(Chip::Esp32)
        .revision("v3.0".parse().unwrap())
        .security(Security {
            secure_download: false,
            ..secured
        });
    let board = SimBoard::start(config).unwrap();
    let (ok, out) = common::run_esptool(
        board.path(),
        "esp32",
        &["--no-stub", "write-flash", "0x10000", image],
    );
    assert!(ok, "{out}");
    assert!(
        out.contains("Security features enabled, so not changing any flash settings"),
        "{out}"
    );
    let (ok, out) = common::run_esptool(
        board.path(),
        "esp32",
        &["--no-stub", "read-mem", "0x3ff5a000"],
    );
    assert!(ok, "{out}");
    assert!(out.contains("0x3ff5a000 = 0x00100000"), "{out}");
}

struct Quiet;

impl ProgressCallbacks for Quiet {
    fn init(&mut self, _addr: u32, _total: usize) {}
    fn update(&mut self, _current: usize) {}
    fn verifying(&mut self) {}
    fn finish(&mut self, _skipped: bool) {}
}

fn connect(board: &SimBoard) -> Result<Flasher, espflash::Error> {
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
    Flasher::connect(connection, true, true, true, Some(chip), None)
}

/// espflash 4.7 detects Secure Download Mode from the security info flags,
/// drops the stub and writes with the ROM's plain FLASH_BEGIN/DATA/END.
#[test]
fn espflash_writes_in_secure_download_mode() {
    for chip in sdm_chips().filter(|&chip| chip != Chip::Esp32s2) {
        let board = SimBoard::start(BoardConfig::new(chip).security(SDM)).unwrap();
        let app = common::payload(700 + chip as u64, 0x6000, false);
        let mut flasher = connect(&board).unwrap_or_else(|e| panic!("{chip}: {e:?}"));
        assert!(flasher.secure_download_mode(), "{chip}");
        let info = flasher.security_info().unwrap();
        assert_eq!(info.flags, 0b100, "{chip}");
        assert_eq!(
            info.chip_id,
            Some(u32::from(chip.image_chip_id())),
            "{chip}"
        );
        flasher
            .write_bins_to_flash(&[Segment::new(0x1_0000, &app)], &mut Quiet)
            .unwrap_or_else(|e| panic!("{chip}: write: {e:?}"));
        drop(flasher);
        let commands: Vec<_> = board.commands().iter().filter_map(|c| c.command).collect();
        assert!(
            commands.contains(&Opcode::FlashData),
            "{chip}: {commands:?}"
        );
        assert!(
            !commands.iter().any(|op| matches!(
                op,
                Opcode::MemBegin | Opcode::ReadReg | Opcode::SpiFlashMd5 | Opcode::FlashDeflData
            )),
            "{chip}: {commands:?}"
        );
        assert_eq!(board.stop()[0x1_0000..0x1_6000], app[..], "{chip}");
    }
}

/// The ESP32-S2's security info has no chip id, so espflash falls back to
/// the magic register, which the ROM refuses in Secure Download Mode: the
/// connection times out, as on real boards (esp-rs/espflash#726).
#[test]
fn espflash_cannot_identify_an_esp32s2_in_secure_download_mode() {
    let board = SimBoard::start(BoardConfig::new(Chip::Esp32s2).security(SDM)).unwrap();
    let Err(err) = connect(&board) else {
        panic!("espflash identified the chip");
    };
    assert!(format!("{err:?}").contains("Timeout"), "{err:?}");
    let refused = board
        .commands()
        .iter()
        .filter(|c| c.command == Some(Opcode::ReadReg))
        .count();
    assert!(refused >= 1);
}

/// Secure Boot key digests burnt into the key blocks read back through
/// espefuse (Espressif's eFuse tool) as SECURE_BOOT_DIGESTn blocks holding
/// the digest bytes in order, on the board run as a process from its
/// command-line arguments.
#[test]
fn espefuse_reads_the_secure_boot_key_digests() {
    let espefuse = common::esptool().with_file_name("espefuse");
    assert!(
        espefuse.is_file(),
        "espefuse not found next to esptool ({}): install esptool 5.x in .venv",
        espefuse.display()
    );
    let digests: Vec<[u8; 32]> = vec![
        std::array::from_fn(|i| i as u8),
        std::array::from_fn(|i| 0xF0 ^ i as u8),
    ];
    for chip in [Chip::Esp32c3, Chip::Esp32h2] {
        let config = BoardConfig::new(chip)
            .security(Security {
                secure_boot: true,
                ..Security::default()
            })
            .secure_boot_digests(digests.clone());
        let dir = tempfile::tempdir().unwrap();
        let sim = spawn(&config, &dir.path().join("dump.bin"));
        let out = std::process::Command::new(&espefuse)
            .args(["--chip", chip.name(), "--before", "no-reset", "--port"])
            .arg(sim.path())
            .arg("summary")
            .output()
            .expect("espefuse runs");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(out.status.success(), "{chip}: {text}");
        for (n, digest) in digests.iter().enumerate() {
            let purpose = format!("= SECURE_BOOT_DIGEST{n} R/W (0x{:x})", 9 + n);
            assert!(text.contains(&purpose), "{chip}: {text}");
            let bytes: Vec<String> = digest.iter().map(|b| format!("{b:02x}")).collect();
            let block = text
                .split(&format!("BLOCK_KEY{n} (BLOCK{})", 4 + n))
                .nth(1)
                .unwrap_or_else(|| panic!("{chip}: no BLOCK_KEY{n}: {text}"));
            let value = block.lines().nth(3).unwrap_or_default();
            assert!(value.contains(&bytes.join(" ")), "{chip}: KEY{n}: {value}");
        }
        assert!(sim.stop().unwrap().success());
    }
}
