//! Real-time pacing: UART byte times and SPI NOR flash operation times.
//!
//! Without pacing the board answers as fast as the host can talk to it.

use std::fmt;
use std::str::FromStr;
use std::thread;
use std::time::{Duration, Instant};

use crate::ConfigError;

use crate::flash::EraseOps;

/// Bits on the wire per byte: start bit, 8 data bits, stop bit (8N1).
pub const BITS_PER_BYTE: u64 = 10;

/// The rate of a line nobody has configured: the ROM loader's 115200 baud.
pub const DEFAULT_BAUD: u32 = 115_200;

/// Typical SPI NOR operation times.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlashTimings {
    /// 4 KiB sector erase.
    pub sector_erase: Duration,
    /// 64 KiB block erase.
    pub block_erase: Duration,
    /// 256-byte page program.
    pub page_program: Duration,
    /// Reading and hashing one MiB for SPI_FLASH_MD5 (the chip reads the flash and runs MD5 in
    /// software; an estimate: 40 MHz dual-I/O reads and about 15 CPU cycles per byte).
    pub md5_per_mib: Duration,
}

/// The time from a request's last byte to the first byte of its reply reaching the host: the
/// USB-UART bridge's turnaround (a USB frame each way; FTDI parts with their default latency
/// timer take longer).
pub const TURNAROUND: Duration = Duration::from_millis(1);

impl FlashTimings {
    /// Typical values of the Winbond W25Q128JV datasheet (tSE 45 ms,
    /// tBE2 150 ms, tPP 0.4 ms), representative of 4-128 MB SPI NOR parts.
    pub const W25Q: FlashTimings = FlashTimings {
        sector_erase: Duration::from_millis(45),
        block_erase: Duration::from_millis(150),
        page_program: Duration::from_micros(400),
        md5_per_mib: Duration::from_millis(200),
    };

    /// These timings with another page program time.
    pub fn with_page_program(self, page_program: PageProgramTime) -> Self {
        FlashTimings {
            page_program: page_program.0,
            ..self
        }
    }

    /// Time to carry out `erase`.
    pub fn erase(&self, erase: EraseOps) -> Duration {
        self.sector_erase * erase.sectors + self.block_erase * erase.blocks
    }

    /// Time to program `pages` pages.
    pub fn program(&self, pages: u32) -> Duration {
        self.page_program * pages
    }

    /// Time to read and hash `bytes` bytes (SPI_FLASH_MD5), or to read them (blank checks).
    pub fn md5(&self, bytes: u32) -> Duration {
        self.md5_per_mib
            .mul_f64(f64::from(bytes) / f64::from(1u32 << 20))
    }
}

/// The time to program one 256-byte page, a board parameter: parts differ
/// (W25Q128JV typical tPP 0.4 ms; older W25Q128FV parts 0.7 ms; the
/// datasheets' maximum is 3 ms).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageProgramTime(Duration);

impl PageProgramTime {
    /// W25Q128JV typical, the default.
    pub const TYPICAL: PageProgramTime = PageProgramTime(Duration::from_micros(400));
    /// The datasheet maximum; longer values are refused.
    pub const MAX: Duration = Duration::from_millis(3);

    /// A page program time, if it lies in (0, 3 ms].
    pub fn new(time: Duration) -> Option<Self> {
        (!time.is_zero() && time <= Self::MAX).then_some(PageProgramTime(time))
    }

    /// The time.
    pub fn duration(self) -> Duration {
        self.0
    }
}

impl Default for PageProgramTime {
    fn default() -> Self {
        PageProgramTime::TYPICAL
    }
}

impl fmt::Display for PageProgramTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}us", self.0.as_micros())
    }
}

impl FromStr for PageProgramTime {
    type Err = ConfigError;

    /// Parses `400us`, `0.7ms` or a plain number of microseconds.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || ConfigError::BadPageProgram(s.to_owned());
        let text = s.trim().to_ascii_lowercase();
        let (number, unit_us) = if let Some(ms) = text.strip_suffix("ms") {
            (ms, 1000.0)
        } else {
            (text.strip_suffix("us").unwrap_or(&text), 1.0)
        };
        let micros: f64 = number.trim().parse().map_err(|_| bad())?;
        if !micros.is_finite() || micros <= 0.0 {
            return Err(bad());
        }
        PageProgramTime::new(Duration::from_nanos(
            (micros * unit_us * 1000.0).round() as u64
        ))
        .ok_or_else(bad)
    }
}

