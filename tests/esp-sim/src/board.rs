//! A simulated board: a chip in download mode with its flash, served on a
//! pty by a background thread.

use std::io;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::chip::{Chip, Crystal, Efuses, FlashSize, MacAddress, Psram, Revision};
use crate::efuse::{EfuseController, EfuseError, EfuseImage, EfuseSetting};
use crate::faults::{Direction, FaultInjector, FaultSpec};
use crate::flash::Flash;
use crate::loader::{CommandRecord, Loader, Output, boot_log, encryption, lock};
use crate::pacing::{DEFAULT_BAUD, FlashTimings, Pacer, PageProgramTime, wire_time};
use crate::pty::Pty;
use crate::security::Security;
use crate::{ConfigError, slip};

/// How long the serving thread waits for input before checking for a stop.
const POLL_INTERVAL: Duration = Duration::from_millis(20);
/// Replies nobody reads for this long are discarded.
const STALE_REPLY: Duration = Duration::from_secs(3);

/// Everything that defines a simulated board.
#[derive(Debug, Clone)]
pub struct BoardConfig {
    /// The chip.
    pub chip: Chip,
    /// SPI flash size.
    pub flash_size: FlashSize,
    /// PSRAM, where the chip's eFuses can show it.
    pub psram: Option<Psram>,
    /// Factory MAC address; a per-chip default when `None`.
    pub mac: Option<MacAddress>,
    /// Chip revision in the eFuses; a per-chip default when `None`.
    pub revision: Option<Revision>,
    /// Crystal; the chip's common part when `None`.
    pub crystal: Option<Crystal>,
    /// Secure Download Mode, Secure Boot, flash encryption.
    pub security: Security,
    /// Secure Boot V2 public key digests burnt into key blocks KEY0.. (purposes
    /// SECURE_BOOT_DIGEST0..2), at most three.
    pub secure_boot_digests: Vec<[u8; 32]>,
    /// eFuse fields and blocks burned before the board starts (esp32, esp32c3, esp32s3,
    /// esp32c6), ORed into what the options above burn.
    pub efuses: Vec<EfuseSetting>,
    /// A saved eFuse image (from [`SimBoard::efuse_image`]) ORed in last: the eFuses of a
    /// board that lost power.
    pub efuse_image: Option<EfuseImage>,
    /// Pace the line and flash operations in real time.
    pub realtime: bool,
    /// Time to program one flash page (with `realtime`).
    pub page_program: PageProgramTime,
    /// Faults to inject.
    pub faults: FaultSpec,
    /// Flash content from offset 0; the rest reads 0xFF.
    pub initial_flash: Vec<u8>,
}

impl BoardConfig {
    /// A board with `chip`, 4 MB of erased flash, no PSRAM, running as fast
    /// as possible without faults.
    pub fn new(chip: Chip) -> Self {
        BoardConfig {
            chip,
            flash_size: FlashSize::default(),
            psram: None,
            mac: None,
            revision: None,
            crystal: None,
            security: Security::default(),
            secure_boot_digests: Vec::new(),
            efuses: Vec::new(),
            efuse_image: None,
            realtime: false,
            page_program: PageProgramTime::default(),
            faults: FaultSpec::default(),
            initial_flash: Vec::new(),
        }
    }

    /// Sets the flash size.
    pub fn flash_size(mut self, size: FlashSize) -> Self {
        self.flash_size = size;
        self
    }

    /// Adds PSRAM.
    pub fn psram(mut self, psram: Psram) -> Self {
        self.psram = Some(psram);
        self
    }

    /// Sets the MAC address.
    pub fn mac(mut self, mac: MacAddress) -> Self {
        self.mac = Some(mac);
        self
    }

    /// Sets the chip revision.
    pub fn revision(mut self, revision: Revision) -> Self {
        self.revision = Some(revision);
        self
    }

    /// Sets the crystal.
    pub fn crystal(mut self, crystal: Crystal) -> Self {
        self.crystal = Some(crystal);
        self
    }

    /// Sets the security features.
    pub fn security(mut self, security: Security) -> Self {
        self.security = security;
        self
    }

    /// Burns Secure Boot V2 public key digests (SHA-256, as `espsecure
    /// digest-sbv2-public-key` writes them) into the first key blocks.
    pub fn secure_boot_digests(mut self, digests: Vec<[u8; 32]>) -> Self {
        self.secure_boot_digests = digests;
        self
    }

    /// Burns one eFuse field or block before the board starts (`"KEY_PURPOSE_0=4"`).
    pub fn efuse(mut self, setting: EfuseSetting) -> Self {
        self.efuses.push(setting);
        self
    }

    /// Burns eFuse fields and blocks before the board starts.
    pub fn efuses(mut self, settings: impl IntoIterator<Item = EfuseSetting>) -> Self {
        self.efuses.extend(settings);
        self
    }

