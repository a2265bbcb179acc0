//! Packets of the ESP serial loader protocol: requests from the host,
//! responses from the ROM loader or the flasher stub.

use std::fmt;

/// Command opcodes the simulator knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Opcode {
    /// Start a flash write.
    FlashBegin = 0x02,
    /// One block of a flash write.
    FlashData = 0x03,
    /// Finish a flash write (0 = reboot, 1 = run user code / stay).
    FlashEnd = 0x04,
    /// Start a RAM upload.
    MemBegin = 0x05,
    /// Finish a RAM upload, optionally jumping to the entry point.
    MemEnd = 0x06,
    /// One block of a RAM upload.
    MemData = 0x07,
    /// Synchronise the link.
    Sync = 0x08,
    /// Write a register.
    WriteReg = 0x09,
    /// Read a register.
    ReadReg = 0x0A,
    /// Tell the loader the flash geometry.
    SpiSetParams = 0x0B,
    /// Attach the SPI flash.
    SpiAttach = 0x0D,
    /// ROM-only read of up to 64 flash bytes.
    ReadFlashSlow = 0x0E,
    /// Change the UART rate.
    ChangeBaudrate = 0x0F,
    /// Start a zlib-compressed flash write.
    FlashDeflBegin = 0x10,
    /// One block of a compressed flash write.
    FlashDeflData = 0x11,
    /// Finish a compressed flash write.
    FlashDeflEnd = 0x12,
    /// MD5 of a flash region.
    SpiFlashMd5 = 0x13,
    /// Security flags, key purposes and chip id.
    GetSecurityInfo = 0x14,
    /// Erase the whole flash (stub only).
    EraseFlash = 0xD0,
    /// Erase a flash region (stub only).
    EraseRegion = 0xD1,
    /// Stream a flash region to the host (stub only).
    ReadFlash = 0xD2,
}

impl Opcode {
    /// Decodes an opcode byte.
    pub fn from_byte(byte: u8) -> Option<Self> {
        use Opcode::*;
        Some(match byte {
            0x02 => FlashBegin,
            0x03 => FlashData,
            0x04 => FlashEnd,
            0x05 => MemBegin,
            0x06 => MemEnd,
            0x07 => MemData,
            0x08 => Sync,
            0x09 => WriteReg,
            0x0A => ReadReg,
            0x0B => SpiSetParams,
            0x0D => SpiAttach,
            0x0E => ReadFlashSlow,
            0x0F => ChangeBaudrate,
            0x10 => FlashDeflBegin,
            0x11 => FlashDeflData,
            0x12 => FlashDeflEnd,
            0x13 => SpiFlashMd5,
            0x14 => GetSecurityInfo,
            0xD0 => EraseFlash,
            0xD1 => EraseRegion,
            0xD2 => ReadFlash,
            _ => return None,
        })
    }

    /// The conventional upper-case command name.
    pub fn name(self) -> &'static str {
        use Opcode::*;
        match self {
            FlashBegin => "FLASH_BEGIN",
            FlashData => "FLASH_DATA",
            FlashEnd => "FLASH_END",
            MemBegin => "MEM_BEGIN",
            MemEnd => "MEM_END",
            MemData => "MEM_DATA",
            Sync => "SYNC",
            WriteReg => "WRITE_REG",
            ReadReg => "READ_REG",
            SpiSetParams => "SPI_SET_PARAMS",
            SpiAttach => "SPI_ATTACH",
            ReadFlashSlow => "READ_FLASH_SLOW",
            ChangeBaudrate => "CHANGE_BAUDRATE",
            FlashDeflBegin => "FLASH_DEFL_BEGIN",
            FlashDeflData => "FLASH_DEFL_DATA",
            FlashDeflEnd => "FLASH_DEFL_END",
            SpiFlashMd5 => "SPI_FLASH_MD5",
            GetSecurityInfo => "GET_SECURITY_INFO",
            EraseFlash => "ERASE_FLASH",
            EraseRegion => "ERASE_REGION",
            ReadFlash => "READ_FLASH",
        }
    }

    /// Whether the request carries a data block with a checksum.
    pub fn has_checksum(self) -> bool {
        matches!(
            self,
            Opcode::FlashData | Opcode::FlashDeflData | Opcode::MemData
        )
    }
}

impl fmt::Display for Opcode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A request frame that does not follow the packet layout.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MalformedRequest {
    /// Shorter than the 8-byte header, or not a request (direction byte ≠ 0).
    #[error("not a request packet")]
    NotARequest,
    /// The length field disagrees with the frame.
    #[error("length field says {declared} bytes, frame carries {actual}")]
    LengthMismatch {
        /// The opcode byte, so the reply can name it.
        op: u8,
        /// Value of the length field.
        declared: usize,
        /// Bytes present after the header.
        actual: usize,
    },
}

/// A decoded request packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// Raw opcode byte.
    pub op: u8,
    /// Checksum field (meaningful for the `*_DATA` commands).
    pub checksum: u32,
    /// Payload.
    pub data: Vec<u8>,
}

