//! The fault campaign: hundreds of runs of the flasher against simulated boards whose lines drop,
//! garble and stall bytes, or are cut, at points drawn from each run's seed. Every run must end
//! within its time limit, either with the flash exactly as planned or with a clear error; no run
//! may report success over a flash that differs from the plan.
//!
//! Beside the seeded runs, targeted runs flip one bit of one header field no checksum covers
//! (address, size, block count and block size of each BEGIN, address and size of each
//! ERASE_REGION, the flag of each END) of a clean session, once with `--check-untouched` and once
//! without. False successes (a region wrong) and stray writes (the regions right, flash outside
//! them changed) are counted apart: no false success anywhere, no stray write under
//! `--check-untouched`.
//!
//! `FAULT_RUNS` (default 200) and `FAULT_SEED` (default 1, the first run's seed) select the seeded
//! runs.

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use common::{generated_build, write_bundle};
use esp_sim::{BoardConfig, CommandRecord, Opcode, SimBoard};
use firmware::chip::{Chip, TargetName};
use flasher::cli::{After, Before};
use flasher::device::{self, Console, Contact, Options, Untouched};
use flasher::error::DeviceError;
use flasher::plan::{self, Plan, Request};
use flasher::port::ResolvedPort;
use testkit::firmware::Rng;
use testkit::idf_build::BuildSpec;

/// Boards flashed at once.
const WORKERS: usize = 8;
/// A run that takes longer than this hangs.
const RUN_LIMIT: Duration = Duration::from_secs(90);

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum End {
    /// Success at the first attempt.
    Clean,
    /// Success after one or more retries.
    Recovered,
    /// Failure with this kind of error (the message is checked separately).
    Failed(String),
    /// Success, but the flash differs from the plan.
    WrongFlash,
    /// No answer within [`RUN_LIMIT`].
    Hung,
}

struct Run {
    seed: u64,
    spec: String,
    /// Whether `--check-untouched` was on.
    untouched: bool,
    end: End,
    message: Option<String>,
    /// The first and last byte outside the plan's regions that changed (no region is wrong).
    outside_changed: Option<(usize, usize)>,
    took: Duration,
    /// What the line cost (blocks sent again, streams taken up, same-rate retries, steps).
    line: flasher::report::LineReport,
}

fn plan(dir: &std::path::Path) -> Plan {
    let mut spec = BuildSpec::new(Chip::Esp32c3);
    spec.app_len = 96 * 1024;
    let build = generated_build(&dir.join("build"), &spec);
    write_bundle(&dir.join("fw"), &[("esp32c3", &build)], None, true);
    plan::make(&Request {
        firmware_dir: dir.join("fw"),
        target: "esp32c3".parse().unwrap(),
        flash_size: "4MB".parse().unwrap(),
        override_pt: None,
    })
    .unwrap()
}

fn options(untouched: bool) -> Options {
    Options {
        baud: None,
        before: Before::NoReset,
        after: After::NoReset,
        verify: true,
        skip: true,
        console: Console::shared("campaign", None),
        boot: None,
        check_untouched: untouched.then_some(Untouched::Unchanged),
        streams: Default::default(),
        secure: None,
        per_board: None,
    }
}

/// Bytes the board receives and sends in a clean run, and its commands, measured on a reference
/// board.
fn traffic(plan: &Plan, target: &TargetName) -> (u64, u64, Vec<CommandRecord>) {
    let board = SimBoard::start(BoardConfig::new(esp_sim::Chip::Esp32c3)).unwrap();
    let mut contact = Contact::default();
    device::write(
        plan,
        target,
        &ResolvedPort::device(board.path().to_str().unwrap()),
        &options(false),
        &mut contact,
    )
    .unwrap();
    let commands = board.commands();
    let rx: usize = commands.iter().map(|c| c.data_len + 10).sum();
    (rx as u64, commands.len() as u64 * 14, commands)
}