    /// Starts the board with the eFuses of `image` (e.g. of a board that lost power).
    pub fn efuse_image(mut self, image: EfuseImage) -> Self {
        self.efuse_image = Some(image);
        self
    }

    /// Turns real-time pacing on or off.
    pub fn realtime(mut self, realtime: bool) -> Self {
        self.realtime = realtime;
        self
    }

    /// Sets the page program time.
    pub fn page_program(mut self, time: PageProgramTime) -> Self {
        self.page_program = time;
        self
    }

    /// Sets the faults to inject.
    pub fn faults(mut self, faults: FaultSpec) -> Self {
        self.faults = faults;
        self
    }

    /// Preloads flash content at offset 0.
    pub fn initial_flash(mut self, content: Vec<u8>) -> Self {
        self.initial_flash = content;
        self
    }

    /// The MAC address the board reports.
    pub fn effective_mac(&self) -> MacAddress {
        self.mac.unwrap_or(MacAddress(self.chip.default_mac()))
    }

    /// The revision the board reports.
    pub fn effective_revision(&self) -> Revision {
        self.revision.unwrap_or(self.chip.default_revision())
    }

    /// The crystal the board has.
    pub fn effective_crystal(&self) -> Crystal {
        self.crystal.unwrap_or(self.chip.default_crystal())
    }

    pub(crate) fn factory_efuses(&self) -> Efuses {
        Efuses {
            mac: self.effective_mac().0,
            psram: self.psram,
            revision: self.effective_revision(),
            crystal: self.effective_crystal(),
            security: self.security,
            secure_boot_digests: self.secure_boot_digests.clone(),
        }
    }

    /// The same configuration as `esp-sim` command-line arguments.
    pub fn to_args(&self) -> Vec<String> {
        let mut args = vec![
            "--chip".to_owned(),
            self.chip.to_string(),
            "--flash-size".to_owned(),
            self.flash_size.to_string(),
            "--mac".to_owned(),
            self.effective_mac().to_string(),
            "--revision".to_owned(),
            self.effective_revision().to_string(),
            "--crystal".to_owned(),
            self.effective_crystal().to_string(),
        ];
        if let Some(psram) = self.psram {
            args.extend(["--psram".to_owned(), psram.to_string()]);
        }
        for (on, flag) in [
            (self.security.secure_download, "--secure-download"),
            (self.security.secure_boot, "--secure-boot"),
            (self.security.flash_encryption, "--flash-encryption"),
        ] {
            if on {
                args.push(flag.to_owned());
            }
        }
        for digest in &self.secure_boot_digests {
            let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
            args.extend(["--secure-boot-digest".to_owned(), hex]);
        }
        for setting in &self.efuses {
            args.extend(["--efuse".to_owned(), setting.to_string()]);
        }
        if self.realtime {
            args.push("--realtime".to_owned());
        }
        if self.page_program != PageProgramTime::default() {
            args.extend(["--page-program".to_owned(), self.page_program.to_string()]);
        }
        if !self.faults.faults.is_empty() {
            args.extend(["--faults".to_owned(), self.faults.to_string()]);
        }
        args
    }
}

