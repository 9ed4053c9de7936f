//! `poh verify FILE` and `poh generate-log`: PoH log files (format in `poh_core::poh_log`);
//! `poh verify --chain FILE` is in [`crate::chain`].

use std::{
    fs::File,
    io::{BufReader, BufWriter, Write as _},
    path::PathBuf,
    sync::atomic::{AtomicU64, Ordering},
    time::Instant,
};

use anyhow::{Context as _, bail};
use indicatif::{ProgressBar, ProgressStyle};
use poh_core::{
    Entry, Hash, Poh, PohState,
    chain::Backend,
    poh_log::{LogHeader, LogReader, entry_line},
    sha256,
    verify::{verify_parallel, verify_serial},
};

/// Entries held in memory at once: bounded memory for a log of any length.
const CHUNK_ENTRIES: usize = 8192;

#[derive(clap::Args)]
pub struct VerifyArgs {
    /// The PoH log file (JSON lines: a header, then one entry per line).
    #[arg(
        required_unless_present_any = ["chain", "proof"],
        conflicts_with_all = ["chain", "proof", "trust", "untrusted"]
    )]
    file: Option<PathBuf>,
    /// A chain file from `poh export`: every entry, tick period, header, signature and
    /// recorded child header is checked.
    #[arg(long, conflicts_with_all = ["serial", "proof"])]
    chain: Option<PathBuf>,
    /// A proof from `poh prove`: the transaction's digest and every link up, checked offline.
    #[arg(long, conflicts_with = "serial")]
    proof: Option<PathBuf>,
    /// Worker threads (default: every core).
    #[arg(long)]
    threads: Option<usize>,
    /// Use the plain one-entry-at-a-time verifier instead of the fast one.
    #[arg(long)]
    serial: bool,
    /// For --chain and --proof, which carry signatures: the keys that anchor them.
    #[command(flatten)]
    trust: crate::trust::TrustArgs,
}

