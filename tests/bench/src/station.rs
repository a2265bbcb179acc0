//! `--station`: a board written by a running `flasher --station` against a one-shot run of the
//! same board, eight boards plugged at once against one, and an idle station's CPU and memory.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use esp_sim::SimBoard;

use super::{Args, Flash, Setup, board, median, ratio, secs, target};

/// How long the idle station is watched per sample.
const IDLE_WINDOW: Duration = Duration::from_secs(10);

/// Runs the station section of the report.
pub fn station(args: &Args, setup: &Setup, flash: Flash) -> Result<()> {
    println!(
        "\n## Station mode (`--station`, default rate, {} page program)\n",
        flash.page_program
    );
    let one_shot = median(
        (0..args.runs)
            .map(|_| one_shot(args, setup, flash))
            .collect::<Result<Vec<_>>>()?,
    );
    let mut station = Station::start(args, setup)?;
    let one = median(
        (0..args.runs)
            .map(|_| station.boards(setup, flash, 1))
            .collect::<Result<Vec<_>>>()?,
    );
    let eight = median(
        (0..args.runs)
            .map(|_| station.boards(setup, flash, 8))
            .collect::<Result<Vec<_>>>()?,
    );
    println!("| run | wall time |");
    println!("|---|---|");
    println!("| one-shot, one board | {} |", secs(one_shot));
    println!("| station, one board (plugged to record) | {} |", secs(one));
    println!(
        "| station, 8 boards plugged at once (to the last record) | {} |",
        secs(eight)
    );
    println!();
    target("station board / one-shot board", ratio(one, one_shot), 1.05);
    target("station 8 boards / one board", ratio(eight, one), 1.3);
    let (cpu, rss) = station.idle(setup, flash, args.runs)?;
    println!(
        "- idle station, 8 watched ports holding done boards: CPU {cpu:.2} % of a core, RSS {rss:.1} MB (medians of {} windows of {} s)",
        args.runs,
        IDLE_WINDOW.as_secs()
    );
    target("idle station CPU (% of a core)", cpu, 1.0);
    target("idle station RSS (MB)", rss, 30.0);
    Ok(())
}

/// The wall time of `flasher --port` writing one fresh board.
fn one_shot(args: &Args, setup: &Setup, flash: Flash) -> Result<Duration> {
    let b = board(setup, flash)?;
    let start = Instant::now();
    let out = Command::new(&args.flasher)
        .arg("--port")
        .arg(b.path())
        .args(common(setup))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()?;
    let wall = start.elapsed();
    ensure!(
        out.status.success(),
        "one-shot: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    ensure!(
        b.stop() == setup.expected,
        "one-shot: the flash differs from the plan"
    );
    Ok(wall)
}

fn common(setup: &Setup) -> Vec<String> {
    let mut args: Vec<String> = ["--chip", &setup.target, "--flash_size", &setup.flash]
        .map(String::from)
        .to_vec();
    args.extend(["--before", "no-reset", "--after", "no-reset"].map(String::from));
    args.extend([
        "--firmware-dir".into(),
        setup.firmware.display().to_string(),
    ]);
    args
}

/// A running `flasher --station` on `DIR/ttyUSB*`.
struct Station {
    dir: tempfile::TempDir,
    child: Child,
}

impl Station {
    fn start(args: &Args, setup: &Setup) -> Result<Station> {
        let dir = tempfile::tempdir()?;
        let child = Command::new(&args.flasher)
            .args(common(setup))
            .arg("--station")
            .arg("--port")
            .arg(dir.path().join("ttyUSB*"))
            .arg("--report-append")
            .arg(dir.path().join("shift.jsonl"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting flasher --station")?;
        Ok(Station { dir, child })
    }

    fn link(&self, n: usize) -> PathBuf {
        self.dir.path().join(format!("ttyUSB{n}"))
    }

    fn records(&self) -> usize {
        fs::read_to_string(self.dir.path().join("shift.jsonl"))
            .map(|t| t.lines().count())
            .unwrap_or(0)
    }

    /// Plugs `n` fresh boards at once and returns the time to their last record; each board's
    /// flash is checked, then they are unplugged.
    fn boards(&mut self, setup: &Setup, flash: Flash, n: usize) -> Result<Duration> {
        let boards = self.plug(setup, flash, n)?;
        let wall = boards.1;
        self.unplug(setup, boards.0)?;
        Ok(wall)
    }

    fn plug(&mut self, setup: &Setup, flash: Flash, n: usize) -> Result<(Vec<SimBoard>, Duration)> {
        let before = self.records();
        let boards = (0..n)
            .map(|_| board(setup, flash))
            .collect::<Result<Vec<_>>>()?;
        let start = Instant::now();
        for (i, b) in boards.iter().enumerate() {
            symlink(b.path(), self.link(i))?;
        }
        while self.records() < before + n {
            ensure!(
                start.elapsed() < Duration::from_secs(600),
                "the station wrote no record"
            );
            ensure!(self.child.try_wait()?.is_none(), "the station stopped");
            thread::sleep(Duration::from_millis(10));
        }
        Ok((boards, start.elapsed()))
    }

    fn unplug(&mut self, setup: &Setup, boards: Vec<SimBoard>) -> Result<()> {
        for i in 0..boards.len() {
            fs::remove_file(self.link(i))?;
        }
        for b in boards {
            ensure!(
                b.stop() == setup.expected,
                "station: a board's flash differs from the plan"
            );
        }
        // The station sees the ports gone before the next boards come.
        thread::sleep(Duration::from_secs(1));
        Ok(())
    }

    /// CPU (% of a core) and RSS (MB) of the station with 8 done boards plugged, medians.
    fn idle(&mut self, setup: &Setup, flash: Flash, runs: usize) -> Result<(f64, f64)> {
        let (boards, _) = self.plug(setup, flash, 8)?;
        thread::sleep(Duration::from_secs(1));
        let pid = self.child.id();
        let tick = clock_ticks()?;
        let mut cpu = Vec::new();
        let mut rss = Vec::new();
        for _ in 0..runs {
            let before = cpu_ticks(pid)?;
            thread::sleep(IDLE_WINDOW);
            let used = (cpu_ticks(pid)? - before) as f64 / tick;
            cpu.push(used / IDLE_WINDOW.as_secs_f64() * 100.0);
            rss.push(rss_mb(pid)?);
        }
        self.unplug(setup, boards)?;
        Ok((median_f(cpu), median_f(rss)))
    }
}

impl Drop for Station {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }
}

fn median_f(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Clock ticks per second (`getconf CLK_TCK`).
fn clock_ticks() -> Result<f64> {
    let out = Command::new("getconf").arg("CLK_TCK").output()?;
    Ok(String::from_utf8_lossy(&out.stdout).trim().parse()?)
}

/// User plus system time of `pid`, in clock ticks, from `/proc/PID/stat`.
fn cpu_ticks(pid: u32) -> Result<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let after_name = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // Fields 14 and 15 of stat(5) (utime, stime), counted from after the name (field 3 first).
    Ok(fields[11].parse::<u64>()? + fields[12].parse::<u64>()?)
}

/// The resident set of `pid`, in MB, from `/proc/PID/status`.
fn rss_mb(pid: u32) -> Result<f64> {
    let status = fs::read_to_string(Path::new("/proc").join(pid.to_string()).join("status"))?;
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .context("no VmRSS")?
        .parse()?;
    Ok(kb / 1024.0)
}
