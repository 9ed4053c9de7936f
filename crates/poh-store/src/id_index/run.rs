//! Run files: immutable, sorted, checksummed sets of index entries.
//!
//! A run holds the entries of a contiguous seq range `[first_seq, end_seq)`, named
//! `ids-{first_seq:020}-{end_seq:020}.run` so that recovery can reason about ranges from the
//! directory listing alone. Layout:
//!
//! ```text
//! header   4096 bytes: magic, version, counts, seq range, bloom and fence checksums, and
//!          (last 4 bytes) the CRC-32 of the header's first 4092 bytes
//! blocks   4096 bytes each: up to 255 entries (fp, loc: u64 LE, sorted by (fp, loc), which
//!          is (fp, seq) order), zero padding, and (last 4 bytes) the CRC-32 of the block's
//!          first 4092 bytes
//! bloom    the run's bloom filter, u64 LE words
//! fences   the first fingerprint of each block, u64 LE
//! ```
//!
//! Blocks are page-sized and page-aligned so that a lookup that passes the bloom filter costs
//! one 4 KiB positional read; their own checksums mean a damaged byte is reported with its
//! block's offset instead of being returned as a loc. The bloom filter and fences are kept in
//! memory, so opening reads the header, the filter and the fences (their checksums are in the
//! header) and never the entries.
//!
//! Writes go to `<name>.tmp`, are synced, then renamed and the directory synced: a crash
//! leaves a whole run or none (and a temp file, which `open` removes).
//!
//! Versions: 1 stored (fp, seq, loc), 24 bytes, 170 a block; 2 drops the seq (the record at
//! `loc` holds it). A run of an older version is removed on open and its ids learned again.

use std::fs::{self, File, OpenOptions};
use std::io::{BufWriter, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use super::bloom::{BLOCK_WORDS, Bloom};
use super::memtable::Entry;
use crate::StoreError;

mod merge;
pub(super) use merge::merge;

/// Bytes of a block (and of the header): one page.
pub(super) const BLOCK_BYTES: u64 = 4096;
/// Entries per block: as many 16-byte entries as fit before the checksum.
pub(super) const ENTRIES_PER_BLOCK: u64 = 255;
/// Where blocks begin.
pub(super) const HEADER_BYTES: u64 = BLOCK_BYTES;
const ENTRY_BYTES: usize = 16;
const CRC_AT: usize = BLOCK_BYTES as usize - 4;
const _: () = assert!(ENTRIES_PER_BLOCK as usize * ENTRY_BYTES <= CRC_AT);
const MAGIC: [u8; 8] = *b"pohidrun";
const VERSION: u32 = 2;
/// Buffer of the writer: few large writes.
const WRITE_BUFFER: usize = 256 * 1024;

/// The file name of the run of seqs `[first_seq, end_seq)`.
pub(super) fn file_name(first_seq: u64, end_seq: u64) -> String {
    format!("ids-{first_seq:020}-{end_seq:020}.run")
}

/// The seq range a run file name says, or `None` for any other name.
pub(super) fn parse_name(name: &str) -> Option<(u64, u64)> {
    let range = name.strip_prefix("ids-")?.strip_suffix(".run")?;
    let (first, end) = range.split_once('-')?;
    if first.len() != 20 || end.len() != 20 {
        return None;
    }
    Some((first.parse().ok()?, end.parse().ok()?))
}

/// Whether the file at `path` is a whole run header of an older version than this code
/// writes: of no use, to be removed. Anything else (damage included) is `false`, left for
/// [`Run::open`] to judge.
pub(super) fn older_format(path: &Path) -> Result<bool, StoreError> {
    let file = File::open(path).map_err(StoreError::io(path))?;
    let mut page = vec![0; HEADER_BYTES as usize];
    match file.read_exact_at(&mut page, 0) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(false),
        Err(e) => return Err(StoreError::io(path)(e)),
    }
    Ok(crc32fast::hash(&page[..CRC_AT]) == le32(&page, CRC_AT)
        && page[0..8] == MAGIC
        && le32(&page, 8) < VERSION)
}

