//! The record log: append-only segment files of self-checking records.
//!
//! A record at global offset `loc` is `len` (u32 LE) ‖ `crc` (u32 LE, CRC-32 of the seq and
//! the bytes) ‖ `seq` (u64 LE) ‖ `bytes`. Records follow each other in `poh_seq` order across
//! segments; a segment is a file named by the global offset of its first byte, and it ends
//! where the next one starts.
//!
//! The log itself does not say where it ends: the index database does (`log_end`), in the
//! same transaction as everything else a commit writes. A commit appends and syncs its records
//! first, then commits the index; bytes past `log_end` are a commit that did not finish. They
//! are cut on open, never served, and the next append writes over them.
//!
//! The log's head is given back segment by segment once every record in it has expired
//! (`reclaimed` in [`Log::open`]): the index database then holds each record's stub, and the
//! log starts at the first segment left.

use std::{
    collections::BTreeMap,
    fs::{File, OpenOptions},
    os::unix::fs::FileExt as _,
    path::{Path, PathBuf},
    sync::{Arc, RwLock},
};

use crate::StoreError;

/// Bytes before a record's own bytes.
pub(crate) const RECORD_HEADER: usize = 16;
/// What the log lets a record be: far above any transaction the node accepts, and a bound on
/// what a damaged length field can make a reader allocate.
const MAX_RECORD_BYTES: usize = 64 << 20;
/// How much a scan reads at a time.
const SCAN_CHUNK: usize = 256 << 10;

/// One segment file.
#[derive(Debug)]
struct Segment {
    path: PathBuf,
    file: File,
}

/// The log: its segments by their first global offset.
#[derive(Debug)]
pub(crate) struct Log {
    dir: PathBuf,
    segment_bytes: u64,
    segments: RwLock<BTreeMap<u64, Arc<Segment>>>,
}

fn segment_name(start: u64) -> String {
    format!("{start:020}.log")
}

fn open_segment(path: &Path, create: bool) -> Result<Segment, StoreError> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(create)
        .truncate(false)
        .open(path)
        .map_err(StoreError::io(path))?;
    Ok(Segment {
        path: path.to_path_buf(),
        file,
    })
}

/// Makes a new directory entry durable: a file created but not synced into its directory
/// can vanish with a crash even after its own data was synced.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(StoreError::io(dir))
}

/// One record's header and bytes as they go to disk.
pub(crate) fn encode_record(out: &mut Vec<u8>, seq: u64, bytes: &[u8]) {
    append_record(out, seq, |out| out.extend_from_slice(bytes));
}

/// Appends a record to `out` whose bytes `write` appends, then fills in its header.
pub(crate) fn append_record(out: &mut Vec<u8>, seq: u64, write: impl FnOnce(&mut Vec<u8>)) {
    let start = out.len();
    out.extend_from_slice(&[0; RECORD_HEADER]);
    write(out);
    let body = start + RECORD_HEADER;
    let mut crc = crc32fast::Hasher::new();
    crc.update(&seq.to_le_bytes());
    crc.update(&out[body..]);
    let len = u32::try_from(out.len() - body).unwrap_or(u32::MAX);
    out[start..start + 4].copy_from_slice(&len.to_le_bytes());
    out[start + 4..start + 8].copy_from_slice(&crc.finalize().to_le_bytes());
    out[start + 8..body].copy_from_slice(&seq.to_le_bytes());
}

/// A record's header: its length, checksum and seq.
fn parse_header(h: &[u8]) -> (usize, u32, u64) {
    let word = |at: usize| u32::from_le_bytes([h[at], h[at + 1], h[at + 2], h[at + 3]]);
    let len = word(0) as usize;
    let crc = word(4);
    let mut seq = [0u8; 8];
    seq.copy_from_slice(&h[8..16]);
    (len, crc, u64::from_le_bytes(seq))
}

fn checksum_ok(crc: u32, seq: u64, bytes: &[u8]) -> bool {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&seq.to_le_bytes());
    hasher.update(bytes);
    hasher.finalize() == crc
}

