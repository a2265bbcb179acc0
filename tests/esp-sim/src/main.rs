//! `esp-sim`: serve a simulated ESP32-family board on a pty.

use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Parser;
use esp_sim::{
    BoardConfig, Chip, Crystal, EfuseImage, EfuseSetting, FaultSpec, FlashSize, MacAddress,
    PageProgramTime, Psram, Revision, Security, SimBoard,
};

/// Serve a simulated ESP32-family board in download mode on a pseudo-terminal.
///
/// Prints the pty path as the first line of stdout, serves until SIGTERM,
/// SIGINT or end of stdin, then writes the flash to --dump.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Chip: esp32, esp32s2, esp32s3, esp32c2, esp32c3, esp32c5, esp32c6,
    /// esp32c61, esp32h2 or esp32p4.
    #[arg(long)]
    chip: Chip,
    /// SPI flash size (power of two, 1MB to 128MB).
    #[arg(long, default_value = "4MB")]
    flash_size: FlashSize,
    /// PSRAM size, shown in eFuses where the chip has such a variant.
    #[arg(long)]
    psram: Option<Psram>,
    /// Factory MAC address (AA:BB:CC:DD:EE:FF).
    #[arg(long)]
    mac: Option<MacAddress>,
    /// Chip revision in the eFuses (`v1.2`); a per-chip default otherwise.
    #[arg(long)]
    revision: Option<Revision>,
    /// Crystal frequency (`26MHz`, `40MHz`, ...) where the chip has several.
    #[arg(long)]
    crystal: Option<Crystal>,
    /// The ROM runs in Secure Download Mode (not on esp32).
    #[arg(long)]
    secure_download: bool,
    /// Secure Boot is enabled (esp32: revision v3.0 or later).
    #[arg(long)]
    secure_boot: bool,
    /// Flash encryption is enabled (the crypt counter is odd).
    #[arg(long)]
    flash_encryption: bool,
    /// A Secure Boot V2 public key digest (64 hex digits) burnt into the next
    /// key block; up to three.
    #[arg(long, value_parser = parse_digest)]
    secure_boot_digest: Vec<[u8; 32]>,
    /// Burn an eFuse field or block before starting (`SPI_BOOT_CRYPT_CNT=1`, `KEY_PURPOSE_0=4`,
    /// `BLOCK_KEY0=<up to 64 hex digits>`); repeatable. esp32, esp32c3, esp32s3, esp32c6.
    #[arg(long = "efuse", value_name = "NAME=VALUE")]
    efuses: Vec<EfuseSetting>,
    /// Start with the eFuses saved by --efuse-dump (e.g. of a board that lost power).
    #[arg(long)]
    efuse_load: Option<PathBuf>,
    /// Write the eFuses to this file on exit (one line per block, as --efuse-load reads).
    #[arg(long)]
    efuse_dump: Option<PathBuf>,
    /// Create a symlink to the pty at this path.
    #[arg(long)]
    link: Option<PathBuf>,
    /// Preload the flash from this file (from offset 0).
    #[arg(long)]
    load: Option<PathBuf>,
    /// Write the whole flash to this file on exit.
    #[arg(long)]
    dump: Option<PathBuf>,
    /// Pace bytes at the line rate and flash operations at datasheet timings.
    #[arg(long)]
    realtime: bool,
    /// Time to program one 256-byte flash page with --realtime (`400us`,
    /// `0.7ms`).
    #[arg(long, default_value = "400us")]
    page_program: PageProgramTime,
    /// Faults to inject, e.g. `seed=7,drop=0.001,stall=200ms@4000,bad-md5=1`.
    #[arg(long)]
    faults: Option<FaultSpec>,
}

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn request_stop(_signal: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

fn install_signal_handlers() -> Result<()> {
    for signal in [libc::SIGTERM, libc::SIGINT] {
        // SAFETY: the handler only stores to an atomic, which is
        // async-signal-safe.
        let previous =
            unsafe { libc::signal(signal, request_stop as *const () as libc::sighandler_t) };
        if previous == libc::SIG_ERR {
            return Err(io::Error::last_os_error()).context("installing signal handler");
        }
    }
    Ok(())
}

/// Stops the simulator once stdin reaches its end.
fn watch_stdin() {
    thread::spawn(|| {
        let mut sink = [0u8; 256];
        let mut stdin = io::stdin();
        while matches!(stdin.read(&mut sink), Ok(n) if n > 0) {}
        STOP.store(true, Ordering::SeqCst);
    });
}

fn make_link(link: &Path, target: &Path) -> Result<()> {
    if link.symlink_metadata().is_ok() {
        fs::remove_file(link).with_context(|| format!("removing old {}", link.display()))?;
    }
    std::os::unix::fs::symlink(target, link)
        .with_context(|| format!("creating symlink {}", link.display()))
}

/// Writes `data` to `path` through a temporary file and a rename.
fn write_atomically(path: &Path, data: &[u8]) -> Result<()> {
    let file_name = path
        .file_name()
        .with_context(|| format!("{} is not a file path", path.display()))?;
    let mut temp_name = file_name.to_os_string();
    temp_name.push(format!(".tmp{}", std::process::id()));
    let temp = path.with_file_name(temp_name);
    let mut file =
        fs::File::create(&temp).with_context(|| format!("creating {}", temp.display()))?;
    file.write_all(data)
        .and_then(|()| file.sync_all())
        .with_context(|| format!("writing {}", temp.display()))?;
    fs::rename(&temp, path).with_context(|| format!("renaming to {}", path.display()))
}

fn main() -> Result<()> {
    let args = Args::parse();
    let mut config = BoardConfig::new(args.chip)
        .flash_size(args.flash_size)
        .realtime(args.realtime)
        .page_program(args.page_program);
    config.psram = args.psram;
    config.mac = args.mac;
    config.revision = args.revision;
    config.crystal = args.crystal;
    config.security = Security {
        secure_download: args.secure_download,
        secure_boot: args.secure_boot,
        flash_encryption: args.flash_encryption,
    };
    config.secure_boot_digests = args.secure_boot_digest;
    config.efuses = args.efuses;
    if let Some(load) = &args.efuse_load {
        let text =
            fs::read_to_string(load).with_context(|| format!("reading {}", load.display()))?;
        let image = EfuseImage::parse(args.chip, &text)
            .with_context(|| format!("reading the eFuse image {}", load.display()))?;
        config = config.efuse_image(image);
    }
    if let Some(faults) = args.faults {
        config = config.faults(faults);
    }
    if let Some(load) = &args.load {
        let content = fs::read(load).with_context(|| format!("reading {}", load.display()))?;
        config = config.initial_flash(content);
    }
    install_signal_handlers()?;
    let board = SimBoard::start(config).context("starting the simulated board")?;
    if let Some(link) = &args.link {
        make_link(link, board.path())?;
    }
    {
        let mut stdout = io::stdout().lock();
        writeln!(stdout, "{}", board.path().display())?;
        stdout.flush()?;
    }
    watch_stdin();
    while !STOP.load(Ordering::SeqCst) {
        thread::sleep(Duration::from_millis(50));
    }
    let pty = board.path().to_owned();
    let efuses = board.efuse_image();
    let flash = board.stop();
    if let Some(link) = &args.link {
        // Remove the link only if it still points at our pty.
        if fs::read_link(link).is_ok_and(|target| target == pty) {
            fs::remove_file(link).with_context(|| format!("removing {}", link.display()))?;
        }
    }
    if let Some(dump) = &args.dump {
        write_atomically(dump, &flash)?;
    }
    if let Some(dump) = &args.efuse_dump {
        let image = efuses.with_context(|| format!("{} has no modelled eFuses", args.chip))?;
        write_atomically(dump, image.to_string().as_bytes())?;
    }
    Ok(())
}

/// 64 hex digits as 32 bytes.
fn parse_digest(text: &str) -> Result<[u8; 32], String> {
    let bad = || format!("`{text}` is not a SHA-256 digest (64 hex digits)");
    if text.len() != 64 || !text.is_ascii() {
        return Err(bad());
    }
    let mut digest = [0; 32];
    for (i, byte) in digest.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
    }
    Ok(digest)
}