/// Why a board could not start.
#[derive(Debug, thiserror::Error)]
pub enum BoardError {
    /// The configuration is inconsistent.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// An eFuse setting does not apply to the chip.
    #[error(transparent)]
    Efuse(#[from] EfuseError),
    /// The pty or the serving thread could not be set up.
    #[error("cannot open the board's pty: {0}")]
    Io(#[from] io::Error),
}

/// What crossed the line and what the flash did: the figures benchmarks compare a measured
/// time against.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LineStats {
    /// Bytes received from the host.
    pub rx_bytes: u64,
    /// Bytes sent to the host.
    pub tx_bytes: u64,
    /// Wire time of the received bytes, each at the rate in effect when it crossed.
    pub rx_wire: Duration,
    /// Wire time of the sent bytes.
    pub tx_wire: Duration,
    /// Flash erase and program time (typical datasheet values).
    pub flash_time: Duration,
    /// Wire time of the RAM upload commands received (MEM_BEGIN, MEM_DATA, MEM_END: the stub).
    pub upload_wire: Duration,
    /// When the first byte arrived from the host.
    pub first_rx: Option<Instant>,
}

/// A running simulated board.
///
/// The board serves any number of client sessions in a row on its pty,
/// like a real board held in download mode, until it is stopped or
/// dropped.
#[derive(Debug)]
pub struct SimBoard {
    path: PathBuf,
    chip: Chip,
    flash: Arc<Mutex<Flash>>,
    efuses: Option<Arc<Mutex<EfuseController>>>,
    log: Arc<Mutex<Vec<CommandRecord>>>,
    stats: Arc<Mutex<LineStats>>,
    stop: Arc<AtomicBool>,
    disconnected: Arc<AtomicBool>,
    /// After a pulled cable, the pty's slave, kept so that its number is not reused while
    /// the board lives (a client retrying the dead port must not reach another board). Held,
    /// never read.
    _pulled: Arc<Mutex<Option<OwnedFd>>>,
    thread: Option<JoinHandle<()>>,
}

impl SimBoard {
    /// Opens a pty and starts serving `config` on it.
    pub fn start(config: BoardConfig) -> Result<Self, BoardError> {
        let chip = config.chip;
        let registers = chip.initial_registers(&config.factory_efuses())?;
        if config.initial_flash.len() > config.flash_size.bytes() as usize {
            return Err(ConfigError::ContentTooLarge {
                content: config.initial_flash.len(),
                flash: config.flash_size.bytes(),
            }
            .into());
        }
        let flash = Arc::new(Mutex::new(Flash::new(
            config.flash_size.bytes(),
            &config.initial_flash,
        )));
        let log = Arc::new(Mutex::new(Vec::new()));
        let mut loader = Loader::new(
            chip,
            registers,
            config.flash_size.jedec_id(),
            config.security,
            FlashTimings::W25Q.with_page_program(config.page_program),
            flash.clone(),
            log.clone(),
        );
        let efuses = loader.efuses();
        burn_efuses(&config, efuses.as_deref())?;
        loader.reset_security();
        let pty = Pty::open()?;
        let path = pty.path().to_owned();
        let stop = Arc::new(AtomicBool::new(false));
        let disconnected = Arc::new(AtomicBool::new(false));
        let pulled = Arc::new(Mutex::new(None));
        let stats = Arc::new(Mutex::new(LineStats::default()));
        let server = Server {
            stats: stats.clone(),
            pty,
            loader,
            faults: FaultInjector::new(config.faults),
            pacer: Pacer::new(config.realtime),
            decoder: slip::Decoder::new(),
            baud: None,
            stop: stop.clone(),
            disconnected: disconnected.clone(),
            pulled: pulled.clone(),
        };
        let thread = thread::Builder::new()
            .name(format!("esp-sim {chip}"))
            .spawn(move || server.run())?;
        Ok(SimBoard {
            path,
            chip,
            flash,
            efuses,
            log,
            stats,
            stop,
            disconnected,
            _pulled: pulled,
            thread: Some(thread),
        })
    }

    /// The pty device clients open (`/dev/pts/N`).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The simulated chip.
    pub fn chip(&self) -> Chip {
        self.chip
    }

    /// The burned content of the eFuses, where the chip's controller is modelled.
    pub fn efuse_image(&self) -> Option<EfuseImage> {
        self.efuses.as_ref().map(|e| lock(e).image())
    }

    /// What the board would print if it were reset into its firmware now (boot pin high): the
    /// ROM, bootloader and app log worked out from the flash and the eFuses, decrypting the
    /// flash with the burned key when the crypt counter is odd. The line is not touched; a
    /// watchdog reset by the host (esp32c3, -c6, -s2, -s3) sends the same log on it.
    pub fn boot_log(&self) -> String {
        let encryption = self.efuses.as_ref().and_then(|e| encryption(&lock(e)));
        boot_log(self.chip, &self.flash(), encryption.as_ref())
    }

    /// A copy of the whole flash.
    pub fn flash(&self) -> Vec<u8> {
        lock(&self.flash).contents().to_vec()
    }

    /// The commands received so far, oldest first.
    pub fn commands(&self) -> Vec<CommandRecord> {
        lock(&self.log).clone()
    }

    /// Line and flash figures so far.
    pub fn stats(&self) -> LineStats {
        lock(&self.stats).clone()
    }

    /// Forgets the commands received so far.
    pub fn clear_commands(&self) {
        lock(&self.log).clear();
    }

    /// Whether an injected disconnect has cut the line.
    pub fn is_disconnected(&self) -> bool {
        self.disconnected.load(Ordering::SeqCst)
    }

    /// Stops serving, closes the pty and returns the final flash content.
    pub fn stop(mut self) -> Vec<u8> {
        self.shutdown();
        self.flash()
    }

    fn shutdown(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            // A panic in the serving thread has already been reported.
            let _ = thread.join();
        }
    }
}