/// Bits flipped in each targeted 32-bit field: odd values, a sector, a 64 KiB block, 2 MB, the
/// top bit.
const FIELD_BITS: [u32; 6] = [0, 5, 12, 16, 21, 31];

/// One `flip=` item per field bit of every BEGIN, ERASE_REGION and END command of the clean
/// session `commands`: the fields no checksum covers.
fn targeted_flips(commands: &[CommandRecord]) -> Vec<String> {
    let mut seen: BTreeMap<u8, u32> = BTreeMap::new();
    let mut flips = Vec::new();
    for c in commands {
        let fields = match c.command {
            // Size (erase size for the ROM), blocks, block size, offset.
            Some(Opcode::FlashBegin | Opcode::FlashDeflBegin) => 4,
            // Offset, size.
            Some(Opcode::EraseRegion) => 2,
            // The flag: reboot or stay.
            Some(Opcode::FlashEnd | Opcode::FlashDeflEnd) => 1,
            _ => continue,
        };
        let nth = seen.entry(c.opcode).or_default();
        *nth += 1;
        for field in 0..fields.min(c.data_len / 4) {
            for bit in FIELD_BITS {
                let byte = field * 4 + bit as usize / 8;
                flips.push(format!("flip={:#04x}#{nth}@{byte}.{}", c.opcode, bit % 8));
            }
        }
    }
    flips
}

/// The faults of run `seed`: one to three, of every kind, at points anywhere in the session.
fn faults(seed: u64, rx: u64, tx: u64) -> String {
    let mut rng = Rng::new(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0x5EED);
    let mut pick = |n: u64| rng.next_u64() % n;
    let mut items = vec![format!("seed={seed}")];
    for _ in 0..1 + pick(3) {
        let item = match pick(100) {
            0..=19 => format!("drop=@{}", pick(rx)),
            20..=39 => format!("corrupt=@{}", pick(rx)),
            40..=49 => format!("corrupt=@{}:tx", pick(tx)),
            50..=54 => format!("drop=@{}:tx", pick(tx)),
            55..=62 => format!("drop={}", [0.00002, 0.00005, 0.0001][pick(3) as usize]),
            63..=70 => format!("corrupt={}", [0.00002, 0.00005, 0.0001][pick(3) as usize]),
            71..=80 => format!(
                "stall={}ms@{}",
                [50, 300, 1500, 3500][pick(4) as usize],
                pick(rx)
            ),
            81..=92 => format!("disconnect={}", pick(rx)),
            _ => format!("bad-md5={}", 1 + pick(12)),
        };
        items.push(item);
    }
    items.join(",")
}

fn one_run(seed: u64, spec: &str, untouched: bool, plan: &Arc<Plan>, target: &TargetName) -> Run {
    let mac: esp_sim::MacAddress = format!(
        "02:fa:{:02x}:{:02x}:{:02x}:{:02x}",
        (seed >> 24) as u8,
        (seed >> 16) as u8,
        (seed >> 8) as u8,
        seed as u8
    )
    .parse()
    .unwrap();
    let board = SimBoard::start(
        BoardConfig::new(esp_sim::Chip::Esp32c3)
            .mac(mac)
            .faults(spec.parse().unwrap()),
    )
    .unwrap();
    let started = Instant::now();
    let (done, result) = mpsc::channel();
    {
        let plan = plan.clone();
        let target = target.clone();
        let port = ResolvedPort::device(board.path().to_str().unwrap());
        let opts = options(untouched);
        std::thread::spawn(move || {
            let mut contact = Contact::default();
            let outcome = device::write(&plan, &target, &port, &opts, &mut contact);
            let _ = done.send((outcome, contact));
        });
    }
    let answer = result.recv_timeout(RUN_LIMIT);
    let took = started.elapsed();
    let flash = board.stop();
    let line = answer
        .as_ref()
        .map(|(_, contact)| contact.line.clone())
        .unwrap_or_default();
    let (end, message) = match answer {
        Err(_) => (End::Hung, None),
        Ok((Ok(_), contact)) => {
            let right = plan
                .regions
                .iter()
                .all(|r| flash[r.offset as usize..r.end() as usize] == r.bytes[..]);
            match (right, contact.attempts) {
                (false, _) => (End::WrongFlash, None),
                (true, 1) => (End::Clean, None),
                (true, _) => (End::Recovered, None),
            }
        }
        Ok((Err(e), _)) => (End::Failed(kind(&e).into()), Some(e.to_string())),
    };
    let merged = plan.merged();
    let changed = |i: &usize| flash[*i] != merged[*i];
    let outside_changed = matches!(end, End::Clean | End::Recovered)
        .then(|| {
            (0..flash.len())
                .find(changed)
                .zip((0..flash.len()).rev().find(changed))
        })
        .flatten();
    Run {
        seed,
        spec: spec.to_string(),
        untouched,
        end,
        message,
        outside_changed,
        took,
        line,
    }
}

