//! Typed errors of the flasher, each naming the problem and the fix, and the exit code each
//! kind of failure ends the program with (docs/flasher.md lists them).

use std::path::PathBuf;

use firmware::chip::Chip;
use firmware::esp_image::ImageError;
use firmware::manifest::ManifestError;
use firmware::override_table::{OverrideMode, OverrideTableError};

/// The kinds of failure, one exit code each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitKind {
    /// Anything else (an output file that cannot be written, an internal error).
    Other,
    /// Bad command line: unknown chip or mode, bad size, a layout that does not fit the size.
    Usage,
    /// The firmware bundle is unusable: missing or altered files, invalid images or tables.
    Bundle,
    /// The serial device is missing, busy, not a serial device, or no bootloader answers.
    Device,
    /// The board is not what was asked for: another chip or a smaller flash.
    Board,
    /// Writing or verifying the flash failed.
    Write,
    /// Several boards failed, for different reasons (each board's record says which).
    Mixed,
    /// The board was written but did not print the expected lines after its reset.
    Boot,
    /// The plan was written and verified, but flash outside the plan changed
    /// (`--check-untouched`).
    Untouched,
    /// Boards were left without a per-board data row (`--nvs-values` ran out of rows).
    NoRow,
    /// Secure production burned part of a board's eFuses and could not finish it, or what it
    /// burned does not read back (`--security`): the board needs attention.
    Burn,
    /// A station stopped at once (a second SIGTERM or SIGINT) while boards were being written:
    /// those boards are in doubt.
    InDoubt,
}

impl ExitKind {
    /// The process exit code.
    pub fn code(self) -> u8 {
        match self {
            ExitKind::Other => 1,
            ExitKind::Usage => 2,
            ExitKind::Bundle => 3,
            ExitKind::Device => 4,
            ExitKind::Board => 5,
            ExitKind::Write => 6,
            ExitKind::Mixed => 7,
            ExitKind::Boot => 8,
            ExitKind::Untouched => 9,
            ExitKind::NoRow => 10,
            ExitKind::Burn => 11,
            ExitKind::InDoubt => 12,
        }
    }
}

