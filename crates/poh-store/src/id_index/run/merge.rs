//! Merging runs: a k-way merge that streams its inputs, so that merging ten million ids costs
//! a few chunk buffers of memory, not the entries.

use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::atomic::AtomicBool;

use super::{BLOCK_BYTES, ENTRIES_PER_BLOCK, ENTRY_BYTES, Entry, Run, check_block, le64};
use crate::StoreError;

/// Blocks a merge reads from each input at a time: large sequential reads, bounded memory.
const MERGE_CHUNK_BLOCKS: u64 = 64;

/// Reads a run's entries in order, a chunk of blocks at a time, checking every block.
struct Cursor<'a> {
    run: &'a Run,
    buf: Vec<u8>,
    /// The first block in `buf`, and how many.
    buf_block: u64,
    buf_blocks: u64,
    next: u64,
}

impl<'a> Cursor<'a> {
    fn new(run: &'a Run) -> Self {
        Self {
            run,
            buf: Vec::new(),
            buf_block: 0,
            buf_blocks: 0,
            next: 0,
        }
    }

    fn next(&mut self) -> Result<Option<Entry>, StoreError> {
        if self.next >= self.run.count {
            return Ok(None);
        }
        let block = self.next / ENTRIES_PER_BLOCK;
        if block >= self.buf_block + self.buf_blocks {
            let blocks = (self.run.fences.len() as u64 - block).min(MERGE_CHUNK_BLOCKS);
            self.buf.resize((blocks * BLOCK_BYTES) as usize, 0);
            let offset = Run::block_offset(block);
            self.run
                .file
                .read_exact_at(&mut self.buf, offset)
                .map_err(StoreError::io(&self.run.path))?;
            for (i, b) in self.buf.chunks_exact(BLOCK_BYTES as usize).enumerate() {
                check_block(&self.run.path, offset + i as u64 * BLOCK_BYTES, b)?;
            }
            (self.buf_block, self.buf_blocks) = (block, blocks);
        }
        let at = ((block - self.buf_block) * BLOCK_BYTES) as usize
            + (self.next % ENTRIES_PER_BLOCK) as usize * ENTRY_BYTES;
        self.next += 1;
        Ok(Some((le64(&self.buf, at), le64(&self.buf, at + 8))))
    }
}

/// Merges runs of consecutive seq ranges into one run of their whole range: a k-way merge
/// reading each input in chunks, so memory is bounded by the inputs' count, not their size.
pub(in crate::id_index) fn merge(
    dir: &Path,
    runs: &[&Run],
    stop: &AtomicBool,
) -> Result<Run, StoreError> {
    let (Some(first), Some(last)) = (runs.first(), runs.last()) else {
        return Err(StoreError::Sequence("id index: nothing to merge"));
    };
    let mut cursors: Vec<Cursor<'_>> = runs.iter().map(|r| Cursor::new(r)).collect();
    let mut heads = cursors
        .iter_mut()
        .map(Cursor::next)
        .collect::<Result<Vec<_>, _>>()?;
    let merged = std::iter::from_fn(|| {
        // A handful of inputs: a linear scan beats a heap.
        let (i, entry) = heads
            .iter()
            .enumerate()
            .filter_map(|(i, h)| h.map(|e| (i, e)))
            // Inputs are in seq order and locs grow with seqs: (fp, loc) is (fp, seq) order.
            .min_by_key(|&(_, entry)| entry)?;
        Some(cursors[i].next().map(|n| {
            heads[i] = n;
            entry
        }))
    });
    let count = runs.iter().map(|r| r.count).sum();
    Run::write(dir, (first.first_seq, last.end_seq), count, merged, stop)
}