fn kind(e: &DeviceError) -> &'static str {
    match e {
        DeviceError::NotFound(_) => "port gone",
        DeviceError::Connect { .. } => "no answer",
        DeviceError::Line { .. } => "line failed",
        DeviceError::Verify(_) => "verify failed",
        DeviceError::Write(_) => "write failed",
        DeviceError::BoardChanged { .. } => "another board",
        DeviceError::Untouched { .. } => "outside the plan changed",
        _ => "other",
    }
}

/// Runs every job (seed, fault spec, `--check-untouched`) on [`WORKERS`] boards at once.
fn run_all(jobs: &[(u64, String, bool)], plan: &Arc<Plan>, target: &TargetName) -> Vec<Run> {
    let next = AtomicUsize::new(0);
    let results = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..WORKERS {
            scope.spawn(|| {
                while let Some((seed, spec, untouched)) =
                    jobs.get(next.fetch_add(1, Ordering::SeqCst))
                {
                    let run = one_run(*seed, spec, *untouched, plan, target);
                    results.lock().unwrap().push(run);
                }
            });
        }
    });
    let mut results = results.into_inner().unwrap();
    results.sort_by_key(|r| (r.seed, r.untouched));
    results
}

/// Prints how the runs ended, by kind.
fn print_tally(title: &str, runs: &[&Run]) {
    let mut tally: BTreeMap<End, usize> = BTreeMap::new();
    for r in runs {
        *tally.entry(r.end.clone()).or_default() += 1;
    }
    println!("{title}: {} runs", runs.len());
    for (end, n) in &tally {
        println!("  {n:4}  {end:?}");
    }
    let sum = |f: fn(&Run) -> usize| runs.iter().map(|r| f(r)).sum::<usize>();
    let in_attempt = runs
        .iter()
        .filter(|r| r.end == End::Clean && r.line.resent_blocks + r.line.resumed_streams > 0)
        .count();
    println!(
        "  line: {} blocks sent again, {} streams taken up, {} same-rate retries, {} rate steps; \
         {in_attempt} runs recovered from line errors within their first attempt",
        sum(|r| r.line.resent_blocks as usize),
        sum(|r| r.line.resumed_streams as usize),
        sum(|r| r.line.same_rate_retries as usize),
        sum(|r| r.line.stepped_down_to.len()),
    );
}

/// The runs that reported success over a wrong region, and those that left the regions right
/// but flash outside them changed.
fn false_successes_and_strays<'a>(runs: &[&'a Run]) -> (Vec<&'a Run>, Vec<&'a Run>) {
    let wrong = runs
        .iter()
        .copied()
        .filter(|r| r.end == End::WrongFlash)
        .collect();
    let stray = runs
        .iter()
        .copied()
        .filter(|r| r.outside_changed.is_some())
        .collect();
    (wrong, stray)
}