/// Why no flashing plan can be made from the bundle and the arguments.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// `--erase-parts` names a partition the table does not have.
    #[error(
        "--erase-parts {label}: the partition table has no such partition (it has {labels}): pass one of those labels"
    )]
    UnknownPartition {
        /// The label given.
        label: String,
        /// The table's labels, comma-separated.
        labels: String,
    },
    /// The firmware directory holds neither a manifest nor target folders.
    #[error(
        "no firmware bundle in {0}: expected manifest.json or <target>/artifacts/ folders; \
         run the flash image itself or pass --firmware-dir"
    )]
    NoBundle(PathBuf),
    /// The image has no folder for the requested target.
    #[error(
        "target '{asked}' is not in this image (it has: {available}): pass one of them to --chip"
    )]
    TargetNotInImage {
        /// The `--chip` value.
        asked: String,
        /// Targets the image holds, comma-separated.
        available: String,
    },
    /// A file of the bundle cannot be read.
    #[error("cannot read {path}: {source}; the image is incomplete, pull or rebuild it")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The manifest is unusable.
    #[error("{0}")]
    Manifest(#[from] ManifestError),
    /// A file differs from what the manifest says.
    #[error(
        "{path} does not match manifest.json (sha256 {found}, expected {expected}): \
         the image is corrupt or was altered; pull it again"
    )]
    Tampered {
        /// The file, relative to the bundle.
        path: String,
        /// SHA-256 in the manifest.
        expected: String,
        /// SHA-256 of the file.
        found: String,
    },
    /// The manifest's target lacks a file the plan needs.
    #[error("the bundle has no {what} for target {target}; rebuild the image with imagegen")]
    MissingFile {
        /// What is missing.
        what: &'static str,
        /// The target.
        target: String,
    },
    /// No single app binary could be found in a bundle without manifest.
    #[error(
        "cannot tell the app of {dir}: expected exactly one .bin besides bootloader, ota_data and \
         partition files, found {found}; rebuild the image"
    )]
    NoApp {
        /// The artifacts folder.
        dir: PathBuf,
        /// What was found.
        found: String,
    },
    /// The sdkconfig cannot be read.
    #[error("{path}: {reason}; rebuild the image")]
    Sdkconfig {
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// An image file is not a valid ESP image.
    #[error("{file} is not a valid ESP image: {source}; rebuild the image")]
    BadImage {
        /// The file.
        file: String,
        /// What is wrong.
        source: ImageError,
    },
    /// An image was built for another chip than the one asked for.
    #[error(
        "{file} is built for {built}, but --chip {asked} asks for {chip}: \
         pass the chip of the board and make sure the image was built for it"
    )]
    ImageChip {
        /// The file.
        file: String,
        /// Chip the image header names.
        built: String,
        /// The `--chip` value.
        asked: String,
        /// The chip of the `--chip` value.
        chip: Chip,
    },
    /// The partition table is unusable.
    #[error("{file}: {reason}; fix the partition table and rebuild the image")]
    BadTable {
        /// The file.
        file: String,
        /// What is wrong.
        reason: String,
    },
    /// The table has no app partition for the app.
    #[error("the partition table of {0} has no app partition; add a factory or ota_0 partition")]
    NoAppPartition(String),
    /// `--override_pt` cannot lay out this flash.
    #[error("{0}")]
    Layout(#[from] OverrideTableError),
    /// A `*_with_model` mode without a model in the image.
    #[error(
        "--override_pt {mode} writes a model, but the image has no model.bin: \
         use --override_pt {} or an image built with a model", mode.without_model()
    )]
    NoModel {
        /// The mode asked for.
        mode: OverrideMode,
    },
    /// The layout needs more flash than `--flash_size` gives.
    #[error(
        "{what} ends at {end:#x} ({need_mb:.2} MB), beyond --flash_size {size}: \
         pass the board's real flash size or use --override_pt to fit the table to it"
    )]
    FlashTooSmall {
        /// What does not fit.
        what: String,
        /// Where it ends.
        end: u64,
        /// The same in MB.
        need_mb: f64,
        /// The `--flash_size` value.
        size: String,
    },
    /// A file is larger than its partition.
    #[error(
        "{what} ({len} bytes) does not fit partition {partition} ({size} bytes): \
         use --override_pt for larger slots or rebuild with a bigger partition"
    )]
    DoesNotFit {
        /// The file.
        what: String,
        /// Its length.
        len: usize,
        /// The partition.
        partition: String,
        /// The partition's size.
        size: u32,
    },
    /// A file is larger than its partition in the `--override_pt` layout.
    #[error(
        "{what} ({len} bytes) does not fit partition {partition} ({size} bytes) of the \
         --override_pt {mode} layout for {flash}: pass the board's real --flash_size, or \
         no_factory for larger slots"
    )]
    SlotTooSmall {
        /// The file.
        what: String,
        /// Its length.
        len: usize,
        /// The partition.
        partition: String,
        /// The partition's size.
        size: u32,
        /// The mode.
        mode: OverrideMode,
        /// The `--flash_size` value.
        flash: String,
    },
    /// The bundle asks for encrypted writes (flash encryption in development mode).
    #[error(
        "{path} must be written encrypted (flash encryption in development mode), which this \
         flasher cannot do: flash the build with idf.py encrypted-flash"
    )]
    Encrypted {
        /// The file, relative to the bundle.
        path: String,
    },
    /// A data image does not lie inside one partition of the table.
    #[error(
        "data image {path} ('{name}') at {offset:#x}: {reason}; fix the partition table or the \
         offset and rebuild the image"
    )]
    DataPlacement {
        /// The file, relative to the bundle.
        path: String,
        /// The build's name for it.
        name: String,
        /// Where it goes.
        offset: u32,
        /// What is wrong.
        reason: String,
    },
    /// A data image's partition is not in the `--override_pt` layout.
    #[error(
        "data image {path} ('{name}') goes into partition {partition}, which the --override_pt \
         {mode} layout does not have: flash without --override_pt to keep the build's table"
    )]
    DataPartitionMissing {
        /// The file, relative to the bundle.
        path: String,
        /// The build's name for it.
        name: String,
        /// The build's partition.
        partition: String,
        /// The mode.
        mode: OverrideMode,
    },
    /// Two regions of the plan overlap.
    #[error(
        "{first} ({first_start:#x}..{first_end:#x}) overlaps {second} (from {second_start:#x}): \
         fix the offsets in the build configuration and rebuild"
    )]
    Overlap {
        /// The lower region.
        first: String,
        /// Its start.
        first_start: u32,
        /// Its end.
        first_end: u64,
        /// The higher region.
        second: String,
        /// Its start.
        second_start: u32,
    },
    /// The partition asked for a board's data is not in the table written.
    #[error(
        "the partition table written has no partition `{label}` (it has: {available}); pass one of them to --nvs-partition"
    )]
    NoDataPartition {
        /// The label asked for.
        label: String,
        /// The table's labels, comma-separated.
        available: String,
    },
    /// The partition asked for a board's NVS data is not of type data/nvs.
    #[error(
        "partition `{label}` is {ty}/{subtype}, not data/nvs (data/nvs partitions: {available}); pass one of them to --nvs-partition"
    )]
    NotNvs {
        /// The label asked for.
        label: String,
        /// Its type.
        ty: String,
        /// Its subtype.
        subtype: String,
        /// The table's data/nvs labels, comma-separated (`none` when there is none).
        available: String,
    },
}

