//! Where a built image goes: an OCI layout directory or an archive `docker load` takes.
//! Each sink writes to a temporary path and renames it into place, so a failure leaves nothing.

pub mod archive;
pub mod layout;

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
