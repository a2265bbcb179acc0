//! The flash outside the plan (`--check-untouched`): each gap between the planned regions is
//! hashed by the stub's SPI_FLASH_MD5 before anything is written and again after the final
//! check, so that a garbled command that wrote or erased elsewhere fails the board. A gap whose
//! digest differs after writing is hashed a second time before it counts as changed: a reply
//! garbled on its way back must not fail a good board.

use md5::{Digest, Md5};

use crate::error::DeviceError;
use crate::plan::Plan;

use super::failure::Failure;
use super::options::{Gap, Untouched};
use super::session::Session;

/// The ranges of the plan's flash that no region covers, in flash order, as (offset, length).
pub fn gaps(plan: &Plan) -> Vec<(u32, u32)> {
    let flash_len = plan.flash_size.bytes();
    // Erased parts are no gaps: they are checked against the plan after writing (erase.rs).
    let erased = plan.erases.iter().map(|e| {
        let (offset, size) = e.range(flash_len);
        (u64::from(offset), u64::from(offset) + u64::from(size))
    });
    let mut regions: Vec<(u64, u64)> = plan
        .regions
        .iter()
        .map(|r| (u64::from(r.offset), r.end()))
        .chain(erased)
        .collect();
    regions.sort_unstable();
    let mut out = Vec::new();
    let mut at = 0;
    for (start, end) in regions.into_iter().chain([(flash_len, flash_len)]) {
        let start = start.min(flash_len);
        if start > at {
            out.push((at as u32, (start - at) as u32));
        }
        at = at.max(end);
    }
    out
}

/// The MD5 of `len` bytes of 0xFF, as espflash returns digests.
fn erased_md5(len: u32) -> u128 {
    let sector = [0xFFu8; 0x1000];
    let mut md5 = Md5::new();
    let mut left = len as usize;
    while left > 0 {
        let n = left.min(sector.len());
        md5.update(&sector[..n]);
        left -= n;
    }
    u128::from_be_bytes(md5.finalize().into())
}

impl Session<'_> {
    /// The gaps of `plan` with the MD5 each must keep: read from the board before anything is
    /// written, or those of erased flash.
    pub(super) fn untouched_before(
        &mut self,
        plan: &Plan,
        expect: Untouched,
    ) -> Result<Vec<Gap>, Failure> {
        self.can_hash()?;
        gaps(plan)
            .into_iter()
            .map(|(offset, len)| {
                let md5 = match expect {
                    Untouched::Erased => erased_md5(len),
                    Untouched::Unchanged => self.gap_md5(offset, len)?,
                };
                Ok(Gap { offset, len, md5 })
            })
            .collect()
    }

    /// Hashes every gap again; any that changed fails the board, naming them all.
    pub(super) fn check_untouched(&mut self, gaps: &[Gap]) -> Result<(), Failure> {
        let mut changed = Vec::new();
        for gap in gaps {
            if self.gap_changed(gap)? {
                changed.push((gap.offset, gap.len));
            }
        }
        if changed.is_empty() {
            return Ok(());
        }
        Err(Failure::Fatal(DeviceError::Untouched { changed }))
    }

    /// Whether `gap` no longer has its MD5: a digest that differs is read a second time, so a
    /// reply garbled on its way back does not fail a good board; only two differing reads
    /// say the gap changed.
    fn gap_changed(&mut self, gap: &Gap) -> Result<bool, Failure> {
        for _ in 0..2 {
            if self.gap_md5(gap.offset, gap.len)? == gap.md5 {
                return Ok(false);
            }
        }
        Ok(true)
    }

    fn gap_md5(&mut self, offset: u32, len: u32) -> Result<u128, Failure> {
        self.board_md5(offset, len, "hashing the flash outside the plan")
    }

    /// The flash outside the plan can be hashed only by the stub outside Secure Download Mode.
    fn can_hash(&self) -> Result<(), Failure> {
        let why = if !self.opts.use_stub() {
            "--before no-reset-no-sync runs no stub"
        } else if self.flasher.secure_download_mode() {
            "Secure Download Mode allows no MD5"
        } else {
            return Ok(());
        };
        Err(Failure::Fatal(DeviceError::CannotCheckUntouched(why)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn erased_digest_is_that_of_0xff_bytes() {
        let bytes = vec![0xFF; 0x2345];
        assert_eq!(
            erased_md5(0x2345),
            u128::from_be_bytes(Md5::digest(&bytes).into())
        );
        assert_eq!(erased_md5(0), u128::from_be_bytes(Md5::digest([]).into()));
    }
}
