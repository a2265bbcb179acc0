//! Helpers shared by the integration tests.

#![allow(dead_code)] // each test binary uses a different subset

use std::path::{Path, PathBuf};
use std::process::Command;

/// Firmware-like bytes: `len` bytes, compressible (text-like) or not,
/// never starting with the image magic 0xE9, length a multiple of 4.
pub fn payload(seed: u64, len: usize, compressible: bool) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let words: [&[u8]; 8] = [
        b"esp_err_t ",
        b"nvs_flash_init",
        b"0x00000000 ",
        b"app_main ",
        b"\0\0\0\0",
        b"wifi_init ",
        b"\xff\xff\xff\xff",
        b"partition ",
    ];
    let mut data = Vec::with_capacity(len + 16);
    while data.len() < len {
        let r = next();
        if compressible {
            data.extend_from_slice(words[(r % 8) as usize]);
        } else {
            data.extend_from_slice(&r.to_le_bytes());
        }
    }
    data.truncate(len - len % 4);
    data[0] = 0x42;
    data
}

/// The workspace root, two levels above this package.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("package lives two levels below the workspace root")
        .to_path_buf()
}

/// The esptool 5.x executable: `$ESPTOOL`, else the workspace venv, else
/// `esptool` on PATH. Panics with instructions if none works.
pub fn esptool() -> PathBuf {
    let candidates = std::env::var_os("ESPTOOL")
        .map(PathBuf::from)
        .into_iter()
        .chain([
            workspace_root().join(".venv/bin/esptool"),
            PathBuf::from("esptool"),
        ]);
    for candidate in candidates {
        if let Ok(out) = Command::new(&candidate).arg("version").output() {
            let text = String::from_utf8_lossy(&out.stdout);
            if out.status.success() && text.lines().any(|l| l.trim().starts_with("5.")) {
                return candidate;
            }
        }
    }
    panic!(
        "esptool 5.x not found: set ESPTOOL, or install it with \
         `python3 -m venv .venv && .venv/bin/pip install 'esptool>=5,<6'` in the workspace root"
    );
}

/// Runs esptool against `port` with no-reset on both ends; returns
/// (success, stdout + stderr).
pub fn run_esptool(port: &Path, chip: &str, args: &[&str]) -> (bool, String) {
    let out = Command::new(esptool())
        .args(["--chip", chip, "--port"])
        .arg(port)
        .args(["--before", "no-reset", "--after", "no-reset"])
        .args(args)
        .output()
        .expect("esptool runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// Expected flash: 0xFF everywhere except the given parts.
pub fn expected_flash(size: usize, parts: &[(u32, &[u8])]) -> Vec<u8> {
    let mut flash = vec![0xFF; size];
    for (offset, data) in parts {
        flash[*offset as usize..*offset as usize + data.len()].copy_from_slice(data);
    }
    flash
}

/// Index of the first differing byte, for readable assertion messages.
pub fn first_difference(a: &[u8], b: &[u8]) -> Option<usize> {
    a.iter()
        .zip(b)
        .position(|(x, y)| x != y)
        .or((a.len() != b.len()).then(|| a.len().min(b.len())))
}

/// The board each chip is tested on: a flash size, revision and crystal of a
/// real part, several of them other than the simulator's defaults so that
/// the clients' readings are checked.
pub fn test_board(chip: esp_sim::Chip) -> esp_sim::BoardConfig {
    use esp_sim::Chip::*;
    let (flash, revision, crystal) = match chip {
        Esp32 => ("4MB", "v3.1", None),
        Esp32s2 => ("4MB", "v1.0", None),
        Esp32s3 => ("16MB", "v0.2", None),
        Esp32c2 => ("2MB", "v1.1", None),
        Esp32c3 => ("4MB", "v0.4", None),
        Esp32c5 => ("8MB", "v1.0", Some("40MHz")),
        Esp32c6 => ("8MB", "v0.1", None),
        Esp32c61 => ("4MB", "v1.0", None),
        Esp32h2 => ("2MB", "v0.1", None),
        Esp32p4 => ("16MB", "v3.1", None),
    };
    let mut config = esp_sim::BoardConfig::new(chip)
        .flash_size(flash.parse().unwrap())
        .revision(revision.parse().unwrap());
    if let Some(crystal) = crystal {
        config = config.crystal(crystal.parse().unwrap());
    }
    config
}

/// An Espressif tool installed with esptool 5.x (`espefuse`, `espsecure`): next to esptool.
/// Panics with instructions if it is missing.
pub fn esp_tool(name: &str) -> PathBuf {
    let esptool = esptool();
    let tool = if esptool.components().count() > 1 {
        esptool.with_file_name(name)
    } else {
        PathBuf::from(name)
    };
    assert!(
        Command::new(&tool).arg("--help").output().is_ok(),
        "{name} not found next to esptool ({}): install esptool 5.x, e.g. \
         `.venv/bin/pip install 'esptool>=5,<6'` in the workspace root",
        esptool.display()
    );
    tool
}

/// Runs `espefuse --chip CHIP --port PORT --before no-reset --do-not-confirm ARGS`; returns
/// (success, stdout + stderr).
pub fn run_espefuse(port: &Path, chip: &str, args: &[&str]) -> (bool, String) {
    let out = Command::new(esp_tool("espefuse"))
        .args(["--chip", chip, "--port"])
        .arg(port)
        .args(["--before", "no-reset", "--do-not-confirm"])
        .args(args)
        .output()
        .expect("espefuse runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// Runs `espsecure ARGS`; panics with its output if it fails.
pub fn run_espsecure(args: &[&str]) -> String {
    let out = Command::new(esp_tool("espsecure"))
        .args(args)
        .output()
        .expect("espsecure runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "espsecure {args:?}: {text}");
    text
}
