//! Bad input: each case ends with a one-line error naming the problem and the fix, the
//! documented exit code, and nothing sent to the board.

mod common;

use std::fs;
use std::path::Path;
use std::process::Output;

use common::{flasher, generated_build, stderr, write_bundle};
use esp_sim::{BoardConfig, SimBoard};
use firmware::chip::Chip;
use testkit::idf_build::BuildSpec;

const USAGE: i32 = 2;
const BUNDLE: i32 = 3;
const DEVICE: i32 = 4;

/// An esp32s3 bundle (4 MB table, no model) in `dir`.
fn bundle(dir: &Path) {
    let build = generated_build(&dir.join("build"), &BuildSpec::new(Chip::Esp32s3));
    write_bundle(&dir.join("fw"), &[("esp32s3", &build)], None, true);
}

/// Runs the flasher against `port` with the bundle in `dir`, replacing defaults by `extra`.
fn run(dir: &Path, port: Option<&str>, extra: &[&str]) -> Output {
    let fw = dir.join("fw");
    let mut args = vec!["--firmware-dir", fw.to_str().unwrap()];
    if let Some(port) = port {
        args.extend(["--port", port]);
    }
    for default in [
        ["--chip", "esp32s3"],
        ["--flash_size", "4MB"],
        ["--before", "no-reset"],
        ["--after", "no-reset"],
    ] {
        if !extra.contains(&default[0]) {
            args.extend(default);
        }
    }
    args.extend(extra);
    flasher(&args)
}

/// The run failed with `code` and one line on stderr containing every one of `words`.
fn assert_error(out: &Output, code: i32, words: &[&str], case: &str) {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(code), "{case}: {err}");
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "{case}: not one line: {err}");
    assert!(lines[0].starts_with("error: "), "{case}: {err}");
    for word in words {
        assert!(
            lines[0].contains(word),
            "{case}: '{word}' missing in: {err}"
        );
    }
}

fn quiet_board() -> SimBoard {
    SimBoard::start(BoardConfig::new(esp_sim::Chip::Esp32s3)).unwrap()
}

fn assert_untouched(board: SimBoard, case: &str) {
    assert!(
        board.commands().is_empty(),
        "{case}: the board was spoken to"
    );
    assert!(
        board.stop().iter().all(|&b| b == 0xFF),
        "{case}: the flash changed"
    );
}

#[test]
fn bad_arguments_and_layouts_exit_2() {
    let tmp = tempfile::tempdir().unwrap();
    bundle(tmp.path());
    let board = quiet_board();
    let port = board.path().to_str().unwrap().to_string();
    let cases: &[(&str, &[&str], &[&str])] = &[
        (
            "unknown chip",
            &["--chip", "esp8266"],
            &["unknown chip 'esp8266'", "esp32s3"],
        ),
        (
            "target not in the image",
            &["--chip", "esp32c3"],
            &["'esp32c3' is not in this image", "esp32s3"],
        ),
        (
            "bad size",
            &["--flash_size", "3MB"],
            &["bad flash size '3MB'", "16MB"],
        ),
        (
            "bad size unit",
            &["--flash_size", "4KB"],
            &["bad flash size '4KB'"],
        ),
        (
            "flash smaller than the layout",
            &["--flash_size", "2MB"],
            &["beyond --flash_size 2MB", "real flash size"],
        ),
        (
            "unknown override mode",
            &["--override_pt", "huge"],
            &["unknown --override_pt mode 'huge'", "no_factory"],
        ),
        (
            "with_model without a model",
            &["--override_pt", "no_factory_with_model"],
            &["no model.bin", "--override_pt no_factory"],
        ),
    ];
    for &(case, extra, words) in cases {
        let out = run(tmp.path(), Some(&port), extra);
        assert_error(&out, USAGE, words, case);
    }
    let out = run(tmp.path(), None, &[]);
    assert_error(
        &out,
        USAGE,
        &["missing --port", "/dev/ttyUSB0"],
        "missing port",
    );
    assert_untouched(board, "usage errors");
}

