//! The NVS version 2 page layout, written entry by entry in the order and with the page
//! breaks `nvs_partition_gen.py` uses.
//!
//! A page is 4096 bytes: a 32-byte header (state, sequence number, version, CRC), a 32-byte
//! entry state bitmap (two bits per entry, `10` = written), then 126 entries of 32 bytes.
//! An entry is: namespace index, type, span, chunk index, CRC32 (of bytes 0..4 and 8..32),
//! a 16-byte NUL-padded key, and 8 bytes of data (or a size and data CRC for variable-length
//! items, whose data follows in the next entries).

use super::value::Payload;

pub(crate) const PAGE_SIZE: usize = 4096;
const ENTRY_SIZE: usize = 32;
const FIRST_ENTRY_OFFSET: usize = 64;
const BITMAP_OFFSET: usize = 32;
const ENTRIES_PER_PAGE: usize = 126;
const STATE_ACTIVE: u32 = 0xFFFF_FFFE;
const STATE_FULL: u32 = 0xFFFF_FFFC;
const VERSION2: u8 = 0xFE;
const CHUNK_ANY: u8 = 0xFF;
const TYPE_U8: u8 = 0x01;
const TYPE_SZ: u8 = 0x21;
const TYPE_BLOB_DATA: u8 = 0x42;
const TYPE_BLOB_IDX: u8 = 0x48;
/// Chunk indices of version-0 blobs run from 0 to 127 (0x80 up belongs to version 1).
const MAX_CHUNKS: usize = 128;

/// The CRC32 the generator computes: `zlib.crc32(data, 0xFFFFFFFF)`.
fn crc32(data: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new_with_initial(0xFFFF_FFFF);
    hasher.update(data);
    hasher.finalize()
}

/// Why the layout cannot take an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LayoutError {
    /// No data page left.
    OutOfPages,
    /// A blob needing more chunks than NVS indexes.
    TooManyChunks,
}

struct Page {
    buf: Vec<u8>,
    entries: usize,
}

impl Page {
    fn new(sequence: u32) -> Page {
        let mut buf = vec![0xFF; PAGE_SIZE];
        buf[0..4].copy_from_slice(&STATE_ACTIVE.to_le_bytes());
        buf[4..8].copy_from_slice(&sequence.to_le_bytes());
        buf[8] = VERSION2;
        let crc = crc32(&buf[4..28]);
        buf[28..32].copy_from_slice(&crc.to_le_bytes());
        Page { buf, entries: 0 }
    }

    fn mark_full(&mut self) {
        if self.buf[0..4] == STATE_ACTIVE.to_le_bytes() {
            self.buf[0..4].copy_from_slice(&STATE_FULL.to_le_bytes());
        }
    }

    /// Writes `data` from the next free entry on, and marks `count` entries written.
    fn write(&mut self, data: &[u8], count: usize) {
        let start = FIRST_ENTRY_OFFSET + ENTRY_SIZE * self.entries;
        self.buf[start..start + data.len()].copy_from_slice(data);
        for _ in 0..count {
            let bit = self.entries * 2;
            self.buf[BITMAP_OFFSET + bit / 8] &= !(1 << (bit % 8));
            self.entries += 1;
        }
    }
}

/// An entry header under construction.
struct Header([u8; ENTRY_SIZE]);

impl Header {
    fn new(ns: u8, item_type: u8, span: u8, chunk: u8, key: &str) -> Header {
        let mut h = [0xFF; ENTRY_SIZE];
        h[0] = ns;
        h[1] = item_type;
        h[2] = span;
        h[3] = chunk;
        h[8..24].fill(0);
        h[8..8 + key.len()].copy_from_slice(key.as_bytes());
        Header(h)
    }

    /// Variable-length data: size at 24, data CRC at 28.
    fn with_data(mut self, data: &[u8]) -> Header {
        let size = u16::try_from(data.len()).expect("chunks are under a page");
        self.0[24..26].copy_from_slice(&size.to_le_bytes());
        self.0[28..32].copy_from_slice(&crc32(data).to_le_bytes());
        self
    }

    fn sealed(mut self) -> [u8; ENTRY_SIZE] {
        let mut covered = [0u8; 28];
        covered[0..4].copy_from_slice(&self.0[0..4]);
        covered[4..28].copy_from_slice(&self.0[8..32]);
        self.0[4..8].copy_from_slice(&crc32(&covered).to_le_bytes());
        self.0
    }
}

/// Writes entries into pages the way the generator does.
pub(crate) struct Layout {
    pages: Vec<Page>,
    total_pages: usize,
}

impl Layout {
    /// A layout for a partition of `total_pages` pages, the last of which stays reserved.
    pub(crate) fn new(total_pages: usize) -> Layout {
        Layout {
            pages: vec![Page::new(0)],
            total_pages,
        }
    }

    /// Pages that may hold data.
    pub(crate) fn data_pages(&self) -> usize {
        self.total_pages - 1
    }

