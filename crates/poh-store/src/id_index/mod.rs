//! The persisted id index: a transaction id's keyed fingerprint → the log offset (`loc`) of
//! the record it was stored in, for dedupe. The seq is not kept per id: the record at `loc`
//! holds it, and locs grow with seqs (records are appended in seq order), so ordering by loc
//! is ordering by seq. Each memtable and run keeps only the seq range it covers.
//!
//! Why log-structured: ids arrive in random order, and a B-tree insert per id (redb) costs a
//! random page update each, ~17 µs of CPU. Here an insert is an append to an in-memory table
//! (the memtable); a full memtable is frozen (still searched) and a background thread sorts it
//! and writes it as an immutable run file; when there are more than `max_runs` runs, the same
//! thread merges them into one. The writer never waits for the disk.
//!
//! Why fingerprints: entries are fixed-size (16 bytes) and independent of id length. The
//! fingerprint is a SipHash-1-3 under a random key kept in `dir/key`, so nobody outside can
//! aim ids at one fingerprint; the rare honest collision returns one more candidate, which
//! the caller rules out by reading the record.
//!
//! Why nothing but runs is durable: the index is derived from the log. Memtables are lost on
//! a crash; [`IdIndex::open`] says the first seq its runs do not cover and the caller inserts
//! again what its log holds from there. Runs are written whole or not at all (see [`run`]).
//!
//! Concurrency: one lock guards the in-memory state (memtables and the list of runs) and is
//! held only for in-memory work; disk reads of lookups happen on a snapshot of the run list
//! after it is released, and the background thread writes and merges without it, taking it
//! only to swap the result in.

mod bloom;
mod memtable;
mod run;
#[cfg(test)]
mod tests;

use std::fs::{self, File, OpenOptions};
use std::hash::Hasher;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError, RwLock};
use std::thread::JoinHandle;
use std::time::Duration;

use siphasher::sip::SipHasher13;

use crate::StoreError;
use memtable::Memtable;
use run::Run;

/// The key file: 16 random bytes, then their CRC-32.
const KEY_FILE: &str = "key";
/// The first wait before the background thread retries a failed write, and the longest.
const RETRY_FIRST: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(5);

/// Options.
pub(crate) struct IdIndexOptions {
    /// Ids a memtable holds before it is frozen and written as a run.
    pub memtable_ids: usize,
    /// Runs kept before they are merged into one.
    pub max_runs: usize,
}

impl Default for IdIndexOptions {
    fn default() -> Self {
        Self {
            memtable_ids: 262_144,
            max_runs: 4,
        }
    }
}

/// The in-memory state, under one lock.
struct State {
    /// Takes inserts.
    active: Memtable,
    /// Full, oldest first, waiting for the background thread; still searched.
    frozen: Vec<Arc<Memtable>>,
    /// In seq order. Behind an `Arc` so a lookup takes a snapshot and reads the disk after
    /// releasing the lock.
    runs: Arc<Vec<Arc<Run>>>,
}

/// What the writer, `flush` and the background thread tell each other.
struct Bg {
    /// Frozen memtables not yet written.
    pending: usize,
    /// The background thread is writing or merging.
    busy: bool,
    /// The last failure of the background thread, for the next `insert` or `flush`.
    error: Option<StoreError>,
    stop: bool,
}

struct Shared {
    dir: PathBuf,
    memtable_ids: usize,
    max_runs: usize,
    state: RwLock<State>,
    bg: Mutex<Bg>,
    /// Wakes the background thread.
    wake: Condvar,
    /// Wakes `flush`.
    idle: Condvar,
    /// Set with `bg.stop`; read without the lock by long writes, to abandon them.
    stop: AtomicBool,
    /// Whether `bg.error` is set: lets `insert` skip the mutex in the normal case.
    failed: AtomicBool,
    /// Tests: how many background steps fail as if the disk were full.
    #[cfg(test)]
    fail_steps: std::sync::atomic::AtomicU32,
}