#[test]
fn an_altered_bundle_exits_3_and_is_reported() {
    let tmp = tempfile::tempdir().unwrap();
    bundle(tmp.path());
    let app = tmp.path().join("fw/esp32s3/artifacts/demo.bin");
    let mut bytes = fs::read(&app).unwrap();
    bytes[1000] ^= 0x55;
    fs::write(&app, bytes).unwrap();
    let board = quiet_board();
    let port = board.path().to_str().unwrap().to_string();
    let report = tmp.path().join("report.json");
    let out = run(
        tmp.path(),
        Some(&port),
        &["--report", report.to_str().unwrap()],
    );
    assert_error(
        &out,
        BUNDLE,
        &[
            "esp32s3/artifacts/demo.bin does not match manifest.json",
            "pull it again",
        ],
        "tampered app",
    );
    let r: serde_json::Value = serde_json::from_slice(&fs::read(&report).unwrap()).unwrap();
    assert_eq!(r["outcome"], "failed");
    assert_eq!(r["exit_code"], BUNDLE);
    let record = &r["boards"][0];
    assert_eq!(record["exit_code"], BUNDLE);
    assert!(record["error"].as_str().unwrap().contains("does not match"));
    assert_untouched(board, "tampered app");
}

#[test]
fn unusable_ports_exit_4() {
    let tmp = tempfile::tempdir().unwrap();
    bundle(tmp.path());
    let board = quiet_board();
    let port = board.path().to_str().unwrap().to_string();

    let out = run(tmp.path(), Some("/dev/ttyNOSUCHPORT"), &[]);
    assert_error(
        &out,
        DEVICE,
        &["/dev/ttyNOSUCHPORT not found", "--device"],
        "missing device",
    );

    let file = tmp.path().join("not-a-tty");
    fs::write(&file, b"").unwrap();
    let out = run(tmp.path(), Some(file.to_str().unwrap()), &[]);
    assert_error(
        &out,
        DEVICE,
        &["is not a serial device", "/dev/ttyUSB0"],
        "regular file",
    );
    let out = run(tmp.path(), Some("/dev/null"), &[]);
    assert_error(
        &out,
        DEVICE,
        &["/dev/null is not a serial device"],
        "/dev/null",
    );

    // Another program holds the port.
    let holder = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(board.path())
        .unwrap();
    holder.lock().unwrap();
    let out = run(tmp.path(), Some(&port), &[]);
    assert_error(&out, DEVICE, &["is busy", "close the program"], "busy port");
    drop(holder);
    assert_untouched(board, "port errors");

    // Nothing answers: a serial line with no loader on the other end (a board not in download
    // mode), here a pseudo-terminal whose other side reads and never replies.
    let silent = SilentLine::open();
    let out = run(
        tmp.path(),
        Some(silent.path()),
        &["--before", "default-reset"],
    );
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(DEVICE), "no answer: {err}");
    let line = err
        .lines()
        .find(|l| l.starts_with("error: "))
        .unwrap_or_else(|| panic!("no answer: {err}"));
    for word in ["no ESP bootloader answered", "download mode"] {
        assert!(line.contains(word), "no answer: '{word}' missing in: {err}");
    }
}

/// A pseudo-terminal whose other side swallows what is written and never answers.
struct SilentLine {
    path: String,
    /// The other side, kept open so that the line stays up.
    _master: std::fs::File,
}