impl PlanError {
    /// The kind of failure, for the exit code.
    pub fn kind(&self) -> ExitKind {
        match self {
            PlanError::NoDataPartition { .. }
            | PlanError::NotNvs { .. }
            | PlanError::TargetNotInImage { .. }
            | PlanError::Layout(_)
            | PlanError::NoModel { .. }
            | PlanError::SlotTooSmall { .. }
            | PlanError::DataPartitionMissing { .. }
            | PlanError::FlashTooSmall { .. }
            | PlanError::UnknownPartition { .. } => ExitKind::Usage,
            PlanError::ImageChip { .. }
            | PlanError::NoBundle(_)
            | PlanError::Read { .. }
            | PlanError::Manifest(_)
            | PlanError::Tampered { .. }
            | PlanError::MissingFile { .. }
            | PlanError::NoApp { .. }
            | PlanError::Sdkconfig { .. }
            | PlanError::BadImage { .. }
            | PlanError::BadTable { .. }
            | PlanError::NoAppPartition(_)
            | PlanError::DoesNotFit { .. }
            | PlanError::Encrypted { .. }
            | PlanError::DataPlacement { .. }
            | PlanError::Overlap { .. } => ExitKind::Bundle,
        }
    }
}

/// Why the board could not be written.
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    /// The board was refused once identified, before anything was written (per-board data:
    /// no row left for it, the database away).
    #[error("{message}")]
    Refused {
        /// The exit code's kind.
        kind: ExitKind,
        /// What is wrong and what to do.
        message: String,
    },
    /// The port does not exist.
    #[error(
        "serial port {0} not found: connect the board and pass its device to docker run \
         (--device={0}) and to --port"
    )]
    NotFound(String),
    /// Another program holds the port.
    #[error(
        "serial port {0} is busy: close the program using it (a serial monitor, another flasher) and retry"
    )]
    Busy(String),
    /// The path is not a serial device.
    #[error(
        "{port} is not a serial device ({reason}): pass the board's tty, e.g. /dev/ttyUSB0 or /dev/ttyACM0"
    )]
    NotSerial {
        /// The path.
        port: String,
        /// What the system said.
        reason: String,
    },
    /// Opening the port failed otherwise.
    #[error("cannot open serial port {port}: {reason}; check the device and its permissions")]
    Open {
        /// The path.
        port: String,
        /// What the system said.
        reason: String,
    },
    /// No ROM bootloader answered.
    #[error(
        "no ESP bootloader answered on {port} ({reason}): hold BOOT while pressing RESET to enter \
         download mode, or check --before"
    )]
    Connect {
        /// The path.
        port: String,
        /// What went wrong.
        reason: String,
    },
    /// The board is another chip.
    #[error(
        "the board is an {found}, but --chip {asked} was given: pass --chip for the board's chip, or connect the right board"
    )]
    WrongChip {
        /// Detected chip.
        found: String,
        /// The `--chip` value.
        asked: String,
    },
    /// The board's chip revision is outside what an image accepts.
    #[error(
        "{file}: {violation}: connect a board of a revision the build supports, or rebuild it for this one (CONFIG_ESP_REV_MIN_FULL / CONFIG_ESP_REV_MAX_FULL)"
    )]
    Revision {
        /// The image, relative to the bundle.
        file: String,
        /// What the image accepts and what the board is.
        violation: firmware::revision::RevisionViolation,
    },
    /// The board's flash is smaller than `--flash_size`.
    #[error(
        "the board has {found_mb} MB of flash, less than --flash_size {asked}: pass --flash_size {found_mb}MB"
    )]
    FlashTooSmall {
        /// Detected size in MB.
        found_mb: u64,
        /// The `--flash_size` value.
        asked: String,
    },
    /// The board's eFuses record other PSRAM than the `--chip` variant needs.
    #[error(
        "--chip {target} needs {asked_mb} MB of PSRAM, but the board's eFuses record {found}: \
         pass the --chip variant of the board, or connect a board with that PSRAM"
    )]
    WrongPsram {
        /// The `--chip` target.
        target: String,
        /// PSRAM the target's suffix asks for, in MB.
        asked_mb: u32,
        /// What the eFuses record.
        found: String,
    },
    /// The board did not print the expected lines after its reset.
    #[error(
        "the board on {port} was written but did not boot: no line matching `{expected}` within \
         {within} s after the reset (last line: {last}); check the firmware, or --expect and \
         --expect-within"
    )]
    NoBoot {
        /// The path.
        port: String,
        /// The patterns still unmatched, joined.
        expected: String,
        /// The time waited, in seconds.
        within: f64,
        /// The last line the board printed.
        last: String,
    },
    /// Talking to the board failed after connecting.
    #[error(
        "lost the board on {port} while {doing} ({reason}): check the cable, try a lower --baud, and run again"
    )]
    Line {
        /// The path.
        port: String,
        /// What the flasher was doing.
        doing: &'static str,
        /// What went wrong.
        reason: String,
    },
    /// Another board answered on the port during a retry.
    #[error(
        "another board answered on {port} during a retry (MAC {now}, was {was}): keep each board \
         connected to its port for the whole run, and run again"
    )]
    BoardChanged {
        /// The path.
        port: String,
        /// MAC of the board first seen.
        was: String,
        /// MAC of the board that answered.
        now: String,
    },
    /// Writing failed.
    #[error(
        "writing the flash failed ({0}); run again, and if it persists the flash may be faulty"
    )]
    Write(String),
    /// The MD5 read back differs.
    #[error(
        "verifying the flash failed: the MD5 read back differs ({0}); run again, and if it persists the flash may be faulty"
    )]
    Verify(String),
    /// Flash outside the plan changed while the board was written (`--check-untouched`).
    #[error(
        "flash outside the plan changed while writing ({}): a garbled command wrote or erased \
         there; the regions are right, but the board is not as planned: erase it and run again",
        changed_ranges(changed)
    )]
    Untouched {
        /// The gaps between regions whose MD5 changed, as (offset, length).
        changed: Vec<(u32, u32)>,
    },
    /// `--check-untouched` cannot be done on this board.
    #[error("--check-untouched needs the flasher stub's MD5, but {0}: drop --check-untouched")]
    CannotCheckUntouched(&'static str),
    /// Finding, opening or reaching the port failed (see [`PortError`]).
    #[error("{0}")]
    Port(#[from] PortError),
    /// Secure production (`--security`) refused the board or could not finish it.
    #[error("{0}")]
    Burn(#[from] BurnError),
    /// The board's security features forbid writing the plan (see [`SecurityError`]).
    #[error("{0}")]
    Secured(#[from] SecurityError),
}

/// Ranges as `0x9000..0xe000`, comma-separated.
pub fn changed_ranges(changed: &[(u32, u32)]) -> String {
    changed
        .iter()
        .map(|(offset, len)| format!("{offset:#x}..{:#x}", u64::from(*offset) + u64::from(*len)))
        .collect::<Vec<_>>()
        .join(", ")
}

impl DeviceError {
    /// The kind of failure, for the exit code.
    pub fn kind(&self) -> ExitKind {
        match self {
            DeviceError::NotFound(_)
            | DeviceError::Busy(_)
            | DeviceError::NotSerial { .. }
            | DeviceError::Open { .. }
            | DeviceError::Connect { .. } => ExitKind::Device,
            DeviceError::WrongChip { .. }
            | DeviceError::Revision { .. }
            | DeviceError::FlashTooSmall { .. }
            | DeviceError::WrongPsram { .. }
            | DeviceError::BoardChanged { .. } => ExitKind::Board,
            DeviceError::NoBoot { .. } => ExitKind::Boot,
            DeviceError::Line { .. } | DeviceError::Write(_) | DeviceError::Verify(_) => {
                ExitKind::Write
            }
            DeviceError::Untouched { .. } => ExitKind::Untouched,
            DeviceError::CannotCheckUntouched(_) => ExitKind::Board,
            DeviceError::Port(e) => e.kind(),
            DeviceError::Secured(_) => ExitKind::Board,
            DeviceError::Burn(e) => e.kind(),
            DeviceError::Refused { kind, .. } => *kind,
        }
    }
}

/// A bad command line the argument parser cannot catch alone.
#[derive(Debug, thiserror::Error)]
pub enum UsageError {
    /// A device run without `--port`.
    #[error(
        "missing --port: pass the board's serial device, e.g. --port /dev/ttyUSB0 (or use --dry-run / --merge-out)"
    )]
    MissingPort,
    /// `--info` with `--before no-reset-no-sync`, which cannot detect the chip, without `--chip`.
    #[error(
        "--info with --before no-reset-no-sync cannot detect the chip: pass --chip, or use \
         another --before"
    )]
    InfoNeedsChip,
    /// Erasing with `--before no-reset-no-sync`, which runs without the stub that erases.
    #[error(
        "--erase-all, --erase-parts and --erase-data-parts need the flasher stub, which \
         --before no-reset-no-sync does not load: use another --before"
    )]
    EraseNeedsStub,
    /// `--expect` without a pattern, for an app without an app descriptor to take one from.
    #[error(
        "--expect without REGEX waits for the app's name and version, but the app has no \
         esp_app_desc_t: pass --expect REGEX"
    )]
    NoAppBanner,
    /// `--monitor` or `--monitor-for` with several boards.
    #[error(
        "--monitor and --monitor-for show one board: pass one --port (use --expect for several)"
    )]
    MonitorOneBoard,
    /// `--monitor` or `--expect` with an `--after` that does not start the firmware.
    #[error(
        "--monitor and --expect watch the firmware start: pass --after hard-reset or \
         --after watchdog-reset"
    )]
    WatchNeedsReset,
    /// A `--port` pattern that matches no device.
    #[error(
        "--port {0} matches no device: connect the boards, pass them to docker run (--device), \
         or give each port by name"
    )]
    NoPortMatches(String),
    /// The same device given twice.
    #[error("--port {0} is given twice: pass each board's port once")]
    DuplicatePort(String),
    /// An argument the parser rejected, on one line.
    #[error("{0}")]
    Arguments(String),
}