impl Log {
    /// Opens the log in `dir` (creating it), whose committed bytes are `reclaimed..end`: a
    /// longer tail is cut and segments after it are removed, segments before `reclaimed`
    /// (given back by a reclaim the process did not finish) are removed; a shorter log is
    /// damage.
    pub(crate) fn open(
        dir: &Path,
        reclaimed: u64,
        end: u64,
        segment_bytes: u64,
    ) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir).map_err(StoreError::io(dir))?;
        let mut starts = Vec::new();
        for item in std::fs::read_dir(dir).map_err(StoreError::io(dir))? {
            let item = item.map_err(StoreError::io(dir))?;
            let name = item.file_name();
            let start = name
                .to_str()
                .and_then(|n| n.strip_suffix(".log"))
                .and_then(|n| n.parse::<u64>().ok());
            if let Some(start) = start {
                starts.push(start);
            }
        }
        starts.sort_unstable();
        let mut segments = BTreeMap::new();
        let mut removed = false;
        for (i, &start) in starts.iter().enumerate() {
            let path = dir.join(segment_name(start));
            // Begun by a commit that did not finish, or given back.
            let next = starts.get(i + 1).copied();
            let given_back = next.is_some_and(|next| next <= reclaimed);
            if given_back || (start >= end && !(start == 0 && end == 0)) {
                std::fs::remove_file(&path).map_err(StoreError::io(&path))?;
                removed = true;
                continue;
            }
            let segment = open_segment(&path, false)?;
            let len = segment
                .file
                .metadata()
                .map_err(StoreError::io(&path))?
                .len();
            let ends_at = starts
                .get(i + 1)
                .copied()
                .filter(|&s| s < end)
                .unwrap_or(end);
            let want = ends_at - start;
            if len < want {
                return Err(StoreError::Damaged {
                    path,
                    offset: len,
                    what: "the log ends before its last commit",
                });
            }
            if len > want {
                segment.file.set_len(want).map_err(StoreError::io(&path))?;
                segment.file.sync_all().map_err(StoreError::io(&path))?;
            }
            segments.insert(start, Arc::new(segment));
        }
        if removed {
            sync_dir(dir)?;
        }
        if end > reclaimed && segments.first_key_value().map(|(s, _)| *s) != Some(reclaimed) {
            return Err(StoreError::Damaged {
                path: dir.join(segment_name(reclaimed)),
                offset: 0,
                what: "the log's first segment is missing",
            });
        }
        Ok(Self {
            dir: dir.to_path_buf(),
            segment_bytes,
            segments: RwLock::new(segments),
        })
    }

    fn segments(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<u64, Arc<Segment>>> {
        self.segments.read().unwrap_or_else(|p| p.into_inner())
    }

    /// The segment holding global offset `loc`, and its first offset.
    fn segment_at(&self, loc: u64) -> Option<(u64, Arc<Segment>)> {
        self.segments()
            .range(..=loc)
            .next_back()
            .map(|(start, s)| (*start, s.clone()))
    }

    /// Writes `bytes` (whole encoded records) at the committed end `at`, in the segment that
    /// holds `at` or, when it would grow past the segment size, in a new one starting there;
    /// synced when `durable`. Returns the global offset the bytes start at. The bytes are
    /// committed only once the index says the log ends after them.
    pub(crate) fn append(&self, at: u64, bytes: &[u8], durable: bool) -> Result<u64, StoreError> {
        let segment = match self.segment_at(at) {
            // One begun by a commit that did not finish is used again.
            Some((start, s)) if start == at => (start, s),
            Some((start, s)) if at - start + bytes.len() as u64 <= self.segment_bytes => (start, s),
            _ => {
                let path = self.dir.join(segment_name(at));
                let segment = Arc::new(open_segment(&path, true)?);
                sync_dir(&self.dir)?;
                self.segments
                    .write()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(at, segment.clone());
                (at, segment)
            }
        };
        let (start, segment) = segment;
        let file = &segment.file;
        file.write_all_at(bytes, at - start)
            .map_err(StoreError::io(&segment.path))?;
        if durable {
            file.sync_data().map_err(StoreError::io(&segment.path))?;
        }
        Ok(at)
    }

    /// The record at `loc`: its seq and bytes, checked against its checksum.
    pub(crate) fn read(&self, loc: u64) -> Result<(u64, Vec<u8>), StoreError> {
        let (start, segment) = self.segment_at(loc).ok_or(StoreError::Corrupt(
            "an index entry pointing outside the log",
        ))?;
        let offset = loc - start;
        let damaged = |what| StoreError::Damaged {
            path: segment.path.clone(),
            offset,
            what,
        };
        let mut header = [0u8; RECORD_HEADER];
        segment
            .file
            .read_exact_at(&mut header, offset)
            .map_err(|_| damaged("a record cut short"))?;
        let (len, crc, seq) = parse_header(&header);
        if len > MAX_RECORD_BYTES {
            return Err(damaged("a record length out of bounds"));
        }
        let mut bytes = vec![0u8; len];
        segment
            .file
            .read_exact_at(&mut bytes, offset + RECORD_HEADER as u64)
            .map_err(|_| damaged("a record cut short"))?;
        if !checksum_ok(crc, seq, &bytes) {
            return Err(damaged("a record checksum mismatch"));
        }
        Ok((seq, bytes))
    }

    /// Reads the records from `from` (a record's offset) up to `end` (the committed end),
    /// calling `each(loc, seq, bytes)` until it returns `false`.
    pub(crate) fn scan(
        &self,
        from: u64,
        end: u64,
        mut each: impl FnMut(u64, u64, &[u8]) -> Result<bool, StoreError>,
    ) -> Result<(), StoreError> {
        let mut loc = from;
        let mut buf = Vec::new();
        while loc < end {
            let (start, segment) = self
                .segment_at(loc)
                .ok_or(StoreError::Corrupt("a scan starting outside the log"))?;
            let segment_end = self
                .segments()
                .range(loc + 1..)
                .next()
                .map_or(end, |(s, _)| (*s).min(end));
            // Read a chunk holding at least one whole record.
            let mut want = (SCAN_CHUNK as u64).min(segment_end - loc) as usize;
            loop {
                buf.resize(want, 0);
                segment
                    .file
                    .read_exact_at(&mut buf, loc - start)
                    .map_err(|_| StoreError::Damaged {
                        path: segment.path.clone(),
                        offset: loc - start,
                        what: "a record cut short",
                    })?;
                if buf.len() < RECORD_HEADER {
                    return Err(StoreError::Damaged {
                        path: segment.path.clone(),
                        offset: loc - start,
                        what: "a record cut short",
                    });
                }
                let (len, _, _) = parse_header(&buf);
                let need = RECORD_HEADER + len;
                if need <= buf.len() {
                    break;
                }
                if len > MAX_RECORD_BYTES || (need as u64) > segment_end - loc {
                    return Err(StoreError::Damaged {
                        path: segment.path.clone(),
                        offset: loc - start,
                        what: "a record length out of bounds",
                    });
                }
                want = need;
            }
            let mut at = 0;
            while at + RECORD_HEADER <= buf.len() {
                let (len, crc, seq) = parse_header(&buf[at..]);
                let Some(bytes) = buf.get(at + RECORD_HEADER..at + RECORD_HEADER + len) else {
                    break;
                };
                if !checksum_ok(crc, seq, bytes) {
                    return Err(StoreError::Damaged {
                        path: segment.path.clone(),
                        offset: loc - start + at as u64,
                        what: "a record checksum mismatch",
                    });
                }
                if !each(loc + at as u64, seq, bytes)? {
                    return Ok(());
                }
                at += RECORD_HEADER + len;
            }
            loc += at as u64;
        }
        Ok(())
    }

    /// The first segment's offset and the next one's, when there is a next one: the segment
    /// a reclaim would give back.
    pub(crate) fn head(&self) -> Option<(u64, u64)> {
        let segments = self.segments();
        let mut starts = segments.keys();
        Some((*starts.next()?, *starts.next()?))
    }

    /// Gives back the first segment, which starts at `start` (the index database no longer
    /// points into it); a failure to remove its file leaves that to the next open.
    pub(crate) fn remove_head(&self, start: u64) -> Result<(), StoreError> {
        let segment = {
            let mut segments = self.segments.write().unwrap_or_else(|p| p.into_inner());
            match segments.first_key_value() {
                Some((&first, _)) if first == start && segments.len() > 1 => {
                    segments.remove(&start)
                }
                _ => None,
            }
        };
        if let Some(segment) = segment {
            std::fs::remove_file(&segment.path).map_err(StoreError::io(&segment.path))?;
            sync_dir(&self.dir)?;
        }
        Ok(())
    }

    /// Syncs every segment (after appends that were not).
    pub(crate) fn sync_all(&self) -> Result<(), StoreError> {
        for segment in self.segments().values() {
            segment
                .file
                .sync_data()
                .map_err(StoreError::io(&segment.path))?;
        }
        Ok(())
    }

    /// Bytes the segments take on disk.
    #[cfg(test)]
    pub(crate) fn disk_bytes(&self) -> u64 {
        self.segments()
            .values()
            .filter_map(|s| s.file.metadata().ok())
            .map(|m| m.len())
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn records(seqs: std::ops::Range<u64>) -> Vec<u8> {
        let mut out = Vec::new();
        for seq in seqs {
            encode_record(&mut out, seq, format!("record {seq}").as_bytes());
        }
        out
    }

    fn all(log: &Log, end: u64) -> Result<Vec<(u64, u64)>, StoreError> {
        all_from(log, 0, end)
    }

    #[test]
    fn records_roll_into_segments_and_read_back_by_offset_and_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let log = Log::open(dir.path(), 0, 0, 200).unwrap();
        let mut end = 0;
        for batch in 0..10 {
            let bytes = records(batch * 5..batch * 5 + 5);
            assert_eq!(log.append(end, &bytes, batch % 2 == 0).unwrap(), end);
            end += bytes.len() as u64;
        }
        assert!(log.segments().len() > 3, "{}", log.segments().len());
        let seen = all(&log, end).unwrap();
        assert_eq!(
            seen.iter().map(|s| s.1).collect::<Vec<_>>(),
            (0..50).collect::<Vec<_>>()
        );
        for (loc, seq) in &seen {
            assert_eq!(
                log.read(*loc).unwrap(),
                (*seq, format!("record {seq}").into_bytes())
            );
        }
        assert_eq!(log.disk_bytes(), end);
        drop(log);
        let log = Log::open(dir.path(), 0, end, 200).unwrap();
        assert_eq!(all(&log, end).unwrap(), seen);
    }

    /// What a crash mid-commit leaves: bytes past the committed end, in the last segment and
    /// in a segment the unfinished commit began. Both are cut on open and written over.
    #[test]
    fn an_unfinished_tail_is_cut_on_open_and_written_over() {
        let dir = tempfile::tempdir().unwrap();
        let log = Log::open(dir.path(), 0, 0, 1 << 20).unwrap();
        let first = records(0..3);
        log.append(0, &first, true).unwrap();
        let end = first.len() as u64;
        let torn = records(3..6);
        log.append(end, &torn[..torn.len() - 5], true).unwrap();
        std::fs::write(dir.path().join(segment_name(end + 7)), b"half").unwrap();
        drop(log);

        let log = Log::open(dir.path(), 0, end, 1 << 20).unwrap();
        assert_eq!(log.disk_bytes(), end);
        assert!(!dir.path().join(segment_name(end + 7)).exists());
        let again = records(3..5);
        log.append(end, &again, true).unwrap();
        let end = end + again.len() as u64;
        assert_eq!(all(&log, end).unwrap().len(), 5);

        // A log shorter than the index says is damage, not silently less data.
        drop(log);
        assert!(matches!(
            Log::open(dir.path(), 0, end + 1, 1 << 20),
            Err(StoreError::Damaged { .. })
        ));
    }

    #[test]
    fn a_flipped_byte_is_reported_with_its_place_never_returned() {
        let dir = tempfile::tempdir().unwrap();
        let log = Log::open(dir.path(), 0, 0, 1 << 20).unwrap();
        let bytes = records(0..4);
        log.append(0, &bytes, true).unwrap();
        let end = bytes.len() as u64;
        let second = all(&log, end).unwrap()[1].0;
        let path = dir.path().join(segment_name(0));
        let mut raw = std::fs::read(&path).unwrap();
        raw[second as usize + RECORD_HEADER + 2] ^= 0x20;
        std::fs::write(&path, raw).unwrap();
        drop(log);

        let log = Log::open(dir.path(), 0, end, 1 << 20).unwrap();
        for err in [log.read(second).unwrap_err(), all(&log, end).unwrap_err()] {
            match err {
                StoreError::Damaged {
                    path: p, offset, ..
                } => {
                    assert_eq!((p, offset), (path.clone(), second));
                }
                other => panic!("{other:?}"),
            }
        }
        assert!(log.read(0).is_ok());
    }

    #[test]
    fn the_head_is_given_back_by_segments_and_a_leftover_head_removed_on_open() {
        let dir = tempfile::tempdir().unwrap();
        let log = Log::open(dir.path(), 0, 0, 200).unwrap();
        let mut end = 0;
        for batch in 0..10 {
            let bytes = records(batch * 5..batch * 5 + 5);
            log.append(end, &bytes, true).unwrap();
            end += bytes.len() as u64;
        }
        let (first, second) = log.head().unwrap();
        assert_eq!(first, 0);
        log.remove_head(first).unwrap();
        assert!(!dir.path().join(segment_name(0)).exists());
        // Only the head, and never the last segment.
        log.remove_head(first).unwrap();
        assert_eq!(log.head().unwrap().0, second);
        let (_, third) = log.head().unwrap();
        let left: Vec<_> = all_from(&log, second, end).unwrap();
        assert_eq!(left.first().unwrap().0, second);
        drop(log);

        // A reclaim committed but not carried out: the open removes the segment.
        let log = Log::open(dir.path(), third, end, 200).unwrap();
        assert!(!dir.path().join(segment_name(second)).exists());
        assert_eq!(log.head().unwrap().0, third);
        assert_eq!(all_from(&log, third, end).unwrap().last().unwrap().1, 49);
        // A reclaim cannot leave the log without its head segment.
        drop(log);
        std::fs::remove_file(dir.path().join(segment_name(third))).unwrap();
        assert!(matches!(
            Log::open(dir.path(), third, end, 200),
            Err(StoreError::Damaged { .. })
        ));
    }

    fn all_from(log: &Log, from: u64, end: u64) -> Result<Vec<(u64, u64)>, StoreError> {
        let mut seen = Vec::new();
        log.scan(from, end, |loc, seq, bytes| {
            assert_eq!(bytes, format!("record {seq}").as_bytes());
            seen.push((loc, seq));
            Ok(true)
        })?;
        Ok(seen)
    }
}
