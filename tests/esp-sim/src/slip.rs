//! SLIP framing (RFC 1055) as the ESP serial loader uses it.
//!
//! `0xC0` opens and closes a frame; inside a frame `0xC0` is sent as
//! `0xDB 0xDC` and `0xDB` as `0xDB 0xDD`.

const END: u8 = 0xC0;
const ESC: u8 = 0xDB;
const ESC_END: u8 = 0xDC;
const ESC_ESC: u8 = 0xDD;

/// Incremental SLIP decoder: feed bytes, collect complete frames.
///
/// Bytes outside a frame are ignored, and a frame with an invalid escape
/// sequence is discarded whole, as the ROM loader does.
#[derive(Debug, Default)]
pub struct Decoder {
    frame: Vec<u8>,
    in_frame: bool,
    escaped: bool,
    invalid: bool,
}

impl Decoder {
    /// Creates a decoder waiting for the start of a frame.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds one byte; returns a frame when this byte completes one.
    pub fn push(&mut self, byte: u8) -> Option<Vec<u8>> {
        if byte == END {
            let done = self.in_frame && !self.frame.is_empty() && !self.invalid;
            let frame = std::mem::take(&mut self.frame);
            self.in_frame = true;
            self.escaped = false;
            self.invalid = false;
            return done.then_some(frame);
        }
        if !self.in_frame {
            return None;
        }
        if self.escaped {
            self.escaped = false;
            match byte {
                ESC_END => self.frame.push(END),
                ESC_ESC => self.frame.push(ESC),
                _ => self.invalid = true,
            }
        } else if byte == ESC {
            self.escaped = true;
        } else {
            self.frame.push(byte);
        }
        None
    }

    /// Forgets any partial frame, as after a line break or reconnect.
    pub fn reset(&mut self) {
        *self = Self::default();
    }
}

/// Appends `payload` to `out` as one SLIP frame.
pub fn encode_into(payload: &[u8], out: &mut Vec<u8>) {
    out.reserve(payload.len() + payload.len() / 16 + 2);
    out.push(END);
    for &byte in payload {
        match byte {
            END => out.extend_from_slice(&[ESC, ESC_END]),
            ESC => out.extend_from_slice(&[ESC, ESC_ESC]),
            _ => out.push(byte),
        }
    }
    out.push(END);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_with_escapes() {
        let payload = [0x01, 0xC0, 0xDB, 0x02, 0xDB, 0xDC];
        let mut wire = Vec::new();
        encode_into(&payload, &mut wire);
        let mut decoder = Decoder::new();
        let frames: Vec<_> = wire.iter().filter_map(|&b| decoder.push(b)).collect();
        assert_eq!(frames, vec![payload.to_vec()]);
    }

    #[test]
    fn noise_and_bad_escapes_are_dropped() {
        let mut decoder = Decoder::new();
        let wire = [0x55, 0xC0, 0x01, 0xDB, 0x00, 0xC0, 0x02, 0xC0];
        let frames: Vec<_> = wire.iter().filter_map(|&b| decoder.push(b)).collect();
        assert_eq!(frames, vec![vec![0x02]]);
    }
}