    fn current(&mut self) -> &mut Page {
        self.pages.last_mut().expect("a layout always has a page")
    }

    fn new_page(&mut self) -> Result<(), LayoutError> {
        if self.pages.len() >= self.data_pages() {
            return Err(LayoutError::OutOfPages);
        }
        self.current().mark_full();
        let sequence = u32::try_from(self.pages.len()).expect("page count fits u32");
        self.pages.push(Page::new(sequence));
        Ok(())
    }

    /// A namespace entry: a u8 in namespace 0 holding the namespace's index.
    pub(crate) fn namespace(&mut self, name: &str, index: u8) -> Result<(), LayoutError> {
        let payload = Payload::Primitive {
            code: TYPE_U8,
            bytes: vec![index],
        };
        self.entry(0, name, &payload)
    }

    /// One key's entry (or entries) in namespace `ns`.
    pub(crate) fn entry(
        &mut self,
        ns: u8,
        key: &str,
        payload: &Payload,
    ) -> Result<(), LayoutError> {
        match payload {
            Payload::Primitive { code, bytes } => self.primitive(ns, key, *code, bytes),
            Payload::Str(bytes) => self.string(ns, key, bytes),
            Payload::Blob(bytes) => self.blob(ns, key, bytes),
        }
    }

    fn primitive(&mut self, ns: u8, key: &str, code: u8, bytes: &[u8]) -> Result<(), LayoutError> {
        if self.current().entries >= ENTRIES_PER_PAGE {
            self.new_page()?;
        }
        let mut header = Header::new(ns, code, 1, CHUNK_ANY, key);
        header.0[24..24 + bytes.len()].copy_from_slice(bytes);
        self.current().write(&header.sealed(), 1);
        Ok(())
    }

    /// A string never spans pages, and the generator keeps it off a page's last entry.
    fn string(&mut self, ns: u8, key: &str, bytes: &[u8]) -> Result<(), LayoutError> {
        let data_entries = bytes.len().div_ceil(ENTRY_SIZE);
        if self.current().entries + data_entries + 1 >= ENTRIES_PER_PAGE {
            self.new_page()?;
        }
        let span = u8::try_from(data_entries + 1).expect("strings are under a page");
        let header = Header::new(ns, TYPE_SZ, span, CHUNK_ANY, key).with_data(bytes);
        let page = self.current();
        page.write(&header.sealed(), 1);
        page.write(bytes, data_entries);
        Ok(())
    }

    /// A blob: BLOB_DATA chunks filling each page's free entries, then a BLOB_IDX entry.
    fn blob(&mut self, ns: u8, key: &str, bytes: &[u8]) -> Result<(), LayoutError> {
        if self.current().entries >= ENTRIES_PER_PAGE {
            self.new_page()?;
        }
        let mut offset = 0;
        let mut chunks = 0;
        loop {
            let tailroom = (ENTRIES_PER_PAGE - self.current().entries - 1) * ENTRY_SIZE;
            let size = tailroom.min(bytes.len() - offset);
            if chunks == MAX_CHUNKS {
                return Err(LayoutError::TooManyChunks);
            }
            self.blob_chunk(ns, key, chunks, &bytes[offset..offset + size]);
            chunks += 1;
            offset += size;
            if offset < bytes.len() || tailroom - size < ENTRY_SIZE {
                self.new_page()?;
            }
            if offset == bytes.len() {
                break;
            }
        }
        let mut index = Header::new(ns, TYPE_BLOB_IDX, 1, CHUNK_ANY, key);
        let total = u32::try_from(bytes.len()).expect("blobs fit the partition");
        index.0[24..28].copy_from_slice(&total.to_le_bytes());
        index.0[28] = u8::try_from(chunks).expect("at most 128 chunks");
        index.0[29] = 0;
        self.current().write(&index.sealed(), 1);
        Ok(())
    }

    fn blob_chunk(&mut self, ns: u8, key: &str, chunk: usize, data: &[u8]) {
        let data_entries = data.len().div_ceil(ENTRY_SIZE);
        let span = u8::try_from(data_entries + 1).expect("chunks are under a page");
        let chunk = u8::try_from(chunk).expect("at most 128 chunks");
        let header = Header::new(ns, TYPE_BLOB_DATA, span, chunk, key).with_data(data);
        let page = self.current();
        page.write(&header.sealed(), 1);
        page.write(data, data_entries);
    }

    /// The image: the written pages, then erased (all 0xFF) pages up to the partition size,
    /// the last of them the reserved page.
    pub(crate) fn into_image(self) -> Vec<u8> {
        let mut image = Vec::with_capacity(self.total_pages * PAGE_SIZE);
        for page in &self.pages {
            image.extend_from_slice(&page.buf);
        }
        image.resize(self.total_pages * PAGE_SIZE, 0xFF);
        image
    }
}
