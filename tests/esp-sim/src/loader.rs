//! The serial loader of the simulated chip: the mask ROM's command set and,
//! once uploaded, the flasher stub's.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use flate2::{Decompress, FlushDecompress, Status};
use md5::{Digest, Md5};

use crate::chip::{Chip, SpiRegs};
use crate::efuse::{Burn, EfuseController};
use crate::faults::FaultInjector;
use crate::flash::{BLOCK_SIZE, Flash, SECTOR_SIZE};
use crate::pacing::FlashTimings;
use crate::protocol::{Failure, MalformedRequest, Opcode, Request, Responder, Response, checksum};
use crate::security::{Security, allowed_in_secure_download};

/// The value a ROM loader puts in its SYNC replies.
const ROM_SYNC_VALUE: u32 = 0x2012_0707;
/// The SYNC payload: `07 07 12 20` and 32 × `55`.
const SYNC_PAYLOAD: [u8; 36] = {
    let mut p = [0x55; 36];
    p[0] = 0x07;
    p[1] = 0x07;
    p[2] = 0x12;
    p[3] = 0x20;
    p
};
/// Replies a ROM sends to one SYNC.
const SYNC_REPLIES: usize = 8;
/// Bit of the SPI CMD register that starts a user command.
const SPI_CMD_USR: u32 = 1 << 18;
/// The flash's SFDP header: signature, revision 1.6, one parameter header
/// (JEDEC basic table, 16 words at 0x80). Everything after reads 0.
const SFDP_HEADER: [u8; 16] = [
    b'S', b'F', b'D', b'P', 0x06, 0x01, 0x00, 0xFF, 0x00, 0x06, 0x01, 0x10, 0x80, 0x00, 0x00, 0xFF,
];
/// Opcode field of the replies to a command refused in Secure Download Mode.
const SDM_REFUSAL_OP: u8 = 0x00;
/// Replies sent for one refused command.
const SDM_REFUSALS: usize = 8;
/// The stub's greeting after it starts.
const OHAI: &[u8] = b"OHAI";

/// One command the board received, for tests to inspect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandRecord {
    /// Raw opcode byte.
    pub opcode: u8,
    /// Decoded opcode, if known.
    pub command: Option<Opcode>,
    /// The leading words of the payload (the block header for `*_DATA`;
    /// none for SYNC).
    pub args: Vec<u32>,
    /// Payload length in bytes.
    pub data_len: usize,
    /// Whether the stub (rather than the ROM) received it.
    pub stub: bool,
    /// When its last byte was taken in (after the pending flash work, in real-time mode).
    pub at: std::time::Instant,
}

/// What the board does in answer to one frame.
#[derive(Debug, Default)]
pub(crate) struct Output {
    /// Packets to send, in order (before SLIP framing).
    pub frames: Vec<Vec<u8>>,
    /// Time the chip is busy (flash erase/program) before the first frame.
    pub busy: Duration,
    /// Flash work done after the frames are sent: the stub acknowledges a data block first and
    /// writes it while the next one arrives, so this only delays the next command.
    pub background: Duration,
    /// Line rate to switch to once the frames are sent.
    pub new_baud: Option<u32>,
    /// The power went in the middle of the command: nothing is sent, the line goes dead.
    pub power_cut: bool,
}

/// A flash write in progress (FLASH_BEGIN or FLASH_DEFL_BEGIN).
struct FlashWrite {
    offset: u32,
    /// Declared size; bytes beyond `offset + size` are padding.
    size: u32,
    block_size: u32,
    next_seq: u32,
    /// Bytes written so far (sequential writes of compressed data).
    written: u32,
    /// The stub erases ahead of the write; first sector not yet erased.
    erase_next: Option<u32>,
    /// Whether the stub has met a sector that is not blank: until then it reads each sector
    /// before erasing it and leaves a blank one as it is (esp-flasher-stub's "skip erase on
    /// already-blank sectors").
    dirty_seen: bool,
    inflater: Option<Decompress>,
}

/// A RAM upload in progress.
struct MemUpload {
    size: u32,
    received: u32,
    next_seq: u32,
}

/// A stub READ_FLASH being streamed to the host.
struct FlashRead {
    next: u32,
    end: u32,
    start: u32,
    packet: u32,
    max_in_flight: u32,
    acked: u32,
    md5: Md5,
}

mod boot;
pub(crate) use boot::{boot_log, encryption};

/// State of the chip's serial loader.
pub(crate) struct Loader {
    chip: Chip,
    responder: Responder,
    registers: HashMap<u32, u32>,
    /// The eFuse controller, where it is modelled (its registers are not in `registers`).
    efuses: Option<Arc<Mutex<EfuseController>>>,
    spi: SpiRegs,
    jedec_id: u32,
    security: Security,
    flash: Arc<Mutex<Flash>>,
    log: Arc<Mutex<Vec<CommandRecord>>>,
    timings: FlashTimings,
    write: Option<FlashWrite>,
    mem: Option<MemUpload>,
    /// RAM ranges uploaded with MEM_BEGIN, where a stub may sit.
    uploaded: Vec<std::ops::Range<u32>>,
    read: Option<FlashRead>,
    /// The stub acknowledges a data block before it inflates and writes it; an error doing so
    /// is the answer to the next command, which is then not carried out.
    deferred: Option<Failure>,
    /// A watchdog reset on its way, and its boot log (see `boot`).
    boot: boot::BootState,
}

