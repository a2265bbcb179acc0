//! A region as the stub receives it: one zlib stream, cut into the blocks sent one by one, and
//! for every block how much of the region a stub holding it (and all before it) can have
//! decoded, which is where a broken stream can be taken up again.
//!
//! Streams are compressed once per process and content ([`Streams`]), in the background while
//! the board is being connected, so that neither a retry nor the next board of a station
//! compresses the same bytes again.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use flate2::{Decompress, FlushDecompress, Status};
use libdeflater::{CompressionLvl, Compressor};
use md5::{Digest, Md5};

use crate::plan::Plan;

/// Compressed bytes per FLASH_DEFL_DATA block: the stub's block size (espflash's and
/// esptool's `FLASH_WRITE_SIZE` for the stub).
pub(super) const BLOCK: usize = 0x4000;

/// libdeflate's strongest level: about 3 % fewer bytes on the wire than zlib level 9 for ESP-IDF
/// apps, at a cost the connection hides (docs/benchmarks.md).
const LEVEL: i32 = 12;

/// One region (or its tail from a resume point) as one zlib stream.
#[derive(Debug)]
pub(super) struct Stream {
    /// The zlib stream.
    data: Vec<u8>,
    /// Per block, the bytes of the input a decoder holding that block and every block before it
    /// can have produced.
    decoded: Vec<usize>,
}

impl Stream {
    /// `bytes` compressed, with the decoded length after each block.
    pub(super) fn new(bytes: &[u8]) -> Stream {
        let data = compress(bytes);
        let decoded = decoded_after_blocks(&data, bytes.len());
        Stream { data, decoded }
    }

    /// The blocks, in order.
    pub(super) fn blocks(&self) -> std::slice::Chunks<'_, u8> {
        self.data.chunks(BLOCK)
    }

    /// Number of blocks.
    pub(super) fn block_count(&self) -> usize {
        self.data.len().div_ceil(BLOCK)
    }

    /// The input bytes a stub can have decoded once it has blocks `0..count`.
    pub(super) fn decoded_after(&self, count: usize) -> usize {
        match count {
            0 => 0,
            n => self.decoded[(n - 1).min(self.decoded.len() - 1)],
        }
    }
}

/// `bytes` as a zlib stream, compressed with libdeflate at [`LEVEL`].
fn compress(bytes: &[u8]) -> Vec<u8> {
    let level = CompressionLvl::new(LEVEL).unwrap_or_default();
    let mut compressor = Compressor::new(level);
    let mut out = vec![0; compressor.zlib_compress_bound(bytes.len())];
    // The bound is libdeflate's own worst case for this length: compressing into it cannot fail.
    let len = compressor
        .zlib_compress(bytes, &mut out)
        .expect("zlib_compress_bound is large enough");
    out.truncate(len);
    out
}

/// Decodes `data` block by block as the stub does, noting after each block how many bytes
/// have come out.
fn decoded_after_blocks(data: &[u8], plain_len: usize) -> Vec<usize> {
    let mut inflater = Decompress::new(true);
    let mut out = vec![0u8; plain_len + 1];
    let mut decoded = Vec::with_capacity(data.len().div_ceil(BLOCK));
    for block in data.chunks(BLOCK) {
        let mut input = block;
        while !input.is_empty() {
            let (before_in, before_out) = (inflater.total_in(), inflater.total_out() as usize);
            let status = inflater.decompress(input, &mut out[before_out..], FlushDecompress::None);
            let consumed = (inflater.total_in() - before_in) as usize;
            input = &input[consumed..];
            let stalled = consumed == 0 && inflater.total_out() as usize == before_out;
            if matches!(status, Ok(Status::StreamEnd) | Err(_)) || stalled {
                break;
            }
        }
        decoded.push((inflater.total_out() as usize).min(plain_len));
    }
    decoded
}

/// One content's stream: made by the first thread that asks, waited for by the others.
type Slot = Arc<OnceLock<Arc<Stream>>>;

/// Streams by content, each compressed once per process; shared by the boards of a run.
#[derive(Debug, Default)]
pub struct Streams {
    by_digest: Mutex<HashMap<[u8; 16], Slot>>,
}

impl Streams {
    /// The stream of `bytes`, compressed now unless it was before (or is being, by another
    /// thread: then this waits for it).
    pub(super) fn get(&self, bytes: &[u8]) -> Arc<Stream> {
        let key: [u8; 16] = Md5::digest(bytes).into();
        let cell = {
            let mut map = self.by_digest.lock().unwrap_or_else(|e| e.into_inner());
            Arc::clone(map.entry(key).or_default())
        };
        Arc::clone(cell.get_or_init(|| Arc::new(Stream::new(bytes))))
    }

    /// Starts compressing every region of `plan` on a background thread, so that the streams
    /// are ready when the board is.
    pub(super) fn prepare(self: &Arc<Self>, plan: &Plan) {
        let streams = Arc::clone(self);
        let regions: Vec<Vec<u8>> = plan.regions.iter().map(|r| r.bytes.clone()).collect();
        std::thread::spawn(move || {
            for bytes in &regions {
                streams.get(bytes);
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};

    use super::*;

    fn firmware_like(len: usize) -> Vec<u8> {
        let mut state = 0x1234_5678u32;
        (0..len)
            .map(|i| {
                state = state.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                if i % 7 < 3 {
                    (state >> 24) as u8
                } else {
                    (i / 64) as u8
                }
            })
            .collect()
    }

    #[test]
    fn the_stream_decodes_to_the_region() {
        let bytes = firmware_like(300_000);
        let stream = Stream::new(&bytes);
        let mut out = Vec::new();
        flate2::read::ZlibDecoder::new(&stream.data[..])
            .read_to_end(&mut out)
            .unwrap();
        assert!(out == bytes);
        assert_eq!(stream.block_count(), stream.blocks().count());
        assert!(stream.data.len() < bytes.len());
    }

    #[test]
    fn decoded_lengths_grow_to_the_whole_region() {
        let bytes = firmware_like(300_000);
        let stream = Stream::new(&bytes);
        assert_eq!(stream.decoded_after(0), 0);
        let all: Vec<usize> = (1..=stream.block_count())
            .map(|n| stream.decoded_after(n))
            .collect();
        assert!(all.windows(2).all(|w| w[0] <= w[1]), "{all:?}");
        assert_eq!(*all.last().unwrap(), bytes.len());
        // Every prefix of blocks really decodes to at least what is claimed.
        for n in 1..stream.block_count() {
            let prefix = &stream.data[..n * BLOCK];
            let mut out = Vec::new();
            let mut d = flate2::write::ZlibDecoder::new(&mut out);
            let _ = d.write_all(prefix);
            let _ = d.flush();
            drop(d);
            assert!(out.len() >= stream.decoded_after(n), "block {n}");
            assert!(out[..stream.decoded_after(n)] == bytes[..stream.decoded_after(n)]);
        }
    }

    #[test]
    fn the_same_bytes_are_compressed_once() {
        let streams = Streams::default();
        let bytes = firmware_like(50_000);
        let a = streams.get(&bytes);
        let b = streams.get(&bytes.clone());
        assert!(Arc::ptr_eq(&a, &b));
        let c = streams.get(&bytes[1..]);
        assert!(!Arc::ptr_eq(&a, &c));
    }
}
