//! Deterministic fault injection on the serial line and in replies.
//!
//! A [`FaultSpec`] is written as comma-separated items:
//!
//! | item | effect |
//! |---|---|
//! | `seed=N` | seed of the pseudo-random generator (default 1) |
//! | `drop=RATE` or `drop=@N` | drop bytes with probability RATE, or the byte at index N |
//! | `corrupt=RATE` or `corrupt=@N` | flip bits of bytes (random non-zero XOR mask) |
//! | `stall=MSms@N` | pause MS milliseconds before the byte at index N |
//! | `disconnect=N` | pull the cable once N bytes have passed |
//! | `bad-md5=K` | the K-th SPI_FLASH_MD5 reply (1-based) carries a wrong digest |
//! | `noisy-above=BAUD@RATE` | while the line runs faster than BAUD, garble received bytes with probability RATE (a bridge or cable that is marginal at high rates) |
//! | `mute=OP#N` | the N-th command (1-based) with opcode OP is carried out but its reply is lost on the line |
//! | `efuse-cut=N` | the power goes right after the N-th write (1-based) to the eFuse controller's CMD register: the command is carried out (a program burns its block, a read reloads), no reply is sent and the line goes dead |
//! | `efuse-cut-mid=N` | as `efuse-cut`, but a program command burns only the first half of its block's words (the power went in the middle of the burn) |
//! | `flip=OP#N@K.B` | the N-th command (1-based) with opcode OP (hex `0x10` or decimal) arrives with bit B of its payload byte K flipped, as if the line garbled it where no checksum looks |
//!
//! Byte indices count from 0 since the board started. Line faults act on
//! the bytes the board receives (`:rx`, the default) or sends (`:tx`),
//! e.g. `corrupt=@300:tx`. Items may repeat.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use crate::efuse::Burn;

/// Which way a byte travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// From the host to the board.
    Rx,
    /// From the board to the host.
    Tx,
}

/// When a line fault fires.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Trigger {
    /// Independently for each byte with this probability.
    Rate(f64),
    /// Exactly once, at this byte index.
    At(u64),
}

/// One injected fault.
#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    /// A byte vanishes.
    Drop(Trigger, Direction),
    /// A byte arrives with flipped bits.
    Corrupt(Trigger, Direction),
    /// The line goes quiet for a while before a byte.
    Stall {
        /// Length of the pause.
        duration: Duration,
        /// Index of the byte that waits.
        at: u64,
        /// Direction whose bytes are counted.
        direction: Direction,
    },
    /// The cable is pulled after this many bytes: the board stops serving.
    Disconnect {
        /// Bytes that pass before the cut.
        after: u64,
        /// Direction whose bytes are counted.
        direction: Direction,
    },
    /// The `nth` MD5 reply (1-based) is wrong.
    BadMd5 {
        /// Which reply.
        nth: u32,
    },
    /// One bit of one command's payload is flipped before the board acts on it.
    Flip(Flip),
    /// Received bytes are garbled with probability `rate` while the line runs above `baud`.
    NoisyAbove {
        /// The highest rate that is clean.
        baud: u32,
        /// Probability per byte above it.
        rate: f64,
    },
    /// The power goes after the `nth` write (1-based) to the eFuse CMD register.
    EfuseCut {
        /// Which write.
        nth: u32,
        /// Only half of a program command's block is burned.
        mid_burn: bool,
    },
    /// The `nth` command (1-based) with this opcode is carried out, and its reply lost.
    Mute {
        /// Opcode of the commands counted.
        opcode: u8,
        /// Which of them.
        nth: u32,
    },
}

/// A targeted flip: bit `bit` of payload byte `byte` of the `nth` command (1-based) with
/// opcode `opcode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Flip {
    /// Opcode of the commands counted.
    pub opcode: u8,
    /// Which of them (1-based).
    pub nth: u32,
    /// Payload byte.
    pub byte: usize,
    /// Bit of that byte (0 = least significant).
    pub bit: u8,
}

