//! `bench`: how fast a board is flashed, on real-time simulated boards, against esptool and
//! against what the wire and the flash chip allow. Prints a Markdown report; scripts/bench runs
//! it with release builds, docs/benchmarks.md keeps the latest figures.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use clap::Parser;
use esp_sim::{BoardConfig, Chip, FlashSize, LineStats, SimBoard};
use imagegen::bundle::{Bundle, Metadata};
use imagegen::inputs::TargetInput;
use testkit::idf_build::{BuildSpec, TableKind, write_build};

const TARGET: &str = "esp32s3";
const FLASH: &str = "4MB";
/// The original image's esptool rate.
const ORIGINAL_BAUD: u32 = 460_800;

/// Flashing benchmarks on real-time simulated boards.
#[derive(Parser)]
struct Args {
    /// Static flasher for this machine (scripts/build-flasher).
    #[arg(long)]
    flasher: PathBuf,
    /// The other platform's static flasher, so imagegen is timed for two platforms.
    #[arg(long)]
    flasher_other: Option<PathBuf>,
    /// imagegen release binary.
    #[arg(long)]
    imagegen: PathBuf,
    /// esptool 5.x (default: the workspace venv's, or PATH).
    #[arg(long)]
    esptool: Option<PathBuf>,
    /// Runs per measurement (the median is reported).
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Baud rates for the full-flash comparison.
    #[arg(long, value_delimiter = ',', default_value = "115200,460800,921600")]
    bauds: Vec<u32>,
    /// Board counts for the several-boards measurement.
    #[arg(long, value_delimiter = ',', default_value = "1,2,4,8")]
    boards: Vec<usize>,
}

/// The firmware under test, as files for esptool and as a bundle for the flasher.
struct Setup {
    _dir: tempfile::TempDir,
    firmware: PathBuf,
    builds: Vec<PathBuf>,
    parts: Vec<(u32, PathBuf)>,
    payload: u64,
    expected: Vec<u8>,
}

/// One measured run.
struct Sample {
    wall: Duration,
    stats: LineStats,
    to_first_byte: Duration,
}

/// Who writes the board.
#[derive(Clone, Copy)]
enum Tool {
    /// Our flasher; `None` = its default rate (921600 with step-down).
    Ours(Option<u32>),
    /// esptool as the original image ran it: ROM loader, no compression.
    EsptoolRom(u32),
    /// esptool with its stub and compression.
    EsptoolStub(u32),
}

