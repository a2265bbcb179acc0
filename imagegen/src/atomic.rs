//! Writing an output all at once: into a temporary sibling, renamed into place when complete,
//! so a failure leaves nothing half-written and an older output stays until the new one is whole.

use std::fs;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// A temporary sibling of `dest` (same directory, so the final rename is atomic).
pub(crate) fn temp_sibling(dest: &Path) -> Result<PathBuf> {
    let name = dest
        .file_name()
        .ok_or_else(|| Error::Usage(format!("{}: not a file or directory name", dest.display())))?;
    let parent = match dest.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if !parent.is_dir() {
        return Err(Error::write(
            dest,
            std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "parent directory does not exist",
            ),
        ));
    }
    Ok(parent.join(format!(
        ".{}.tmp-{}",
        name.to_string_lossy(),
        std::process::id()
    )))
}

/// Creates `dest` (a file or a directory) by letting `fill` create it at a temporary sibling,
/// then renaming that into place; an older `dest` is removed only after the rename succeeded.
/// On failure the temporary is removed and `dest` is untouched.
pub(crate) fn write(dest: &Path, fill: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    let tmp = temp_sibling(dest)?;
    let result = fill(&tmp).and_then(|()| replace(&tmp, dest));
    if result.is_err() {
        remove(&tmp);
    }
    result
}

/// Moves `tmp` to `dest`, moving an older directory `dest` aside first (a rename cannot replace a
/// non-empty directory) and removing it afterwards.
fn replace(tmp: &Path, dest: &Path) -> Result<()> {
    if !dest.is_dir() {
        return fs::rename(tmp, dest).map_err(|e| Error::write(dest, e));
    }
    let old = temp_sibling(dest)?.with_extension("old");
    fs::rename(dest, &old).map_err(|e| Error::write(dest, e))?;
    if let Err(e) = fs::rename(tmp, dest) {
        let _ = fs::rename(&old, dest);
        return Err(Error::write(dest, e));
    }
    remove(&old);
    Ok(())
}

/// Removes a file or directory tree, ignoring errors (it is a leftover of ours).
fn remove(path: &Path) {
    if path.is_dir() {
        let _ = fs::remove_dir_all(path);
    } else {
        let _ = fs::remove_file(path);
    }
}
