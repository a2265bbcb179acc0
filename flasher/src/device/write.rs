//! Writing the plan. Through the stub, each region is one compressed stream: before it, the
//! MD5 of its first sector, and only when that matches the region's (is it there already? how
//! much of it?); then its blocks back to back; after the last region, one MD5 of each. A block the board refuses is sent again at once; a stream that
//! breaks is taken up again at the last sector the board is known to hold, checked by one MD5.
//! Through the ROM (Secure Download Mode, `--before no-reset-no-sync`), espflash writes the
//! regions uncompressed.

use std::sync::Arc;
use std::time::Duration;

use espflash::command::{Command, CommandType};
use espflash::image_format::Segment;

use crate::error::DeviceError;
use crate::plan::{Plan, Region};

use super::failure::{self, Failure, describe};
use super::options::Contact;
use super::progress::{Placed, Progress, RomProgress};
use super::session::{Session, md5_value};
use super::stream::{BLOCK, Stream};

/// Flash sector: the unit the stub erases, so the unit a stream can be taken up again at.
const SECTOR: usize = 0x1000;
/// Times one block is sent again after the board refused it, before the stream counts as
/// broken.
const RESENDS: u32 = 3;
/// Blocks sent again and streams taken up again in one attempt before the line counts as bad
/// at its rate (the attempt then fails and the next one may step the rate down).
pub(super) const RECOVERIES: u32 = 8;

/// What writing left on the board.
#[derive(Debug, Clone)]
pub(super) struct Written {
    /// Per region of the plan, whether it was already there (nothing sent).
    pub(super) skipped: Vec<bool>,
    /// Whether anything was written.
    pub(super) wrote: bool,
}

/// Where a region's stream begins.
enum Start {
    /// The region is on the board already.
    Skip,
    /// From this many bytes in: the bytes before are on the board.
    At(usize),
}

/// A stream that broke: the error, and the region's bytes the board can have decoded by then.
struct Broken {
    error: espflash::Error,
    received: usize,
}