fn main() -> Result<()> {
    let args = Args::parse();
    ensure!(args.runs >= 1, "--runs must be at least 1");
    let esptool = args
        .esptool
        .clone()
        .unwrap_or_else(|| testkit::tools::require("esptool"));
    let setup = setup(&args.flasher)?;
    header(&args, &esptool, &setup)?;

    // 1. Full first flash at each rate.
    println!("## 1. Full first flash\n");
    println!(
        "Wall time from process start to exit, median of {} runs, each on a fresh board.\n",
        args.runs
    );
    println!(
        "| baud | ours | esptool --no-stub | esptool stub + compression | ours / no-stub | ours / stub |"
    );
    println!("|---|---|---|---|---|---|");
    let mut ours_at = Vec::new();
    let mut rom_at_original = None;
    let mut stub_at_original = None;
    for &baud in &args.bauds {
        let ours = measure(&args, &esptool, &setup, Tool::Ours(Some(baud)))?;
        let rom = measure(&args, &esptool, &setup, Tool::EsptoolRom(baud))?;
        let stub = measure(&args, &esptool, &setup, Tool::EsptoolStub(baud))?;
        let (o, r, s) = (median_wall(&ours), median_wall(&rom), median_wall(&stub));
        println!(
            "| {baud} | {} | {} | {} | {:.2} | {:.2} |",
            secs(o),
            secs(r),
            secs(s),
            ratio(o, r),
            ratio(o, s)
        );
        if baud == ORIGINAL_BAUD {
            rom_at_original = Some(r);
            stub_at_original = Some(s);
        }
        ours_at.push((baud, ours));
    }
    println!();
    let defaults = measure(&args, &esptool, &setup, Tool::Ours(None))?;
    let ours_default = median_wall(&defaults);
    if let (Some(rom), Some(stub)) = (rom_at_original, stub_at_original) {
        let same = ours_at
            .iter()
            .find(|(b, _)| *b == ORIGINAL_BAUD)
            .map(|(_, s)| median_wall(s))
            .expect("measured at the original rate");
        target(
            "same flags as the original (460800): ours / esptool --no-stub",
            ratio(same, rom),
            0.6,
        );
        target(
            "same rate: ours / esptool stub + compression",
            ratio(same, stub),
            0.9,
        );
        println!(
            "- defaults as users run them: ours (no --baud) {} against the original image's esptool --no-stub at 460800 {}",
            secs(ours_default),
            secs(rom)
        );
        target("defaults: ours / original", ratio(ours_default, rom), 0.25);
    }

    // 2. Efficiency of our runs.
    println!("\n## 2. Efficiency (ours)\n");
    println!(
        "Payload: {} bytes (bootloader, partition table, OTA data, app). Wire time: every byte \
         on the line (both directions, stub upload and handshake included) at the rate in effect; \
         flash time: the simulated chip's erase and program work (typical W25Q128JV timings); \
         limit: the larger of the two, since the stub writes while the next block arrives.\n",
        setup.payload
    );
    println!(
        "| baud | bytes on the wire / payload | wire time | flash time | limit | measured | measured / limit |"
    );
    println!("|---|---|---|---|---|---|---|");
    let mut runs_for_efficiency: Vec<(String, Vec<Sample>)> = ours_at
        .into_iter()
        .map(|(b, s)| (b.to_string(), s))
        .collect();
    runs_for_efficiency.push(("default".into(), defaults));
    for (label, samples) in &runs_for_efficiency {
        let s = median_sample(samples);
        let wire = s.stats.rx_wire + s.stats.tx_wire;
        let limit = wire.max(s.stats.flash_time);
        println!(
            "| {label} | {:.3} | {} | {} | {} | {} | {:.2} |",
            (s.stats.rx_bytes + s.stats.tx_bytes) as f64 / setup.payload as f64,
            secs(wire),
            secs(s.stats.flash_time),
            secs(limit),
            secs(s.wall),
            ratio(s.wall, limit)
        );
    }
    if let Some((_, s)) = runs_for_efficiency.last() {
        let s = median_sample(s);
        let limit = (s.stats.rx_wire + s.stats.tx_wire).max(s.stats.flash_time);
        target(
            "defaults: measured / physical limit",
            ratio(s.wall, limit),
            1.1,
        );
    }

    // 3. Re-flash of identical firmware.
    println!("\n## 3. Re-flash of identical firmware (ours, default rate)\n");
    let (full, again) = reflash(&args, &setup)?;
    println!(
        "- full flash {}, identical re-flash {} (every region skipped by MD5)",
        secs(full),
        secs(again)
    );
    target("re-flash / full flash", ratio(again, full), 0.10);

    // 4. Start-up.
    println!("\n## 4. Start-up: process start to the first byte on the line\n");
    let ours_first = median(
        runs_for_efficiency
            .iter()
            .flat_map(|(_, s)| s.iter().map(|x| x.to_first_byte))
            .collect(),
    );
    let esptool_first = median(
        (0..args.runs)
            .map(|_| first_byte_only(&esptool, &setup))
            .collect::<Result<Vec<_>>>()?,
    );
    println!(
        "- ours {:.1} ms, esptool {:.1} ms (median)",
        ms(ours_first),
        ms(esptool_first)
    );
    target(
        "ours to first SYNC byte (ms, target 20)",
        ms(ours_first) / 20.0,
        1.0,
    );

    // 5. imagegen.
    println!("\n## 5. imagegen: flash image for 2 platforms x 3 targets\n");
    imagegen_timing(&args, &setup)?;

    // 6. Several boards.
    println!("\n## 6. Several boards flashed by one process (ours, default rate)\n");
    several_boards(&args, &setup)?;
    Ok(())
}

