//! `poh bench store`: the store alone, no network. `--count` transactions with random-looking
//! 40-character ids, `--payload`-byte payloads, one of 10,000 holders and the transaction
//! before as their parent go in durable group commits of `--batch`, as
//! the node's writer makes them (each transaction recorded in an entry of its own). It reports
//! the writer thread's CPU per transaction, bytes on disk per transaction against the encoded
//! size, commit latency, get-by-id latency, and how long the store takes to open after the
//! process writing it was killed with SIGKILL mid-commit.

use std::{
    io::{BufRead as _, BufReader},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::{Arc, mpsc},
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use poh_core::{Entry, PohState, Tx, sha256};
use poh_store::{ChainMeta, Commit, LogStore, NewTx, Store, TxRecord, TxStatus};
use serde::Serialize;

#[derive(clap::Args)]
pub struct StoreArgs {
    /// Transactions to store.
    #[arg(long, default_value_t = 1_000_000)]
    count: u64,
    /// Payload bytes per transaction.
    #[arg(long, default_value_t = 200)]
    payload: usize,
    /// Transactions per durable commit.
    #[arg(long, default_value_t = 256)]
    batch: u64,
    /// Where to make the store (a temporary directory under it; default: the system's).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Print one JSON object (keys are stable: scripts read them).
    #[arg(long)]
    json: bool,
    /// Internal: open the store at this path and commit until killed (the crash the bench
    /// measures reopening from).
    #[arg(long, hide = true)]
    crash_child: Option<PathBuf>,
}

/// The keys are a stable interface. Latencies in microseconds (commits in milliseconds).
#[derive(Serialize)]
struct StoreReport {
    engine: &'static str,
    count: u64,
    payload: usize,
    batch: u64,
    tx_per_s: f64,
    writer_cpu_us_per_tx: f64,
    disk_bytes_per_tx: f64,
    encoded_bytes_per_tx: f64,
    disk_over_encoded: f64,
    commit_p50_ms: f64,
    commit_p99_ms: f64,
    get_p50_us: f64,
    get_p99_us: f64,
    /// All of the [`RARE`] holder's transactions (one in 100,000), and how many.
    list_rare_ms: f64,
    rare_count: usize,
    /// A page of 100 of a holder's transactions.
    list_page_p50_ms: f64,
    list_page_p99_ms: f64,
    /// A transaction's children.
    children_p50_us: f64,
    children_p99_us: f64,
    reopen_after_kill_ms: f64,
}

const GETS: usize = 10_000;

pub fn run(args: &StoreArgs) -> anyhow::Result<()> {
    if let Some(path) = &args.crash_child {
        return crash_child(path, args.payload, args.batch);
    }
    if args.count == 0 || args.batch == 0 {
        bail!("--count and --batch must be at least 1");
    }
    let dir = match &args.dir {
        Some(d) => tempfile::tempdir_in(d),
        None => tempfile::tempdir(),
    }
    .context("cannot make a directory for the store")?;
    let path = dir.path().join("bench.store");
    let say = |what: &str| {
        if !args.json {
            eprintln!("{what}");
        }
    };
    say(&format!(
        "storing {} transactions in commits of {}…",
        args.count, args.batch
    ));
    let store: Arc<dyn Store> = Arc::new(LogStore::open(&path)?);
    let filled = fill(store.clone(), args)?;
    let gets = get_by_id(store.as_ref(), args.count)?;
    let queried = queries(store.as_ref(), args.count)?;
    drop(store);
    say("killing a writer mid-commit and opening the store again…");
    let reopen = reopen_after_kill(&path, args)?;

    let disk = LogStore::disk_bytes(dir.path())? as f64 / args.count as f64;
    let encoded = encoded_bytes(args.payload) as f64;
    let report = StoreReport {
        engine: "log",
        count: args.count,
        payload: args.payload,
        batch: args.batch,
        tx_per_s: (args.count as f64 / filled.seconds).round(),
        writer_cpu_us_per_tx: super::cpu::us_per_tx(0.0, filled.writer_cpu_s, args.count as f64),
        disk_bytes_per_tx: disk.round(),
        encoded_bytes_per_tx: encoded,
        disk_over_encoded: (disk / encoded * 100.0).round() / 100.0,
        commit_p50_ms: quantile(&filled.commits_us, 0.50) / 1e3,
        commit_p99_ms: quantile(&filled.commits_us, 0.99) / 1e3,
        get_p50_us: quantile(&gets, 0.50),
        get_p99_us: quantile(&gets, 0.99),
        list_rare_ms: quantile(&queried.rare_us, 0.5) / 1e3,
        rare_count: queried.rare_count,
        list_page_p50_ms: quantile(&queried.page_us, 0.5) / 1e3,
        list_page_p99_ms: quantile(&queried.page_us, 0.99) / 1e3,
        children_p50_us: quantile(&queried.children_us, 0.5),
        children_p99_us: quantile(&queried.children_us, 0.99),
        reopen_after_kill_ms: (reopen.as_secs_f64() * 1e4).round() / 10.0,
    };
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        println!(
            "{} tx/s, writer CPU {} µs/tx, disk {} B/tx ({}× the {} B encoded), commit p50 {:.2} \
             ms p99 {:.2} ms, get p50 {:.1} µs p99 {:.1} µs; a holder's {} transactions in {:.2} \
             ms, a page of 100 p50 {:.2} ms p99 {:.2} ms, children p50 {:.1} µs p99 {:.1} µs; \
             open after kill -9 {} ms",
            report.tx_per_s,
            report.writer_cpu_us_per_tx,
            report.disk_bytes_per_tx,
            report.disk_over_encoded,
            report.encoded_bytes_per_tx,
            report.commit_p50_ms,
            report.commit_p99_ms,
            report.get_p50_us,
            report.get_p99_us,
            report.rare_count,
            report.list_rare_ms,
            report.list_page_p50_ms,
            report.list_page_p99_ms,
            report.children_p50_us,
            report.children_p99_us,
            report.reopen_after_kill_ms,
        );
    }
    Ok(())
}