/// Locks, ignoring poisoning: every critical section leaves the state consistent.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The persisted id index. Send + Sync: one writer thread inserts, any number of threads look
/// up.
pub(crate) struct IdIndex {
    shared: Arc<Shared>,
    key: (u64, u64),
    thread: Option<JoinHandle<()>>,
}

impl IdIndex {
    /// Opens (creating `dir` and a random fingerprint key, kept durably in `dir/key`) the
    /// index. Returns it and `covered`: the first seq NOT covered by its durable runs. The
    /// caller then re-inserts every id stored at seq >= covered (it scans its log), because
    /// the in-memory part is lost on a crash.
    ///
    /// Recovery: temp files of interrupted writes are removed; runs of an older file format
    /// are removed; a run whose range lies inside another's (the inputs of a merge that was
    /// not cleaned up) is removed; runs must cover `[0, covered)` one after the other, and any
    /// run past a gap is removed (its ids come back with the caller's re-inserts).
    pub(crate) fn open(dir: &Path, options: IdIndexOptions) -> Result<(IdIndex, u64), StoreError> {
        fs::create_dir_all(dir).map_err(StoreError::io(dir))?;
        let (key, new_key) = load_or_create_key(dir)?;
        let mut found = Vec::new();
        let listing = fs::read_dir(dir).map_err(StoreError::io(dir))?;
        let mut removed = false;
        for entry in listing {
            let path = entry.map_err(StoreError::io(dir))?.path();
            let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            if name.ends_with(".tmp") && (name.starts_with("ids-") || name.starts_with(KEY_FILE)) {
                fs::remove_file(&path).map_err(StoreError::io(&path))?;
                removed = true;
            } else if let Some(range) = run::parse_name(name) {
                // An older format: of no use, like a run past a gap; the caller re-inserts its
                // ids from its log.
                let old = run::older_format(&path)?;
                found.push((range, path, old));
            }
        }
        // Longest first among runs starting at the same seq, so nested ones come after the
        // run that contains them.
        found.sort_by_key(|&((first, end), _, _)| (first, std::cmp::Reverse(end)));
        let mut covered = 0;
        let mut keep = Vec::new();
        let mut stale = Vec::new();
        for ((first, end), path, old) in found {
            // Fingerprints under a key that is gone are of no use.
            if !new_key && !old && first == covered && end > first {
                keep.push(((first, end), path));
                covered = end;
            } else {
                stale.push(path);
            }
        }
        // Check what is kept before removing anything: a damaged merged run must not cost its
        // inputs.
        let runs = keep
            .into_iter()
            .map(|(range, path)| Run::open(path, range).map(Arc::new))
            .collect::<Result<Vec<_>, _>>()?;
        for path in &stale {
            fs::remove_file(path).map_err(StoreError::io(path))?;
        }
        if removed || !stale.is_empty() {
            run::sync_dir(dir)?;
        }
        let memtable_ids = options.memtable_ids.clamp(1, 1 << 30);
        let shared = Arc::new(Shared {
            dir: dir.to_path_buf(),
            memtable_ids,
            max_runs: options.max_runs.max(1),
            state: RwLock::new(State {
                active: Memtable::new(covered, None, memtable_ids),
                frozen: Vec::new(),
                runs: Arc::new(runs),
            }),
            bg: Mutex::new(Bg {
                pending: 0,
                busy: false,
                error: None,
                stop: false,
            }),
            wake: Condvar::new(),
            idle: Condvar::new(),
            stop: AtomicBool::new(false),
            failed: AtomicBool::new(false),
            #[cfg(test)]
            fail_steps: std::sync::atomic::AtomicU32::new(0),
        });
        let thread = std::thread::Builder::new()
            .name("poh-id-index".into())
            .spawn({
                let shared = shared.clone();
                move || shared.background()
            })
            .map_err(StoreError::io(dir))?;
        let index = IdIndex {
            shared,
            key,
            thread: Some(thread),
        };
        Ok((index, covered))
    }

