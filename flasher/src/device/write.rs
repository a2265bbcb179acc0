//! Writing the plan in one pass (compressed, chunk by chunk, skipping chunks whose MD5 already
//! matches, verifying each written chunk by MD5), then checking every region's MD5 once more.

use espflash::image_format::Segment;
use md5::{Digest, Md5};

use crate::error::DeviceError;
use crate::plan::Plan;

use super::chunk::{Chunk, chunks};
use super::failure::{self, Failure};
use super::progress::Progress;
use super::session::Session;

impl Session<'_> {
    /// Writes every region of `plan`, chunk by chunk; returns, per region, whether it was
    /// already on the board (every chunk skipped).
    pub(super) fn write(&mut self, plan: &Plan) -> Result<Vec<bool>, Failure> {
        let pieces = chunks(plan);
        let segments = segments(plan, &pieces);
        // Secure Download Mode allows no MD5: espflash neither verifies nor skips there.
        let verify = self.opts.verify && !self.flasher.secure_download_mode();
        let mut progress = Progress::new(plan, &pieces, &self.opts.console, verify);
        let written = self.flasher.write_bins_to_flash(&segments, &mut progress);
        progress.clear();
        written.map_err(|e| match e {
            espflash::Error::VerifyFailed => Failure::Verify(DeviceError::Verify(format!(
                "region {}",
                progress.current_label()
            ))),
            e => failure::line(self.port, "writing")(e),
        })?;
        Ok(progress.region_skipped)
    }

    /// Checks each whole region's MD5 once more, since a garbled command may have put data
    /// elsewhere after its chunk was verified. The ROM leaves the loader after writing, and
    /// Secure Download Mode allows no MD5: without the stub the per-chunk checks are all there
    /// is.
    pub(super) fn verify(&mut self, plan: &Plan) -> Result<(), Failure> {
        if !self.stub || !self.opts.verify {
            return Ok(());
        }
        for r in &plan.regions {
            let found = self
                .flasher
                .checksum_md5(r.offset, r.bytes.len() as u32)
                .map_err(failure::line(self.port, "checking the regions"))?;
            if found != md5_value(&r.bytes) {
                return Err(Failure::Verify(DeviceError::Verify(format!(
                    "region {} at {:#x} changed after it was written",
                    r.label, r.offset
                ))));
            }
        }
        Ok(())
    }
}

/// The chunks as espflash writes them: each its flash address and bytes.
fn segments<'p>(plan: &'p Plan, pieces: &[Chunk]) -> Vec<Segment<'p>> {
    pieces
        .iter()
        .map(|c| {
            let r = &plan.regions[c.region];
            Segment::new(
                r.offset + c.start as u32,
                &r.bytes[c.start..c.start + c.len],
            )
        })
        .collect()
}

/// The MD5 of `bytes` as espflash returns digests.
fn md5_value(bytes: &[u8]) -> u128 {
    u128::from_be_bytes(Md5::digest(bytes).into())
}