/// Syncs a directory, so that the renames and removals in it survive a crash.
pub(super) fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(StoreError::io(dir))
}

fn le64(bytes: &[u8], at: usize) -> u64 {
    let mut word = [0; 8];
    word.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(word)
}

fn le32(bytes: &[u8], at: usize) -> u32 {
    let mut word = [0; 4];
    word.copy_from_slice(&bytes[at..at + 4]);
    u32::from_le_bytes(word)
}

fn words_from(bytes: &[u8]) -> Vec<u64> {
    bytes.chunks_exact(8).map(|w| le64(w, 0)).collect()
}

fn bytes_of(words: &[u64]) -> Vec<u8> {
    words.iter().flat_map(|w| w.to_le_bytes()).collect()
}

/// Checks a block's checksum: damaged bytes are an error, never entries.
fn check_block(path: &Path, offset: u64, block: &[u8]) -> Result<(), StoreError> {
    if crc32fast::hash(&block[..CRC_AT]) == le32(block, CRC_AT) {
        Ok(())
    } else {
        Err(StoreError::Damaged {
            path: path.to_path_buf(),
            offset,
            what: "id index block checksum",
        })
    }
}

/// What the header says.
struct Header {
    count: u64,
    first_seq: u64,
    end_seq: u64,
    blocks: u64,
    bloom_words: u64,
    bloom_crc: u32,
    fences_crc: u32,
}

impl Header {
    fn encode(&self) -> Vec<u8> {
        let mut page = vec![0; HEADER_BYTES as usize];
        page[0..8].copy_from_slice(&MAGIC);
        page[8..12].copy_from_slice(&VERSION.to_le_bytes());
        page[12..16].copy_from_slice(&(ENTRIES_PER_BLOCK as u32).to_le_bytes());
        for (i, v) in [
            self.count,
            self.first_seq,
            self.end_seq,
            self.blocks,
            self.bloom_words,
        ]
        .into_iter()
        .enumerate()
        {
            page[16 + 8 * i..24 + 8 * i].copy_from_slice(&v.to_le_bytes());
        }
        page[56..60].copy_from_slice(&self.bloom_crc.to_le_bytes());
        page[60..64].copy_from_slice(&self.fences_crc.to_le_bytes());
        let crc = crc32fast::hash(&page[..CRC_AT]);
        page[CRC_AT..].copy_from_slice(&crc.to_le_bytes());
        page
    }

    /// Decodes a header page and checks it against the file's name and length.
    fn decode(page: &[u8], path: &Path, name: (u64, u64), len: u64) -> Result<Self, StoreError> {
        let damaged = |offset, what| StoreError::Damaged {
            path: path.to_path_buf(),
            offset,
            what,
        };
        if crc32fast::hash(&page[..CRC_AT]) != le32(page, CRC_AT) {
            return Err(damaged(0, "id index run header checksum"));
        }
        let header = Self {
            count: le64(page, 16),
            first_seq: le64(page, 24),
            end_seq: le64(page, 32),
            blocks: le64(page, 40),
            bloom_words: le64(page, 48),
            bloom_crc: le32(page, 56),
            fences_crc: le32(page, 60),
        };
        // A valid checksum over values that do not fit: written by something else.
        let fits = page[0..8] == MAGIC
            && le32(page, 8) == VERSION
            && u64::from(le32(page, 12)) == ENTRIES_PER_BLOCK
            && (header.first_seq, header.end_seq) == name
            && header.blocks == header.count.div_ceil(ENTRIES_PER_BLOCK)
            && header.bloom_words > 0
            && header.bloom_words.is_multiple_of(BLOCK_WORDS as u64)
            && header.file_len() == Some(len);
        if fits {
            Ok(header)
        } else {
            Err(damaged(0, "id index run header"))
        }
    }

