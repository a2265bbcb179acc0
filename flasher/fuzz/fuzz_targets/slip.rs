//! SLIP framing of the serial line: every decoded frame encodes and decodes back to itself.
#![no_main]

use esp_sim::slip::{Decoder, encode_into};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let mut decoder = Decoder::new();
    for &byte in data {
        if let Some(frame) = decoder.push(byte) {
            let mut wire = Vec::new();
            encode_into(&frame, &mut wire);
            let mut check = Decoder::new();
            let back: Vec<Vec<u8>> = wire.iter().filter_map(|&b| check.push(b)).collect();
            assert_eq!(back, [frame]);
        }
    }
});