/// Parses `OP#N` (opcode in hex `0x11` or decimal, N from 1).
fn parse_mute(s: &str) -> Option<(u8, u32)> {
    let (op, nth) = s.split_once('#')?;
    let opcode = match op.strip_prefix("0x") {
        Some(hex) => u8::from_str_radix(hex, 16).ok()?,
        None => op.parse().ok()?,
    };
    Some((opcode, nth.parse().ok().filter(|&n| n > 0)?))
}

impl FromStr for Flip {
    type Err = &'static str;

    /// Parses `OP#N@K.B`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        const SYNTAX: &str = "expected OP#N@BYTE.BIT";
        let (op, rest) = s.split_once('#').ok_or(SYNTAX)?;
        let (nth, rest) = rest.split_once('@').ok_or(SYNTAX)?;
        let (byte, bit) = rest.split_once('.').ok_or(SYNTAX)?;
        let opcode = match op.strip_prefix("0x") {
            Some(hex) => u8::from_str_radix(hex, 16),
            None => op.parse(),
        }
        .map_err(|_| "expected an opcode byte")?;
        Ok(Flip {
            opcode,
            nth: nth.parse().ok().filter(|&n| n > 0).ok_or(SYNTAX)?,
            byte: byte.parse().map_err(|_| SYNTAX)?,
            bit: bit.parse().ok().filter(|&b| b < 8).ok_or(SYNTAX)?,
        })
    }
}

impl fmt::Display for Flip {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:#04x}#{}@{}.{}",
            self.opcode, self.nth, self.byte, self.bit
        )
    }
}

/// A parsed `--faults` specification.
#[derive(Debug, Clone, PartialEq)]
pub struct FaultSpec {
    /// Seed of the generator behind rate-based faults.
    pub seed: u64,
    /// The faults, in the order given.
    pub faults: Vec<Fault>,
}

impl Default for FaultSpec {
    fn default() -> Self {
        FaultSpec {
            seed: 1,
            faults: Vec::new(),
        }
    }
}

/// A fault specification that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad fault item `{item}`: {reason}")]
pub struct FaultSpecError {
    item: String,
    reason: &'static str,
}

impl FromStr for FaultSpec {
    type Err = FaultSpecError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut spec = FaultSpec::default();
        for item in s.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            let err = |reason| FaultSpecError {
                item: item.to_owned(),
                reason,
            };
            let (key, value) = item
                .split_once('=')
                .ok_or_else(|| err("expected key=value"))?;
            let (value, direction) =
                split_direction(value).ok_or_else(|| err("direction must be rx or tx"))?;
            let count = |v: &str| v.parse::<u64>().map_err(|_| err("expected a byte count"));
            match key {
                "seed" => spec.seed = count(value)?,
                "drop" => spec.faults.push(Fault::Drop(
                    parse_trigger(value).ok_or_else(|| err("expected RATE or @INDEX"))?,
                    direction,
                )),
                "corrupt" => spec.faults.push(Fault::Corrupt(
                    parse_trigger(value).ok_or_else(|| err("expected RATE or @INDEX"))?,
                    direction,
                )),
                "stall" => {
                    let (ms, at) = value
                        .split_once('@')
                        .ok_or_else(|| err("expected MSms@INDEX"))?;
                    let ms = ms.strip_suffix("ms").unwrap_or(ms);
                    let ms = ms
                        .parse::<u64>()
                        .map_err(|_| err("expected milliseconds"))?;
                    spec.faults.push(Fault::Stall {
                        duration: Duration::from_millis(ms),
                        at: count(at)?,
                        direction,
                    });
                }
                "disconnect" => spec.faults.push(Fault::Disconnect {
                    after: count(value)?,
                    direction,
                }),
                "bad-md5" => {
                    let nth = value
                        .parse::<u32>()
                        .ok()
                        .filter(|&n| n > 0)
                        .ok_or_else(|| err("expected a reply number from 1"))?;
                    spec.faults.push(Fault::BadMd5 { nth });
                }
                "flip" => spec.faults.push(Fault::Flip(value.parse().map_err(err)?)),
                "efuse-cut" | "efuse-cut-mid" => {
                    let nth = value
                        .parse::<u32>()
                        .ok()
                        .filter(|&n| n > 0)
                        .ok_or_else(|| err("expected a CMD write number from 1"))?;
                    let mid_burn = key == "efuse-cut-mid";
                    spec.faults.push(Fault::EfuseCut { nth, mid_burn });
                }
                "noisy-above" => {
                    let (baud, rate) = value
                        .split_once('@')
                        .and_then(|(b, r)| Some((b.parse().ok()?, r.parse().ok()?)))
                        .filter(|&(_, r): &(u32, f64)| (0.0..=1.0).contains(&r))
                        .ok_or_else(|| err("expected BAUD@RATE"))?;
                    spec.faults.push(Fault::NoisyAbove { baud, rate });
                }
                "mute" => {
                    let (opcode, nth) = parse_mute(value).ok_or_else(|| err("expected OP#N"))?;
                    spec.faults.push(Fault::Mute { opcode, nth });
                }
                _ => return Err(err("unknown fault")),
            }
        }
        Ok(spec)
    }
}

