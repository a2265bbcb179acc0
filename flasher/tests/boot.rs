//! After the write: the simulated ESP32-C3, on a port that looks like its USB-Serial/JTAG
//! (a sysfs tree saying 303a:1001, so that espflash's watchdog reset goes out), reboots into
//! what it was flashed with and prints the ROM, bootloader and app log; `--expect` waits for
//! the app's banner and `--monitor-for` shows it.

mod common;

use std::fs;
use std::os::unix::fs::{MetadataExt, symlink};
use std::path::Path;
use std::process::{Command, Output};

use common::{generated_build, stderr, write_bundle};
use esp_sim::{BoardConfig, SimBoard};
use firmware::chip::Chip;
use flasher::port::sysfs;
use serde_json::Value;
use sha2::{Digest, Sha256};
use testkit::idf_build::BuildSpec;

/// A sysfs and /dev tree in which `board` is `ttyACM0`, an ESP32 native USB port.
struct Tree {
    dir: tempfile::TempDir,
}

impl Tree {
    fn with(board: &SimBoard) -> Tree {
        let dir = tempfile::tempdir().unwrap();
        let sys = dir.path().join("sys");
        let device = sys.join("devices/pci0000:00/0000:00:14.0/usb1/1-1");
        let iface = device.join("1-1:1.0");
        let tty = iface.join("tty/ttyACM0");
        fs::create_dir_all(&tty).unwrap();
        fs::create_dir_all(sys.join("class/tty")).unwrap();
        fs::create_dir_all(dir.path().join("dev")).unwrap();
        fs::write(device.join("idVendor"), "303a\n").unwrap();
        fs::write(device.join("idProduct"), "1001\n").unwrap();
        fs::write(device.join("serial"), "F4:12:FA:00:00:0C\n").unwrap();
        fs::write(iface.join("bInterfaceNumber"), "00\n").unwrap();
        let driver = sys.join("bus/usb/drivers/cdc_acm");
        fs::create_dir_all(&driver).unwrap();
        symlink(&driver, iface.join("driver")).unwrap();
        let (major, minor) = sysfs::split_rdev(fs::metadata(board.path()).unwrap().rdev());
        fs::write(tty.join("dev"), format!("{major}:{minor}\n")).unwrap();
        symlink("../..", tty.join("device")).unwrap();
        let rel = Path::new("../..").join(tty.strip_prefix(&sys).unwrap());
        symlink(rel, sys.join("class/tty/ttyACM0")).unwrap();
        symlink(board.path(), dir.path().join("dev/ttyACM0")).unwrap();
        Tree { dir }
    }

    fn port(&self) -> String {
        self.dir.path().join("dev/ttyACM0").display().to_string()
    }

    fn flasher(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_flasher"))
            .args(args)
            .env("FLASHER_SYSFS_ROOT", self.dir.path().join("sys"))
            .env("FLASHER_DEV_ROOT", self.dir.path().join("dev"))
            .output()
            .unwrap()
    }
}

/// A bundle for the ESP32-C3 in `dir/fw` whose app is `demo` 1.0.0; `min_rev` sets the app
/// header's minimum chip revision (major * 100 + minor), the digest recomputed.
fn bundle(dir: &Path, min_rev: u16) -> String {
    let build = generated_build(&dir.join("build"), &BuildSpec::new(Chip::Esp32c3));
    if min_rev > 0 {
        let mut app = fs::read(&build.app.1).unwrap();
        app[15..17].copy_from_slice(&min_rev.to_le_bytes());
        assert_eq!(app[23], 1, "the generated app carries a digest");
        let body = app.len() - 32;
        let digest = Sha256::digest(&app[..body]);
        app[body..].copy_from_slice(&digest);
        fs::write(&build.app.1, app).unwrap();
    }
    write_bundle(&dir.join("fw"), &[("esp32c3", &build)], None, true);
    dir.join("fw").to_str().unwrap().to_string()
}

/// The arguments writing `fw` to the board on `port` and resetting it by the watchdog.
fn args<'a>(fw: &'a str, port: &'a str, report: &'a str) -> Vec<&'a str> {
    vec![
        "--port",
        port,
        "--chip",
        "esp32c3",
        "--flash_size",
        "4MB",
        "--firmware-dir",
        fw,
        "--before",
        "no-reset",
        "--after",
        "watchdog-reset",
        "--report",
        report,
    ]
}

fn record(path: &Path) -> Value {
    let run: Value = serde_json::from_slice(&fs::read(path).unwrap()).unwrap();
    run["boards"][0].clone()
}