/// Locks a mutex, recovering the data if a holder panicked.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

type Outcome = Result<Response, Failure>;

impl Loader {
    pub fn new(
        chip: Chip,
        registers: Vec<(u32, u32)>,
        jedec_id: u32,
        security: Security,
        timings: FlashTimings,
        flash: Arc<Mutex<Flash>>,
        log: Arc<Mutex<Vec<CommandRecord>>>,
    ) -> Self {
        let mut registers: HashMap<u32, u32> = registers.into_iter().collect();
        let efuses = EfuseController::new(chip, &mut registers).map(|e| Arc::new(Mutex::new(e)));
        Loader {
            chip,
            responder: Responder::Rom,
            registers,
            efuses,
            spi: chip.spi_regs(),
            jedec_id,
            security,
            flash,
            log,
            timings,
            write: None,
            mem: None,
            uploaded: Vec::new(),
            read: None,
            deferred: None,
            boot: boot::BootState::default(),
        }
    }

    /// Handles one SLIP frame from the host.
    pub fn handle(&mut self, frame: &[u8], faults: &mut FaultInjector) -> Output {
        let mut out = Output::default();
        if self.read.is_some() {
            if let Ok(ack) = <[u8; 4]>::try_from(frame) {
                self.read_ack(u32::from_le_bytes(ack), &mut out);
                return out;
            }
            // Anything else ends the transfer, as a new command would.
            self.read = None;
        }
        let mut request = match Request::parse(frame) {
            Ok(request) => request,
            Err(MalformedRequest::NotARequest) => return out,
            Err(MalformedRequest::LengthMismatch { op, .. }) => {
                self.reply(&mut out, Response::failed(op, Failure::InvalidMessage));
                return out;
            }
        };
        let mute = faults.command(request.op, &mut request.data);
        self.record(&request);
        let command = Opcode::from_byte(request.op);
        if self.security.secure_download && !command.is_some_and(allowed_in_secure_download) {
            refuse_in_secure_download(&mut out);
            return out;
        }
        if command == Some(Opcode::ReadFlashSlow) && self.read_hook_reaches_stub() {
            // The ROM calls the hijacked flash read function: the stub runs.
            out.frames.push(OHAI.to_vec());
            self.responder = Responder::Stub;
            return out;
        }
        let responder = self.responder;
        if let Some(failure) = self.deferred.take() {
            if !mute {
                let refusal = Response::failed(request.op, failure);
                out.frames.push(refusal.encode(responder));
            }
            return out;
        }
        let outcome = match command {
            Some(Opcode::Sync) => {
                if request.data == SYNC_PAYLOAD {
                    self.read = None;
                    let value = match responder {
                        Responder::Rom => ROM_SYNC_VALUE,
                        Responder::Stub => 0,
                    };
                    for _ in 0..SYNC_REPLIES {
                        self.reply(&mut out, Response::ok(request.op).with_value(value));
                    }
                }
                return out;
            }
            Some(op) => self.execute(op, &request, faults, &mut out),
            None => Err(match responder {
                Responder::Rom => Failure::InvalidMessage,
                Responder::Stub => Failure::Unimplemented,
            }),
        };
        let response = outcome.unwrap_or_else(|failure| Response::failed(request.op, failure));
        if !mute {
            out.frames.insert(0, response.encode(responder));
        }
        if responder == Responder::Stub
            && matches!(command, Some(Opcode::FlashData | Opcode::FlashDeflData))
        {
            out.background += std::mem::take(&mut out.busy);
        }
        // The stub greets once it runs; a stub told to reboot hands back to
        // the ROM (strapping pins keep the chip in download mode).
        match command {
            Some(Opcode::MemEnd)
                if response.failure.is_none()
                    && request.word(0) == Some(0)
                    && !self.secure_boot_blocks_ram_code() =>
            {
                out.frames.push(OHAI.to_vec());
                self.responder = Responder::Stub;
            }
            Some(Opcode::FlashEnd | Opcode::FlashDeflEnd)
                if responder == Responder::Stub && request.word(0).unwrap_or(0) == 0 =>
            {
                self.responder = Responder::Rom;
            }
            _ => {}
        }
        out
    }

    /// The eFuse controller, to share with the board's owner.
    pub(crate) fn efuses(&self) -> Option<Arc<Mutex<EfuseController>>> {
        self.efuses.clone()
    }

    /// Takes the ROM's security state from the eFuses, as a reset does: Secure Download Mode
    /// from ENABLE_SECURITY_DOWNLOAD, Secure Boot from SECURE_BOOT_EN, flash encryption from an
    /// odd crypt counter.
    pub(crate) fn reset_security(&mut self) {
        if let Some(efuses) = &self.efuses {
            let efuses = lock(efuses);
            self.security = Security {
                secure_download: efuses.security_download(),
                secure_boot: efuses.secure_boot(),
                flash_encryption: efuses.crypt_cnt().count_ones() % 2 == 1,
            };
        }
    }