    fn bloom_offset(&self) -> u64 {
        HEADER_BYTES + self.blocks * BLOCK_BYTES
    }

    fn fences_offset(&self) -> u64 {
        self.bloom_offset() + self.bloom_words * 8
    }

    /// The length of the file it describes (`None`: absurd counts, checked before any
    /// allocation is sized by them).
    fn file_len(&self) -> Option<u64> {
        self.blocks
            .checked_add(1)?
            .checked_mul(BLOCK_BYTES)?
            .checked_add(self.bloom_words.checked_mul(8)?)?
            .checked_add(self.blocks.checked_mul(8)?)
    }
}

/// An open run: its file, and the bloom filter and fences that keep misses off the disk.
pub(super) struct Run {
    path: PathBuf,
    file: File,
    first_seq: u64,
    end_seq: u64,
    count: u64,
    bloom: Bloom,
    fences: Vec<u64>,
}

impl Run {
    /// Opens the run at `path`, whose name says the seq range `name`, and checks its header,
    /// bloom filter and fences. The entries are not read.
    pub(super) fn open(path: PathBuf, name: (u64, u64)) -> Result<Self, StoreError> {
        let file = File::open(&path).map_err(StoreError::io(&path))?;
        let len = file.metadata().map_err(StoreError::io(&path))?.len();
        if len < HEADER_BYTES {
            return Err(StoreError::Damaged {
                path,
                offset: len,
                what: "id index run header (the file is truncated)",
            });
        }
        let mut page = vec![0; HEADER_BYTES as usize];
        file.read_exact_at(&mut page, 0)
            .map_err(StoreError::io(&path))?;
        let header = Header::decode(&page, &path, name, len)?;
        let read_checked = |offset: u64, words: u64, crc: u32, what| {
            let mut bytes = vec![0; words as usize * 8];
            file.read_exact_at(&mut bytes, offset)
                .map_err(StoreError::io(&path))?;
            if crc32fast::hash(&bytes) != crc {
                return Err(StoreError::Damaged {
                    path: path.clone(),
                    offset,
                    what,
                });
            }
            Ok(words_from(&bytes))
        };
        let bloom = read_checked(
            header.bloom_offset(),
            header.bloom_words,
            header.bloom_crc,
            "id index bloom filter checksum",
        )?;
        let fences = read_checked(
            header.fences_offset(),
            header.blocks,
            header.fences_crc,
            "id index fences checksum",
        )?;
        Ok(Self {
            path,
            file,
            first_seq: header.first_seq,
            end_seq: header.end_seq,
            count: header.count,
            bloom: Bloom::from_words(bloom),
            fences,
        })
    }

    /// Writes the run of `[first_seq, end_seq)` from `count` entries sorted by (fp, loc), the
    /// durable way (temp file, sync, rename, directory sync), and opens it. `stop` abandons
    /// the write (the index is closing); the temp file is removed.
    pub(super) fn write(
        dir: &Path,
        (first_seq, end_seq): (u64, u64),
        count: u64,
        entries: impl Iterator<Item = Result<Entry, StoreError>>,
        stop: &AtomicBool,
    ) -> Result<Self, StoreError> {
        let name = file_name(first_seq, end_seq);
        let path = dir.join(&name);
        let tmp = dir.join(format!("{name}.tmp"));
        let header = Header {
            count,
            first_seq,
            end_seq,
            blocks: count.div_ceil(ENTRIES_PER_BLOCK),
            bloom_words: 0,
            bloom_crc: 0,
            fences_crc: 0,
        };
        let written = write_tmp(&tmp, header, entries, stop).and_then(|r| {
            fs::rename(&tmp, &path)
                .map_err(StoreError::io(&path))
                .map(|()| r)
        });
        let (bloom, fences) = match written {
            Ok(parts) => parts,
            Err(e) => {
                // Best effort: `open` removes temp files anyway.
                let _ = fs::remove_file(&tmp);
                return Err(e);
            }
        };
        sync_dir(dir)?;
        let file = File::open(&path).map_err(StoreError::io(&path))?;
        Ok(Self {
            path,
            file,
            first_seq,
            end_seq,
            count,
            bloom,
            fences,
        })
    }