fn header(args: &Args, esptool: &Path, setup: &Setup) -> Result<()> {
    let uname = output(Command::new("uname").arg("-srm"))?;
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let version = output(Command::new(esptool).arg("version"))?;
    println!("# Flashing benchmark\n");
    println!("- machine: {} ({cpus} CPUs)", uname.trim());
    println!(
        "- esptool: {}",
        version.lines().last().unwrap_or("?").trim()
    );
    println!("- flasher: {}", args.flasher.display());
    println!(
        "- board: simulated {TARGET}, {FLASH} flash, real-time mode (10 bits per byte each way, W25Q128JV typical erase/program times)"
    );
    println!(
        "- firmware: bootloader, partition table, OTA data, {} KiB app compressing like real firmware (zlib to about 66 %), {} bytes in all\n",
        setup
            .parts
            .iter()
            .map(|(_, p)| std::fs::metadata(p).map_or(0, |m| m.len()))
            .max()
            .unwrap_or(0)
            / 1024,
        setup.payload
    );
    Ok(())
}

fn setup(flasher: &Path) -> Result<Setup> {
    let dir = tempfile::tempdir()?;
    let mut builds = Vec::new();
    let mut inputs = Vec::new();
    let mut parts = Vec::new();
    for (i, chip) in [
        firmware::chip::Chip::Esp32s3,
        firmware::chip::Chip::Esp32,
        firmware::chip::Chip::Esp32c3,
    ]
    .into_iter()
    .enumerate()
    {
        let mut spec = BuildSpec::new(chip);
        spec.app_len = 1536 * 1024;
        spec.app_slot = 0x19_0000;
        spec.table = TableKind::OtaOnly;
        let build_dir = dir.path().join("builds").join(chip.name());
        let build = write_build(&build_dir, &spec)?;
        if i == 0 {
            parts = build
                .flash_files
                .iter()
                .map(|(offset, path, _)| (*offset, build_dir.join(path)))
                .collect();
        }
        inputs.push(TargetInput::from_build_dir(None, &build_dir)?);
        builds.push(build_dir);
    }
    let payload = parts
        .iter()
        .map(|(_, p)| std::fs::metadata(p).map(|m| m.len()))
        .sum::<std::io::Result<u64>>()?;
    let firmware = dir.path().join("firmware");
    Bundle::new(inputs, None, &Metadata::default())?.write_dir(&firmware)?;
    let merged = dir.path().join("expected.bin");
    let status = Command::new(flasher)
        .args(["--chip", TARGET, "--flash_size", FLASH, "--merge-out"])
        .arg(&merged)
        .arg("--firmware-dir")
        .arg(&firmware)
        .stderr(Stdio::null())
        .status()?;
    ensure!(status.success(), "{} --merge-out failed", flasher.display());
    Ok(Setup {
        expected: std::fs::read(&merged)?,
        _dir: dir,
        firmware,
        builds,
        parts,
        payload,
    })
}

fn board() -> Result<SimBoard> {
    let size: FlashSize = FLASH.parse().map_err(anyhow::Error::msg)?;
    Ok(SimBoard::start(
        BoardConfig::new(Chip::Esp32s3)
            .flash_size(size)
            .realtime(true),
    )?)
}

fn command(tool: Tool, esptool: &Path, flasher: &Path, setup: &Setup, port: &Path) -> Command {
    match tool {
        Tool::Ours(baud) => {
            let mut c = Command::new(flasher);
            c.arg("--port").arg(port);
            c.args([
                "--chip",
                TARGET,
                "--flash_size",
                FLASH,
                "--before",
                "no-reset",
                "--after",
                "no-reset",
            ]);
            if let Some(b) = baud {
                c.args(["--baud", &b.to_string()]);
            }
            c.arg("--firmware-dir").arg(&setup.firmware);
            c
        }
        Tool::EsptoolRom(baud) | Tool::EsptoolStub(baud) => {
            let mut c = Command::new(esptool);
            c.arg("--port").arg(port);
            c.args([
                "--chip",
                TARGET,
                "--baud",
                &baud.to_string(),
                "--before",
                "no-reset",
                "--after",
                "no-reset",
            ]);
            if matches!(tool, Tool::EsptoolRom(_)) {
                c.arg("--no-stub");
            }
            c.args(["write-flash", "--force", "--flash-size", FLASH]);
            for (offset, path) in &setup.parts {
                c.arg(format!("{offset:#x}")).arg(path);
            }
            c
        }
    }
}