impl Session<'_> {
    /// Writes every region of `plan` that is not on the board already.
    pub(super) fn write(&mut self, plan: &Plan, contact: &mut Contact) -> Result<Written, Failure> {
        let mut progress = Progress::new(plan, &self.opts.console);
        let result = match self.stub {
            true => self.write_streams(plan, &mut progress, contact),
            false => self.write_through_rom(plan, &mut progress),
        };
        progress.clear();
        result?;
        Ok(Written {
            skipped: progress.skipped(),
            wrote: progress.wrote_any(),
        })
    }

    /// Checks each region's MD5 after the last was written, since a garbled command may have
    /// put data elsewhere. Nothing to do when nothing was written (every region was just found
    /// in place by its MD5), without the stub (espflash checked each region through the ROM;
    /// Secure Download Mode allows no MD5), or with `--no-verify`.
    pub(super) fn verify(&mut self, plan: &Plan, written: &Written) -> Result<(), Failure> {
        if !self.stub || !self.opts.verify || !written.wrote {
            return Ok(());
        }
        for r in &plan.regions {
            let found = self.board_md5(r.offset, r.bytes.len() as u32, "checking the regions")?;
            if found != md5_value(&r.bytes) {
                return Err(Failure::Verify(DeviceError::Verify(format!(
                    "region {} at {:#x} differs from the plan after writing",
                    r.label, r.offset
                ))));
            }
        }
        self.opts
            .console
            .say("verified: every region's MD5 matches");
        Ok(())
    }

    /// The stub path: one stream per region not on the board, then the end of flash mode.
    fn write_streams(
        &mut self,
        plan: &Plan,
        progress: &mut Progress,
        contact: &mut Contact,
    ) -> Result<(), Failure> {
        contact.received.resize(plan.regions.len(), 0);
        for (index, region) in plan.regions.iter().enumerate() {
            let from = match self.start(region, contact.received[index])? {
                Start::Skip => {
                    progress.finish(index, Placed::Skipped);
                    continue;
                }
                Start::At(from) => from,
            };
            self.stream_region(index, region, from, progress, contact)?;
            progress.finish(index, Placed::Written { from });
        }
        if progress.wrote_any() {
            self.end_flash_mode()?;
        }
        Ok(())
    }

    /// Where region's stream begins: where an earlier attempt left it (`received` bytes in,
    /// checked by one MD5); from the start if its first sector differs (one MD5 of 4 KiB: an
    /// erased board, other firmware); nowhere if the whole region's MD5 matches; else after
    /// the longest prefix in place.
    fn start(&mut self, region: &Region, received: usize) -> Result<Start, Failure> {
        let len = region.bytes.len();
        let hint = resume_point(region, received);
        if hint > 0 && hint < len && self.prefix_matches(region, hint)? {
            return Ok(Start::At(hint));
        }
        if !self.opts.skip && hint < len {
            return Ok(Start::At(0));
        }
        if len > SECTOR && !self.prefix_matches(region, SECTOR)? {
            return Ok(Start::At(0));
        }
        if self.prefix_matches(region, len)? {
            return Ok(Start::Skip);
        }
        Ok(Start::At(self.longest_prefix(region, len)?))
    }

    /// Writes `region` from `from` bytes in, taking a broken stream up again where the board
    /// holds it, as long as the attempt's recoveries last.
    fn stream_region(
        &mut self,
        index: usize,
        region: &Region,
        mut from: usize,
        progress: &mut Progress,
        contact: &mut Contact,
    ) -> Result<(), Failure> {
        loop {
            let stream = match from {
                0 => self.opts.streams.get(&region.bytes),
                _ => Arc::new(Stream::new(&region.bytes[from..])),
            };
            progress.start(index, from);
            let broken = match self.send_stream(index, region, from, &stream, progress, contact) {
                Ok(()) => return Ok(()),
                Err(broken) => broken,
            };
            let label = progress.label(index);
            let Broken { error, received } = broken;
            self.spend_recovery(contact, "writing", &error)?;
            // A board that cannot say what it holds is lost to the write that broke.
            from = match self.take_up(region, received) {
                Ok(from) => from,
                Err(_) => return Err(failure::line(self.port, "writing")(error)),
            };
            contact.line.resumed_streams += 1;
            self.opts.console.say(&format!(
                "the stream of {label} broke ({}); taken up again at byte {from} of {}",
                describe(&error),
                region.bytes.len()
            ));
        }
    }

    /// Sends `stream` (region's bytes from `from` on): FLASH_DEFL_BEGIN, then every block,
    /// each sent again if the board refuses it.
    fn send_stream(
        &mut self,
        index: usize,
        region: &Region,
        from: usize,
        stream: &Stream,
        progress: &mut Progress,
        contact: &mut Contact,
    ) -> Result<(), Broken> {
        let size = (region.bytes.len() - from) as u32;
        let begin = Command::FlashDeflBegin {
            size,
            blocks: stream.block_count() as u32,
            block_size: BLOCK as u32,
            offset: region.offset + from as u32,
            supports_encryption: false,
        };
        let erase = size.next_multiple_of(SECTOR as u32);
        self.command(begin, CommandType::FlashDeflBegin.timeout_for_size(erase))
            .map_err(|error| Broken {
                error,
                received: from,
            })?;
        for (seq, block) in stream.blocks().enumerate() {
            let decoded = stream.decoded_after(seq + 1) - stream.decoded_after(seq);
            self.send_block(seq as u32, block, decoded as u32, contact)
                .map_err(|error| Broken {
                    error,
                    received: from + stream.decoded_after(seq),
                })?;
            let done = from + stream.decoded_after(seq + 1);
            contact.received[index] = done;
            progress.advance(index, done);
        }
        Ok(())
    }

    /// Sends one FLASH_DEFL_DATA block (`decoded` bytes once inflated); a block the board
    /// refuses (a checksum or length that does not match: the stub drops such a block) is sent
    /// again, up to [`RESENDS`] times.
    fn send_block(
        &mut self,
        sequence: u32,
        data: &[u8],
        decoded: u32,
        contact: &mut Contact,
    ) -> Result<(), espflash::Error> {
        let timeout = block_timeout(decoded);
        let mut resends = 0;
        loop {
            let block = Command::FlashDeflData {
                data,
                pad_to: 0,
                pad_byte: 0xFF,
                sequence,
            };
            match self.command(block, timeout) {
                Ok(()) => return Ok(()),
                Err(e) if refused(&e) && resends < RESENDS => {
                    if self.spend_recovery(contact, "writing", &e).is_err() {
                        return Err(e);
                    }
                    resends += 1;
                    contact.line.resent_blocks += 1;
                    self.opts.console.say(&format!(
                        "block {sequence} was refused by the board ({}); sent again",
                        describe(&e)
                    ));
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Counts one recovery from `error`; once the attempt has used [`RECOVERIES`], the line is
    /// taken as bad at this rate.
    fn spend_recovery(
        &self,
        contact: &mut Contact,
        doing: &'static str,
        error: &espflash::Error,
    ) -> Result<(), Failure> {
        contact.recoveries += 1;
        if contact.recoveries <= RECOVERIES {
            return Ok(());
        }
        Err(Failure::Line(DeviceError::Line {
            port: self.port.to_string(),
            doing,
            reason: format!(
                "{} line errors in one attempt, the last: {}",
                contact.recoveries,
                describe(error)
            ),
        }))
    }

    /// Where to take a broken stream of `region` up again: the last sector the board can have
    /// received (`received` bytes in), if its MD5 says the bytes before are there, else the
    /// longest prefix that is.
    fn take_up(&mut self, region: &Region, received: usize) -> Result<usize, Failure> {
        let point = resume_point(region, received);
        if point == 0 || self.prefix_matches(region, point)? {
            return Ok(point);
        }
        if point <= SECTOR || !self.prefix_matches(region, SECTOR)? {
            return Ok(0);
        }
        self.longest_prefix(region, point)
    }

    /// The longest sector-aligned prefix of `region` shorter than `upper` bytes that is on the
    /// board (`upper` bytes are known not to be, the first sector is): a binary search by MD5
    /// of prefixes.
    fn longest_prefix(&mut self, region: &Region, upper: usize) -> Result<usize, Failure> {
        if !(region.offset as usize).is_multiple_of(SECTOR) || upper <= SECTOR {
            return Ok(0);
        }
        let (mut lo, mut hi) = (1, upper.div_ceil(SECTOR));
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            match self.prefix_matches(region, mid * SECTOR)? {
                true => lo = mid,
                false => hi = mid,
            }
        }
        Ok(lo * SECTOR)
    }

    /// Whether the first `len` bytes of `region` are on the board.
    fn prefix_matches(&mut self, region: &Region, len: usize) -> Result<bool, Failure> {
        let found = self.board_md5(region.offset, len as u32, "checking what is on the board")?;
        Ok(found == md5_value(&region.bytes[..len]))
    }

    /// Leaves flash mode as espflash does after its writes, without a reboot.
    fn end_flash_mode(&mut self) -> Result<(), Failure> {
        let end = Command::FlashDeflEnd { reboot: false };
        self.command(end, CommandType::FlashDeflEnd.timeout())
            .map_err(failure::line(self.port, "writing"))
    }

    /// Sends `command` and waits up to `timeout` for its reply.
    fn command(&mut self, command: Command<'_>, timeout: Duration) -> Result<(), espflash::Error> {
        self.flasher
            .connection()
            .with_timeout(timeout, |c| c.command(command).map(drop))
    }

    /// The ROM path: espflash writes each region as one segment (uncompressed; it checks each
    /// by MD5 before and after where the ROM allows MD5, which Secure Download Mode does not).
    fn write_through_rom(&mut self, plan: &Plan, progress: &mut Progress) -> Result<(), Failure> {
        let segments: Vec<Segment> = plan
            .regions
            .iter()
            .map(|r| Segment::new(r.offset, &r.bytes))
            .collect();
        let mut rom = RomProgress::new(progress);
        let written = self.flasher.write_bins_to_flash(&segments, &mut rom);
        let index = rom.index.min(plan.regions.len().saturating_sub(1));
        written.map_err(|e| match e {
            espflash::Error::VerifyFailed => Failure::Verify(DeviceError::Verify(format!(
                "region {}",
                plan.regions[index].label
            ))),
            e => failure::line(self.port, "writing")(e),
        })
    }
}

/// The sector-aligned point at or before `received` bytes into `region` where a stream can
/// begin (0 when the region does not start on a sector: its first sector is shared).
fn resume_point(region: &Region, received: usize) -> usize {
    if !(region.offset as usize).is_multiple_of(SECTOR) {
        return 0;
    }
    if received >= region.bytes.len() {
        return region.bytes.len();
    }
    received - received % SECTOR
}

/// How long the reply to a block that inflates to `decoded` bytes may take, as esptool reckons
/// it: 40 s per MB of the block and of the erasing ahead it may trigger, at least 3 s. (espflash
/// waits at least 10 s, which a lost reply would cost in full.)
fn block_timeout(decoded: u32) -> Duration {
    const PER_MB: f64 = 40.0;
    let erase_ahead = (u64::from(decoded).div_ceil(0x8000) + 1) * 0x1_0000;
    let seconds = PER_MB * (u64::from(decoded) + erase_ahead) as f64 / 1e6;
    Duration::from_secs_f64(seconds.max(3.0))
}

/// Whether the board refused a block without taking it (so that it can be sent again): a
/// checksum or a length that does not match, a packet it could not parse.
fn refused(e: &espflash::Error) -> bool {
    let text = describe(e);
    matches!(e, espflash::Error::RomError(_))
        && [
            "checksum",
            "invalid CRC",
            "Invalid message",
            "Bad data length",
        ]
        .iter()
        .any(|m| text.contains(m))
}