    /// GET_SECURITY_INFO: the flags, crypt counter and key purposes the eFuses hold now, and
    /// Secure Download Mode as the ROM runs since its reset.
    fn security_info(&self) -> Option<Vec<u8>> {
        let (mut flags, crypt_cnt, purposes) = match &self.efuses {
            Some(efuses) => {
                let efuses = lock(efuses);
                let purposes = efuses.key_purposes();
                (efuses.security_flags(), efuses.crypt_cnt() as u8, purposes)
            }
            None => (
                self.security.flags(),
                self.security.flash_crypt_cnt(),
                Vec::new(),
            ),
        };
        if self.security.secure_download {
            flags |= crate::security::FLAG_SECURE_DOWNLOAD_ENABLE;
        }
        self.chip.security_info(flags, crypt_cnt, &purposes)
    }

    /// The ESP32-S3 ROM does not jump to RAM code at MEM_END once Secure Boot
    /// is enabled (esptool's `run_stub`: "Bug in ESP32-S3 ROM prevents stub
    /// execution if secure boot is enabled").
    fn secure_boot_blocks_ram_code(&self) -> bool {
        let secure_boot = match &self.efuses {
            // The ROM reads SECURE_BOOT_EN when it gets there, not only at reset.
            Some(efuses) => lock(efuses).secure_boot(),
            None => self.security.secure_boot,
        };
        secure_boot && self.chip.rom_read_hook().is_some()
    }

    /// esptool's way around it: point the ROM's legacy flash read function
    /// (`rom_spiflash_legacy_funcs.read`) at the uploaded stub and send
    /// READ_FLASH_SLOW.
    fn read_hook_reaches_stub(&self) -> bool {
        let Some(hook) = self.chip.rom_read_hook() else {
            return false;
        };
        let target = self.registers.get(&hook).copied().unwrap_or(0);
        self.responder == Responder::Rom
            && self.secure_boot_blocks_ram_code()
            && self.uploaded.iter().any(|range| range.contains(&target))
    }

    fn reply(&self, out: &mut Output, response: Response) {
        out.frames.push(response.encode(self.responder));
    }

    fn record(&self, request: &Request) {
        let command = Opcode::from_byte(request.op);
        let args = match command {
            Some(Opcode::Sync) => Vec::new(),
            Some(Opcode::WriteReg) => request.words().collect(),
            _ => request.words().take(6).collect(),
        };
        lock(&self.log).push(CommandRecord {
            opcode: request.op,
            command,
            args,
            data_len: request.data.len(),
            stub: self.responder == Responder::Stub,
            at: std::time::Instant::now(),
        });
    }

    fn stub_only(&self) -> Result<(), Failure> {
        match self.responder {
            Responder::Stub => Ok(()),
            Responder::Rom => Err(Failure::InvalidMessage),
        }
    }

    fn execute(
        &mut self,
        op: Opcode,
        req: &Request,
        faults: &mut FaultInjector,
        out: &mut Output,
    ) -> Outcome {
        let ok = Response::ok(req.op);
        let word = |i| req.word(i).ok_or(Failure::InvalidMessage);
        match op {
            Opcode::Sync => Ok(ok),
            Opcode::ReadReg => Ok(ok.with_value(self.read_register(word(0)?))),
            Opcode::WriteReg => {
                if req.data.is_empty() || !req.data.len().is_multiple_of(16) {
                    return Err(Failure::InvalidMessage);
                }
                for i in (0..req.data.len() / 4).step_by(4) {
                    self.write_register(word(i)?, word(i + 1)?, word(i + 2)?, faults, out);
                    if out.power_cut {
                        break;
                    }
                }
                Ok(ok)
            }
            Opcode::GetSecurityInfo => self
                .security_info()
                .map(|info| ok.with_data(info))
                .ok_or(Failure::InvalidMessage),
            Opcode::SpiAttach => match req.data.len() {
                4 | 8 => Ok(ok),
                _ => Err(Failure::InvalidMessage),
            },
            Opcode::SpiSetParams => match req.data.len() {
                24 => Ok(ok),
                _ => Err(Failure::InvalidMessage),
            },
            Opcode::ChangeBaudrate => {
                out.new_baud = Some(word(0)?).filter(|&b| b > 0);
                Ok(ok)
            }
            Opcode::MemBegin => {
                let size = word(0)?;
                let offset = word(3)?;
                self.uploaded.push(offset..offset.saturating_add(size));
                self.mem = Some(MemUpload {
                    size,
                    received: 0,
                    next_seq: 0,
                });
                Ok(ok)
            }
            Opcode::MemData => {
                let (seq, data) = data_block(req)?;
                let mem = self.mem.as_mut().ok_or(Failure::FailedToAct)?;
                if seq != mem.next_seq {
                    return Err(Failure::FailedToAct);
                }
                mem.next_seq += 1;
                mem.received = mem.received.saturating_add(data.len() as u32);
                if mem.received > mem.size {
                    return Err(Failure::FailedToAct);
                }
                Ok(ok)
            }
            Opcode::MemEnd => {
                self.mem = None;
                Ok(ok)
            }
            Opcode::FlashBegin | Opcode::FlashDeflBegin => {
                self.begin_write(req, op == Opcode::FlashDeflBegin, out)?;
                Ok(ok)
            }
            Opcode::FlashData => {
                self.write_block(req, out)?;
                Ok(ok)
            }
            Opcode::FlashDeflData => {
                self.write_compressed_block(req, out)?;
                Ok(ok)
            }
            Opcode::FlashEnd | Opcode::FlashDeflEnd => {
                self.write = None;
                Ok(ok)
            }
            Opcode::SpiFlashMd5 => {
                let (addr, size) = (word(0)?, word(1)?);
                let mut digest: [u8; 16] = {
                    let flash = lock(&self.flash);
                    Md5::digest(flash.read(addr, size).map_err(|_| Failure::FlashRead)?).into()
                };
                out.busy += self.timings.md5(size);
                if faults.falsify_md5() {
                    digest[0] ^= 0xFF;
                }
                Ok(ok.with_data(match self.responder {
                    Responder::Rom => hex_lower(&digest).into_bytes(),
                    Responder::Stub => digest.to_vec(),
                }))
            }
            Opcode::ReadFlashSlow => {
                if self.responder == Responder::Stub {
                    return Err(Failure::Unimplemented);
                }
                let (addr, size) = (word(0)?, word(1)?);
                if size > 64 {
                    return Err(Failure::ReadLength);
                }
                let mut block = lock(&self.flash)
                    .read(addr, size)
                    .map_err(|_| Failure::FlashRead)?
                    .to_vec();
                block.resize(64, 0);
                Ok(ok.with_data(block))
            }
            Opcode::EraseFlash => {
                self.stub_only()?;
                let mut flash = lock(&self.flash);
                let size = flash.size();
                let ops = flash.erase(0, size).map_err(|_| Failure::FlashWrite)?;
                out.busy += self.timings.erase(ops);
                Ok(ok)
            }
            Opcode::EraseRegion => {
                self.stub_only()?;
                let (addr, size) = (word(0)?, word(1)?);
                if !addr.is_multiple_of(SECTOR_SIZE) || !size.is_multiple_of(SECTOR_SIZE) {
                    return Err(Failure::FailedToAct);
                }
                let ops = lock(&self.flash)
                    .erase(addr, size)
                    .map_err(|_| Failure::FlashWrite)?;
                out.busy += self.timings.erase(ops);
                Ok(ok)
            }
            Opcode::ReadFlash => {
                self.stub_only()?;
                let (start, len, packet, max_in_flight) = (word(0)?, word(1)?, word(2)?, word(3)?);
                let end = start.checked_add(len).ok_or(Failure::FlashRead)?;
                if packet == 0 || end > lock(&self.flash).size() {
                    return Err(Failure::FlashRead);
                }
                self.read = Some(FlashRead {
                    next: start,
                    end,
                    start,
                    packet,
                    max_in_flight: max_in_flight.max(1),
                    acked: 0,
                    md5: Md5::new(),
                });
                // The data packets follow the reply.
                self.read_ack(0, out);
                Ok(ok)
            }
        }
    }