/// Wire time of `bytes` bytes at `baud`.
pub fn wire_time(bytes: u64, baud: u32) -> Duration {
    let nanos =
        u128::from(bytes) * u128::from(BITS_PER_BYTE) * 1_000_000_000 / u128::from(baud.max(1));
    Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
}

/// Holds the board to real time when enabled; does nothing otherwise.
///
/// Three timelines: the receive line, the transmit line and the flash chip. The lines run in
/// parallel with the flash, as on a real board whose UART receives into a buffer while the SPI
/// flash erases and programs.
#[derive(Debug)]
pub(crate) struct Pacer {
    enabled: bool,
    rx_done: Instant,
    tx_done: Instant,
    flash_free: Instant,
}

impl Pacer {
    pub fn new(enabled: bool) -> Self {
        let now = Instant::now();
        Pacer {
            enabled,
            rx_done: now,
            tx_done: now,
            flash_free: now,
        }
    }

    /// Waits until `n` bytes that just turned up could have crossed the wire at `baud`.
    /// `buffered` says they were already waiting when the board looked (it was busy): a host
    /// sends as soon as it has the last reply, so they are timed from then, back to back.
    pub fn received(&mut self, n: usize, baud: u32, buffered: bool) {
        if self.enabled {
            let arrival = if buffered {
                self.tx_done
            } else {
                Instant::now()
            };
            self.rx_done = self.rx_done.max(arrival) + wire_time(n as u64, baud);
            sleep_until(self.rx_done);
        }
    }

    /// Carries out a flash operation of length `busy` before going on.
    pub fn busy(&mut self, busy: Duration) {
        if self.enabled && !busy.is_zero() {
            self.wait_for_flash();
            thread::sleep(busy);
            self.flash_free = Instant::now();
        }
    }

    /// Starts a flash operation of length `work` that runs while the board goes on talking.
    pub fn background(&mut self, work: Duration) {
        if self.enabled && !work.is_zero() {
            self.flash_free = self.flash_free.max(Instant::now()) + work;
        }
    }

    /// Waits until the flash has finished the work started in the background.
    pub fn wait_for_flash(&mut self) {
        if self.enabled {
            sleep_until(self.flash_free);
        }
    }

    /// A reply is ready: it leaves no earlier than [`TURNAROUND`] after the request's last byte.
    pub fn turnaround(&mut self) {
        if self.enabled {
            self.tx_done = self
                .tx_done
                .max(self.rx_done.max(Instant::now()) + TURNAROUND);
        }
    }

    /// Sends `bytes` through `send` no faster than `baud` allows, in chunks
    /// of about a millisecond each.
    pub fn transmit<E>(
        &mut self,
        bytes: &[u8],
        baud: u32,
        mut send: impl FnMut(&[u8]) -> Result<(), E>,
    ) -> Result<(), E> {
        if !self.enabled {
            return send(bytes);
        }
        let chunk = (baud as usize / 10_000).max(1);
        for piece in bytes.chunks(chunk) {
            self.tx_done = self.tx_done.max(Instant::now()) + wire_time(piece.len() as u64, baud);
            sleep_until(self.tx_done);
            send(piece)?;
        }
        Ok(())
    }
}

fn sleep_until(deadline: Instant) {
    let now = Instant::now();
    if deadline > now {
        thread::sleep(deadline - now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_time_of_one_second() {
        assert_eq!(wire_time(11_520, 115_200), Duration::from_secs(1));
    }

    #[test]
    fn page_program_times_parse() {
        let t = |s: &str| s.parse::<PageProgramTime>().map(PageProgramTime::duration);
        assert_eq!(t("0.7ms").unwrap(), Duration::from_micros(700));
        assert_eq!(t("400us").unwrap(), Duration::from_micros(400));
        assert_eq!(t("700").unwrap(), Duration::from_micros(700));
        assert!(t("0").is_err() && t("4ms").is_err() && t("fast").is_err());
        let slow = FlashTimings::W25Q.with_page_program("0.7ms".parse().unwrap());
        assert_eq!(slow.program(2), Duration::from_micros(1400));
    }

    #[test]
    fn flash_timing_sums() {
        let ops = EraseOps {
            sectors: 2,
            blocks: 1,
        };
        assert_eq!(FlashTimings::W25Q.erase(ops), Duration::from_millis(240));
        assert_eq!(FlashTimings::W25Q.program(4), Duration::from_micros(1600));
    }
}
