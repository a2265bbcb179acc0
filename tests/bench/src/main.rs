//! `bench`: how fast a board is flashed, on real-time simulated boards, against esptool and
//! against what the wire and the flash chip allow. Prints a Markdown report; scripts/bench runs
//! it with release builds, docs/benchmarks.md keeps the latest figures.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use clap::Parser;
use esp_sim::{BoardConfig, Chip, FlashSize, LineStats, Opcode, PageProgramTime, SimBoard};
use imagegen::bundle::{Bundle, Metadata};
use imagegen::inputs::TargetInput;
use testkit::idf_build::{BuildSpec, TableKind, write_build};

mod station;

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
    /// A real ESP-IDF build directory to flash (flasher_args.json and what it names); without
    /// it, a generated esp32s3 build with a 1.5 MiB app.
    #[arg(long)]
    build: Option<PathBuf>,
    /// Runs per measurement (the median is reported).
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Baud rates for the full-flash comparison.
    #[arg(long, value_delimiter = ',', default_value = "460800,921600")]
    bauds: Vec<u32>,
    /// Page program times of the simulated flash; every comparison runs at each.
    #[arg(long, value_delimiter = ',', default_value = "0.4ms,0.7ms")]
    page_program: Vec<PageProgramTime>,
    /// Print the board's commands of one run of ours at this rate, with their times, and stop.
    #[arg(long)]
    trace: Option<u32>,
    /// Board counts for the several-boards measurement.
    #[arg(long, value_delimiter = ',', default_value = "1,2,4,8")]
    boards: Vec<usize>,
    /// Measure `--station` only (scripts/bench-station).
    #[arg(long)]
    station: bool,
}

/// The firmware under test, as files for esptool and as a bundle for the flasher.
struct Setup {
    _dir: tempfile::TempDir,
    /// What is flashed: its chip, flash size and origin.
    chip: Chip,
    target: String,
    flash: String,
    origin: String,
    firmware: PathBuf,
    /// Generated builds of three chips, for imagegen.
    builds: Vec<PathBuf>,
    parts: Parts,
    payload: u64,
    expected: Vec<u8>,
}

/// Flash files: offset and path.
type Parts = Vec<(u32, PathBuf)>;

/// One line of a full-flash comparison: our samples, and esptool's at the same rate.
struct Row {
    label: String,
    ours: Vec<Sample>,
    stub: Option<Vec<Sample>>,
}

/// One measured run.
struct Sample {
    wall: Duration,
    stats: LineStats,
    to_first_byte: Duration,
    /// Ours: the record's connect time (process start to the first region: sync, stub, rate,
    /// identify).
    connect: Option<Duration>,
    /// FLASH_DEFL_BEGIN (or FLASH_BEGIN) and SPI_FLASH_MD5 commands the board received.
    begins: usize,
    md5s: usize,
}

/// Who writes the board.
#[derive(Clone, Copy)]
enum Tool {
    /// Our flasher; `None` = its default rate.
    Ours(Option<u32>),
    /// esptool as the original image ran it: ROM loader, no compression.
    EsptoolRom(u32),
    /// esptool with its stub and compression.
    EsptoolStub(u32),
}

/// One board's timing parameter set.
#[derive(Clone, Copy)]
struct Flash {
    page_program: PageProgramTime,
}

