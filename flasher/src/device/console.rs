//! Where a board's progress goes: lines on stderr and, on a terminal, a progress bar; and its
//! phases, to an observer when there is one.

use std::io::IsTerminal;
use std::sync::Arc;

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

use super::phase::{Observer, Phase, PhaseObserver};

/// Where a board's progress goes: lines on stderr (prefixed with the port when several boards
/// are written at once) and, on a terminal, a progress bar per board; the board's phases go
/// to an observer, when one is set.
#[derive(Debug, Clone)]
pub struct Console {
    prefix: String,
    bars: Option<MultiProgress>,
    quiet: bool,
    observer: Option<Observer>,
}

impl Console {
    /// Output for the only board of a run: no prefix, a bar when stderr is a terminal.
    pub fn single() -> Console {
        Console {
            prefix: String::new(),
            bars: std::io::stderr().is_terminal().then(MultiProgress::new),
            quiet: false,
            observer: None,
        }
    }

    /// Output for one of several boards: lines start with `[name]`; bars go to `bars`.
    pub fn shared(name: &str, bars: Option<MultiProgress>) -> Console {
        Console {
            prefix: format!("[{name}] "),
            bars,
            quiet: false,
            observer: None,
        }
    }

    /// Output for a board whose progress only `observer` sees: no lines, no bar.
    pub fn observed(observer: Arc<dyn PhaseObserver>) -> Console {
        Console {
            prefix: String::new(),
            bars: None,
            quiet: true,
            observer: Some(Observer(observer)),
        }
    }

    /// Tells the observer, if any, that the board entered `phase`.
    pub(super) fn phase(&self, phase: Phase) {
        if let Some(observer) = &self.observer {
            observer.0.phase(phase);
        }
    }

    /// Tells the observer, if any, what the board is.
    pub(super) fn identified(&self, chip: &str, mac: &str) {
        if let Some(observer) = &self.observer {
            observer.0.identified(chip, mac);
        }
    }

    /// Whether progress bars are drawn.
    pub fn has_bars(&self) -> bool {
        self.bars.is_some()
    }

    /// Prints one line.
    pub fn say(&self, line: &str) {
        if self.quiet {
            return;
        }
        match &self.bars {
            Some(bars) => {
                let _ = bars.println(format!("{}{line}", self.prefix));
            }
            None => eprintln!("{}{line}", self.prefix),
        }
    }

    /// A new bar of `len` steps, when bars are drawn.
    pub(super) fn bar(&self, len: u64) -> Option<ProgressBar> {
        let bars = self.bars.as_ref()?;
        let bar = bars.add(ProgressBar::new(len.max(1)));
        bar.set_style(
            ProgressStyle::with_template("{prefix}{msg:32} [{bar:30}] {percent:>3}%")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        bar.set_prefix(self.prefix.clone());
        Some(bar)
    }
}