fn split_direction(value: &str) -> Option<(&str, Direction)> {
    match value.rsplit_once(':') {
        Some((v, "rx")) => Some((v, Direction::Rx)),
        Some((v, "tx")) => Some((v, Direction::Tx)),
        Some(_) => None,
        None => Some((value, Direction::Rx)),
    }
}

fn parse_trigger(value: &str) -> Option<Trigger> {
    match value.strip_prefix('@') {
        Some(index) => index.parse().ok().map(Trigger::At),
        None => value
            .parse::<f64>()
            .ok()
            .filter(|p| (0.0..=1.0).contains(p))
            .map(Trigger::Rate),
    }
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Direction::Rx => "rx",
            Direction::Tx => "tx",
        })
    }
}

impl fmt::Display for Trigger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Trigger::Rate(p) => write!(f, "{p}"),
            Trigger::At(n) => write!(f, "@{n}"),
        }
    }
}

impl fmt::Display for FaultSpec {
    /// Writes the spec back in `--faults` syntax.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "seed={}", self.seed)?;
        for fault in &self.faults {
            match fault {
                Fault::Drop(t, d) => write!(f, ",drop={t}:{d}")?,
                Fault::Corrupt(t, d) => write!(f, ",corrupt={t}:{d}")?,
                Fault::Stall {
                    duration,
                    at,
                    direction,
                } => write!(f, ",stall={}ms@{at}:{direction}", duration.as_millis())?,
                Fault::Disconnect { after, direction } => {
                    write!(f, ",disconnect={after}:{direction}")?
                }
                Fault::BadMd5 { nth } => write!(f, ",bad-md5={nth}")?,
                Fault::Flip(flip) => write!(f, ",flip={flip}")?,
                Fault::Mute { opcode, nth } => write!(f, ",mute={opcode:#04x}#{nth}")?,
                Fault::EfuseCut { nth, mid_burn } => {
                    let key = if *mid_burn {
                        "efuse-cut-mid"
                    } else {
                        "efuse-cut"
                    };
                    write!(f, ",{key}={nth}")?
                }
                Fault::NoisyAbove { baud, rate } => write!(f, ",noisy-above={baud}@{rate}")?,
            }
        }
        Ok(())
    }
}

/// What happens to one byte on the line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct ByteFate {
    /// The byte as delivered, `None` if dropped.
    pub byte: Option<u8>,
    /// Pause before delivering it.
    pub stall: Option<Duration>,
    /// The cable is pulled before this byte.
    pub disconnect: bool,
}

/// The running state of a [`FaultSpec`]: byte counters and the generator.
#[derive(Debug)]
pub(crate) struct FaultInjector {
    spec: FaultSpec,
    rng: SplitMix64,
    rx: u64,
    tx: u64,
    md5_replies: u32,
    /// Writes to the eFuse CMD register so far.
    efuse_commands: u32,
    /// Commands received so far, per opcode.
    commands: HashMap<u8, u32>,
}

impl FaultInjector {
    pub fn new(spec: FaultSpec) -> Self {
        FaultInjector {
            rng: SplitMix64(spec.seed),
            spec,
            rx: 0,
            tx: 0,
            md5_replies: 0,
            efuse_commands: 0,
            commands: HashMap::new(),
        }
    }

