//! A SPI NOR flash: erase sets whole sectors to 0xFF, programming can only
//! clear bits.

use std::ops::Range;

/// Smallest erasable unit.
pub const SECTOR_SIZE: u32 = 0x1000;
/// Large erase unit, used when a range covers an aligned block.
pub const BLOCK_SIZE: u32 = 0x1_0000;
/// Programming unit.
pub const PAGE_SIZE: u32 = 0x100;

/// An access outside the flash.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("flash access {start:#x}..{end:#x} is outside the {size:#x}-byte flash")]
pub struct OutOfRange {
    /// First byte of the access.
    pub start: u64,
    /// End of the access (exclusive).
    pub end: u64,
    /// Size of the flash.
    pub size: u32,
}

/// The erase operations a range needs, as a flash controller issues them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EraseOps {
    /// 4 KiB sector erases.
    pub sectors: u32,
    /// 64 KiB block erases.
    pub blocks: u32,
}

/// The flash array.
#[derive(Debug, Clone)]
pub struct Flash {
    data: Vec<u8>,
}

impl Flash {
    /// An erased flash of `size` bytes (all 0xFF) with `content` at offset 0.
    ///
    /// Content beyond `size` is cut off.
    pub fn new(size: u32, content: &[u8]) -> Self {
        let mut data = vec![0xFF; size as usize];
        let n = content.len().min(data.len());
        data[..n].copy_from_slice(&content[..n]);
        Flash { data }
    }

    /// Size in bytes.
    pub fn size(&self) -> u32 {
        self.data.len() as u32
    }

    /// The whole array.
    pub fn contents(&self) -> &[u8] {
        &self.data
    }

    fn range(&self, addr: u32, len: u32) -> Result<Range<usize>, OutOfRange> {
        let end = u64::from(addr) + u64::from(len);
        if end > self.data.len() as u64 {
            return Err(OutOfRange {
                start: addr.into(),
                end,
                size: self.size(),
            });
        }
        Ok(addr as usize..end as usize)
    }

    /// Reads `len` bytes at `addr`.
    pub fn read(&self, addr: u32, len: u32) -> Result<&[u8], OutOfRange> {
        Ok(&self.data[self.range(addr, len)?])
    }

    /// Programs `bytes` at `addr`: each bit can only go from 1 to 0.
    ///
    /// Returns the number of pages touched.
    pub fn program(&mut self, addr: u32, bytes: &[u8]) -> Result<u32, OutOfRange> {
        let len = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
        let range = self.range(addr, len)?;
        for (cell, byte) in self.data[range].iter_mut().zip(bytes) {
            *cell &= byte;
        }
        let first_page = addr / PAGE_SIZE;
        let end_page = (u64::from(addr) + u64::from(len)).div_ceil(u64::from(PAGE_SIZE)) as u32;
        Ok(end_page - first_page)
    }

    /// Erases every sector that `[addr, addr + len)` touches and reports
    /// the erase operations used (64 KiB blocks where aligned).
    pub fn erase(&mut self, addr: u32, len: u32) -> Result<EraseOps, OutOfRange> {
        if len == 0 {
            return Ok(EraseOps::default());
        }
        let start = addr - addr % SECTOR_SIZE;
        let end = (u64::from(addr) + u64::from(len)).next_multiple_of(u64::from(SECTOR_SIZE));
        let end = u32::try_from(end).unwrap_or(u32::MAX);
        let range = self.range(start, end - start)?;
        self.data[range].fill(0xFF);
        let mut ops = EraseOps::default();
        let mut at = start;
        while at < end {
            if at.is_multiple_of(BLOCK_SIZE) && end - at >= BLOCK_SIZE {
                ops.blocks += 1;
                at += BLOCK_SIZE;
            } else {
                ops.sectors += 1;
                at += SECTOR_SIZE;
            }
        }
        Ok(ops)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn programming_only_clears_bits() {
        let mut flash = Flash::new(0x10_0000, &[]);
        flash.program(0x10, &[0x0F]).unwrap();
        flash.program(0x10, &[0xF1]).unwrap();
        assert_eq!(flash.read(0x10, 1).unwrap(), &[0x01]);
        flash.erase(0x10, 1).unwrap();
        assert_eq!(flash.read(0, SECTOR_SIZE).unwrap(), &[0xFF; 0x1000][..]);
    }

    #[test]
    fn erase_uses_blocks_where_aligned() {
        let mut flash = Flash::new(0x40_0000, &[]);
        let ops = flash.erase(0xE000, 0x2_2000).unwrap();
        assert_eq!(
            ops,
            EraseOps {
                sectors: 2,
                blocks: 2
            }
        );
        assert!(flash.erase(0x3F_F000, 0x2000).is_err());
    }
}