/// One batch's records and entries, from `first`, continuing `chain`.
pub(super) struct Batch {
    pub txs: Vec<NewTx>,
    pub entries: Vec<(u64, Entry)>,
}

/// The id of transaction `seq`: 40 hex characters that look random, as clients' ids do.
fn id(seq: u64) -> String {
    let mut id = sha256(&seq.to_be_bytes()).to_hex();
    id.truncate(40);
    id
}

/// The holder of one transaction in [`RARE_EVERY`].
const RARE: &str = "rare";
const RARE_EVERY: u64 = 100_000;

/// One of 10,000 holders (or [`RARE`]), naming the transaction before it: each a key of the
/// store's holder and children indexes, as a ledger's transactions are.
fn transaction(seq: u64, payload: usize) -> Tx {
    Tx {
        tx_id: id(seq),
        holder_id: match seq % RARE_EVERY {
            7 => RARE.to_string(),
            _ => format!("holder-{}", seq % 10_000),
        },
        timestamp: 1.0,
        payload: vec![(seq % 251) as u8; payload],
        parent_ids: seq.checked_sub(1).map(id).into_iter().collect(),
        ..Tx::default()
    }
}

/// Transactions `first..first + n`, each recorded in an entry of its own after `chain`,
/// received at `received_at`; `chain` moves past them.
pub(super) fn batch(
    chain: &mut ChainMeta,
    first: u64,
    n: u64,
    payload: usize,
    received_at: f64,
) -> Batch {
    let mut txs = Vec::with_capacity(n as usize);
    let mut entries = Vec::with_capacity(n as usize);
    for seq in first..first + n {
        let tx = transaction(seq, payload);
        let digest = tx.digest();
        let entry = Entry {
            num_hashes: 1,
            hash: sha256(&seq.to_le_bytes()),
            mixins: vec![digest],
        };
        chain.state.advance(&entry, chain.hashes_per_tick);
        let entry_index = chain.state.entries - 1;
        txs.push(NewTx {
            record: TxRecord {
                dag_parents: tx.parent_ids.clone(),
                tx,
                digest,
                poh_seq: seq,
                poh_hash: entry.hash,
                entry_index,
                received_at,
                status: TxStatus::Ordered,
                header_id: None,
            },
            missing_parents: Vec::new(),
        });
        entries.push((entry_index, entry));
    }
    Batch { txs, entries }
}