    /// Decides the fate of the next byte travelling in `direction`.
    pub fn byte(&mut self, direction: Direction, byte: u8, baud: u32) -> ByteFate {
        let counter = match direction {
            Direction::Rx => &mut self.rx,
            Direction::Tx => &mut self.tx,
        };
        let index = *counter;
        *counter += 1;
        let mut fate = ByteFate {
            byte: Some(byte),
            ..ByteFate::default()
        };
        for fault in &self.spec.faults {
            match *fault {
                Fault::Drop(trigger, d)
                    if d == direction && fires(trigger, index, &mut self.rng) =>
                {
                    fate.byte = None;
                }
                Fault::Corrupt(trigger, d)
                    if d == direction && fires(trigger, index, &mut self.rng) =>
                {
                    let mask = (self.rng.next() % 255 + 1) as u8;
                    fate.byte = fate.byte.map(|b| b ^ mask);
                }
                Fault::NoisyAbove { baud: clean, rate }
                    if direction == Direction::Rx
                        && baud > clean
                        && fires(Trigger::Rate(rate), index, &mut self.rng) =>
                {
                    let mask = (self.rng.next() % 255 + 1) as u8;
                    fate.byte = fate.byte.map(|b| b ^ mask);
                }
                Fault::Stall {
                    duration,
                    at,
                    direction: d,
                } if d == direction && at == index => {
                    fate.stall = Some(duration);
                }
                Fault::Disconnect {
                    after,
                    direction: d,
                } if d == direction && index >= after => {
                    fate.disconnect = true;
                }
                _ => {}
            }
        }
        fate
    }

    /// Counts a command with opcode `op` and flips the bits targeted at it in `data`; true if
    /// its reply is to be lost.
    pub fn command(&mut self, op: u8, data: &mut [u8]) -> bool {
        let count = self.commands.entry(op).or_default();
        *count += 1;
        let nth = *count;
        let mute = self
            .spec
            .faults
            .iter()
            .any(|f| matches!(*f, Fault::Mute { opcode, nth: n } if opcode == op && n == nth));
        for fault in &self.spec.faults {
            if let Fault::Flip(flip) = fault
                && flip.opcode == op
                && flip.nth == nth
                && let Some(byte) = data.get_mut(flip.byte)
            {
                *byte ^= 1 << flip.bit;
            }
        }
        mute
    }

    /// Counts a write to the eFuse CMD register; how much of it is carried out if the power
    /// goes right after it.
    pub fn efuse_command(&mut self) -> Option<Burn> {
        self.efuse_commands += 1;
        let nth = self.efuse_commands;
        self.spec.faults.iter().find_map(|f| match *f {
            Fault::EfuseCut { nth: n, mid_burn } if n == nth => {
                Some(if mid_burn { Burn::Half } else { Burn::Whole })
            }
            _ => None,
        })
    }

    /// Counts an MD5 reply; true if this one must be falsified.
    pub fn falsify_md5(&mut self) -> bool {
        self.md5_replies += 1;
        let nth = self.md5_replies;
        self.spec
            .faults
            .iter()
            .any(|f| matches!(f, Fault::BadMd5 { nth: n } if *n == nth))
    }
}

fn fires(trigger: Trigger, index: u64, rng: &mut SplitMix64) -> bool {
    match trigger {
        Trigger::At(at) => at == index,
        Trigger::Rate(p) => rng.unit() < p,
    }
}