/// Why `--port` does not lead to a usable port: selection, permissions, a busy port, or a network
/// serial server.
#[derive(Debug, thiserror::Error)]
pub enum PortError {
    /// The `--port` value cannot be understood.
    #[error("bad --port: {0} (see --help)")]
    BadSpec(String),
    /// Nothing matches a glob, `auto` or a selector.
    #[error(
        "no serial port matches --port {spec} ({seen}): connect the board, pass it to docker run \
         (--device=/dev/ttyUSB0), and check with flasher --list-ports"
    )]
    NoMatch {
        /// The `--port` value.
        spec: String,
        /// What was seen instead.
        seen: String,
    },
    /// The port exists on the host but was not passed into the container.
    #[error(
        "--port {spec} matches {name}, which is not in this container: add \
         --device=/dev/{name} to docker run"
    )]
    NotInContainer {
        /// The `--port` value.
        spec: String,
        /// Kernel name of the port.
        name: String,
    },
    /// A selector matches several ports where one is needed.
    #[error(
        "--port {spec} matches {count} ports ({candidates}): pick one with usb-serial=SERIAL or \
         usb-path=PATH (see flasher --list-ports)"
    )]
    Ambiguous {
        /// The `--port` value.
        spec: String,
        /// How many match.
        count: usize,
        /// The matching ports.
        candidates: String,
    },
    /// sysfs cannot be read, so USB details are unknown.
    #[error(
        "cannot read {path} ({reason}): pass the board's device path to --port, e.g. /dev/ttyUSB0"
    )]
    Sysfs {
        /// The directory.
        path: String,
        /// What the system said.
        reason: String,
    },
    /// The board left and did not come back (after a reset that re-enumerates USB).
    #[error(
        "the board on {port} ({identity}) disappeared and did not come back within {seconds} s: \
         check the cable and that the container sees new ports (-v /dev:/dev with \
         --device-cgroup-rule), then run again"
    )]
    Gone {
        /// The port it was on.
        port: String,
        /// Its USB serial number or path.
        identity: String,
        /// How long the flasher waited.
        seconds: u64,
    },
    /// Another program holds the port.
    #[error(
        "serial port {port} is busy, {holder}: close the program using it (a serial monitor, \
         another flasher) and retry"
    )]
    Busy {
        /// The port.
        port: String,
        /// Who holds it, as far as /proc shows.
        holder: String,
    },
    /// File permissions forbid opening the port (`EACCES`).
    #[error(
        "no permission to open {port} (mode {mode}, group {group}; the flasher runs as uid {uid} \
         without that group): add --group-add {gid} to docker run"
    )]
    Permission {
        /// The port.
        port: String,
        /// Permission bits, octal.
        mode: String,
        /// Owning group, with its name when known.
        group: String,
        /// Owning group id.
        gid: u32,
        /// This process's user id.
        uid: u32,
    },
    /// The container's device cgroup forbids the port (`EPERM`).
    #[error(
        "the container may not open {port} (character device {major}:{minor} is not in its device \
         cgroup): pass --device={port} to docker run, or for ports plugged in later run with \
         -v /dev:/dev --device-cgroup-rule='c {major}:* rmw'"
    )]
    Cgroup {
        /// The port.
        port: String,
        /// Device major number.
        major: u32,
        /// Device minor number.
        minor: u32,
    },
    /// The network serial server cannot be reached.
    #[error(
        "cannot reach {url} ({reason}): start esp_rfc2217_server or ser2net on the host, check \
         HOST and PORT (from Docker Desktop the host is host.docker.internal)"
    )]
    Unreachable {
        /// The URL.
        url: String,
        /// What the system said.
        reason: String,
    },
    /// The server does not answer the RFC 2217 negotiation.
    #[error(
        "{url} does not speak RFC 2217 (no answer to the option negotiation): use \
         socket://HOST:PORT for a raw TCP bridge, or an RFC 2217 server"
    )]
    NotRfc2217 {
        /// The URL.
        url: String,
    },
    /// The network connection ended.
    #[error(
        "the connection to {url} was lost ({reason}): check the server and the network, then run \
         again"
    )]
    Dropped {
        /// The URL.
        url: String,
        /// What happened.
        reason: String,
    },
    /// No pseudo-terminal for a network port.
    #[error("cannot create a pseudo-terminal for the network port ({0}): check /dev/pts")]
    Pty(String),
}