/// Stores `batch` with `chain` as it stands after it.
pub(super) fn store_batch(
    store: &dyn Store,
    chain: &ChainMeta,
    batch: &Batch,
    durable: bool,
) -> anyhow::Result<()> {
    store.commit(
        &Commit {
            chain: Some(chain),
            txs: &batch.txs,
            entries: &batch.entries,
            ..Commit::default()
        },
        durable,
    )?;
    Ok(())
}

pub(super) fn chain(name: &str) -> ChainMeta {
    ChainMeta {
        chain_id: name.into(),
        hashes_per_tick: 2,
        state: PohState::genesis(name),
    }
}

struct Filled {
    seconds: f64,
    writer_cpu_s: f64,
    commits_us: Vec<f64>,
}

/// Commits every batch on a writer thread while the next one is made on this one, so the
/// writer's CPU is the store's alone.
fn fill(store: Arc<dyn Store>, args: &StoreArgs) -> anyhow::Result<Filled> {
    let (batches, queue) = mpsc::sync_channel::<(ChainMeta, Batch)>(2);
    let writer = thread::spawn(move || -> anyhow::Result<(f64, Vec<f64>)> {
        let cpu_before = thread_cpu_seconds()?;
        let mut commits = Vec::new();
        for (chain, batch) in queue {
            let started = Instant::now();
            store_batch(store.as_ref(), &chain, &batch, true)?;
            commits.push(started.elapsed().as_secs_f64() * 1e6);
        }
        Ok((thread_cpu_seconds()? - cpu_before, commits))
    });
    let started = Instant::now();
    let mut chain = chain("bench/store");
    let mut seq = 0;
    while seq < args.count {
        let n = args.batch.min(args.count - seq);
        let made = batch(&mut chain, seq, n, args.payload, 1.0);
        seq += n;
        if batches.send((chain.clone(), made)).is_err() {
            break;
        }
    }
    drop(batches);
    let (writer_cpu_s, commits_us) = writer
        .join()
        .map_err(|_| anyhow::anyhow!("the writer thread panicked"))??;
    Ok(Filled {
        seconds: started.elapsed().as_secs_f64(),
        writer_cpu_s,
        commits_us,
    })
}

/// CPU seconds of the calling thread (`/proc/thread-self/stat`).
fn thread_cpu_seconds() -> anyhow::Result<f64> {
    let tid = std::fs::read_link("/proc/thread-self").context("cannot find this thread")?;
    let tid = tid
        .file_name()
        .and_then(|t| t.to_str())
        .context("cannot name this thread")?
        .to_string();
    super::cpu::seconds(&format!("self/task/{tid}"))
}

/// Microseconds of `GETS` lookups of whole records by random ids.
fn get_by_id(store: &dyn Store, count: u64) -> anyhow::Result<Vec<f64>> {
    let mut times = Vec::with_capacity(GETS);
    for i in 0..GETS as u64 {
        let seq = u64::from_le_bytes(sha256(&i.to_le_bytes()).0[..8].try_into()?) % count;
        let started = Instant::now();
        let found = store.tx(&id(seq))?;
        times.push(started.elapsed().as_secs_f64() * 1e6);
        if found.is_none() {
            bail!("transaction {seq} is not found");
        }
    }
    Ok(times)
}

/// What the query indexes answer in, over the filled store.
struct Queried {
    rare_us: Vec<f64>,
    rare_count: usize,
    page_us: Vec<f64>,
    children_us: Vec<f64>,
}