fn label(tool: Tool) -> String {
    match tool {
        Tool::Ours(b) => format!("ours at {}", b.map_or("default".into(), |b| b.to_string())),
        Tool::EsptoolRom(b) => format!("esptool --no-stub at {b}"),
        Tool::EsptoolStub(b) => format!("esptool stub at {b}"),
    }
}

/// Runs `tool` `runs` times, each on a fresh board, checking the flash every time.
fn measure(args: &Args, esptool: &Path, setup: &Setup, tool: Tool) -> Result<Vec<Sample>> {
    (0..args.runs)
        .map(|_| {
            let board = board()?;
            let mut cmd = command(tool, esptool, &args.flasher, setup, board.path());
            let start = Instant::now();
            let out = cmd.stdout(Stdio::null()).stderr(Stdio::piped()).output()?;
            let wall = start.elapsed();
            ensure!(
                out.status.success(),
                "{} failed: {}",
                label(tool),
                String::from_utf8_lossy(&out.stderr)
            );
            let stats = board.stats();
            let to_first_byte = stats
                .first_rx
                .map_or(Duration::ZERO, |t| t.saturating_duration_since(start));
            let flash = board.stop();
            ensure!(
                flash == setup.expected,
                "{}: the board's flash differs from the plan",
                label(tool)
            );
            eprintln!("bench: {} {}", label(tool), secs(wall));
            Ok(Sample {
                wall,
                stats,
                to_first_byte,
            })
        })
        .collect()
}

/// A full flash, then the same again on the same board.
fn reflash(args: &Args, setup: &Setup) -> Result<(Duration, Duration)> {
    let mut full = Vec::new();
    let mut again = Vec::new();
    for _ in 0..args.runs {
        let board = board()?;
        for times in [&mut full, &mut again] {
            let mut cmd = command(
                Tool::Ours(None),
                Path::new(""),
                &args.flasher,
                setup,
                board.path(),
            );
            let start = Instant::now();
            let status = cmd.stdout(Stdio::null()).stderr(Stdio::null()).status()?;
            ensure!(
                status.success(),
                "flasher failed during the re-flash measurement"
            );
            times.push(start.elapsed());
        }
        ensure!(
            board.stop() == setup.expected,
            "re-flash: the board's flash differs from the plan"
        );
    }
    Ok((median(full), median(again)))
}

/// Time from starting esptool to its first byte on the line (it is stopped right after).
fn first_byte_only(esptool: &Path, setup: &Setup) -> Result<Duration> {
    let board = board()?;
    let mut cmd = command(
        Tool::EsptoolStub(ORIGINAL_BAUD),
        esptool,
        Path::new(""),
        setup,
        board.path(),
    );
    let start = Instant::now();
    let mut child = cmd.stdout(Stdio::null()).stderr(Stdio::null()).spawn()?;
    let deadline = start + Duration::from_secs(10);
    let first = loop {
        if let Some(t) = board.stats().first_rx {
            break t.saturating_duration_since(start);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            bail!("esptool sent nothing within 10 s");
        }
        std::thread::sleep(Duration::from_micros(200));
    };
    let _ = child.kill();
    let _ = child.wait();
    Ok(first)
}