pub fn verify(args: &VerifyArgs) -> anyhow::Result<()> {
    if let Some(proof) = &args.proof {
        return crate::prove::verify(proof, &args.trust);
    }
    let path = match (&args.file, &args.chain) {
        (_, Some(chain)) => return crate::chain::verify(chain, args.threads, &args.trust),
        (Some(file), None) => file,
        (None, None) => bail!("give a PoH log file, --chain FILE or --proof FILE"),
    };
    let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let size = file.metadata().map(|m| m.len()).unwrap_or(0);
    let (header, mut reader) = LogReader::open(BufReader::with_capacity(1 << 20, file))?;
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(args.threads.unwrap_or(0))
        .build()
        .context("cannot start worker threads")?;
    let backend = Backend::fastest();
    let bar = ProgressBar::new(size).with_style(
        ProgressStyle::with_template(
            "{spinner} verifying [{bar:40}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );

    let started = Instant::now();
    let mut start = header.start_hash;
    let (mut done, mut hashes, mut mixins) = (0u64, 0u64, 0u64);
    let mut chunk = Vec::with_capacity(CHUNK_ENTRIES);
    loop {
        chunk.clear();
        let chunk_from = reader.bytes_read();
        if reader.read_chunk(CHUNK_ENTRIES, &mut chunk)? == 0 {
            break;
        }
        let chunk_bytes = reader.bytes_read() - chunk_from;
        let checked = AtomicU64::new(0);
        let progress = |n: usize| {
            let c = checked.fetch_add(n as u64, Ordering::Relaxed) + n as u64;
            bar.set_position(chunk_from + chunk_bytes * c / chunk.len() as u64);
        };
        let result = if args.serial {
            verify_serial(&start, &chunk, header.hashes_per_tick)
        } else {
            pool.install(|| {
                verify_parallel(backend, &start, &chunk, header.hashes_per_tick, &progress)
            })
        };
        if let Err(e) = result {
            bar.abandon();
            let index = header.start_index + done + e.index as u64;
            bail!(
                "{}: PoH entry {index} does not verify: {}",
                path.display(),
                e.failure
            );
        }
        done += chunk.len() as u64;
        hashes += chunk.iter().map(|e| e.num_hashes).sum::<u64>();
        mixins += chunk.iter().map(|e| e.mixins.len() as u64).sum::<u64>();
        if let Some(last) = chunk.last() {
            start = last.hash;
        }
        bar.set_position(reader.bytes_read());
    }
    bar.finish_and_clear();
    let secs = started.elapsed().as_secs_f64();
    println!(
        "ok: {done} entries (from index {}), {hashes} hashes, {mixins} mixins verified in {secs:.2} s \
         ({:.1} M hashes/s, {} on {} threads); last hash {start}",
        header.start_index,
        hashes as f64 / secs.max(1e-9) / 1e6,
        if args.serial {
            "serial sha2"
        } else {
            backend.name()
        },
        if args.serial {
            1
        } else {
            pool.current_num_threads()
        },
    );
    Ok(())
}

#[derive(clap::Args)]
pub struct GenerateArgs {
    /// Where to write the log.
    #[arg(long, short)]
    out: PathBuf,
    /// How many entries.
    #[arg(long, default_value_t = 1000)]
    entries: u64,
    /// The chain whose genesis starts the log.
    #[arg(long, default_value = "local")]
    chain_id: String,
    /// Hash operations per tick.
    #[arg(long, default_value_t = 12_500)]
    hashes_per_tick: u64,
    /// Record a batch of synthetic digests every this many entries (0: ticks only).
    #[arg(long, default_value_t = 4)]
    record_every: u64,
    /// Replace an existing file.
    #[arg(long)]
    force: bool,
}

pub fn generate(args: &GenerateArgs) -> anyhow::Result<()> {
    let header = LogHeader::from_genesis(&args.chain_id, args.hashes_per_tick);
    poh_core::PohConfig {
        hashes_per_tick: args.hashes_per_tick,
        ..Default::default()
    }
    .validate()?;
    let file = crate::create_file(&args.out, args.force, 0o644)?;
    let mut out = BufWriter::new(file);
    let write_err = || format!("cannot write {}", args.out.display());
    out.write_all(header.to_line().as_bytes())
        .with_context(write_err)?;
    let mut poh = Poh::new(
        PohState::genesis(&args.chain_id),
        args.hashes_per_tick,
        Backend::fastest(),
    );
    for i in 0..args.entries {
        let entry: Entry =
            if args.record_every > 0 && i % args.record_every == args.record_every - 1 {
                // Records land mid-tick, as they do in a node: half a tick in, then the batch.
                poh.hash_steps(args.hashes_per_tick / 2);
                let batch: Vec<Hash> = (0..1 + i % 4)
                    .map(|j| sha256(&[i.to_be_bytes(), j.to_be_bytes()].concat()))
                    .collect();
                match poh.record(batch) {
                    Ok(entry) => entry,
                    Err(_) => tick(&mut poh),
                }
            } else {
                tick(&mut poh)
            };
        out.write_all(entry_line(&entry).as_bytes())
            .with_context(write_err)?;
    }
    out.into_inner()
        .map_err(|e| e.into_error())
        .and_then(|f| f.sync_all())
        .with_context(write_err)?;
    println!(
        "wrote {} entries of chain {:?} to {}",
        args.entries,
        args.chain_id,
        args.out.display()
    );
    Ok(())
}

/// The next tick: every hash step left in the period, then the tick.
pub(crate) fn tick(poh: &mut Poh) -> Entry {
    poh.hash_steps(u64::MAX);
    // `hash_steps(MAX)` always leaves exactly the tick's step, so a tick is always due here.
    poh.tick()
        .unwrap_or_else(|| unreachable!("the tick is due after hash_steps(MAX)"))
}