    /// The keyed 64-bit fingerprint of an id.
    pub(crate) fn fingerprint(&self, id: &str) -> u64 {
        let mut hasher = SipHasher13::new_with_keys(self.key.0, self.key.1);
        hasher.write(id.as_bytes());
        hasher.finish()
    }

    /// Adds the keys of records stored by one commit: (fingerprint, seq, loc), seqs strictly
    /// increasing and above every seq inserted before, and locs strictly increasing too, above
    /// every loc inserted since the index was opened (else `StoreError::Sequence`), except
    /// that the keys of one record (several parents of a transaction) share its seq and loc. Only locs are kept
    /// per id; seqs set the ranges of the runs. Cheap: an in-memory
    /// insert. When the memtable reaches `memtable_ids`, it is frozen (still searched) and
    /// handed to a background thread that writes it as a run file; the writer never waits for
    /// disk here.
    ///
    /// An error (a refused sequence, or the background thread's last failure, reported once)
    /// means nothing of the batch was added.
    pub(crate) fn insert(&self, batch: &[(u64, u64, u64)]) -> Result<(), StoreError> {
        if self.shared.failed.load(Ordering::Relaxed)
            && let Some(error) = self.shared.take_error(&mut lock(&self.shared.bg))
        {
            return Err(error);
        }
        if batch.is_empty() {
            return Ok(());
        }
        let mut state = self.shared.write_state();
        let mut least = state.active.end_seq();
        let mut last_loc = state.active.last_loc();
        // The record of the batch's last entry: another key of it shares its seq and loc.
        let mut last = None;
        for &(_, seq, loc) in batch {
            if last != Some((seq, loc)) {
                if seq < least {
                    return Err(StoreError::Sequence(
                        "id index: seqs must increase, above every seq inserted before",
                    ));
                }
                // Runs keep entries in loc order, and "newest first" relies on it.
                if last_loc.is_some_and(|last| loc <= last) {
                    return Err(StoreError::Sequence(
                        "id index: locs must increase with seqs",
                    ));
                }
            }
            least = seq.checked_add(1).ok_or(StoreError::Sequence(
                "id index: seq u64::MAX cannot be stored",
            ))?;
            last_loc = Some(loc);
            last = Some((seq, loc));
        }
        for &(fp, seq, loc) in batch {
            state.active.push(fp, seq, loc);
        }
        if state.active.len() < self.shared.memtable_ids {
            return Ok(());
        }
        self.freeze(state);
        Ok(())
    }

    /// Notes that every record below `end_seq` was offered, keys or not: what the next open
    /// says is covered moves past them even when none had a key (a store whose transactions
    /// name no parents has an empty children index, which must not send each open back to
    /// the start of the log). Never moves back.
    pub(crate) fn cover(&self, end_seq: u64) {
        let mut state = self.shared.write_state();
        state.active.cover(end_seq);
    }

    /// Hands the active memtable to the background thread and starts a new one.
    fn freeze(&self, mut state: std::sync::RwLockWriteGuard<'_, State>) {
        let next = Memtable::new(
            state.active.end_seq(),
            state.active.last_loc(),
            self.shared.memtable_ids,
        );
        let full = std::mem::replace(&mut state.active, next);
        state.frozen.push(Arc::new(full));
        drop(state);
        lock(&self.shared.bg).pending += 1;
        self.shared.wake.notify_one();
    }

    /// Writes everything held in memory as runs, the active memtable too, and waits for it:
    /// after a clean shutdown, the next open has nothing to learn again.
    pub(crate) fn persist(&self) -> Result<(), StoreError> {
        let state = self.shared.write_state();
        if state.active.end_seq() > state.active.first_seq() {
            self.freeze(state);
        } else {
            drop(state);
        }
        self.flush()
    }