    fn read_register(&self, addr: u32) -> u32 {
        match &self.efuses {
            Some(efuses) if lock(efuses).claims(addr) => lock(efuses).read(addr),
            _ => self.registers.get(&addr).copied().unwrap_or(0),
        }
    }

    fn write_register(
        &mut self,
        addr: u32,
        value: u32,
        mask: u32,
        faults: &mut FaultInjector,
        out: &mut Output,
    ) {
        if let Some(efuses) = &self.efuses {
            let mut efuses = lock(efuses);
            if efuses.claims(addr) {
                let cut = efuses
                    .is_cmd(addr)
                    .then(|| faults.efuse_command())
                    .flatten();
                efuses.write(addr, value, mask, cut.unwrap_or(Burn::Whole));
                out.power_cut = cut.is_some();
                return;
            }
        }
        let old = self.registers.get(&addr).copied().unwrap_or(0);
        let mut new = (old & !mask) | (value & mask);
        if addr == self.spi.cmd() && new & SPI_CMD_USR != 0 {
            self.run_spi_command();
            new &= !SPI_CMD_USR;
        }
        self.registers.insert(addr, new);
        self.watch_reset(addr, new);
    }

    /// Runs the SPI flash command set up in the SPI1 user registers.
    fn run_spi_command(&mut self) {
        let reg = |a| self.registers.get(&a).copied().unwrap_or(0);
        let opcode = reg(self.spi.usr2) & 0xFF;
        let bits = (reg(self.spi.miso_dlen) & 0x3FF) + 1;
        let mut addr = reg(self.spi.addr());
        if self.spi.addr_msb {
            addr >>= 8;
        }
        let result = match opcode {
            0x9F => self.jedec_id,
            0x5A => {
                let byte = |i: u32| {
                    let at = addr.wrapping_add(i) as usize;
                    SFDP_HEADER.get(at).copied().unwrap_or(0)
                };
                u32::from_le_bytes([byte(0), byte(1), byte(2), byte(3)])
            }
            _ => 0,
        };
        let mask = if bits >= 32 {
            u32::MAX
        } else {
            (1 << bits) - 1
        };
        self.registers.insert(self.spi.w0, result & mask);
    }

    fn begin_write(
        &mut self,
        req: &Request,
        compressed: bool,
        out: &mut Output,
    ) -> Result<(), Failure> {
        if !matches!(req.data.len(), 16 | 20) {
            return Err(Failure::InvalidMessage);
        }
        let word = |i| req.word(i).unwrap_or(0);
        let (size, block_size, offset) = (word(0), word(2), word(3));
        self.write = None;
        if size == 0 {
            return Ok(());
        }
        let flash_size = lock(&self.flash).size();
        if u64::from(offset) + u64::from(size) > u64::from(flash_size) || block_size == 0 {
            return Err(Failure::FailedToAct);
        }
        let erase_next = match self.responder {
            Responder::Rom => {
                let ops = lock(&self.flash)
                    .erase(offset, size)
                    .map_err(|_| Failure::FlashWrite)?;
                out.busy += self.timings.erase(ops);
                None
            }
            Responder::Stub => Some(offset - offset % SECTOR_SIZE),
        };
        self.write = Some(FlashWrite {
            offset,
            size,
            block_size,
            next_seq: 0,
            written: 0,
            erase_next,
            dirty_seen: false,
            inflater: compressed.then(|| Decompress::new(true)),
        });
        Ok(())
    }

