//! The command line, compatible with the original image's entrypoint
//! (`--port --chip --flash_size [--baud] [--override_pt]`), kebab-case spellings included.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use esp_idf_part::DataType;
use regex::Regex;

use crate::plan::EraseRequest;

use firmware::chip::{Chip, TargetName};
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
  flasher --port '/dev/ttyUSB*' --info [--json]
  flasher --chip esp32s3r8 --flash_size 16MB --override_pt no_factory --dry-run
  flasher --chip esp32 --flash_size 4MB --merge-out flash.bin
  flasher records --db postgres://line@db.lan/line --row SN-0002 [--json|--csv]
  flasher --station --port '/dev/ttyUSB*' --chip esp32s3 --flash_size 8MB \\
      --report-append shift.jsonl --listen 0.0.0.0:8080

Exit codes: 0 ok, 1 other error, 2 bad usage, 3 bad bundle, 4 device not found, busy or
not answering, 5 wrong chip or too little flash, 6 write or verify failure, 7 several boards
failed for different reasons, 8 written but did not boot (--expect), 9 written and verified
but flash outside the plan changed (--check-untouched), 10 boards left without an --nvs-values
row, 11 a board secured in part (--security: eFuses burned, the board not finished), 12 a
--station stopped at once (second signal) with boards in progress (in doubt). A --station
sums the last run of each board up the same way when it stops.";

/// Writes an ESP32-family board from the firmware bundle of this image.
#[derive(Debug, Clone, Parser)]
#[command(name = "flasher", version, about, after_help = EXAMPLES)]
#[command(group(clap::ArgGroup::new("line").args(["db", "nvs_values"]).multiple(true)))]
pub struct Args {
    /// Serial device of the board (not needed with --dry-run or --merge-out). Repeat it, or give
    /// a pattern such as '/dev/ttyUSB*', to write several boards at once.
    #[arg(long, value_name = "PORT")]
    pub port: Vec<String>,

    /// Build target of the image: one of the chips of the chip table, or a PSRAM variant (the
    /// help lists them, see [`chip_help`]).
    #[arg(long, value_name = "CHIP", value_parser = parse_target, help = chip_help(),
          required_unless_present_any = ["list_ports", "info"])]
    pub chip: Option<TargetName>,

    /// Flash size of the board, 1MB to 128MB (4MB, 16mb, 8M; not needed with --list-ports or
    /// --info).
    #[arg(long = "flash_size", visible_alias = "flash-size", value_name = "SIZE", value_parser = parse_size,
          required_unless_present_any = ["list_ports", "info"])]
    pub flash_size: Option<FlashSize>,

    /// Baud rate for writing; without it the flasher starts at the highest rate documented for
    /// the port's USB-UART bridge (921600 for an unknown one) and steps down to 921600, 460800,
    /// then 115200 when errors persist at a rate.
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

    /// Secure production: burn flash encryption and Secure Boot V2 into each board's eFuses as
    /// this profile says, writing the regions encrypted (docs/user-guide.md, "Secure
    /// production"). Irreversible.
    #[arg(long, value_name = "FILE.toml", conflicts_with_all = ["no_verify", "info"])]
    pub security: Option<PathBuf>,

    /// Hash the flash outside the plan (each gap between regions, by the stub's MD5) before
    /// writing and again after the final check; any change fails the board with exit code 9.
    #[arg(long = "check-untouched", alias = "check_untouched")]
    pub check_untouched: bool,
    /// At the desk and on the line: board information, erasing, monitoring.
    #[command(flatten)]
    pub desk: DeskArgs,

    /// A station that runs all shift.
    #[command(flatten)]
    pub station: StationArgs,

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

    /// The journal of a station from before the database (default: VALUES.csv.journal),
    /// imported into the database once.
    #[arg(long = "nvs-journal", value_name = "FILE", requires = "nvs_values")]
    pub nvs_journal: Option<PathBuf>,

    /// The line's database that keeps every board's record (and hands out the rows of
    /// --nvs-values): postgres://USER@HOST[:PORT]/DB[?sslmode=verify-full&sslrootcert=CA.pem]
    /// for a line of stations (the password from PGPASSWORD or ~/.pgpass, never here), or
    /// sqlite:PATH; default with --nvs-values: the embedded VALUES.csv.db beside the values
    /// file; without either, no database.
    #[arg(long, value_name = "URL")]
    pub db: Option<String>,

    /// Where records wait while the database is away (default: VALUES.csv.spool beside the
    /// values file; without one, FILE.spool beside --report-append FILE, else ./flasher-spool);
    /// they are sent when it is back.
    #[arg(long, value_name = "DIR", requires = "line")]
    pub spool: Option<PathBuf>,

    /// How long a board waits for the database when it is away before it is refused, in
    /// seconds (default 60).
    #[arg(long = "db-wait", value_name = "SECS", requires = "nvs_values")]
    pub db_wait: Option<u64>,

    /// This station's name in the records (default: the host name).
    #[arg(long = "station-name", value_name = "NAME", requires = "line")]
    pub station_name: Option<String>,

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

    /// The `--chip` target. Present whenever a plan is made: the command line requires it
    /// unless `--list-ports` or `--info` is given, and those make no plan.
    pub fn target(&self) -> &TargetName {
        self.chip
            .as_ref()
            .expect("--chip is required unless --list-ports or --info")
    }

    /// The `--flash_size` value, present whenever a plan is made (as [`Args::target`]).
    pub fn size(&self) -> FlashSize {
        self.flash_size
            .expect("--flash_size is required unless --list-ports or --info")
    }
}