impl Request {
    /// Parses a SLIP-decoded frame.
    pub fn parse(frame: &[u8]) -> Result<Self, MalformedRequest> {
        if frame.len() < 8 || frame[0] != 0 {
            return Err(MalformedRequest::NotARequest);
        }
        let declared = usize::from(u16::from_le_bytes([frame[2], frame[3]]));
        let data = &frame[8..];
        if data.len() != declared {
            return Err(MalformedRequest::LengthMismatch {
                op: frame[1],
                declared,
                actual: data.len(),
            });
        }
        Ok(Request {
            op: frame[1],
            checksum: u32::from_le_bytes([frame[4], frame[5], frame[6], frame[7]]),
            data: data.to_vec(),
        })
    }

    /// The `index`-th little-endian word of the payload.
    pub fn word(&self, index: usize) -> Option<u32> {
        let bytes = self.data.get(index * 4..index * 4 + 4)?;
        Some(u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
    }

    /// The payload as whole little-endian words (a trailing partial word is
    /// ignored).
    pub fn words(&self) -> impl Iterator<Item = u32> + '_ {
        self.data
            .chunks_exact(4)
            .map(|w| u32::from_le_bytes([w[0], w[1], w[2], w[3]]))
    }
}

/// The checksum of `*_DATA` payloads: 0xEF XOR every byte.
pub fn checksum(data: &[u8]) -> u32 {
    u32::from(data.iter().fold(0xEF_u8, |acc, b| acc ^ b))
}

/// Why a command failed, independent of who answers it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// Unknown or malformed command.
    InvalidMessage,
    /// The command could not be carried out (sequence, state, range).
    FailedToAct,
    /// A data block's checksum is wrong.
    BadChecksum,
    /// Writing the flash failed (e.g. outside the chip).
    FlashWrite,
    /// Reading the flash failed.
    FlashRead,
    /// A read longer than the command allows.
    ReadLength,
    /// The zlib stream is broken.
    Deflate,
    /// The loader does not implement this command.
    Unimplemented,
}

impl Failure {
    /// Error byte as the ROM loader reports it.
    pub fn rom_code(self) -> u8 {
        match self {
            Failure::InvalidMessage | Failure::Unimplemented => 0x05,
            Failure::FailedToAct => 0x06,
            Failure::BadChecksum => 0x07,
            Failure::FlashWrite => 0x08,
            Failure::FlashRead => 0x09,
            Failure::ReadLength => 0x0A,
            Failure::Deflate => 0x0B,
        }
    }

    /// Error byte as the flasher stub reports it.
    pub fn stub_code(self) -> u8 {
        match self {
            Failure::ReadLength => 0xC0,
            Failure::BadChecksum => 0xC1,
            Failure::InvalidMessage => 0xC3,
            Failure::FlashWrite | Failure::FlashRead => 0xC4,
            Failure::FailedToAct => 0xC6,
            Failure::Deflate => 0xC7,
            Failure::Unimplemented => 0xFF,
        }
    }
}

/// Who is answering: the mask ROM loader or the uploaded flasher stub.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Responder {
    /// ROM loader: 4 status bytes.
    Rom,
    /// Flasher stub: 2 status bytes.
    Stub,
}

/// A response packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// Opcode being answered.
    pub op: u8,
    /// The value field (READ_REG result, SYNC value).
    pub value: u32,
    /// Data before the status bytes.
    pub data: Vec<u8>,
    /// `None` for success.
    pub failure: Option<Failure>,
}

impl Response {
    /// A successful reply without data.
    pub fn ok(op: u8) -> Self {
        Response {
            op,
            value: 0,
            data: Vec::new(),
            failure: None,
        }
    }

    /// A failed reply.
    pub fn failed(op: u8, failure: Failure) -> Self {
        Response {
            failure: Some(failure),
            ..Response::ok(op)
        }
    }

    /// Sets the value field.
    pub fn with_value(mut self, value: u32) -> Self {
        self.value = value;
        self
    }

    /// Sets the data.
    pub fn with_data(mut self, data: Vec<u8>) -> Self {
        self.data = data;
        self
    }

    /// Serialises the packet (before SLIP framing).
    pub fn encode(&self, responder: Responder) -> Vec<u8> {
        let status: &[u8] = match (responder, self.failure) {
            (Responder::Rom, None) => &[0, 0, 0, 0],
            (Responder::Rom, Some(f)) => &[1, f.rom_code(), 0, 0],
            (Responder::Stub, None) => &[0, 0],
            (Responder::Stub, Some(f)) => &[1, f.stub_code()],
        };
        let len = u16::try_from(self.data.len() + status.len()).unwrap_or(u16::MAX);
        let mut packet = Vec::with_capacity(8 + usize::from(len));
        packet.push(0x01);
        packet.push(self.op);
        packet.extend_from_slice(&len.to_le_bytes());
        packet.extend_from_slice(&self.value.to_le_bytes());
        packet.extend_from_slice(&self.data);
        packet.extend_from_slice(status);
        packet
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_checks_length() {
        let frame = [0, 0x0A, 4, 0, 0, 0, 0, 0, 0x00, 0x10, 0x00, 0x40];
        let req = Request::parse(&frame).unwrap();
        assert_eq!(req.word(0), Some(0x4000_1000));
        assert!(Request::parse(&frame[..11]).is_err());
    }

    #[test]
    fn status_length_follows_responder() {
        let rsp = Response::failed(0x14, Failure::InvalidMessage);
        assert_eq!(
            rsp.encode(Responder::Rom),
            [1, 0x14, 4, 0, 0, 0, 0, 0, 1, 5, 0, 0]
        );
        assert_eq!(Response::ok(2).encode(Responder::Stub).len(), 10);
    }
}