    fn write_block(&mut self, req: &Request, out: &mut Output) -> Result<(), Failure> {
        let (seq, data) = data_block(req)?;
        let write = self.write.as_mut().ok_or(Failure::FailedToAct)?;
        if write.inflater.is_some() || seq != write.next_seq {
            return Err(Failure::FailedToAct);
        }
        write.next_seq += 1;
        let at = u64::from(seq) * u64::from(write.block_size);
        let at = u32::try_from(at).map_err(|_| Failure::FlashWrite)?;
        program(write, &self.flash, &self.timings, at, data, out)
    }

    /// A FLASH_DEFL_DATA block. The ROM checks its sequence number and answers once it is
    /// written. The stub, as esp-flasher-stub does, checks only the length and checksum before
    /// it answers, then inflates and writes the block, whatever its sequence number (a block
    /// sent twice is inflated twice): an error in that is the answer to the next command.
    fn write_compressed_block(&mut self, req: &Request, out: &mut Output) -> Result<(), Failure> {
        let (seq, data) = data_block(req)?;
        if self.responder == Responder::Stub {
            if let Err(failure) = self.inflate_and_program(data, out) {
                self.deferred = Some(failure);
            }
            return Ok(());
        }
        let write = self.write.as_mut().ok_or(Failure::FailedToAct)?;
        if seq != write.next_seq {
            return Err(Failure::FailedToAct);
        }
        write.next_seq += 1;
        self.inflate_and_program(data, out)
    }

    /// Inflates `data` into the write in progress and programs what comes out.
    fn inflate_and_program(&mut self, data: &[u8], out: &mut Output) -> Result<(), Failure> {
        let write = self.write.as_mut().ok_or(Failure::FailedToAct)?;
        let inflater = write.inflater.as_mut().ok_or(Failure::FailedToAct)?;
        let mut plain = Vec::with_capacity(data.len() * 4);
        let mut input = data;
        loop {
            plain.reserve(0x4000);
            let before_in = inflater.total_in();
            let status = inflater
                .decompress_vec(input, &mut plain, FlushDecompress::None)
                .map_err(|_| Failure::Deflate)?;
            let consumed = (inflater.total_in() - before_in) as usize;
            input = &input[consumed..];
            if status == Status::StreamEnd || (input.is_empty() && plain.len() < plain.capacity()) {
                break;
            }
        }
        let at = write.written;
        program(write, &self.flash, &self.timings, at, &plain, out)
    }

    /// Sends READ_FLASH packets up to the in-flight limit after the host
    /// acknowledged `acked` bytes; ends with the MD5 of the data.
    fn read_ack(&mut self, acked: u32, out: &mut Output) {
        let Some(read) = self.read.as_mut() else {
            return;
        };
        read.acked = read.acked.max(acked);
        let flash = lock(&self.flash);
        let window = read.packet.saturating_mul(read.max_in_flight);
        while read.next < read.end && (read.next - read.start).saturating_sub(read.acked) < window {
            let len = read.packet.min(read.end - read.next);
            let Ok(data) = flash.read(read.next, len) else {
                break;
            };
            read.md5.update(data);
            out.frames.push(data.to_vec());
            read.next += len;
        }
        if read.next >= read.end && read.acked >= read.end - read.start {
            let digest = std::mem::take(&mut read.md5).finalize();
            out.frames.push(digest.to_vec());
            drop(flash);
            self.read = None;
        }
    }
}

/// Answers a command the ROM refuses in Secure Download Mode: several
/// "invalid message" (0x05) replies whose opcode field does not echo the
/// request.
///
/// This is the reply esptool's loader expects (`command()` raises
/// `UnsupportedCommandError` only for a 0x05 status under another opcode,
/// and drains "8 times 14 bytes" afterwards; its ESP32-S2 detection in
/// Secure Download Mode depends on it). espflash waits for a reply with the
/// request's opcode and times out, as reported for real boards
/// (esp-rs/espflash#726).
fn refuse_in_secure_download(out: &mut Output) {
    let refusal = Response::failed(SDM_REFUSAL_OP, Failure::InvalidMessage);
    for _ in 0..SDM_REFUSALS {
        out.frames.push(refusal.encode(Responder::Rom));
    }
}

/// Splits a `*_DATA` payload into sequence number and data, checking the
/// length field and the checksum.
fn data_block(req: &Request) -> Result<(u32, &[u8]), Failure> {
    let len = req.word(0).ok_or(Failure::InvalidMessage)?;
    let seq = req.word(1).ok_or(Failure::InvalidMessage)?;
    let data = &req.data[16.min(req.data.len())..];
    if data.len() != len as usize {
        return Err(Failure::ReadLength);
    }
    if checksum(data) != req.checksum & 0xFF {
        return Err(Failure::BadChecksum);
    }
    Ok((seq, data))
}