fn imagegen_timing(args: &Args, setup: &Setup) -> Result<()> {
    let out = tempfile::tempdir()?;
    let host = std::env::consts::ARCH;
    let (this, other) = if host == "aarch64" {
        ("linux/arm64", "linux/amd64")
    } else {
        ("linux/amd64", "linux/arm64")
    };
    let mut flashers = vec![format!("{this}={}", args.flasher.display())];
    match &args.flasher_other {
        Some(p) => flashers.push(format!("{other}={}", p.display())),
        None => println!("(no {other} flasher given: one platform only)\n"),
    }
    let mut times = Vec::new();
    let mut report = String::new();
    for run in 0..args.runs.max(5) {
        let mut cmd = Command::new(&args.imagegen);
        cmd.arg("build");
        for b in &setup.builds {
            cmd.arg("--target").arg(b);
        }
        for f in &flashers {
            cmd.args(["--flasher", f]);
        }
        let platforms: Vec<&str> = flashers
            .iter()
            .filter_map(|f| f.split_once('=').map(|(p, _)| p))
            .collect();
        cmd.args(["--platforms", &platforms.join(",")]);
        cmd.args(["--app-type", "bench", "--version", "1.0.0", "--output"]);
        cmd.arg(out.path().join(format!("layout{run}")));
        let start = Instant::now();
        let o = cmd.output()?;
        times.push(start.elapsed());
        ensure!(
            o.status.success(),
            "imagegen failed: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        report = String::from_utf8_lossy(&o.stdout).into_owned();
    }
    let t = median(times);
    println!(
        "- {} platforms x {} targets (1.5 MiB apps): {:.0} ms (median of {} runs)",
        flashers.len(),
        setup.builds.len(),
        ms(t),
        args.runs.max(5)
    );
    for line in report.lines().filter(|l| l.starts_with("image ")) {
        let f: Vec<&str> = line.split_whitespace().collect();
        if let (Some(platform), Some(bytes)) =
            (f.get(2), f.get(3).and_then(|b| b.parse::<f64>().ok()))
        {
            println!("- {platform}: {:.2} MiB compressed", bytes / 1_048_576.0);
        }
    }
    for f in std::iter::once(&args.flasher).chain(&args.flasher_other) {
        println!(
            "- static flasher {}: {:.2} MiB",
            f.display(),
            std::fs::metadata(f)?.len() as f64 / 1_048_576.0
        );
    }
    target("imagegen time (s, target 1)", t.as_secs_f64(), 1.0);
    Ok(())
}

fn several_boards(args: &Args, setup: &Setup) -> Result<()> {
    let mut one = None;
    println!("| boards | wall time | / one board |");
    println!("|---|---|---|");
    for &n in &args.boards {
        let mut times = Vec::new();
        for _ in 0..args.runs {
            let boards = (0..n).map(|_| board()).collect::<Result<Vec<_>>>()?;
            let mut cmd = Command::new(&args.flasher);
            for b in &boards {
                cmd.arg("--port").arg(b.path());
            }
            cmd.args([
                "--chip",
                TARGET,
                "--flash_size",
                FLASH,
                "--before",
                "no-reset",
                "--after",
                "no-reset",
            ]);
            cmd.arg("--firmware-dir").arg(&setup.firmware);
            let start = Instant::now();
            let o = cmd.stdout(Stdio::null()).stderr(Stdio::piped()).output()?;
            let wall = start.elapsed();
            if !o.status.success() {
                println!(
                    "\n(several ports in one run not available: {})",
                    String::from_utf8_lossy(&o.stderr).trim()
                );
                return Ok(());
            }
            for b in boards {
                ensure!(
                    b.stop() == setup.expected,
                    "{n} boards: a board's flash differs from the plan"
                );
            }
            times.push(wall);
        }
        let t = median(times);
        let base = *one.get_or_insert(t);
        println!("| {n} | {} | {:.2} |", secs(t), ratio(t, base));
        if n == 8 {
            target("8 boards / one board", ratio(t, base), 1.3);
        }
    }
    Ok(())
}

fn target(what: &str, value: f64, limit: f64) {
    let mark = if value <= limit { "pass" } else { "short" };
    println!("- target {what}: {value:.2} (at most {limit}) **{mark}**");
}

fn output(cmd: &mut Command) -> Result<String> {
    let o = cmd.output().with_context(|| format!("running {cmd:?}"))?;
    Ok(String::from_utf8_lossy(&o.stdout).into_owned())
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn median_wall(samples: &[Sample]) -> Duration {
    median(samples.iter().map(|s| s.wall).collect())
}

fn median_sample(samples: &[Sample]) -> &Sample {
    let m = median_wall(samples);
    samples
        .iter()
        .find(|s| s.wall == m)
        .expect("median is a sample")
}

fn ratio(a: Duration, b: Duration) -> f64 {
    a.as_secs_f64() / b.as_secs_f64()
}

fn secs(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
