//! Erasing what the plan says before the regions are written (espflash's `erase_flash` and
//! `erase_region`), and checking afterwards that each erased part reads back as the plan
//! leaves it: 0xFF, except where a region was written over it.

use crate::error::DeviceError;
use crate::plan::{Erase, Plan};

use super::failure::{self, Failure};
use super::session::{Session, md5_value};

impl Session<'_> {
    /// Erases the plan's erases, in order. Every attempt erases again, so that what a failed
    /// attempt wrote into an erased part cannot survive.
    pub(super) fn erase(&mut self, plan: &Plan) -> Result<(), Failure> {
        for e in &plan.erases {
            match e {
                Erase::Chip => {
                    self.opts.console.say("erasing the whole flash");
                    self.flasher.erase_flash()
                }
                Erase::Partition {
                    label,
                    offset,
                    size,
                } => {
                    self.opts
                        .console
                        .say(&format!("erasing {label} at {offset:#x} ({size:#x} bytes)"));
                    self.flasher.erase_region(*offset, *size)
                }
            }
            .map_err(failure::line(self.port, "erasing"))?;
        }
        Ok(())
    }

    /// Checks by MD5 that each erased part of the plan's flash holds what the plan leaves
    /// there (where the loader can be asked for MD5s, as [`Session::verify`]).
    pub(super) fn verify_erased(&mut self, plan: &Plan) -> Result<(), Failure> {
        if plan.erases.is_empty()
            || !self.opts.use_stub()
            || !self.opts.verify
            || self.flasher.secure_download_mode()
        {
            return Ok(());
        }
        let expected = plan.merged();
        for e in &plan.erases {
            let (offset, size) = e.range(plan.flash_size.bytes());
            let found = self.board_md5(offset, size, "checking the erased parts")?;
            let want = &expected[offset as usize..(offset + size) as usize];
            if found != md5_value(want) {
                return Err(Failure::Verify(DeviceError::Verify(format!(
                    "{} at {offset:#x} does not read back as erased and written",
                    e.label()
                ))));
            }
        }
        Ok(())
    }
}
