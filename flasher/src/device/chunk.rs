//! The plan's regions cut into the pieces written and skipped on their own.

use crate::plan::Plan;

/// Regions are written in chunks of this size (a 64 KiB flash block), each skipped on its own
/// when its MD5 already matches, so an interrupted region is resumed, not rewritten.
pub const CHUNK: usize = 0x1_0000;

/// One piece of a region, written and skipped on its own.
#[derive(Debug, Clone, Copy)]
pub(super) struct Chunk {
    /// Index of the region in the plan.
    pub(super) region: usize,
    /// Offset of the piece in the region's bytes.
    pub(super) start: usize,
    /// Length of the piece.
    pub(super) len: usize,
}

/// The plan's regions cut into [`CHUNK`]-sized pieces. A region that does not start on a
/// 4 KiB sector stays whole, so that no chunk's erase reaches into its neighbour.
pub(super) fn chunks(plan: &Plan) -> Vec<Chunk> {
    let mut out = Vec::new();
    for (region, r) in plan.regions.iter().enumerate() {
        let step = if r.offset % 0x1000 == 0 {
            CHUNK
        } else {
            r.bytes.len().max(1)
        };
        let mut start = 0;
        while start < r.bytes.len() {
            let len = step.min(r.bytes.len() - start);
            out.push(Chunk { region, start, len });
            start += len;
        }
    }
    out
}