impl PortError {
    /// The kind of failure, for the exit code.
    pub fn kind(&self) -> ExitKind {
        match self {
            PortError::BadSpec(_) | PortError::Ambiguous { .. } => ExitKind::Usage,
            PortError::Pty(_) => ExitKind::Other,
            PortError::NoMatch { .. }
            | PortError::NotInContainer { .. }
            | PortError::Sysfs { .. }
            | PortError::Gone { .. }
            | PortError::Busy { .. }
            | PortError::Permission { .. }
            | PortError::Cgroup { .. }
            | PortError::Unreachable { .. }
            | PortError::NotRfc2217 { .. }
            | PortError::Dropped { .. } => ExitKind::Device,
        }
    }
}

/// Why a secured board (Secure Boot, flash encryption) is not written; found before anything
/// is written.
#[derive(Debug, thiserror::Error)]
pub enum SecurityError {
    /// Secure Boot is on and an image of the plan has no Secure Boot V2 signature block.
    #[error(
        "the board has Secure Boot enabled, but {file} ({label}) carries no Secure Boot V2 \
         signature, so the board would not boot it: sign it with `espsecure sign-data --version 2 \
         --keyfile KEY` (or build with CONFIG_SECURE_BOOT_SIGNED_BINARIES) and build the image again"
    )]
    Unsigned {
        /// The region (`bootloader`, `app`).
        label: &'static str,
        /// The bundle file.
        file: String,
    },
    /// Secure Boot is on and no signature of an image is made with a key the board trusts.
    #[error(
        "the board has Secure Boot enabled, but {file} ({label}) is signed with a key whose digest \
         ({digest}) is none of the board's SECURE_BOOT_DIGEST eFuses: sign it with the board's \
         Secure Boot key and build the image again"
    )]
    UntrustedKey {
        /// The region (`bootloader`, `app`).
        label: &'static str,
        /// The bundle file.
        file: String,
        /// SHA-256 of the first signature block's public key, hex.
        digest: String,
    },
    /// An ESP32-S2 in Secure Download Mode: its security info has no chip id and its ROM
    /// refuses the register read espflash identifies the chip by, so espflash cannot connect.
    #[error(
        "the board is an ESP32-S2 in Secure Download Mode, which this flasher cannot write (its ROM \
         refuses the chip detection espflash needs): write it with `esptool --chip esp32s2 \
         --no-stub write-flash`, or flash boards before Secure Download Mode is enabled"
    )]
    S2SecureDownload,
    /// Flash encryption is on: plaintext written now would not decrypt at boot.
    #[error(
        "the board has flash encryption enabled ({counter} = {value:#x}, odd), and plaintext \
         written to it would not boot; espflash cannot encrypt: write the encrypted build with \
         `esptool write-flash --encrypt` from a host holding the key, or flash boards before \
         encryption is enabled"
    )]
    FlashEncrypted {
        /// The eFuse counter (`SPI_BOOT_CRYPT_CNT`, `FLASH_CRYPT_CNT`).
        counter: &'static str,
        /// Its value.
        value: u32,
    },
}

/// Why secure production (`--security`) refused a board, or could not finish it.
#[derive(Debug, Clone, thiserror::Error)]
pub enum BurnError {
    /// Refused before anything was burned: the board's eFuses disagree with the profile, or
    /// cannot be read.
    #[error("{port}: {reason}")]
    Refused {
        /// The board's port.
        port: String,
        /// What disagrees (naming the fuse) and what to do.
        reason: String,
    },
    /// Something was burned, and the board could not be finished.
    #[error("{port}: {reason}")]
    Unfinished {
        /// The board's port.
        port: String,
        /// What was burned, what failed, and what to do.
        reason: String,
    },
}

impl BurnError {
    /// The kind of failure: a refusal is the wrong board (5), an unfinished board its own (11).
    pub fn kind(&self) -> ExitKind {
        match self {
            BurnError::Refused { .. } => ExitKind::Board,
            BurnError::Unfinished { .. } => ExitKind::Burn,
        }
    }
}