/// The SplitMix64 generator: tiny, fast and fully determined by its seed.
#[derive(Debug)]
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_back() {
        let spec: FaultSpec =
            "seed=7,drop=0.001,corrupt=@300:tx,stall=200ms@4000,disconnect=50000,bad-md5=1"
                .parse()
                .unwrap();
        assert_eq!(spec.seed, 7);
        assert_eq!(spec.faults.len(), 5);
        assert_eq!(spec.to_string().parse::<FaultSpec>().unwrap(), spec);
        assert!("drop=2".parse::<FaultSpec>().is_err());
        assert!("stall=5@x".parse::<FaultSpec>().is_err());
        assert!("nonsense=1".parse::<FaultSpec>().is_err());
    }

    #[test]
    fn same_seed_same_faults() {
        let run = || {
            let mut inj = FaultInjector::new("seed=3,drop=0.1".parse().unwrap());
            (0..1000)
                .map(|i| inj.byte(Direction::Rx, i as u8, 115_200).byte)
                .collect::<Vec<_>>()
        };
        let a = run();
        assert_eq!(a, run());
        let dropped = a.iter().filter(|b| b.is_none()).count();
        assert!((50..150).contains(&dropped), "{dropped}");
    }

    #[test]
    fn exact_triggers() {
        let mut inj = FaultInjector::new(
            "corrupt=@2,stall=10ms@1,disconnect=3,bad-md5=2"
                .parse()
                .unwrap(),
        );
        assert_eq!(inj.byte(Direction::Rx, 0xAA, 115_200).byte, Some(0xAA));
        assert_eq!(
            inj.byte(Direction::Rx, 0xAA, 115_200).stall,
            Some(Duration::from_millis(10))
        );
        assert_ne!(inj.byte(Direction::Rx, 0xAA, 115_200).byte, Some(0xAA));
        assert!(inj.byte(Direction::Rx, 0, 115_200).disconnect);
        assert!(!inj.falsify_md5());
        assert!(inj.falsify_md5());
    }

    #[test]
    fn a_noisy_line_garbles_only_above_its_rate() {
        let spec: FaultSpec = "seed=5,noisy-above=460800@0.5".parse().unwrap();
        assert_eq!(spec.to_string().parse::<FaultSpec>().unwrap(), spec);
        assert!("noisy-above=460800".parse::<FaultSpec>().is_err());
        assert!("noisy-above=460800@2".parse::<FaultSpec>().is_err());
        let mut inj = FaultInjector::new(spec);
        let garbled = |inj: &mut FaultInjector, baud| {
            (0..1000)
                .filter(|_| inj.byte(Direction::Rx, 0x55, baud).byte != Some(0x55))
                .count()
        };
        assert_eq!(garbled(&mut inj, 460_800), 0);
        assert!(garbled(&mut inj, 921_600) > 400);
    }

    #[test]
    fn mutes_the_nth_command_of_an_opcode() {
        let spec: FaultSpec = "mute=0x11#2".parse().unwrap();
        assert_eq!(spec.to_string().parse::<FaultSpec>().unwrap(), spec);
        assert!("mute=0x11#0".parse::<FaultSpec>().is_err());
        assert!("mute=0x11".parse::<FaultSpec>().is_err());
        let mut inj = FaultInjector::new(spec);
        let mut data = [0u8; 4];
        assert!(!inj.command(0x11, &mut data));
        assert!(!inj.command(0x10, &mut data));
        assert!(inj.command(0x11, &mut data));
        assert!(!inj.command(0x11, &mut data));
    }

    #[test]
    fn cuts_the_power_at_the_nth_efuse_command() {
        let spec: FaultSpec = "efuse-cut=2,efuse-cut-mid=4".parse().unwrap();
        assert_eq!(spec.to_string().parse::<FaultSpec>().unwrap(), spec);
        assert!("efuse-cut=0".parse::<FaultSpec>().is_err());
        let mut inj = FaultInjector::new(spec);
        let cuts: Vec<_> = (0..5).map(|_| inj.efuse_command()).collect();
        assert_eq!(
            cuts,
            [None, Some(Burn::Whole), None, Some(Burn::Half), None]
        );
    }

    #[test]
    fn flips_one_bit_of_the_nth_command() {
        let spec: FaultSpec = "flip=0x10#2@12.3".parse().unwrap();
        assert_eq!(spec.to_string().parse::<FaultSpec>().unwrap(), spec);
        assert!("flip=0x10#0@1.1".parse::<FaultSpec>().is_err());
        assert!("flip=0x10#1@1.8".parse::<FaultSpec>().is_err());
        let mut inj = FaultInjector::new(spec);
        let mut data = [0u8; 16];
        inj.command(0x10, &mut data);
        inj.command(0x11, &mut data);
        assert_eq!(data, [0; 16]);
        inj.command(0x10, &mut data);
        assert_eq!(data[12], 0x08);
        inj.command(0x10, &mut data);
        assert_eq!(data[12], 0x08);
    }
}
