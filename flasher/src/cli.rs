//! The command line, compatible with the original image's entrypoint
//! (`--port --chip --flash_size [--baud] [--override_pt]`), kebab-case spellings included.

use std::path::PathBuf;

use clap::{Parser, ValueEnum};

use firmware::chip::TargetName;
use firmware::flash_size::FlashSize;
use firmware::override_table::OverrideMode;

const EXAMPLES: &str = "\
Examples:
  docker run --device=/dev/ttyUSB0 IMAGE --port /dev/ttyUSB0 --chip esp32s3 --flash_size 8MB
  flasher --port /dev/ttyUSB0 --port /dev/ttyUSB1 --chip esp32s3 --flash_size 8MB \\
      --report-append shift.jsonl
  flasher --port '/dev/ttyUSB*' --chip esp32c3 --flash_size 4MB
  flasher --port usb-serial=F4:12:FA:00:11:22 --chip esp32s3 --flash_size 8MB
  flasher --port rfc2217://host.docker.internal:4000 --chip esp32c3 --flash_size 4MB
  flasher --list-ports [--json]
  flasher --chip esp32s3r8 --flash_size 16MB --override_pt no_factory --dry-run
  flasher --chip esp32 --flash_size 4MB --merge-out flash.bin

Exit codes: 0 ok, 1 other error, 2 bad usage, 3 bad bundle, 4 device not found, busy or
not answering, 5 wrong chip or too little flash, 6 write or verify failure, 7 several boards
failed for different reasons, 8 boards left without an --nvs-values row.";

/// Writes an ESP32-family board from the firmware bundle of this image.
#[derive(Debug, Clone, Parser)]
#[command(name = "flasher", version, about, after_help = EXAMPLES)]
pub struct Args {
    /// Serial device of the board (not needed with --dry-run or --merge-out). Repeat it, or give
    /// a pattern such as '/dev/ttyUSB*', to write several boards at once.
    #[arg(long, value_name = "PORT")]
    pub port: Vec<String>,

    /// Build target of the image: esp32, esp32s2, esp32s3, esp32c3, esp32c6, esp32h2, or a PSRAM
    /// variant such as esp32s3r8.
    #[arg(long, value_name = "CHIP", value_parser = parse_target)]
    pub chip: TargetName,

    /// Flash size of the board, 1MB to 128MB (4MB, 16mb, 8M).
    #[arg(long = "flash_size", visible_alias = "flash-size", value_name = "SIZE", value_parser = parse_size)]
    pub flash_size: FlashSize,

    /// Baud rate for writing; without it the flasher tries 921600 and steps down to 460800,
    /// then 115200, when the line proves unreliable.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(9600..))]
    pub baud: Option<u32>,

    /// Replace the image's partition table with one spanning the whole flash:
    /// normal, normal_with_model, no_factory or no_factory_with_model.
    #[arg(long = "override_pt", visible_alias = "override-pt", value_name = "MODE", value_parser = parse_mode)]
    pub override_pt: Option<OverrideMode>,

    /// How to put the board into download mode.
    #[arg(long, value_enum, default_value = "default-reset")]
    pub before: Before,

    /// What to do with the board after writing.
    #[arg(long, value_enum, default_value = "hard-reset")]
    pub after: After,

    /// Root of the firmware bundle.
    #[arg(
        long = "firmware-dir",
        alias = "firmware_dir",
        value_name = "DIR",
        default_value = "/firmware"
    )]
    pub firmware_dir: PathBuf,

    /// Do not read back the MD5 of each region after writing it.
    #[arg(long = "no-verify", alias = "no_verify")]
    pub no_verify: bool,

    /// Write every region, even those whose MD5 already matches.
    #[arg(long = "no-skip", alias = "no_skip")]
    pub no_skip: bool,

    /// Print the plan and exit without touching the board.
    #[arg(long = "dry-run", alias = "dry_run")]
    pub dry_run: bool,

    /// Write the full flash image the plan describes to FILE instead of a board.
    #[arg(long = "merge-out", alias = "merge_out", value_name = "FILE")]
    pub merge_out: Option<PathBuf>,

    /// Write a JSON report of the run (one record per board: device, regions, timings,
    /// outcome) to FILE.
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,

    /// Append one JSON line per board to FILE (JSON Lines), as each board finishes: a log that
    /// keeps every board of a shift.
    #[arg(long = "report-append", alias = "report_append", value_name = "FILE")]
    pub report_append: Option<PathBuf>,

    /// Per-board data (a manufacturing station): an NVS image per board from a row of this
    /// values CSV (ESP-IDF's mass manufacturing format), each row to exactly one board.
    #[arg(long = "nvs-values", value_name = "FILE.csv", requires = "nvs_config")]
    pub nvs_values: Option<PathBuf>,

    /// The mass manufacturing config CSV of --nvs-values (key,type,encoding[,REPEAT]).
    #[arg(long = "nvs-config", value_name = "FILE.csv", requires = "nvs_values")]
    pub nvs_config: Option<PathBuf>,

    /// The data/nvs partition the per-board image goes to.
    #[arg(
        long = "nvs-partition",
        value_name = "LABEL",
        default_value = "nvs",
        requires = "nvs_values"
    )]
    pub nvs_partition: String,

    /// The journal recording which row went to which board (default: VALUES.csv.journal).
    #[arg(long = "nvs-journal", value_name = "FILE", requires = "nvs_values")]
    pub nvs_journal: Option<PathBuf>,

    /// Give a failed or in-doubt row back to the station, then exit without writing a board
    /// (repeat it for several rows).
    #[arg(long = "nvs-release", value_name = "ID", requires = "nvs_values")]
    pub nvs_release: Vec<String>,

    /// With --dry-run or --merge-out: show or write the plan with this row's NVS image (no
    /// journal entry).
    #[arg(long = "nvs-row", value_name = "ID", requires = "nvs_values")]
    pub nvs_row: Option<String>,
}