    /// The file.
    pub(super) fn path(&self) -> &Path {
        &self.path
    }

    fn block_offset(block: u64) -> u64 {
        HEADER_BYTES + block * BLOCK_BYTES
    }

    fn entries_in(&self, block: u64) -> usize {
        (self.count - block * ENTRIES_PER_BLOCK).min(ENTRIES_PER_BLOCK) as usize
    }

    /// Appends the loc of every entry under `fp`, newest first. Reads nothing when the bloom
    /// filter or the fences rule `fp` out; else usually one block.
    pub(super) fn collect(&self, fp: u64, out: &mut Vec<u64>) -> Result<(), StoreError> {
        if !self.bloom.may_contain(fp) {
            return Ok(());
        }
        // Blocks before `after` begin below `fp`: its entries begin in the last of them
        // (unless a block begins with `fp` exactly) and may run on through blocks that begin
        // with it.
        let after = self.fences.partition_point(|&f| f < fp) as u64;
        let mut block = match after.checked_sub(1) {
            Some(last_below) => last_below,
            None if self.fences.first() == Some(&fp) => 0,
            None => return Ok(()),
        };
        let start = out.len();
        let mut buf = [0; BLOCK_BYTES as usize];
        loop {
            let offset = Self::block_offset(block);
            self.file
                .read_exact_at(&mut buf, offset)
                .map_err(StoreError::io(&self.path))?;
            check_block(&self.path, offset, &buf)?;
            let n = self.entries_in(block);
            let fp_at = |i: usize| le64(&buf, i * ENTRY_BYTES);
            let mut i = partition(n, |i| fp_at(i) < fp);
            while i < n && fp_at(i) == fp {
                out.push(le64(&buf, i * ENTRY_BYTES + 8));
                i += 1;
            }
            block += 1;
            if block as usize >= self.fences.len() || self.fences[block as usize] != fp {
                break;
            }
        }
        // Stored in loc (hence seq) order.
        out[start..].reverse();
        Ok(())
    }
}

impl Run {
    /// Reads and checks block `block` into `buf`.
    fn read_block(
        &self,
        block: u64,
        buf: &mut [u8; BLOCK_BYTES as usize],
    ) -> Result<(), StoreError> {
        let offset = Self::block_offset(block);
        self.file
            .read_exact_at(buf, offset)
            .map_err(StoreError::io(&self.path))?;
        check_block(&self.path, offset, buf)
    }

