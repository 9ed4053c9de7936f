//! Progress lines on standard output: at most one per interval, after a commit, and a last
//! one when the indexer stops. `--json` makes them `{"next_seq","rows","rows_per_s",
//! "headers"}`, for scripts and monitoring.

use std::{
    io::Write as _,
    sync::{
        Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

/// What the indexer has done, shared by its sessions and their writers.
pub(super) struct Progress {
    json: bool,
    every: Duration,
    /// Rows committed by this process (a row written again after a restart counts again).
    rows: AtomicU64,
    /// `poh_index_cursor.next_seq` after the last commit.
    next_seq: AtomicU64,
    /// Headers in `poh_headers` of the chain.
    headers: AtomicU64,
    /// When the last line was printed, and the rows then.
    last: Mutex<(Instant, u64)>,
}

impl Progress {
    pub(super) fn new(json: bool, every: Duration) -> Self {
        Self {
            json,
            every,
            rows: AtomicU64::new(0),
            next_seq: AtomicU64::new(0),
            headers: AtomicU64::new(0),
            last: Mutex::new((Instant::now(), 0)),
        }
    }

    /// Commits so far (rows and headers), to tell whether a session got anywhere.
    pub(super) fn committed(&self) -> u64 {
        self.rows.load(Ordering::Relaxed) + self.headers.load(Ordering::Relaxed)
    }

    /// What a new session read back from the database.
    pub(super) fn resumed(&self, next_seq: u64, headers: u64) {
        self.next_seq.fetch_max(next_seq, Ordering::Relaxed);
        self.headers.fetch_max(headers, Ordering::Relaxed);
    }

    /// A batch of `rows` committed, the cursor now `next_seq`.
    pub(super) fn rows(&self, rows: u64, next_seq: u64) {
        self.rows.fetch_add(rows, Ordering::Relaxed);
        self.next_seq.fetch_max(next_seq, Ordering::Relaxed);
        self.tick();
    }

    /// Headers committed, `headers` in all now.
    pub(super) fn headers(&self, headers: u64) {
        self.headers.fetch_max(headers, Ordering::Relaxed);
        self.tick();
    }

    fn tick(&self) {
        let due = self
            .last
            .lock()
            .is_ok_and(|last| last.0.elapsed() >= self.every);
        if due {
            self.print();
        }
    }

    /// Prints a line now.
    pub(super) fn print(&self) {
        let Ok(mut last) = self.last.lock() else {
            return;
        };
        let rows = self.rows.load(Ordering::Relaxed);
        let seconds = last.0.elapsed().as_secs_f64();
        let rows_per_s = if seconds > 0.0 {
            ((rows - last.1) as f64 / seconds).round()
        } else {
            0.0
        };
        *last = (Instant::now(), rows);
        let next_seq = self.next_seq.load(Ordering::Relaxed);
        let headers = self.headers.load(Ordering::Relaxed);
        let line = if self.json {
            serde_json::json!({
                "next_seq": next_seq, "rows": rows, "rows_per_s": rows_per_s, "headers": headers,
            })
            .to_string()
        } else {
            format!(
                "indexed up to seq {next_seq}: {rows} rows ({rows_per_s:.0} rows/s), {headers} headers"
            )
        };
        // A reader that went away does not stop the indexing.
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{line}").and_then(|()| out.flush());
    }
}