/// Programs `data` at `write.offset + at`, dropping padding beyond the
/// declared size; the stub erases the sectors first.
fn program(
    write: &mut FlashWrite,
    flash: &Mutex<Flash>,
    timings: &FlashTimings,
    at: u32,
    data: &[u8],
    out: &mut Output,
) -> Result<(), Failure> {
    let len = (data.len() as u32).min(write.size.saturating_sub(at));
    let start = write.offset.checked_add(at).ok_or(Failure::FlashWrite)?;
    let end = start + len;
    let mut flash = lock(flash);
    if let Some(erase_next) = write.erase_next.as_mut() {
        // As the real stub: erase ahead of the data, a 64 KiB block at a time where a whole
        // aligned block remains to be erased, else a 4 KiB sector.
        let erase_end = (write.offset + write.size).next_multiple_of(SECTOR_SIZE);
        let want = end.next_multiple_of(SECTOR_SIZE).min(erase_end);
        while want > *erase_next {
            if !write.dirty_seen {
                // Read the sector; leave it if it is blank.
                out.busy += timings.md5(SECTOR_SIZE);
                let blank = flash
                    .read(*erase_next, SECTOR_SIZE)
                    .map_err(|_| Failure::FlashWrite)?
                    .iter()
                    .all(|&b| b == 0xFF);
                if blank {
                    *erase_next += SECTOR_SIZE;
                    continue;
                }
                write.dirty_seen = true;
            }
            let step =
                if erase_next.is_multiple_of(BLOCK_SIZE) && erase_end - *erase_next >= BLOCK_SIZE {
                    BLOCK_SIZE
                } else {
                    SECTOR_SIZE
                };
            let ops = flash
                .erase(*erase_next, step)
                .map_err(|_| Failure::FlashWrite)?;
            out.busy += timings.erase(ops);
            *erase_next += step;
        }
    }
    let pages = flash
        .program(start, &data[..len as usize])
        .map_err(|_| Failure::FlashWrite)?;
    out.busy += timings.program(pages);
    write.written = write.written.max(at + len);
    Ok(())
}