impl Drop for SimBoard {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Burns the configuration's eFuse settings and image into `efuses`: ENABLE_SECURITY_DOWNLOAD
/// for Secure Download Mode, then the settings in order, then the image.
fn burn_efuses(
    config: &BoardConfig,
    efuses: Option<&Mutex<EfuseController>>,
) -> Result<(), EfuseError> {
    let Some(efuses) = efuses else {
        if config.efuses.is_empty() && config.efuse_image.is_none() {
            return Ok(());
        }
        return Err(EfuseError::NoController(config.chip));
    };
    let mut efuses = lock(efuses);
    if config.security.secure_download {
        efuses.apply(config.chip, &"ENABLE_SECURITY_DOWNLOAD=1".parse()?)?;
    }
    for setting in &config.efuses {
        efuses.apply(config.chip, setting)?;
    }
    if let Some(image) = &config.efuse_image {
        efuses.restore(image);
    }
    Ok(())
}

/// The serving loop's state, owned by the board's thread.
struct Server {
    stats: Arc<Mutex<LineStats>>,
    pty: Pty,
    loader: Loader,
    faults: FaultInjector,
    pacer: Pacer,
    decoder: slip::Decoder,
    /// Rate set by CHANGE_BAUDRATE, used when the host's rate is unknown.
    baud: Option<u32>,
    stop: Arc<AtomicBool>,
    disconnected: Arc<AtomicBool>,
    pulled: Arc<Mutex<Option<OwnedFd>>>,
}

/// The line was cut by an injected disconnect.
struct CablePulled;

impl Server {
    fn run(mut self) {
        let mut buf = [0u8; 4096];
        while !self.stop.load(Ordering::SeqCst) {
            let buffered = self.pty.readable().unwrap_or(false);
            let n = match self.pty.read(&mut buf, POLL_INTERVAL) {
                Ok(n) => n,
                Err(_) => {
                    // EIO and friends: back off and keep serving.
                    thread::sleep(POLL_INTERVAL);
                    continue;
                }
            };
            if n == 0 {
                continue;
            }
            if self.serve(&buf[..n], buffered).is_err() {
                self.disconnected.store(true, Ordering::SeqCst);
                // Closing the master: the host sees a hang-up. The slave is kept until the
                // board is dropped, so the port's number goes to no other board meanwhile.
                *lock(&self.pulled) = Some(self.pty.hang_up());
                return;
            }
        }
    }

    fn current_baud(&self) -> u32 {
        self.pty.host_baud().or(self.baud).unwrap_or(DEFAULT_BAUD)
    }

    fn serve(&mut self, bytes: &[u8], buffered: bool) -> Result<(), CablePulled> {
        let baud = self.current_baud();
        {
            let mut stats = lock(&self.stats);
            stats.first_rx.get_or_insert_with(Instant::now);
            stats.rx_bytes += bytes.len() as u64;
            stats.rx_wire += wire_time(bytes.len() as u64, baud);
        }
        self.pacer.received(bytes.len(), baud, buffered);
        for &byte in bytes {
            let fate = self.faults.byte(Direction::Rx, byte, baud);
            if fate.disconnect {
                return Err(CablePulled);
            }
            if let Some(stall) = fate.stall {
                thread::sleep(stall);
            }
            let Some(byte) = fate.byte else { continue };
            if let Some(frame) = self.decoder.push(byte) {
                if matches!(frame.get(..2), Some([0, 0x05..=0x07])) {
                    lock(&self.stats).upload_wire += wire_time(frame.len() as u64 + 2, baud);
                }
                self.pacer.wait_for_flash();
                let output = self.loader.handle(&frame, &mut self.faults);
                if output.power_cut {
                    return Err(CablePulled);
                }
                self.send(output)?;
                if let Some(log) = self.loader.take_boot_log() {
                    self.transmit(&log, self.current_baud());
                }
            }
        }
        Ok(())
    }

    fn send(&mut self, output: Output) -> Result<(), CablePulled> {
        lock(&self.stats).flash_time += output.busy + output.background;
        self.pacer.busy(output.busy);
        let mut wire = Vec::new();
        for frame in &output.frames {
            slip::encode_into(frame, &mut wire);
        }
        let baud = self.current_baud();
        if !wire.is_empty() {
            self.pacer.turnaround();
        }
        let mut line = Vec::with_capacity(wire.len());
        for byte in wire {
            let fate = self.faults.byte(Direction::Tx, byte, baud);
            if fate.disconnect {
                self.transmit(&line, baud);
                return Err(CablePulled);
            }
            if let Some(stall) = fate.stall {
                self.transmit(&line, baud);
                line.clear();
                thread::sleep(stall);
            }
            line.extend(fate.byte);
        }
        self.transmit(&line, baud);
        self.pacer.background(output.background);
        if let Some(new_baud) = output.new_baud {
            self.baud = Some(new_baud);
        }
        Ok(())
    }

    fn transmit(&mut self, bytes: &[u8], baud: u32) {
        {
            let mut stats = lock(&self.stats);
            stats.tx_bytes += bytes.len() as u64;
            stats.tx_wire += wire_time(bytes.len() as u64, baud);
        }
        let pty = &self.pty;
        // A failed write means nobody listens; the reply is lost as on a
        // real line.
        let _ = self
            .pacer
            .transmit(bytes, baud, |chunk| pty.write_all(chunk, STALE_REPLY));
    }
}