#[test]
fn a_good_image_boots_and_expect_passes() {
    let tmp = tempfile::tempdir().unwrap();
    let fw = bundle(tmp.path(), 0);
    let board = SimBoard::start(BoardConfig::new(esp_sim::Chip::Esp32c3)).unwrap();
    let tree = Tree::with(&board);
    let (port, report) = (tree.port(), tmp.path().join("r.json"));
    let mut a = args(&fw, &port, report.to_str().unwrap());
    a.push("--expect");
    let out = tree.flasher(&a);
    assert!(out.status.success(), "{}", stderr(&out));
    let r = record(&report);
    assert_eq!(r["boot"]["booted"], true, "{r}");
    let log: Vec<&str> = r["boot"]["log"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap())
        .collect();
    assert!(log[0].starts_with("ESP-ROM:esp32c3"), "{log:?}");
    assert!(
        log.iter()
            .any(|l| l.contains("cpu_start: Pro cpu start user code")),
        "{log:?}"
    );
    assert!(
        log.last().unwrap().ends_with("App version:      1.0.0"),
        "{log:?}"
    );
    assert!(log.iter().all(|l| !l.contains('\r')), "{log:?}");
    // A pattern of one's own that the board never prints fails the board.
    let mut a = args(&fw, &port, report.to_str().unwrap());
    a.extend(["--expect", "hello from v2", "--expect-within", "1s"]);
    let out = tree.flasher(&a);
    assert_eq!(out.status.code(), Some(8), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("no line matching `hello from v2`"),
        "{}",
        stderr(&out)
    );
}

/// An app the bootloader would refuse (it asks for chip revision v3.0) is refused by the
/// flasher before anything is written, from the board's revision: it never gets to boot.
#[test]
fn an_app_the_bootloader_would_refuse_is_refused_before_writing() {
    let tmp = tempfile::tempdir().unwrap();
    let fw = bundle(tmp.path(), 300);
    let board = SimBoard::start(BoardConfig::new(esp_sim::Chip::Esp32c3)).unwrap();
    let tree = Tree::with(&board);
    let (port, report) = (tree.port(), tmp.path().join("r.json"));
    let mut a = args(&fw, &port, report.to_str().unwrap());
    a.extend(["--expect", "--expect-within", "2s"]);
    let out = tree.flasher(&a);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(5), "{err}");
    assert!(err.contains("requires chip revision"), "{err}");
    let r = record(&report);
    assert_eq!(r["exit_code"], 5, "{r}");
    assert!(
        board.flash().iter().all(|&b| b == 0xFF),
        "the board was written"
    );
}

#[test]
fn monitor_for_prints_the_banner() {
    let tmp = tempfile::tempdir().unwrap();
    let fw = bundle(tmp.path(), 0);
    let board = SimBoard::start(BoardConfig::new(esp_sim::Chip::Esp32c3)).unwrap();
    let tree = Tree::with(&board);
    let (port, report) = (tree.port(), tmp.path().join("r.json"));
    let mut a = args(&fw, &port, report.to_str().unwrap());
    a.extend(["--monitor-for", "1s"]);
    let out = tree.flasher(&a);
    assert!(out.status.success(), "{}", stderr(&out));
    let shown = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        shown.contains("I (") && shown.contains("app_init: Project name:     demo"),
        "{shown}"
    );
    assert!(
        shown.contains("main_task: Calling app_main()") && !shown.contains('\r'),
        "{shown}"
    );
    // One board only.
    let out = flasher_plain(&[
        "--port",
        &port,
        "--port",
        "/dev/null",
        "--chip",
        "esp32c3",
        "--flash_size",
        "4MB",
        "--firmware-dir",
        &fw,
        "--monitor",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("show one board"), "{}", stderr(&out));
}

fn flasher_plain(args: &[&str]) -> Output {
    common::flasher(args)
}

#[test]
fn monitor_keys_reset_and_quit() {
    use std::io::Write;
    use std::process::Stdio;

    let tmp = tempfile::tempdir().unwrap();
    let fw = bundle(tmp.path(), 0);
    let board = SimBoard::start(BoardConfig::new(esp_sim::Chip::Esp32c3)).unwrap();
    let tree = Tree::with(&board);
    let (port, report) = (tree.port(), tmp.path().join("r.json"));
    let mut a = args(&fw, &port, report.to_str().unwrap());
    a.push("--monitor");
    let mut child = Command::new(env!("CARGO_BIN_EXE_flasher"))
        .args(&a)
        .env("FLASHER_SYSFS_ROOT", tree.dir.path().join("sys"))
        .env("FLASHER_DEV_ROOT", tree.dir.path().join("dev"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Ctrl-T Ctrl-R (a reset, which a pty cannot do), then Ctrl-]: the monitor ends.
    child
        .stdin
        .take()
        .unwrap()
        .write_all(&[0x14, 0x12, 0x1D])
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("cannot reset the board from here"), "{err}");
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(shown.contains("main_task: Calling app_main()"), "{shown}");
}