impl SilentLine {
    fn open() -> SilentLine {
        use std::os::fd::FromRawFd;
        // SAFETY: posix_openpt returns a new descriptor owned by the File below; ptsname's
        // string is copied before any other pty call.
        let (master, path) = unsafe {
            let fd = libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY);
            assert!(fd >= 0, "posix_openpt");
            assert_eq!(libc::grantpt(fd), 0);
            assert_eq!(libc::unlockpt(fd), 0);
            let name = std::ffi::CStr::from_ptr(libc::ptsname(fd));
            let path = name.to_str().unwrap().to_string();
            (std::fs::File::from_raw_fd(fd), path)
        };
        let mut reader = master.try_clone().unwrap();
        std::thread::spawn(move || {
            let mut sink = [0u8; 4096];
            while std::io::Read::read(&mut reader, &mut sink).is_ok_and(|n| n > 0) {}
        });
        SilentLine {
            path,
            _master: master,
        }
    }

    fn path(&self) -> &str {
        &self.path
    }
}

#[test]
fn unusable_bundle_contents_exit_3() {
    let tmp = tempfile::tempdir().unwrap();
    let board = quiet_board();
    let port = board.path().to_str().unwrap().to_string();

    // Images built for another chip than the folder (and --chip) says.
    let c3 = generated_build(&tmp.path().join("c3"), &BuildSpec::new(Chip::Esp32c3));
    let dir = tmp.path().join("wrong-chip");
    write_bundle(&dir.join("fw"), &[("esp32s3", &c3)], None, false);
    let out = run(&dir, Some(&port), &[]);
    assert_error(
        &out,
        BUNDLE,
        &["is built for esp32c3", "--chip esp32s3"],
        "images of another chip",
    );

    // An app larger than its partition.
    let mut spec = BuildSpec::new(Chip::Esp32s3);
    spec.app_len = 0x12_0000;
    let big = generated_build(&tmp.path().join("big"), &spec);
    let dir = tmp.path().join("big-app");
    write_bundle(&dir.join("fw"), &[("esp32s3", &big)], None, false);
    let out = run(&dir, Some(&port), &[]);
    assert_error(
        &out,
        BUNDLE,
        &["does not fit partition factory", "--override_pt"],
        "app too big",
    );

    // No bundle at all.
    let dir = tmp.path().join("empty");
    fs::create_dir_all(dir.join("fw")).unwrap();
    let out = run(&dir, Some(&port), &[]);
    assert_error(
        &out,
        BUNDLE,
        &["no firmware bundle", "--firmware-dir"],
        "no bundle",
    );
    assert_untouched(board, "bundle errors");
}

#[test]
fn station_and_output_errors() {
    let tmp = tempfile::tempdir().unwrap();
    bundle(tmp.path());
    let board = quiet_board();
    let port = board.path().to_str().unwrap().to_string();

    let out = run(tmp.path(), Some(&port), &["--port", &port]);
    assert_error(
        &out,
        USAGE,
        &["is given twice", "each board's port once"],
        "the same port twice",
    );
    let out = run(tmp.path(), Some(&port), &["--baud", "fast"]);
    assert_error(&out, USAGE, &["'fast'", "--baud", "see --help"], "bad baud");
    let out = run(tmp.path(), Some(&port), &["--speed", "1"]);
    assert_error(&out, USAGE, &["'--speed'", "see --help"], "unknown option");

    // Output files that cannot be written: exit 1, and the log is checked before any board.
    let out = run(
        tmp.path(),
        Some(&port),
        &["--report-append", tmp.path().to_str().unwrap()],
    );
    assert_error(
        &out,
        1,
        &["cannot open --report-append", "writable file"],
        "log is a folder",
    );
    let missing = tmp.path().join("no/such/dir/report.json");
    let out = run(
        tmp.path(),
        None,
        &["--dry-run", "--report", missing.to_str().unwrap()],
    );
    assert_error(
        &out,
        1,
        &["cannot write the report", "writable path"],
        "report in a missing folder",
    );
    let out = run(
        tmp.path(),
        None,
        &["--merge-out", missing.to_str().unwrap()],
    );
    assert_error(
        &out,
        1,
        &["cannot write the merged image"],
        "merged image in a missing folder",
    );
    assert_untouched(board, "station and output errors");
}