fn hex_lower(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chip::CHIP_MAGIC_REG;
    use crate::faults::FaultSpec;
    use crate::security::FLAG_SECURE_DOWNLOAD_ENABLE;

    fn request(op: Opcode, words: &[u32]) -> Vec<u8> {
        let data: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
        let mut frame = vec![0, op as u8];
        frame.extend_from_slice(&(data.len() as u16).to_le_bytes());
        frame.extend_from_slice(&[0; 4]);
        frame.extend_from_slice(&data);
        frame
    }

    fn loader() -> Loader {
        let chip = Chip::Esp32c3;
        let flash = Arc::new(Mutex::new(Flash::new(0x10_0000, &[])));
        let config = crate::BoardConfig::new(chip);
        let regs = chip.initial_registers(&config.factory_efuses()).unwrap();
        Loader::new(
            chip,
            regs,
            0x0014_40EF,
            Security::default(),
            FlashTimings::W25Q,
            flash,
            Arc::default(),
        )
    }

    /// The status of a stub reply: 0, or its error code.
    fn stub_status(frame: &[u8]) -> Option<u8> {
        match frame.get(frame.len().checked_sub(2)?..)? {
            [0, _] => Some(0),
            [_, code] => Some(*code),
            _ => None,
        }
    }

    /// A FLASH_DEFL_DATA frame carrying `data` as block `seq`, its checksum spoilt if asked.
    fn data_frame(seq: u32, data: &[u8], spoil: bool) -> Vec<u8> {
        let mut frame = vec![0, Opcode::FlashDeflData as u8];
        frame.extend_from_slice(&((16 + data.len()) as u16).to_le_bytes());
        let sum = checksum(data) ^ u32::from(spoil);
        frame.extend_from_slice(&sum.to_le_bytes());
        for w in [data.len() as u32, seq, 0, 0] {
            frame.extend_from_slice(&w.to_le_bytes());
        }
        frame.extend_from_slice(data);
        frame
    }

    /// A loader running the stub, with `plain` compressed and a FLASH_DEFL_BEGIN for it at 0;
    /// returns the compressed blocks of 0x400 bytes.
    fn stub_writing(loader: &mut Loader, plain: &[u8], faults: &mut FaultInjector) -> Vec<Vec<u8>> {
        use std::io::Write;
        loader.handle(&request(Opcode::MemEnd, &[0, 0x4000_0000]), faults);
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
        z.write_all(plain).unwrap();
        let blocks: Vec<Vec<u8>> = z
            .finish()
            .unwrap()
            .chunks(0x400)
            .map(<[u8]>::to_vec)
            .collect();
        let begin = [plain.len() as u32, blocks.len() as u32, 0x400, 0];
        let out = loader.handle(&request(Opcode::FlashDeflBegin, &begin), faults);
        assert_eq!(stub_status(&out.frames[0]), Some(0));
        blocks
    }

    fn noise(len: usize) -> Vec<u8> {
        let mut x = 7u32;
        (0..len)
            .map(|_| {
                x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                (x >> 24) as u8
            })
            .collect()
    }

    #[test]
    fn the_stub_refuses_a_bad_checksum_without_taking_the_block() {
        let mut loader = loader();
        let mut faults = FaultInjector::new(FaultSpec::default());
        let plain = noise(0x3000);
        let blocks = stub_writing(&mut loader, &plain, &mut faults);
        for (seq, block) in blocks.iter().enumerate() {
            let seq = seq as u32;
            if seq == 1 {
                let out = loader.handle(&data_frame(seq, block, true), &mut faults);
                assert_eq!(stub_status(&out.frames[0]), Some(0xC1));
            }
            let out = loader.handle(&data_frame(seq, block, false), &mut faults);
            assert_eq!(stub_status(&out.frames[0]), Some(0), "block {seq}");
        }
        assert!(lock(&loader.flash).read(0, 0x3000).unwrap() == &plain[..]);
    }

    #[test]
    fn the_stub_inflates_a_block_sent_twice_twice_and_says_so_on_the_next_command() {
        let mut loader = loader();
        let mut faults = FaultInjector::new(FaultSpec::default());
        let plain = noise(0x3000);
        let blocks = stub_writing(&mut loader, &plain, &mut faults);
        for seq in [0u32, 1, 1] {
            let out = loader.handle(&data_frame(seq, &blocks[seq as usize], false), &mut faults);
            // Acknowledged before it is inflated: a duplicate is not noticed here.
            assert_eq!(stub_status(&out.frames[0]), Some(0), "block {seq}");
        }
        let md5 = loader.handle(
            &request(Opcode::SpiFlashMd5, &[0, 0x3000, 0, 0]),
            &mut faults,
        );
        let refused = stub_status(&md5.frames[0]) != Some(0);
        let spoilt = lock(&loader.flash).read(0, 0x3000).unwrap() != &plain[..];
        assert!(refused || spoilt, "a duplicate block went unnoticed");
        if refused {
            // The deferred error is said once; the command after is carried out again.
            let md5 = loader.handle(
                &request(Opcode::SpiFlashMd5, &[0, 0x3000, 0, 0]),
                &mut faults,
            );
            assert_eq!(stub_status(&md5.frames[0]), Some(0));
        }
    }

    /// The flash work of writing 6 sectors of noise at 0 through the stub, with a dirty
    /// sector at `dirty` and the rest blank.
    fn stub_write_work(dirty: u32) -> Duration {
        let mut loader = loader();
        let mut faults = FaultInjector::new(FaultSpec::default());
        lock(&loader.flash).program(dirty, &[0u8; 16]).unwrap();
        let plain = noise(0x6000);
        let blocks = stub_writing(&mut loader, &plain, &mut faults);
        let mut work = Duration::ZERO;
        for (seq, block) in blocks.iter().enumerate() {
            let out = loader.handle(&data_frame(seq as u32, block, false), &mut faults);
            work += out.busy + out.background;
        }
        assert!(lock(&loader.flash).read(0, 0x6000).unwrap() == &plain[..]);
        work
    }

    #[test]
    fn the_stub_leaves_blank_sectors_unerased_until_it_meets_a_dirty_one() {
        let t = FlashTimings::W25Q;
        // Sectors 0-2 read and left, 3-5 erased; against all six erased after one read.
        let saved = stub_write_work(0) - stub_write_work(0x3000);
        assert_eq!(saved, t.sector_erase * 3 - t.md5(0x1000) * 3);
    }

    #[test]
    fn hostile_input_does_not_panic() {
        let mut loader = loader();
        let mut faults = FaultInjector::new(FaultSpec::default());
        let stub = loader.handle(&request(Opcode::MemEnd, &[0, 0x4000_0000]), &mut faults);
        assert_eq!(stub.frames.last().map(Vec::as_slice), Some(OHAI));
        let out = loader.handle(
            &request(Opcode::ReadFlash, &[0, 0x2000, u32::MAX, u32::MAX]),
            &mut faults,
        );
        assert!(!out.frames.is_empty());
        // An acknowledgement far beyond what was sent ends the transfer.
        let out = loader.handle(&u32::MAX.to_le_bytes(), &mut faults);
        assert_eq!(out.frames.last().map(Vec::len), Some(16));
        // Garbage of every length is answered or ignored, never fatal.
        for len in 0..40 {
            let frame: Vec<u8> = (0..len).map(|i| (i * 37) as u8).collect();
            loader.handle(&frame, &mut faults);
        }
        let huge = [0xFFFF_FFF0, 0xFFFF_FFFF, 0xFFFF_FFFF, 0xFFFF_FFFF];
        for op in [
            Opcode::FlashBegin,
            Opcode::FlashData,
            Opcode::SpiFlashMd5,
            Opcode::EraseRegion,
        ] {
            let out = loader.handle(&request(op, &huge), &mut faults);
            assert_eq!(out.frames.len(), 1, "{op}");
        }
    }

    #[test]
    fn the_power_goes_at_the_chosen_efuse_command() {
        let mut loader = loader();
        let mut faults = FaultInjector::new("efuse-cut=2".parse().unwrap());
        // CONF = write opcode, then CMD = program BLOCK_KEY0; then a read command.
        let program = [
            0x6000_89CC,
            0x5A5A,
            u32::MAX,
            0,
            0x6000_89D4,
            2 | (4 << 2),
            u32::MAX,
            0,
        ];
        let out = loader.handle(&request(Opcode::WriteReg, &program), &mut faults);
        assert!(!out.power_cut);
        assert_eq!(out.frames.len(), 1);
        let read = [
            0x6000_89CC,
            0x5AA5,
            u32::MAX,
            0,
            0x6000_89D4,
            1,
            u32::MAX,
            0,
        ];
        let out = loader.handle(&request(Opcode::WriteReg, &read), &mut faults);
        assert!(out.power_cut, "the second CMD write cuts the power");
        // GET_SECURITY_INFO now comes from the eFuses: nothing burned, no flags.
        let mut faults = FaultInjector::new(FaultSpec::default());
        let info = loader.handle(&request(Opcode::GetSecurityInfo, &[]), &mut faults);
        assert_eq!(info.frames[0][8..12], [0, 0, 0, 0]);
    }

    #[test]
    fn sync_gets_eight_replies_with_the_rom_value() {
        let mut loader = loader();
        let mut faults = FaultInjector::new(FaultSpec::default());
        let mut sync = vec![0, Opcode::Sync as u8, 36, 0, 0, 0, 0, 0];
        sync.extend_from_slice(&SYNC_PAYLOAD);
        let out = loader.handle(&sync, &mut faults);
        assert_eq!(out.frames.len(), SYNC_REPLIES);
        assert_eq!(out.frames[0][4..8], ROM_SYNC_VALUE.to_le_bytes());
    }

    fn secure_loader(chip: Chip) -> Loader {
        let flash = Arc::new(Mutex::new(Flash::new(0x10_0000, &[])));
        let security = Security {
            secure_download: true,
            ..Security::default()
        };
        let config = crate::BoardConfig::new(chip).security(security);
        let regs = chip.initial_registers(&config.factory_efuses()).unwrap();
        Loader::new(
            chip,
            regs,
            0x0014_40EF,
            security,
            FlashTimings::W25Q,
            flash,
            Arc::default(),
        )
    }

    #[test]
    fn secure_download_mode_refuses_what_the_rom_refuses() {
        let mut loader = secure_loader(Chip::Esp32s3);
        let mut faults = FaultInjector::new(FaultSpec::default());
        let refused = [
            request(Opcode::ReadReg, &[CHIP_MAGIC_REG]),
            request(Opcode::WriteReg, &[0x6000_2000, 0, u32::MAX, 0]),
            request(Opcode::MemBegin, &[0x100, 1, 0x1800, 0x4037_0000]),
            request(Opcode::MemData, &[0, 0, 0, 0]),
            request(Opcode::MemEnd, &[0, 0x4037_0000]),
            request(Opcode::SpiFlashMd5, &[0, 0x1000, 0, 0]),
            request(Opcode::ReadFlashSlow, &[0, 64]),
            request(Opcode::ReadFlash, &[0, 0x1000, 0x1000, 1]),
            request(Opcode::FlashDeflBegin, &[0x1000, 1, 0x4000, 0]),
            request(Opcode::EraseRegion, &[0, 0x1000]),
            vec![0, 0x42, 0, 0, 0, 0, 0, 0],
        ];
        // 0x05 (invalid message) under an opcode that is not the request's.
        let refusal = [1, 0, 4, 0, 0, 0, 0, 0, 1, 0x05, 0, 0];
        for frame in refused {
            let out = loader.handle(&frame, &mut faults);
            assert_eq!(out.frames.len(), SDM_REFUSALS, "{:#x}", frame[1]);
            assert!(
                out.frames.iter().all(|f| f[..] == refusal),
                "{:#x}",
                frame[1]
            );
        }
        let accepted = [
            request(Opcode::SpiAttach, &[0, 0]),
            request(
                Opcode::SpiSetParams,
                &[0, 0x40_0000, 0x1_0000, 0x1000, 0x100, 0xFFFF],
            ),
            request(Opcode::FlashBegin, &[0x1000, 1, 0x1000, 0x2000]),
            request(Opcode::FlashEnd, &[1]),
            request(Opcode::ChangeBaudrate, &[460_800, 0]),
        ];
        for frame in accepted {
            let out = loader.handle(&frame, &mut faults);
            assert_eq!(out.frames.len(), 1, "{:#x}", frame[1]);
            assert_eq!(out.frames[0][1], frame[1]);
            assert_eq!(out.frames[0][8..], [0, 0, 0, 0], "{:#x}", frame[1]);
        }
        let info = loader.handle(&request(Opcode::GetSecurityInfo, &[]), &mut faults);
        let data = &info.frames[0][8..];
        assert_eq!(data[..4], FLAG_SECURE_DOWNLOAD_ENABLE.to_le_bytes());
        assert_eq!(data[12..16], 9u32.to_le_bytes(), "ESP32-S3 chip id");
        assert_eq!(data[20..], [0, 0, 0, 0]);
    }

    #[test]
    fn security_info_carries_the_chip_id_where_the_rom_has_it() {
        let mut faults = FaultInjector::new(FaultSpec::default());
        for chip in Chip::ALL
            .into_iter()
            .filter(|c| c.has_secure_download_mode())
        {
            let mut loader = secure_loader(chip);
            let out = loader.handle(&request(Opcode::GetSecurityInfo, &[]), &mut faults);
            let data = &out.frames[0][8..];
            if chip == Chip::Esp32s2 {
                assert_eq!(data.len(), 12 + 4);
            } else {
                assert_eq!(data.len(), 20 + 4, "{chip}");
                let id = u32::from_le_bytes(data[12..16].try_into().unwrap());
                assert_eq!(id, u32::from(chip.image_chip_id()), "{chip}");
            }
        }
    }
}