impl Args {
    /// Whether the run talks to a board.
    pub fn uses_device(&self) -> bool {
        !self.dry_run && self.merge_out.is_none()
    }
}

/// `flasher --list-ports [--json]`: the serial ports this container sees, without a plan.
#[derive(Debug, Clone, Parser)]
#[command(name = "flasher")]
pub struct ListPorts {
    /// Print the serial ports this container sees (USB ids, serial numbers, USB paths, the
    /// reset sequence each gets) and exit.
    #[arg(long = "list-ports", alias = "list_ports", required = true)]
    pub list_ports: bool,
    /// Print the ports as JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

impl ListPorts {
    /// The `--list-ports` command line, when `args` (program name first) ask for it.
    pub fn requested(args: &[std::ffi::OsString]) -> Option<Result<ListPorts, clap::Error>> {
        args.iter()
            .any(|a| a == "--list-ports" || a == "--list_ports")
            .then(|| ListPorts::try_parse_from(args))
    }
}

/// How to enter download mode (esptool's `--before` names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Before {
    /// Pulse DTR/RTS to reset into the ROM loader.
    #[value(alias = "default_reset")]
    DefaultReset,
    /// Expect the board in download mode already; sync only.
    #[value(alias = "no_reset")]
    NoReset,
    /// Expect the loader running and synced already (no stub, no flash detection).
    #[value(alias = "no_reset_no_sync")]
    NoResetNoSync,
    /// The USB-Serial-JTAG reset sequence.
    #[value(alias = "usb_reset")]
    UsbReset,
}

/// What to do after writing (esptool's `--after` names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum After {
    /// Pulse RTS to reset into the new firmware.
    #[value(alias = "hard_reset")]
    HardReset,
    /// Leave the board in the loader.
    #[value(alias = "no_reset")]
    NoReset,
    /// Leave the board in the flasher stub.
    #[value(alias = "no_reset_stub")]
    NoResetStub,
    /// Reset through the RTC watchdog (USB-connected S2/S3/C3 boards).
    #[value(alias = "watchdog_reset")]
    WatchdogReset,
}

fn parse_target(s: &str) -> Result<TargetName, String> {
    s.parse()
        .map_err(|e: firmware::chip::UnknownChip| e.to_string())
}

fn parse_size(s: &str) -> Result<FlashSize, String> {
    s.parse()
        .map_err(|e: firmware::flash_size::BadFlashSize| e.to_string())
}

fn parse_mode(s: &str) -> Result<OverrideMode, String> {
    s.parse()
        .map_err(|e: firmware::override_table::UnknownMode| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Args, clap::Error> {
        Args::try_parse_from(std::iter::once("flasher").chain(args.iter().copied()))
    }

    #[test]
    fn accepts_both_spellings() {
        let a = parse(&[
            "--port",
            "/dev/ttyUSB0",
            "--chip",
            "esp32s3r8",
            "--flash_size",
            "8mb",
            "--override_pt",
            "no_factory",
        ])
        .unwrap();
        assert_eq!(a.chip.as_str(), "esp32s3r8");
        assert_eq!(a.flash_size.bytes(), 8 << 20);
        assert_eq!(a.override_pt, Some(OverrideMode::NoFactory));
        assert_eq!(
            (a.before, a.after),
            (Before::DefaultReset, After::HardReset)
        );
        let b = parse(&[
            "--chip",
            "esp32",
            "--flash-size",
            "4M",
            "--override-pt",
            "normal-with-model",
            "--before",
            "no_reset",
            "--after",
            "no-reset",
            "--dry-run",
        ])
        .unwrap();
        assert_eq!(b.override_pt, Some(OverrideMode::NormalWithModel));
        assert_eq!((b.before, b.after), (Before::NoReset, After::NoReset));
        assert!(!b.uses_device());
    }

    #[test]
    fn rejects_bad_values() {
        for bad in [
            &["--chip", "esp8266", "--flash_size", "4MB"][..],
            &["--chip", "esp32", "--flash_size", "3MB"],
            &[
                "--chip",
                "esp32",
                "--flash_size",
                "4MB",
                "--override_pt",
                "big",
            ],
            &["--chip", "esp32", "--flash_size", "4MB", "--baud", "fast"],
            &["--chip", "esp32"],
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }
}
