//! Progress of the write, chunk by chunk as espflash reports it: a bar per board on a
//! terminal, else one line per region and per 10 %; and which regions were already on the
//! board.

use espflash::target::ProgressCallbacks;
use indicatif::ProgressBar;

use crate::plan::Plan;

use super::chunk::Chunk;
use super::console::Console;

/// Progress of the write: a bar per board on a terminal, else one line per region and per
/// 10 %. Tracks which regions were already on the board.
pub(super) struct Progress<'a> {
    console: &'a Console,
    /// Label, offset and length of each region.
    regions: Vec<(&'static str, u32, usize)>,
    chunks: &'a [Chunk],
    /// The chunk being written.
    index: usize,
    /// Blocks in the current chunk.
    blocks: usize,
    /// Bytes of the current region in finished chunks.
    region_done: usize,
    /// Chunks of the current region skipped so far.
    region_chunks_skipped: usize,
    announced: bool,
    last_decile: usize,
    bar: Option<ProgressBar>,
    /// Bytes of the plan in finished chunks.
    plan_done: u64,
    verify: bool,
    /// Per finished region, whether every chunk was skipped.
    pub(super) region_skipped: Vec<bool>,
}

impl<'a> Progress<'a> {
    /// Progress over `chunks` of `plan`, shown on `console`; `verify` is whether each region
    /// is verified.
    pub(super) fn new(
        plan: &Plan,
        chunks: &'a [Chunk],
        console: &'a Console,
        verify: bool,
    ) -> Progress<'a> {
        let total: usize = plan.regions.iter().map(|r| r.bytes.len()).sum();
        Progress {
            console,
            regions: plan
                .regions
                .iter()
                .map(|r| (r.label, r.offset, r.bytes.len()))
                .collect(),
            chunks,
            index: 0,
            blocks: 1,
            region_done: 0,
            region_chunks_skipped: 0,
            announced: false,
            last_decile: 0,
            bar: console.bar(total as u64),
            plan_done: 0,
            verify,
            region_skipped: Vec::new(),
        }
    }

    fn chunk(&self) -> Option<Chunk> {
        self.chunks.get(self.index).copied()
    }

    /// The label of the region being written.
    pub(super) fn current_label(&self) -> &'static str {
        self.chunk().map_or("?", |c| self.regions[c.region].0)
    }

    fn announce(&mut self) {
        if self.announced {
            return;
        }
        self.announced = true;
        let Some(c) = self.chunk() else { return };
        let (label, offset, len) = self.regions[c.region];
        match &self.bar {
            Some(bar) => bar.set_message(format!("{label} at {offset:#x}")),
            None => self
                .console
                .say(&format!("writing {label} at {offset:#x} ({len} bytes)")),
        }
    }

    /// Removes the bar.
    pub(super) fn clear(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}

impl ProgressCallbacks for Progress<'_> {
    fn init(&mut self, _addr: u32, total: usize) {
        self.blocks = total.max(1);
        self.announce();
    }

    fn update(&mut self, current: usize) {
        let Some(c) = self.chunk() else { return };
        let part = c.len * current.min(self.blocks) / self.blocks;
        match &self.bar {
            Some(bar) => bar.set_position(self.plan_done + part as u64),
            None => {
                let region_len = self.regions[c.region].2.max(1);
                let decile = (self.region_done + part) * 10 / region_len;
                if decile > self.last_decile && decile < 10 {
                    self.last_decile = decile;
                    self.console
                        .say(&format!("  {} {}%", self.current_label(), decile * 10));
                }
            }
        }
    }

    fn verifying(&mut self) {}

    fn finish(&mut self, skipped: bool) {
        let Some(c) = self.chunk() else { return };
        if !skipped {
            self.announce();
        }
        self.region_done += c.len;
        self.plan_done += c.len as u64;
        self.region_chunks_skipped += usize::from(skipped);
        if let Some(bar) = &self.bar {
            bar.set_position(self.plan_done);
        }
        let last_of_region = self.chunks.get(self.index + 1).map(|n| n.region) != Some(c.region);
        if last_of_region {
            let label = self.regions[c.region].0;
            let count = self.chunks.iter().filter(|x| x.region == c.region).count();
            let all_skipped = self.region_chunks_skipped == count;
            let line = if all_skipped {
                format!("{label}: already on the board (MD5 matches), skipped")
            } else {
                let done = if self.verify {
                    "written and verified"
                } else {
                    "written"
                };
                match self.region_chunks_skipped {
                    0 => format!("{label}: {done}"),
                    n => format!("{label}: {done} ({n} of {count} chunks already in place)"),
                }
            };
            self.console.say(&line);
            self.region_skipped.push(all_skipped);
            self.region_done = 0;
            self.region_chunks_skipped = 0;
            self.last_decile = 0;
            self.announced = false;
        }
        self.index += 1;
    }
}