    /// Appends to `out` the loc of every id stored under fingerprint `fp`, newest first
    /// (fingerprints can collide; the caller checks the record, which also holds its seq). A miss is cheap: memtables
    /// are hash tables, each run has an in-memory bloom filter checked before any disk read; a
    /// hit reads one block of the run. On an error, `out` holds what it held before.
    pub(crate) fn candidates(&self, fp: u64, out: &mut Vec<u64>) -> Result<(), StoreError> {
        let before = out.len();
        let runs = {
            let state = self.shared.read_state();
            state.active.collect(fp, out);
            for table in state.frozen.iter().rev() {
                table.collect(fp, out);
            }
            state.runs.clone()
        };
        for run in runs.iter().rev() {
            if let Err(error) = run.collect(fp, out) {
                // A part of the answer would pass for all of it.
                out.truncate(before);
                return Err(error);
            }
        }
        Ok(())
    }

    /// Appends to `out` the loc of each entry under fingerprint `fp` from `min_loc` on, oldest
    /// first, until it holds `max` (a key with many entries: a holder's transactions, a
    /// parent's children). What it reads grows with what it returns, not with the index.
    /// Fingerprints can collide: the caller checks each record. On an error, `out` holds
    /// what it held before.
    pub(crate) fn postings(
        &self,
        fp: u64,
        min_loc: u64,
        max: usize,
        out: &mut Vec<u64>,
    ) -> Result<(), StoreError> {
        let before = out.len();
        // Memtables and runs from one moment: a memtable written meanwhile is in one or the
        // other of them, never both or neither.
        let mut newer = Vec::new();
        let runs = {
            let state = self.shared.read_state();
            for table in &state.frozen {
                table.collect_from(fp, min_loc, &mut newer);
            }
            state.active.collect_from(fp, min_loc, &mut newer);
            state.runs.clone()
        };
        for run in runs.iter() {
            if let Err(error) = run.collect_from(fp, min_loc, max, out) {
                out.truncate(before);
                return Err(error);
            }
        }
        let room = max.saturating_sub(out.len());
        out.extend(newer.into_iter().take(room));
        Ok(())
    }

