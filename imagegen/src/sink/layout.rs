//! OCI image layout directories (`oci-layout`, `index.json`, `blobs/sha256/...`).

use std::fs;
use std::path::Path;

use crate::error::{Error, Result};
use crate::image::{Blob, ImageIndex};

/// Contents of the `oci-layout` file.
pub const OCI_LAYOUT: &[u8] = br#"{"imageLayoutVersion":"1.0.0"}"#;

/// Writes `image` as an OCI layout at `dir`, replacing what was there only once the new layout
/// is complete.
pub fn write(image: &ImageIndex, dir: &Path) -> Result<()> {
    write_parts(image.blobs().into_values(), &image.layout_index(), dir)
}

/// Writes a layout of `blobs` whose `index.json` is `index_json`, replacing what was at `dir`
/// only once the new layout is complete.
pub fn write_parts<'a>(
    blobs: impl IntoIterator<Item = &'a Blob>,
    index_json: &[u8],
    dir: &Path,
) -> Result<()> {
    let tmp = super::temp_sibling(dir)?;
    let result = write_into(blobs, index_json, &tmp).and_then(|()| replace(&tmp, dir));
    if result.is_err() {
        let _ = fs::remove_dir_all(&tmp);
    }
    result
}

fn write_into<'a>(
    blobs: impl IntoIterator<Item = &'a Blob>,
    index_json: &[u8],
    dir: &Path,
) -> Result<()> {
    let blob_dir = dir.join("blobs/sha256");
    fs::create_dir_all(&blob_dir).map_err(|e| Error::write(&blob_dir, e))?;
    for blob in blobs {
        let path = blob_dir.join(blob.hex());
        fs::write(&path, blob.bytes()).map_err(|e| Error::write(&path, e))?;
    }
    let path = dir.join("oci-layout");
    fs::write(&path, OCI_LAYOUT).map_err(|e| Error::write(&path, e))?;
    let path = dir.join("index.json");
    fs::write(&path, index_json).map_err(|e| Error::write(&path, e))?;
    Ok(())
}

/// Moves `tmp` to `dest`, removing an older `dest` after the move succeeded.
fn replace(tmp: &Path, dest: &Path) -> Result<()> {
    if dest.exists() {
        if !dest.join("oci-layout").is_file() {
            return Err(Error::write(
                dest,
                std::io::Error::new(
                    std::io::ErrorKind::AlreadyExists,
                    "exists and is not an OCI layout; remove it or choose another --output",
                ),
            ));
        }
        let old = super::temp_sibling(dest)?.with_extension("old");
        fs::rename(dest, &old).map_err(|e| Error::write(dest, e))?;
        fs::rename(tmp, dest).map_err(|e| Error::write(dest, e))?;
        let _ = fs::remove_dir_all(&old);
        Ok(())
    } else {
        fs::rename(tmp, dest).map_err(|e| Error::write(dest, e))
    }
}