fn main() -> Result<()> {
    let args = Args::parse();
    ensure!(args.runs >= 1, "--runs must be at least 1");
    ensure!(!args.page_program.is_empty(), "--page-program needs a time");
    let esptool = args
        .esptool
        .clone()
        .unwrap_or_else(|| testkit::tools::require("esptool"));
    let setup = setup(&args)?;
    if args.station {
        let flash = Flash {
            page_program: args.page_program[0],
        };
        return station::station(&args, &setup, flash);
    }
    if let Some(baud) = args.trace {
        return trace(&args, &esptool, &setup, baud);
    }
    header(&args, &esptool, &setup)?;
    let mut defaults_at_first = None;
    for (i, &page_program) in args.page_program.iter().enumerate() {
        let flash = Flash { page_program };
        let defaults = full_flash(&args, &esptool, &setup, flash, i + 1)?;
        defaults_at_first.get_or_insert(defaults);
    }
    let first = Flash {
        page_program: args.page_program[0],
    };
    let n = args.page_program.len();

    // Re-flash of identical firmware.
    println!(
        "\n## {}. Re-flash of identical firmware (ours, default rate, {} page program)\n",
        n + 1,
        first.page_program
    );
    let (full, again) = reflash(&args, &setup, first)?;
    println!(
        "- full flash {}, identical re-flash {} (every region skipped by MD5)",
        secs(full),
        secs(again)
    );
    target("re-flash / full flash", ratio(again, full), 0.10);

    // Start-up.
    println!(
        "\n## {}. Start-up: process start to the first byte on the line\n",
        n + 2
    );
    let ours_first = median(
        defaults_at_first
            .unwrap_or_default()
            .iter()
            .map(|x| x.to_first_byte)
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

    println!(
        "\n## {}. Encoders: the largest region compressed by zlib-compatible encoders\n",
        n + 3
    );
    encoders(&setup)?;

    println!(
        "\n## {}. imagegen: flash image for 2 platforms x 3 targets\n",
        n + 4
    );
    imagegen_timing(&args, &setup)?;

    println!(
        "\n## {}. Several boards flashed by one process (ours, default rate, {} page program)\n",
        n + 5,
        first.page_program
    );
    several_boards(&args, &setup, first)?;
    Ok(())
}

/// One run of ours at `baud` (first page program time), its commands with the time since the
/// first and the gap since the one before.
fn trace(args: &Args, esptool: &Path, setup: &Setup, baud: u32) -> Result<()> {
    let flash = Flash {
        page_program: args.page_program[0],
    };
    let board = board(setup, flash)?;
    let mut cmd = command(
        Tool::Ours(Some(baud)),
        esptool,
        &args.flasher,
        setup,
        board.path(),
    );
    let start = Instant::now();
    let out = cmd.stdout(Stdio::null()).stderr(Stdio::piped()).output()?;
    let wall = start.elapsed();
    ensure!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let commands = board.commands();
    let mut last = start;
    for c in &commands {
        println!(
            "{:9.1} ms {:+8.1} ms {:?} {:?} {} bytes",
            ms(c.at.saturating_duration_since(start)),
            ms(c.at.saturating_duration_since(last)),
            c.command,
            &c.args[..c.args.len().min(2)],
            c.data_len
        );
        last = c.at;
    }
    println!("exit after {:.1} ms", ms(wall));
    Ok(())
}

/// Section `number`: the full first flash at each rate and at the defaults, against esptool,
/// and how close each run of ours comes to the limit. Returns the default-rate samples.
fn full_flash(
    args: &Args,
    esptool: &Path,
    setup: &Setup,
    flash: Flash,
    number: usize,
) -> Result<Vec<Sample>> {
    println!(
        "## {number}. Full first flash, {} page program\n",
        flash.page_program
    );
    println!(
        "Wall time from process start to exit, median of {} runs, each on a fresh board.\n",
        args.runs
    );
    println!("| baud | ours | esptool stub + compression | ours / esptool stub |");
    println!("|---|---|---|---|");
    let mut rows = Vec::new();
    for &baud in &args.bauds {
        let ours = measure(args, esptool, setup, flash, Tool::Ours(Some(baud)))?;
        let stub = measure(args, esptool, setup, flash, Tool::EsptoolStub(baud))?;
        let (o, s) = (median_wall(&ours), median_wall(&stub));
        println!(
            "| {baud} | {} | {} | {:.2} |",
            secs(o),
            secs(s),
            ratio(o, s)
        );
        rows.push(Row {
            label: baud.to_string(),
            ours,
            stub: Some(stub),
        });
    }
    println!();
    for row in &rows {
        let stub = row.stub.as_ref().expect("measured");
        target(
            &format!("{} baud: ours / esptool stub + compression", row.label),
            ratio(median_wall(&row.ours), median_wall(stub)),
            0.9,
        );
    }
    let defaults = measure(args, esptool, setup, flash, Tool::Ours(None))?;
    let original = measure(args, esptool, setup, flash, Tool::EsptoolRom(ORIGINAL_BAUD))?;
    let (d, r) = (median_wall(&defaults), median_wall(&original));
    println!(
        "- defaults as users run them: ours (no --baud) {} against the original image's \
         esptool --no-stub at 460800 {}",
        secs(d),
        secs(r)
    );
    target("defaults: ours / original", ratio(d, r), 0.2);
    rows.push(Row {
        label: "default".into(),
        ours: defaults,
        stub: None,
    });
    rows.push(Row {
        label: format!("esptool --no-stub {ORIGINAL_BAUD}"),
        ours: original,
        stub: None,
    });
    efficiency(setup, &rows);
    Ok(rows
        .into_iter()
        .find(|r| r.label == "default")
        .map(|r| r.ours)
        .unwrap_or_default())
}

/// The efficiency table of `rows` (label, our samples, esptool's at the same rate).
fn efficiency(setup: &Setup, rows: &[Row]) {
    println!(
        "\nPayload {} bytes. Wire: every byte on the line both ways at the rate in effect; \
         upload: the stub's part of it; flash: the simulated chip's erase, program and MD5 \
         work; limit: the upload, then the larger of the rest of the wire and the flash (the \
         stub writes while the next block arrives). Commands: FLASH_(DEFL_)BEGIN / \
         SPI_FLASH_MD5 received.\n",
        setup.payload
    );
    println!(
        "| run | tool | bytes on the wire | wire | upload | flash | limit | measured | measured / limit | commands | connect |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    let mut default_ratio = None;
    for Row { label, ours, stub } in rows {
        let first = if label.starts_with("esptool") {
            "esptool"
        } else {
            "ours"
        };
        let tools = std::iter::once((first, ours)).chain(stub.iter().map(|s| ("esptool stub", s)));
        for (tool, samples) in tools {
            let s = median_sample(samples);
            let wire = s.stats.rx_wire + s.stats.tx_wire;
            let limit = s.stats.upload_wire
                + wire
                    .saturating_sub(s.stats.upload_wire)
                    .max(s.stats.flash_time);
            println!(
                "| {label} | {tool} | {} | {} | {} | {} | {} | {} | {:.2} | {} / {} | {} |",
                s.stats.rx_bytes + s.stats.tx_bytes,
                secs(wire),
                secs(s.stats.upload_wire),
                secs(s.stats.flash_time),
                secs(limit),
                secs(s.wall),
                ratio(s.wall, limit),
                s.begins,
                s.md5s,
                s.connect.map_or("".into(), secs)
            );
            if label == "default" && tool == "ours" {
                default_ratio = Some(ratio(s.wall, limit));
            }
        }
    }
    println!();
    if let Some(r) = default_ratio {
        target("defaults: measured / limit", r, 1.1);
    }
    println!();
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
        "- board: simulated {}, {} flash, real-time mode (10 bits per byte each way, 1 ms \
         bridge turnaround per reply, W25Q128JV typical erase times, page program {}; the \
         stub acknowledges a block before writing it and skips erasing blank sectors, as \
         esp-flasher-stub does; MD5 at {} ms per MiB)",
        setup.target,
        setup.flash,
        args.page_program
            .iter()
            .map(|p| p.to_string())
            .collect::<Vec<_>>()
            .join(" and "),
        esp_sim::FlashTimings::W25Q.md5_per_mib.as_millis()
    );
    println!(
        "- firmware: {}: {} bytes in all ({})\n",
        setup.origin,
        setup.payload,
        setup
            .parts
            .iter()
            .map(|(o, p)| format!(
                "{:#x} {} bytes",
                o,
                std::fs::metadata(p).map_or(0, |m| m.len())
            ))
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(())
}

/// Three generated builds (esp32s3, esp32, esp32c3: 1.5 MiB apps) for imagegen; the first is
/// what is flashed unless `--build` names a real one.
fn generated_builds(root: &Path) -> Result<Vec<(PathBuf, Parts)>> {
    let mut out = Vec::new();
    for chip in [
        firmware::chip::Chip::Esp32s3,
        firmware::chip::Chip::Esp32,
        firmware::chip::Chip::Esp32c3,
    ] {
        let mut spec = BuildSpec::new(chip);
        spec.app_len = 1536 * 1024;
        spec.app_slot = 0x19_0000;
        spec.table = TableKind::OtaOnly;
        let build_dir = root.join("builds").join(chip.name());
        let build = write_build(&build_dir, &spec)?;
        let parts = build
            .flash_files
            .iter()
            .map(|(offset, path, _)| (*offset, build_dir.join(path)))
            .collect();
        out.push((build_dir, parts));
    }
    Ok(out)
}

/// The flash files of a real build: `flash_files` of its flasher_args.json, its chip and flash
/// size.
fn real_build(dir: &Path) -> Result<(Parts, String, String)> {
    let text = std::fs::read_to_string(dir.join("flasher_args.json"))
        .with_context(|| format!("{}: no flasher_args.json", dir.display()))?;
    let json: serde_json::Value = serde_json::from_str(&text)?;
    let files = json["flash_files"]
        .as_object()
        .context("flasher_args.json has no flash_files")?;
    let mut parts = files
        .iter()
        .map(|(offset, file)| {
            let offset = u32::from_str_radix(offset.trim_start_matches("0x"), 16)?;
            let file = file.as_str().context("a flash file is not a path")?;
            Ok((offset, dir.join(file)))
        })
        .collect::<Result<Vec<_>>>()?;
    parts.sort();
    let chip = json["extra_esptool_args"]["chip"]
        .as_str()
        .context("flasher_args.json names no chip")?
        .to_string();
    let flash = json["flash_settings"]["flash_size"]
        .as_str()
        .unwrap_or("4MB")
        .to_string();
    Ok((parts, chip, flash))
}

fn setup(args: &Args) -> Result<Setup> {
    let dir = tempfile::tempdir()?;
    let generated = generated_builds(dir.path())?;
    let builds: Vec<PathBuf> = generated.iter().map(|(d, _)| d.clone()).collect();
    let (flashed_dir, parts, target, flash, origin) = match &args.build {
        Some(build) => {
            let (parts, chip, flash) = real_build(build)?;
            let origin = format!("the ESP-IDF build {}", build.display());
            (build.clone(), parts, chip, flash, origin)
        }
        None => {
            let (d, parts) = generated[0].clone();
            let origin =
                "a generated esp32s3 build, 1536 KiB app compressing like real firmware".into();
            (d, parts, "esp32s3".into(), "4MB".into(), origin)
        }
    };
    let chip: Chip = target.parse().map_err(anyhow::Error::msg)?;
    let payload = parts
        .iter()
        .map(|(_, p)| std::fs::metadata(p).map(|m| m.len()))
        .sum::<std::io::Result<u64>>()?;
    let firmware = dir.path().join("firmware");
    let input = TargetInput::from_build_dir(None, &flashed_dir)?;
    Bundle::new(vec![input], None, &Metadata::default())?.write_dir(&firmware)?;
    let merged = dir.path().join("expected.bin");
    let status = Command::new(&args.flasher)
        .args(["--chip", &target, "--flash_size", &flash, "--merge-out"])
        .arg(&merged)
        .arg("--firmware-dir")
        .arg(&firmware)
        .stderr(Stdio::null())
        .status()?;
    ensure!(
        status.success(),
        "{} --merge-out failed",
        args.flasher.display()
    );
    Ok(Setup {
        expected: std::fs::read(&merged)?,
        _dir: dir,
        chip,
        target,
        flash,
        origin,
        firmware,
        builds,
        parts,
        payload,
    })
}

fn board(setup: &Setup, flash: Flash) -> Result<SimBoard> {
    let size: FlashSize = setup.flash.parse().map_err(anyhow::Error::msg)?;
    Ok(SimBoard::start(
        BoardConfig::new(setup.chip)
            .flash_size(size)
            .page_program(flash.page_program)
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
                &setup.target,
                "--flash_size",
                &setup.flash,
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
                &setup.target,
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
            c.args(["write-flash", "--force", "--flash-size", &setup.flash]);
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
fn measure(
    args: &Args,
    esptool: &Path,
    setup: &Setup,
    flash: Flash,
    tool: Tool,
) -> Result<Vec<Sample>> {
    (0..args.runs)
        .map(|_| {
            let board = board(setup, flash)?;
            let mut cmd = command(tool, esptool, &args.flasher, setup, board.path());
            let report = tempfile::NamedTempFile::new()?;
            if matches!(tool, Tool::Ours(_)) {
                cmd.arg("--report").arg(report.path());
            }
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
            let commands = board.commands();
            let count = |ops: &[Opcode]| {
                commands
                    .iter()
                    .filter(|c| c.command.is_some_and(|op| ops.contains(&op)))
                    .count()
            };
            let begins = count(&[Opcode::FlashBegin, Opcode::FlashDeflBegin]);
            let md5s = count(&[Opcode::SpiFlashMd5]);
            let written = board.stop();
            ensure!(
                written == setup.expected,
                "{}: the board's flash differs from the plan",
                label(tool)
            );
            eprintln!("bench: {} {}", label(tool), secs(wall));
            let connect = std::fs::read_to_string(report.path())
                .ok()
                .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
                .and_then(|r| r["boards"][0]["timings_ms"]["connect"].as_u64())
                .map(Duration::from_millis);
            Ok(Sample {
                wall,
                stats,
                to_first_byte,
                connect,
                begins,
                md5s,
            })
        })
        .collect()
}

/// A full flash, then the same again on the same board.
fn reflash(args: &Args, setup: &Setup, flash: Flash) -> Result<(Duration, Duration)> {
    let mut full = Vec::new();
    let mut again = Vec::new();
    for _ in 0..args.runs {
        let board = board(setup, flash)?;
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
    let board = board(
        setup,
        Flash {
            page_program: PageProgramTime::default(),
        },
    )?;
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

/// Compressed size and time of the largest flash file with each encoder, and what the bytes
/// cost on the wire; the flasher compresses while it connects, so its time is hidden when it is
/// shorter than the connection.
fn encoders(setup: &Setup) -> Result<()> {
    use std::io::Write;
    let (_, path) = setup
        .parts
        .iter()
        .max_by_key(|(_, p)| std::fs::metadata(p).map_or(0, |m| m.len()))
        .context("no flash files")?;
    let data = std::fs::read(path)?;
    let libdeflate = |level: i32| -> Result<usize> {
        let lvl = libdeflater::CompressionLvl::new(level).map_err(|e| anyhow::anyhow!("{e:?}"))?;
        let mut c = libdeflater::Compressor::new(lvl);
        let mut out = vec![0; c.zlib_compress_bound(data.len())];
        c.zlib_compress(&data, &mut out)
            .map_err(|e| anyhow::anyhow!("{e:?}"))
    };
    let zlib9 = || -> Result<usize> {
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
        z.write_all(&data)?;
        Ok(z.finish()?.len())
    };
    let zopfli = || -> Result<usize> {
        let mut out = Vec::new();
        zopfli::compress(
            zopfli::Options::default(),
            zopfli::Format::Zlib,
            &data[..],
            &mut out,
        )?;
        Ok(out.len())
    };
    println!(
        "{} ({} bytes); wire time of the compressed bytes (10 bits per byte).\n",
        path.file_name().map_or("?".into(), |n| n.to_string_lossy()),
        data.len()
    );
    println!("| encoder | bytes | / zlib 9 | compress time | wire at 921600 | wire at 2000000 |");
    println!("|---|---|---|---|---|---|");
    let encoders: [(&str, &dyn Fn() -> Result<usize>); 4] = [
        ("zlib level 9 (flate2; espflash, esptool)", &zlib9),
        ("libdeflate level 9", &|| libdeflate(9)),
        ("libdeflate level 12 (the flasher)", &|| libdeflate(12)),
        ("zopfli, 15 iterations", &zopfli),
    ];
    let mut base = None;
    for (name, compress) in encoders {
        let start = Instant::now();
        let len = compress()?;
        let time = start.elapsed();
        let base = *base.get_or_insert(len);
        let wire = |baud: u32| Duration::from_secs_f64(len as f64 * 10.0 / f64::from(baud));
        println!(
            "| {name} | {len} | {:.3} | {:.0} ms | {} | {} |",
            len as f64 / base as f64,
            ms(time),
            secs(wire(921_600)),
            secs(wire(2_000_000))
        );
    }
    Ok(())
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

fn several_boards(args: &Args, setup: &Setup, flash: Flash) -> Result<()> {
    let mut one = None;
    println!("| boards | wall time | / one board |");
    println!("|---|---|---|");
    for &n in &args.boards {
        let mut times = Vec::new();
        for _ in 0..args.runs {
            let boards = (0..n)
                .map(|_| board(setup, flash))
                .collect::<Result<Vec<_>>>()?;
            let mut cmd = Command::new(&args.flasher);
            for b in &boards {
                cmd.arg("--port").arg(b.path());
            }
            cmd.args([
                "--chip",
                &setup.target,
                "--flash_size",
                &setup.flash,
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