    /// Waits until every frozen memtable is written as a run, and any merge that follows is
    /// done (for tests, shutdown, and benches). Returns the background thread's failure if it
    /// had one (it retries at once, then with a growing delay).
    pub(crate) fn flush(&self) -> Result<(), StoreError> {
        let mut bg = lock(&self.shared.bg);
        // A thread waiting to retry tries now.
        self.shared.wake.notify_one();
        loop {
            if let Some(error) = self.shared.take_error(&mut bg) {
                return Err(error);
            }
            if bg.pending == 0 && !bg.busy {
                return Ok(());
            }
            bg = self
                .shared
                .idle
                .wait(bg)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }
}

impl Drop for IdIndex {
    /// Stops the background thread, abandoning a write in progress: what it held is
    /// re-inserted by the caller after the next `open`.
    fn drop(&mut self) {
        lock(&self.shared.bg).stop = true;
        self.shared.stop.store(true, Ordering::Relaxed);
        self.shared.wake.notify_all();
        if let Some(thread) = self.thread.take() {
            // A panic of the background thread has nothing left to report to.
            let _ = thread.join();
        }
    }
}

impl Shared {
    fn read_state(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write_state(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(PoisonError::into_inner)
    }

    fn take_error(&self, bg: &mut Bg) -> Option<StoreError> {
        self.failed.store(false, Ordering::Relaxed);
        bg.error.take()
    }

    /// The background thread: writes frozen memtables and merges runs until stopped.
    fn background(&self) {
        let mut retry: Option<Duration> = None;
        loop {
            let mut bg = lock(&self.bg);
            match retry {
                // Woken early by `flush` or a new frozen table: retry early.
                Some(delay) if !bg.stop => {
                    bg = self
                        .wake
                        .wait_timeout(bg, delay)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0;
                }
                _ => {
                    while !bg.stop && bg.pending == 0 {
                        bg = self.wake.wait(bg).unwrap_or_else(PoisonError::into_inner);
                    }
                }
            }
            if bg.stop {
                return;
            }
            bg.busy = true;
            drop(bg);
            let result = self.step();
            let mut bg = lock(&self.bg);
            bg.busy = false;
            match result {
                Ok(()) => retry = None,
                Err(error) => {
                    retry = Some(retry.map_or(RETRY_FIRST, |d| (d * 2).min(RETRY_MAX)));
                    if !bg.stop {
                        bg.error = Some(error);
                        self.failed.store(true, Ordering::Relaxed);
                    }
                }
            }
            drop(bg);
            self.idle.notify_all();
        }
    }

    /// Writes every frozen memtable as a run, oldest first, then merges if there are too many
    /// runs. A failure leaves everything searchable as it was.
    fn step(&self) -> Result<(), StoreError> {
        #[cfg(test)]
        if self
            .fail_steps
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
            .is_ok()
        {
            return Err(StoreError::Io {
                path: self.dir.clone(),
                source: std::io::ErrorKind::StorageFull.into(),
            });
        }
        loop {
            let Some(table) = self.read_state().frozen.first().cloned() else {
                break;
            };
            let entries = table.sorted();
            let run = Run::write(
                &self.dir,
                (table.first_seq(), table.end_seq()),
                entries.len() as u64,
                entries.into_iter().map(Ok),
                &self.stop,
            )?;
            {
                let mut state = self.write_state();
                // Only this thread removes frozen tables: the first is still `table`.
                state.frozen.remove(0);
                let mut runs = state.runs.to_vec();
                runs.push(Arc::new(run));
                state.runs = Arc::new(runs);
            }
            let mut bg = lock(&self.bg);
            bg.pending = bg.pending.saturating_sub(1);
        }
        let runs = self.read_state().runs.clone();
        if runs.len() <= self.max_runs {
            return Ok(());
        }
        let inputs: Vec<&Run> = runs.iter().map(|r| &**r).collect();
        let merged = Arc::new(run::merge(&self.dir, &inputs, &self.stop)?);
        {
            let mut state = self.write_state();
            // Only this thread changes the runs: the first `runs.len()` are the inputs.
            let newer = state.runs[runs.len()..].iter().cloned();
            state.runs = Arc::new(std::iter::once(merged).chain(newer).collect());
        }
        // Lookups that took their snapshot before the swap still read the inputs: unlinked
        // files stay readable through their open handles.
        for input in runs.iter() {
            fs::remove_file(input.path()).map_err(StoreError::io(input.path()))?;
        }
        run::sync_dir(&self.dir)
    }
}

/// Reads the fingerprint key, or creates one (returning `true`) when there is none.
fn load_or_create_key(dir: &Path) -> Result<((u64, u64), bool), StoreError> {
    let path = dir.join(KEY_FILE);
    let decode = |bytes: &[u8]| {
        let mut half = [0; 8];
        half.copy_from_slice(&bytes[..8]);
        let k0 = u64::from_le_bytes(half);
        half.copy_from_slice(&bytes[8..16]);
        (k0, u64::from_le_bytes(half))
    };
    match fs::read(&path) {
        Ok(bytes) => {
            let whole =
                bytes.len() == 20 && crc32fast::hash(&bytes[..16]).to_le_bytes() == bytes[16..20];
            if !whole {
                return Err(StoreError::Damaged {
                    path,
                    offset: 0,
                    what: "id index key",
                });
            }
            Ok((decode(&bytes), false))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let random = Path::new("/dev/urandom");
            let mut bytes = vec![0; 16];
            File::open(random)
                .and_then(|mut f| f.read_exact(&mut bytes))
                .map_err(StoreError::io(random))?;
            bytes.extend_from_slice(&crc32fast::hash(&bytes).to_le_bytes());
            let tmp = dir.join(format!("{KEY_FILE}.tmp"));
            OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .open(&tmp)
                .and_then(|mut f| {
                    f.write_all(&bytes)?;
                    f.sync_all()
                })
                .map_err(StoreError::io(&tmp))?;
            fs::rename(&tmp, &path).map_err(StoreError::io(&path))?;
            run::sync_dir(dir)?;
            Ok((decode(&bytes), true))
        }
        Err(e) => Err(StoreError::io(&path)(e)),
    }
}