/// The options for a desk and a production line: looking at a board without writing it,
/// erasing before writing, watching it boot. A block of its own in [`Args`].
#[derive(Debug, Clone, Default, clap::Args)]
pub struct DeskArgs {
    /// Print the serial ports this container sees (USB ids, serial numbers, USB paths, the
    /// reset sequence each gets) and exit; takes only --json.
    #[arg(long = "list-ports", alias = "list_ports")]
    pub list_ports: bool,

    /// Print what each board on --port is (chip, revision, MAC, crystal, flash id and size,
    /// PSRAM, security) and exit without writing or erasing anything.
    #[arg(long, conflicts_with_all = [
        "dry_run", "merge_out", "override_pt", "report", "report_append", "no_verify", "no_skip",
    ])]
    pub info: bool,

    /// Print --list-ports or --info as JSON (--info: one object per line, per board).
    #[arg(long, requires = "info")]
    pub json: bool,

    /// Erase the whole chip, then write the plan.
    #[arg(long = "erase-all", alias = "erase_all", conflicts_with_all = ["info", "erase_parts", "erase_data_parts"])]
    pub erase_all: bool,

    /// Erase these partitions of the table being written (comma-separated labels, e.g.
    /// nvs,phy_init) before writing.
    #[arg(
        long = "erase-parts",
        alias = "erase_parts",
        value_name = "LABELS",
        value_delimiter = ',',
        conflicts_with = "info"
    )]
    pub erase_parts: Vec<String>,

    /// Erase the data partitions of the table being written (nvs, phy, otadata, ...) before
    /// writing; with SUBTYPES (comma-separated: nvs, phy, ota, coredump, nvs_keys, efuse,
    /// fat, spiffs, littlefs, ...) only those, as espflash's --erase-data-parts.
    #[arg(long = "erase-data-parts", alias = "erase_data_parts", value_name = "SUBTYPES",
          num_args = 0.., value_delimiter = ',', value_parser = parse_data_type, conflicts_with = "info")]
    pub erase_data_parts: Option<Vec<DataType>>,

    /// After writing, show the board's serial output until Ctrl-] (or Ctrl-C); Ctrl-T Ctrl-R
    /// resets the board. One board only.
    #[arg(long, conflicts_with_all = ["info", "dry_run", "merge_out", "monitor_for"])]
    pub monitor: bool,

    /// As --monitor, for DURATION (30s, 500ms, 2m), then exit.
    #[arg(long = "monitor-for", alias = "monitor_for", value_name = "DURATION",
          value_parser = parse_duration, conflicts_with_all = ["info", "dry_run", "merge_out"])]
    pub monitor_for: Option<Duration>,

    /// After the reset, wait on each board for a line matching REGEX (repeat for several
    /// lines); without REGEX, the app's project name and version lines from its app
    /// descriptor. A board that does not print them fails (exit 8).
    #[arg(long, value_name = "REGEX", num_args = 0..=1, action = clap::ArgAction::Append,
          value_parser = parse_regex, conflicts_with_all = ["info", "dry_run", "merge_out"])]
    pub expect: Option<Vec<Regex>>,

    /// How long --expect waits after the reset (default 10s).
    #[arg(long = "expect-within", alias = "expect_within", value_name = "DURATION",
          value_parser = parse_duration, default_value = "10s", requires = "expect")]
    pub expect_within: Duration,
}

