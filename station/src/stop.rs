//! Stop requests: SIGTERM and SIGINT (`docker stop`, Ctrl-C) counted, so that the first lets
//! the boards in progress finish and the second stops at once.

use std::sync::atomic::{AtomicUsize, Ordering};

/// The signals' count, set from the handler (an atomic store is all a handler may do).
static SIGNALS: AtomicUsize = AtomicUsize::new(0);

extern "C" fn on_signal(_: libc::c_int) {
    SIGNALS.fetch_add(1, Ordering::SeqCst);
}

/// How many times the station was asked to stop.
#[derive(Debug, Clone, Copy)]
pub struct Stop {
    count: &'static AtomicUsize,
}

impl Stop {
    /// Stop requests from SIGTERM and SIGINT: installs the handlers (process-wide).
    pub fn signals() -> Stop {
        let handler = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
        // SAFETY: the handler only increments an atomic, which is async-signal-safe.
        unsafe {
            libc::signal(libc::SIGTERM, handler);
            libc::signal(libc::SIGINT, handler);
        }
        Stop { count: &SIGNALS }
    }

    /// Stop requests made with [`Stop::request`] only (tests, embedding).
    pub fn manual() -> Stop {
        Stop {
            count: Box::leak(Box::new(AtomicUsize::new(0))),
        }
    }

    /// Asks the station to stop (a second call: at once).
    pub fn request(&self) {
        self.count.fetch_add(1, Ordering::SeqCst);
    }

    /// The requests so far: 0 runs on, 1 finishes the boards in progress, 2 or more stops now.
    pub fn requests(&self) -> usize {
        self.count.load(Ordering::SeqCst)
    }
}