    /// Appends the loc of each entry under `fp` from `min_loc` on, oldest first, until `out`
    /// holds `max`. Reads nothing when the bloom filter or the fences rule `fp` out; else a
    /// binary search over the blocks `fp` spans (one read for a key of fewer than 255
    /// entries), then the blocks the answer is in.
    pub(super) fn collect_from(
        &self,
        fp: u64,
        min_loc: u64,
        max: usize,
        out: &mut Vec<u64>,
    ) -> Result<(), StoreError> {
        if out.len() >= max || !self.bloom.may_contain(fp) {
            return Ok(());
        }
        // The blocks that may hold `fp`: from the last one beginning below it (or the first
        // beginning with it) through the last beginning with it.
        let below = self.fences.partition_point(|&f| f < fp);
        let through = self.fences.partition_point(|&f| f <= fp);
        let Some(mut first) = below.checked_sub(1).or((through > 0).then_some(0)) else {
            return Ok(());
        };
        let mut buf = [0; BLOCK_BYTES as usize];
        // The last block whose first entry is at or before (fp, min_loc) holds the start.
        let (mut lo, mut hi) = (first + 1, through);
        while lo < hi {
            let mid = (lo + hi) / 2;
            self.read_block(mid as u64, &mut buf)?;
            if (le64(&buf, 0), le64(&buf, 8)) <= (fp, min_loc) {
                first = mid;
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        let mut block = first as u64;
        while (block as usize) < self.fences.len() {
            self.read_block(block, &mut buf)?;
            let n = self.entries_in(block);
            let at = |i: usize| (le64(&buf, i * ENTRY_BYTES), le64(&buf, i * ENTRY_BYTES + 8));
            let mut i = partition(n, |i| at(i) < (fp, min_loc));
            while i < n && at(i).0 == fp {
                out.push(at(i).1);
                if out.len() >= max {
                    return Ok(());
                }
                i += 1;
            }
            block += 1;
            // Ended inside this block, or the next begins past `fp`.
            if i < n || self.fences.get(block as usize) != Some(&fp) {
                break;
            }
        }
        Ok(())
    }
}

/// The first index in `0..n` for which `below` is false (`below` is true, then false).
fn partition(n: usize, below: impl Fn(usize) -> bool) -> usize {
    let (mut lo, mut hi) = (0, n);
    while lo < hi {
        let mid = (lo + hi) / 2;
        if below(mid) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    lo
}

/// The error of a write abandoned because the index is closing (never reported).
fn closing() -> StoreError {
    StoreError::Sequence("the id index is closing")
}

/// Writes everything but the rename; returns the bloom filter and fences it wrote.
fn write_tmp(
    tmp: &Path,
    mut header: Header,
    entries: impl Iterator<Item = Result<Entry, StoreError>>,
    stop: &AtomicBool,
) -> Result<(Bloom, Vec<u64>), StoreError> {
    let io = StoreError::io(tmp);
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(tmp)
        .map_err(StoreError::io(tmp))?;
    let mut out = BufWriter::with_capacity(WRITE_BUFFER, file);
    let wrote = |r: std::io::Result<()>| r.map_err(StoreError::io(tmp));
    wrote(out.write_all(&vec![0; HEADER_BYTES as usize]))?;
    let mut bloom = Bloom::with_ids(header.count);
    let mut fences = Vec::with_capacity(header.blocks as usize);
    let mut block = vec![0; BLOCK_BYTES as usize];
    let mut in_block = 0;
    let mut total = 0u64;
    let finish = |block: &mut Vec<u8>, out: &mut BufWriter<File>| {
        let crc = crc32fast::hash(&block[..CRC_AT]);
        block[CRC_AT..].copy_from_slice(&crc.to_le_bytes());
        let r = out.write_all(block);
        block.fill(0);
        r
    };
    for entry in entries {
        let (fp, loc) = entry?;
        if in_block == 0 {
            if stop.load(Ordering::Relaxed) {
                return Err(closing());
            }
            fences.push(fp);
        }
        let at = in_block * ENTRY_BYTES;
        block[at..at + 8].copy_from_slice(&fp.to_le_bytes());
        block[at + 8..at + 16].copy_from_slice(&loc.to_le_bytes());
        bloom.insert(fp);
        in_block += 1;
        total += 1;
        if in_block == ENTRIES_PER_BLOCK as usize {
            wrote(finish(&mut block, &mut out))?;
            in_block = 0;
        }
    }
    if in_block > 0 {
        wrote(finish(&mut block, &mut out))?;
    }
    if total != header.count {
        return Err(StoreError::Sequence(
            "id index: a run's entries do not match its count",
        ));
    }
    let bloom_bytes = bytes_of(bloom.words());
    let fence_bytes = bytes_of(&fences);
    wrote(out.write_all(&bloom_bytes))?;
    wrote(out.write_all(&fence_bytes))?;
    header.bloom_words = bloom.words().len() as u64;
    header.bloom_crc = crc32fast::hash(&bloom_bytes);
    header.fences_crc = crc32fast::hash(&fence_bytes);
    let file = out.into_inner().map_err(|e| io(e.into_error()))?;
    wrote(file.write_all_at(&header.encode(), 0))?;
    wrote(file.sync_all())?;
    Ok((bloom, fences))
}