/// A station that runs all shift: boards written as they appear, and the live view.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct StationArgs {
    /// Run all shift: write each board as it appears on --port (paths, patterns such as
    /// '/dev/ttyUSB*', selectors), exactly as a one-shot run would, then wait until it is taken
    /// away; stop on SIGTERM or SIGINT (boards in progress finish; a second signal stops at once).
    #[arg(long, requires = "port", conflicts_with_all = [
        "info", "dry_run", "merge_out", "monitor", "monitor_for", "nvs_row", "nvs_release",
    ])]
    pub station: bool,

    /// With --station: serve the live view (the page, /api/state, /metrics) on HOST:PORT, or
    /// on 127.0.0.1:PORT when only PORT is given. Read-only.
    #[arg(long, value_name = "[HOST:]PORT", value_parser = parse_listen, requires = "station")]
    pub listen: Option<std::net::SocketAddr>,

    /// With --station: the USB bridges stay plugged and boards are changed under them (a jig).
    /// Each port's board is identified every DURATION (default 1s): a board with another MAC,
    /// or any board after the jig answered nothing, is a new board.
    #[arg(long, value_name = "DURATION", num_args = 0..=1, default_missing_value = "1s",
          value_parser = parse_duration, requires = "station")]
    pub jig: Option<Duration>,
}

/// `--listen`: `HOST:PORT`, or `PORT` on 127.0.0.1.
fn parse_listen(s: &str) -> Result<std::net::SocketAddr, String> {
    use std::net::ToSocketAddrs;
    let with_host = match s.parse::<u16>() {
        Ok(port) => format!("127.0.0.1:{port}"),
        Err(_) => s.to_string(),
    };
    with_host
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| format!("'{s}' is not HOST:PORT or PORT (e.g. 0.0.0.0:8080 or 8080)"))
}