fn describe(runs: &[&Run]) -> String {
    runs.iter()
        .map(|r| {
            let outside = r
                .outside_changed
                .map(|(a, b)| format!(" changed {a:#x}..={b:#x}"))
                .unwrap_or_default();
            format!("seed {} {:?} [{}]{outside}", r.seed, r.end, r.spec)
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn no_fault_ends_in_a_wrong_flash_or_a_hang() {
    let runs: u64 = std::env::var("FAULT_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let first: u64 = std::env::var("FAULT_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    let tmp = tempfile::tempdir().unwrap();
    let plan = Arc::new(plan(tmp.path()));
    let target: TargetName = "esp32c3".parse().unwrap();
    let (rx, tx, commands) = traffic(&plan, &target);

    let mut jobs: Vec<(u64, String, bool)> = (first..first + runs)
        .map(|seed| (seed, faults(seed, rx, tx), false))
        .collect();
    // Targeted runs take seeds of their own (for their boards' MACs), past the seeded ones.
    let flips = targeted_flips(&commands);
    for (i, flip) in flips.iter().enumerate() {
        let seed = 1_000_000 + i as u64;
        for untouched in [false, true] {
            jobs.push((seed, format!("seed={seed},{flip}"), untouched));
        }
    }
    let started = Instant::now();
    let results = run_all(&jobs, &plan, &target);
    let seeded: Vec<&Run> = results.iter().filter(|r| r.seed < 1_000_000).collect();
    let targeted = |untouched| -> Vec<&Run> {
        results
            .iter()
            .filter(|r| r.seed >= 1_000_000 && r.untouched == untouched)
            .collect()
    };
    let (plain, checked) = (targeted(false), targeted(true));

    println!(
        "fault campaign: {} runs (seeds {first}..{}) and {} targeted flips twice, {rx} bytes in \
         and about {tx} out per clean run, {:.1} s",
        seeded.len(),
        first + runs - 1,
        flips.len(),
        started.elapsed().as_secs_f64()
    );
    print_tally("seeded", &seeded);
    print_tally("targeted flips", &plain);
    print_tally("targeted flips with --check-untouched", &checked);
    let slowest = results.iter().max_by_key(|r| r.took).unwrap();
    println!(
        "  slowest: seed {} ({}) {:.1} s",
        slowest.seed,
        slowest.spec,
        slowest.took.as_secs_f64()
    );
    let mut counts = Vec::new();
    for (title, runs) in [
        ("seeded", &seeded),
        ("targeted", &plain),
        ("targeted, --check-untouched", &checked),
    ] {
        let (wrong, stray) = false_successes_and_strays(runs);
        println!(
            "  {title}: {} false successes, {} stray writes{}{}",
            wrong.len(),
            stray.len(),
            if stray.is_empty() { "" } else { ":\n" },
            describe(&stray)
        );
        counts.push((title, wrong, stray));
    }
    if std::env::var_os("FAULT_VERBOSE").is_some() {
        for r in &results {
            println!(
                "seed {} {:?} untouched={} {:.1}s [{}] {}",
                r.seed,
                r.end,
                r.untouched,
                r.took.as_secs_f64(),
                r.spec,
                r.message.as_deref().unwrap_or("")
            );
        }
    }
    let hung: Vec<&Run> = results.iter().filter(|r| r.end == End::Hung).collect();
    assert!(hung.is_empty(), "runs that hung:\n{}", describe(&hung));
    for (title, wrong, _) in &counts {
        assert!(
            wrong.is_empty(),
            "{title}: runs that reported success over a wrong flash:\n{}",
            describe(wrong)
        );
    }
    let (_, _, stray) = &counts[2];
    assert!(
        stray.is_empty(),
        "with --check-untouched, runs that succeeded with flash outside the plan changed:\n{}",
        describe(stray)
    );
    assert!(
        !flips.is_empty() && checked.len() == flips.len(),
        "no targeted flips"
    );
    for r in &results {
        if let Some(m) = &r.message {
            assert!(
                !m.contains('\n') && m.len() > 20,
                "seed {}: unclear error: {m}",
                r.seed
            );
        }
    }
    assert_eq!(seeded.len() as u64, runs);
}
