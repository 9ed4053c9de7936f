//! `poh bench gc`: what garbage collection costs the commits that run beside it. It fills a
//! store with `--store-mb` of transactions, then keeps a committer busy with small durable
//! commits (as a node's pipeline does) while it expires the older half in passes of
//! `--sweep-batch` records as the node's TTL sweep does (minor GC), and then while it compacts the file
//! (major GC). It reports the store's bytes after each: the log gives back whole segments
//! whose records all expired. The figure is the longest wait of one commit in each phase, against the
//! longest with nothing beside it: the stall every acknowledgement in flight then sees.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    thread,
    time::{Duration, Instant},
};

use anyhow::Context as _;
use poh_node::retention::ttl::expire_paced;
use poh_store::{ChainMeta, LogStore, Store};

use super::store;
use serde::Serialize;

#[derive(clap::Args)]
pub struct GcArgs {
    /// Bytes of transactions to fill the store with, in MB.
    #[arg(long, default_value_t = 1024)]
    store_mb: u64,
    /// Payload bytes per transaction.
    #[arg(long, default_value_t = 1024)]
    payload: usize,
    /// Records removed per expiry transaction (`ttl.sweep_batch`).
    #[arg(long, default_value_t = 10_000)]
    sweep_batch: usize,
    /// Where to make the store (a temporary directory under it; default: the system's).
    #[arg(long)]
    dir: Option<std::path::PathBuf>,
    /// Print one JSON object (keys are stable: scripts read them).
    #[arg(long)]
    json: bool,
}

/// The keys are a stable interface. Times in milliseconds.
#[derive(Serialize)]
struct GcReport {
    store_bytes: u64,
    records: u64,
    expired: u64,
    idle_commit_max_ms: f64,
    sweep_ms: f64,
    sweep_commit_max_ms: f64,
    store_bytes_after_sweep: u64,
    compact_ms: f64,
    compact_commit_max_ms: f64,
    store_bytes_after: u64,
}

const FILL_BATCH: u64 = 10_000;

pub fn run(args: &GcArgs) -> anyhow::Result<()> {
    let dir = match &args.dir {
        Some(d) => tempfile::tempdir_in(d),
        None => tempfile::tempdir(),
    }
    .context("cannot make a directory for the store")?;
    let path = dir.path().join("gc.store");
    let store: Arc<dyn Store> = Arc::new(LogStore::open(&path)?);
    let say = |what: &str| {
        if !args.json {
            eprintln!("{what}");
        }
    };
    let mut chain = store::chain("bench/gc");
    let records = (args.store_mb << 20) / (args.payload as u64 + 160).max(1);
    say(&format!("filling the store with {records} transactions…"));
    let mut seq = 0;
    while seq < records {
        let n = FILL_BATCH.min(records - seq);
        commit(store.as_ref(), &mut chain, seq, n, args.payload, 0.0, false)?;
        seq += n;
    }
    commit(store.as_ref(), &mut chain, seq, 0, 0, 0.0, true)?;
    let store_bytes = LogStore::disk_bytes(&path)?;

    let committer = Committer::start(store.clone(), chain, seq, args.payload);
    let idle = committer.phase(|| {
        thread::sleep(Duration::from_secs(2));
        Ok(())
    })?;
    say("expiring the older half…");
    let half = records / 2;
    let mut expired = 0;
    let sweep = committer.phase(|| {
        expired = expire_paced(store.as_ref(), 1.0, half, args.sweep_batch)?.removed;
        Ok(())
    })?;
    let store_bytes_after_sweep = LogStore::disk_bytes(&path)?;
    say("compacting…");
    let compact = committer.phase(|| {
        // A reader or the committer mid-transaction makes redb refuse; the node retried on
        // its next sweep, so does this.
        while !store.compact()? {
            thread::yield_now();
        }
        Ok(())
    })?;
    committer.stop();
    let report = GcReport {
        store_bytes,
        records,
        expired,
        idle_commit_max_ms: idle.commit_max_ms,
        sweep_ms: sweep.took_ms,
        sweep_commit_max_ms: sweep.commit_max_ms,
        store_bytes_after_sweep,
        compact_ms: compact.took_ms,
        compact_commit_max_ms: compact.commit_max_ms,
        store_bytes_after: LogStore::disk_bytes(&path)?,
    };
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        println!(
            "store {:.0} MB, {} records; longest commit: idle {:.1} ms; expiring {} records took \
             {:.0} ms, longest commit {:.1} ms, store {:.0} MB after it; compaction took {:.0} ms, \
             longest commit {:.1} ms; store {:.0} MB after",
            report.store_bytes as f64 / 1e6,
            report.records,
            report.idle_commit_max_ms,
            report.expired,
            report.sweep_ms,
            report.sweep_commit_max_ms,
            report.store_bytes_after_sweep as f64 / 1e6,
            report.compact_ms,
            report.compact_commit_max_ms,
            report.store_bytes_after as f64 / 1e6,
        );
    }
    Ok(())
}

/// Stores transactions `first..first + n`, each recorded in its own entry, and the chain.
fn commit(
    store: &dyn Store,
    chain: &mut ChainMeta,
    first: u64,
    n: u64,
    payload: usize,
    received_at: f64,
    durable: bool,
) -> anyhow::Result<()> {
    let made = store::batch(chain, first, n, payload, received_at);
    store::store_batch(store, chain, &made, durable)
}

/// One transaction per durable commit, back to back, on its own thread: each commit's wait.
struct Committer {
    stop: Arc<AtomicBool>,
    /// The longest commit since the last look, in nanoseconds.
    longest: Arc<std::sync::atomic::AtomicU64>,
    thread: thread::JoinHandle<anyhow::Result<()>>,
}

struct Phase {
    took_ms: f64,
    commit_max_ms: f64,
}

impl Committer {
    fn start(store: Arc<dyn Store>, mut chain: ChainMeta, mut seq: u64, payload: usize) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let longest = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let (stopping, longest_seen) = (stop.clone(), longest.clone());
        let thread = thread::spawn(move || {
            while !stopping.load(Ordering::Relaxed) {
                let started = Instant::now();
                // Young: never expired by the sweep beside it.
                commit(store.as_ref(), &mut chain, seq, 1, payload, 1e12, true)?;
                let took = started.elapsed().as_nanos() as u64;
                longest_seen.fetch_max(took, Ordering::Relaxed);
                seq += 1;
            }
            Ok(())
        });
        Self {
            stop,
            longest,
            thread,
        }
    }

    /// Runs `work` beside the commits; how long it took and the longest commit meanwhile.
    fn phase(&self, work: impl FnOnce() -> anyhow::Result<()>) -> anyhow::Result<Phase> {
        self.longest.store(0, Ordering::Relaxed);
        let started = Instant::now();
        work()?;
        let took_ms = started.elapsed().as_secs_f64() * 1e3;
        // The commit waiting behind the work ends after it: wait for that one too.
        thread::sleep(Duration::from_millis(50));
        Ok(Phase {
            took_ms,
            commit_max_ms: self.longest.load(Ordering::Relaxed) as f64 / 1e6,
        })
    }

    fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Ok(Err(e)) = self.thread.join() {
            eprintln!("the committer failed: {e}");
        }
    }
}