impl DeskArgs {
    /// What to erase before writing.
    pub fn erase(&self) -> EraseRequest {
        EraseRequest {
            all: self.erase_all,
            labels: self.erase_parts.clone(),
            data: self.erase_data_parts.clone(),
        }
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

/// `flasher records --db URL [--mac M] [--row ID] [--since T] [--json|--csv]`: the boards'
/// records in the line's database, oldest first.
#[derive(Debug, Clone, Parser)]
#[command(name = "flasher records")]
pub struct Records {
    /// The line's database: postgres://USER@HOST[:PORT]/DB (the password from PGPASSWORD or
    /// ~/.pgpass) or sqlite:PATH (a station's embedded VALUES.csv.db).
    #[arg(long, value_name = "URL")]
    pub db: String,
    /// Only the records of the board with this MAC.
    #[arg(long, value_name = "MAC")]
    pub mac: Option<String>,
    /// Only the records of this value row.
    #[arg(long, value_name = "ID")]
    pub row: Option<String>,
    /// Only the records from this time on (2026-12-07 or 2026-12-07T08:00:00Z, UTC).
    #[arg(long, value_name = "TIME", value_parser = parse_since)]
    pub since: Option<String>,
    /// Print each whole record as one JSON line (what --report-append writes).
    #[arg(long, conflicts_with = "csv")]
    pub json: bool,
    /// Print the records' columns as CSV with a header.
    #[arg(long)]
    pub csv: bool,
}

impl Records {
    /// The `records` command line, when `args` (program name first) ask for it.
    pub fn requested(args: &[std::ffi::OsString]) -> Option<Result<Records, clap::Error>> {
        (args.get(1).is_some_and(|a| a == "records")).then(|| Records::try_parse_from(&args[1..]))
    }
}

/// `--since`: a date or an RFC 3339 UTC time.
fn parse_since(s: &str) -> Result<String, String> {
    let date = |d: &str| {
        d.len() == 10
            && d.bytes().enumerate().all(|(i, b)| {
                if i == 4 || i == 7 {
                    b == b'-'
                } else {
                    b.is_ascii_digit()
                }
            })
    };
    let ok = match s.split_once('T') {
        None => date(s),
        Some((d, t)) => date(d) && t.ends_with('Z') && t.len() == 9,
    };
    if ok {
        Ok(s.to_string())
    } else {
        Err(format!(
            "`{s}` is not a UTC time: use 2026-12-07 or 2026-12-07T08:00:00Z"
        ))
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
    /// Leave the board in the loader that wrote it: the flasher stub (the ROM with
    /// --before no-reset-no-sync). Nothing is sent after the final check.
    #[value(alias = "no_reset")]
    NoReset,
    /// Leave the board in the flasher stub.
    #[value(alias = "no_reset_stub")]
    NoResetStub,
    /// Reset through the RTC watchdog (USB-connected S2/S3/C3 boards).
    #[value(alias = "watchdog_reset")]
    WatchdogReset,
}

fn parse_regex(s: &str) -> Result<Regex, String> {
    Regex::new(s).map_err(|e| {
        format!(
            "bad regular expression: {}",
            e.to_string().replace('\n', " ")
        )
    })
}

/// `500ms`, `30s`, `2m`, or a number of seconds.
fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim().to_ascii_lowercase();
    let (number, unit) = match t.find(|c: char| !c.is_ascii_digit() && c != '.') {
        Some(at) => t.split_at(at),
        None => (t.as_str(), "s"),
    };
    let scale = match unit {
        "ms" => 0.001,
        "s" => 1.0,
        "m" | "min" => 60.0,
        _ => return Err(format!("bad duration '{s}': use e.g. 500ms, 30s or 2m")),
    };
    number
        .parse::<f64>()
        .ok()
        .filter(|n| n.is_finite() && *n >= 0.0)
        .map(|n| Duration::from_secs_f64(n * scale))
        .ok_or_else(|| format!("bad duration '{s}': use e.g. 500ms, 30s or 2m"))
}

fn parse_data_type(s: &str) -> Result<DataType, String> {
    s.trim().to_ascii_lowercase().parse().map_err(|_| {
        format!(
            "unknown data partition subtype '{s}': use one of ota, phy, nvs, coredump, nvs_keys, \
             efuse, undefined, esphttpd, fat, spiffs, littlefs"
        )
    })
}

/// The help of `--chip`: every chip of the chip table, and the PSRAM variants.
pub fn chip_help() -> String {
    let chips: Vec<&str> = Chip::ALL.iter().map(|c| c.name()).collect();
    format!(
        "Build target of the image: {}, or a PSRAM variant such as esp32s3r8 or esp32s2r2 (files \
         come from that folder; the board must be the base chip). Not needed with --list-ports \
         or --info",
        chips.join(", ")
    )
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
        assert_eq!(a.target().as_str(), "esp32s3r8");
        assert_eq!(a.size().bytes(), 8 << 20);
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