/// Times the queries: the rare holder's transactions (their number is what grows, not the
/// store), pages of 100 of common holders, and children; checks each answer's size.
fn queries(store: &dyn Store, count: u64) -> anyhow::Result<Queried> {
    let timed = |f: &mut dyn FnMut() -> anyhow::Result<()>| -> anyhow::Result<f64> {
        let started = Instant::now();
        f()?;
        Ok(started.elapsed().as_secs_f64() * 1e6)
    };
    let pick = |i: u64, n: u64| -> anyhow::Result<u64> {
        Ok(u64::from_le_bytes(sha256(&((i + 1) << 40).to_le_bytes()).0[..8].try_into()?) % n)
    };
    let (mut rare_us, mut rare_count) = (Vec::new(), 0);
    for _ in 0..20 {
        rare_us.push(timed(&mut || {
            rare_count = store.holder_txs(RARE, 0, 1000)?.0.len();
            Ok(())
        })?);
    }
    let want = count.saturating_sub(7).div_ceil(RARE_EVERY) as usize;
    if rare_count != want {
        bail!("the rare holder has {rare_count} transactions listed, not {want}");
    }
    let mut page_us = Vec::new();
    for i in 0..200 {
        let holder = format!("holder-{}", pick(i, 10_000.min(count))?);
        page_us.push(timed(&mut || {
            let (page, _) = store.holder_txs(&holder, 0, 100)?;
            if page.is_empty() {
                bail!("{holder} lists nothing");
            }
            Ok(())
        })?);
    }
    let mut children_us = Vec::new();
    for i in 0..1000 {
        let seq = pick(i, count.saturating_sub(1).max(1))?;
        children_us.push(timed(&mut || {
            if store.children_of(&id(seq), 10)? != [id(seq + 1)] {
                bail!("transaction {seq}'s child is not the next one");
            }
            Ok(())
        })?);
    }
    Ok(Queried {
        rare_us,
        rare_count,
        page_us,
        children_us,
    })
}

/// Starts a child committing to the store at `path`, kills it with SIGKILL once it has
/// committed, and times opening the store again.
fn reopen_after_kill(path: &Path, args: &StoreArgs) -> anyhow::Result<Duration> {
    let mut child = Command::new(std::env::current_exe()?)
        .args(["bench", "store", "--payload", &args.payload.to_string()])
        .args(["--batch", &args.batch.to_string(), "--crash-child"])
        .arg(path)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context("cannot start the writer to kill")?;
    let stdout = child.stdout.take().context("no stdout")?;
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line)?;
    if line.trim() != "writing" {
        let _ = child.kill();
        bail!("the writer to kill did not start: {line:?}");
    }
    // Mid-stream: it commits back to back.
    thread::sleep(Duration::from_millis(200));
    child.kill()?;
    child.wait()?;
    let started = Instant::now();
    let store = LogStore::open(path)?;
    let took = started.elapsed();
    if store.chain()?.is_none() {
        bail!("the store lost its chain");
    }
    Ok(took)
}

/// The child of [`reopen_after_kill`]: commits batches after what is stored until killed.
fn crash_child(path: &Path, payload: usize, batch_size: u64) -> anyhow::Result<()> {
    let store = LogStore::open(path)?;
    let mut chain = store.chain()?.context("the store has no chain")?;
    let mut seq = chain.state.mixins;
    let mut said = false;
    loop {
        let made = batch(&mut chain, seq, batch_size, payload, 1.0);
        seq += batch_size;
        store_batch(&store, &chain, &made, true)?;
        if !said {
            println!("writing");
            said = true;
        }
    }
}

/// A transaction's size as the wire encodes it (protobuf `poh.v1.Tx`).
fn encoded_bytes(payload: usize) -> usize {
    use prost::Message as _;
    poh_node::tx_to_pb(transaction(0, payload)).encoded_len()
}

fn quantile(values: &[f64], q: f64) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let i = ((sorted.len() - 1) as f64 * q).round() as usize;
    (sorted[i] * 10.0).round() / 10.0
}
