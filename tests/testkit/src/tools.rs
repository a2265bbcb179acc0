//! External tools the tests drive. A missing tool fails the test with the way to install it:
//! tests never skip silently.

use std::path::PathBuf;
use std::process::{Command, Output};

use crate::workspace_root;

/// The path of `name`: `$<NAME>` (upper case, `-` as `_`) if set, else `.venv/bin/<name>` in
/// the workspace, else `PATH`. Panics with the install hint when absent.
pub fn require(name: &str) -> PathBuf {
    let var = name.to_ascii_uppercase().replace('-', "_");
    if let Some(p) = std::env::var_os(&var) {
        return PathBuf::from(p);
    }
    let venv = workspace_root().join(".venv/bin").join(name);
    if venv.is_file() {
        return venv;
    }
    which::which(name).unwrap_or_else(|_| {
        panic!(
            "required tool '{name}' not found (set {var}, or run .ci/run which installs it: \
             apt packages skopeo umoci docker-registry qemu-user-static; Python venv .venv with esptool and jsonschema)"
        )
    })
}

/// The Python interpreter of the workspace venv (`$PYTHON` overrides).
pub fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("PYTHON") {
        return PathBuf::from(p);
    }
    let venv = workspace_root().join(".venv/bin/python");
    assert!(
        venv.is_file(),
        "Python venv missing at .venv: run .ci/run (it creates it with esptool and jsonschema)"
    );
    venv
}

/// Runs `cmd`, panicking with its output when it fails.
pub fn run_ok(cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Checks an OCI layout with `tests/tools/oci_check.py` (schemas, digests, sizes, diff_ids).
/// Returns the checker's output; `Err` holds it when the layout is not valid.
pub fn oci_check(layout: &std::path::Path) -> Result<String, String> {
    let out = Command::new(python())
        .arg(workspace_root().join("tests/tools/oci_check.py"))
        .arg(layout)
        .output()
        .expect("start python");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.success() {
        Ok(text)
    } else {
        Err(text)
    }
}
