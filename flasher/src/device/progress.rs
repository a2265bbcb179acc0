//! Progress of the write, region by region: a bar per board on a terminal, else one line per
//! region and per 10 %; and which regions were already on the board.

use espflash::target::ProgressCallbacks;
use indicatif::ProgressBar;

use crate::plan::Plan;

use super::console::Console;
use super::phase::Phase;

/// How a region ended up on the board.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Placed {
    /// Already there (its MD5 matched): nothing sent.
    Skipped,
    /// Written from this many bytes into the region (0: all of it; more: the part before was
    /// on the board already).
    Written { from: usize },
}

/// Progress of the write: a bar per board on a terminal, else one line per region and per
/// 10 %. Tracks which regions were already on the board.
pub(super) struct Progress<'a> {
    console: &'a Console,
    /// Label, offset and length of each region.
    regions: Vec<(&'static str, u32, usize)>,
    /// Bytes of the plan before each region.
    before: Vec<u64>,
    last_decile: usize,
    bar: Option<ProgressBar>,
    /// Bytes of the whole plan, and the last percent of them reported as a phase.
    total: u64,
    percent: Option<u8>,
    /// Per region, whether it was already on the board (`None` until it is dealt with).
    placed: Vec<Option<Placed>>,
}

impl<'a> Progress<'a> {
    /// Progress over the regions of `plan`, shown on `console`.
    pub(super) fn new(plan: &Plan, console: &'a Console) -> Progress<'a> {
        let regions: Vec<_> = plan
            .regions
            .iter()
            .map(|r| (r.label, r.offset, r.bytes.len()))
            .collect();
        let before = regions
            .iter()
            .scan(0u64, |sum, r| {
                let here = *sum;
                *sum += r.2 as u64;
                Some(here)
            })
            .collect();
        let total: usize = regions.iter().map(|r| r.2).sum();
        Progress {
            console,
            placed: vec![None; regions.len()],
            regions,
            before,
            last_decile: 0,
            bar: console.bar(total as u64),
            total: total as u64,
            percent: None,
        }
    }

    /// Region `index` starts being written `from` bytes in.
    pub(super) fn start(&mut self, index: usize, from: usize) {
        let (label, offset, len) = self.regions[index];
        self.last_decile = from * 10 / len.max(1);
        let at = offset as usize + from;
        self.report(self.before[index] + from as u64);
        match &self.bar {
            Some(bar) => {
                bar.set_message(format!("{label} at {at:#x}"));
                bar.set_position(self.before[index] + from as u64);
            }
            None if from == 0 => self
                .console
                .say(&format!("writing {label} at {offset:#x} ({len} bytes)")),
            None => self.console.say(&format!(
                "writing {label} at {at:#x} ({} of {len} bytes; the {from} before are in place)",
                len - from
            )),
        }
    }

    /// `done` bytes of region `index` have been sent.
    pub(super) fn advance(&mut self, index: usize, done: usize) {
        let (label, _, len) = self.regions[index];
        self.report(self.before[index] + done.min(len) as u64);
        match &self.bar {
            Some(bar) => bar.set_position(self.before[index] + done.min(len) as u64),
            None => {
                let decile = done * 10 / len.max(1);
                if decile > self.last_decile && decile < 10 {
                    self.last_decile = decile;
                    self.console.say(&format!("  {label} {}%", decile * 10));
                }
            }
        }
    }

    /// Region `index` is on the board, as `placed` says.
    pub(super) fn finish(&mut self, index: usize, placed: Placed) {
        let (label, _, len) = self.regions[index];
        self.report(self.before[index] + len as u64);
        if let Some(bar) = &self.bar {
            bar.set_position(self.before[index] + len as u64);
        }
        let line = match placed {
            Placed::Skipped => format!("{label}: already on the board (MD5 matches), skipped"),
            Placed::Written { from: 0 } => format!("{label}: written"),
            Placed::Written { from } => {
                format!(
                    "{label}: written from byte {from} of {len} (the bytes before were in place)"
                )
            }
        };
        self.console.say(&line);
        self.placed[index] = Some(placed);
    }

    /// Reports the writing phase with the percent of the plan `done` stands for, when it moved.
    fn report(&mut self, done: u64) {
        let percent = (done * 100 / self.total.max(1)).min(100) as u8;
        if self.percent != Some(percent) {
            self.percent = Some(percent);
            self.console.phase(Phase::Writing { percent });
        }
    }

    /// The label of region `index`.
    pub(super) fn label(&self, index: usize) -> &'static str {
        self.regions[index].0
    }

    /// Per region, whether it was already on the board.
    pub(super) fn skipped(&self) -> Vec<bool> {
        self.placed
            .iter()
            .map(|p| *p == Some(Placed::Skipped))
            .collect()
    }

    /// Whether anything was written.
    pub(super) fn wrote_any(&self) -> bool {
        self.placed
            .iter()
            .any(|p| matches!(p, Some(Placed::Written { .. })))
    }

    /// Removes the bar.
    pub(super) fn clear(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}

/// Progress as espflash reports it when it writes the regions itself (through the ROM: one
/// segment per region, in order).
pub(super) struct RomProgress<'p, 'a> {
    /// Where it is shown.
    pub(super) progress: &'p mut Progress<'a>,
    /// The region being written.
    pub(super) index: usize,
    blocks: usize,
}

impl<'p, 'a> RomProgress<'p, 'a> {
    /// espflash's progress over the regions of `progress`, from the first.
    pub(super) fn new(progress: &'p mut Progress<'a>) -> Self {
        RomProgress {
            progress,
            index: 0,
            blocks: 1,
        }
    }
}

impl ProgressCallbacks for RomProgress<'_, '_> {
    fn init(&mut self, _addr: u32, total: usize) {
        self.blocks = total.max(1);
        self.progress.start(self.index, 0);
    }

    fn update(&mut self, current: usize) {
        let len = self.progress.regions[self.index].2;
        self.progress
            .advance(self.index, len * current.min(self.blocks) / self.blocks);
    }

    fn verifying(&mut self) {}

    fn finish(&mut self, skipped: bool) {
        let placed = match skipped {
            true => Placed::Skipped,
            false => Placed::Written { from: 0 },
        };
        self.progress.finish(self.index, placed);
        self.index += 1;
    }
}
