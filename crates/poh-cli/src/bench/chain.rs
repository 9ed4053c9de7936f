//! `poh bench chain`: builds a chain of `--entries` PoH entries with headers over them, writes
//! it as a chain file (as `poh export` does), and checks it as `poh verify --chain` does. The
//! verification rate is compared with the plain single-core `sha2` chain measured in the
//! same run: header and Merkle checks must not slow the all-core PoH verifiers down.

use std::{
    fs::File,
    io::{BufReader, BufWriter, Write as _},
    time::Instant,
};

use anyhow::{Context as _, bail};
use poh_core::{
    Batch, ChainHead, Entry, Hash, Level, Poh, PohState, SigningKey,
    chain::Backend,
    chain_file::{ChainReader, ChainStart, FORMAT, Record, verify::verify_chain},
    sha256,
};
use serde::Serialize;

#[derive(clap::Args)]
pub struct ChainArgs {
    /// PoH entries in the chain.
    #[arg(long, default_value_t = 1_000_000)]
    entries: u64,
    /// Hash operations per tick: most entries are ticks, so this sets the hashing per entry.
    #[arg(long, default_value_t = 400)]
    hashes_per_tick: u64,
    /// Entries per header.
    #[arg(long, default_value_t = 4096)]
    header_entries: u64,
    /// Print one JSON object (keys are stable: scripts read them).
    #[arg(long)]
    json: bool,
}

/// The keys are a stable interface.
#[derive(Serialize)]
struct ChainReport {
    entries: u64,
    hashes: u64,
    headers: u64,
    verify_s: f64,
    verify_hps: f64,
    sha2_chain_hps: f64,
}

const CHAIN: &str = "bench/chain";

pub fn run(args: &ChainArgs) -> anyhow::Result<()> {
    if args.entries == 0 || args.header_entries == 0 {
        bail!("--entries and --header-entries must be at least 1");
    }
    poh_core::PohConfig {
        hashes_per_tick: args.hashes_per_tick,
        ..Default::default()
    }
    .validate()?;
    let say = |what: &str| {
        if !args.json {
            eprintln!("{what}…");
        }
    };
    let dir = tempfile::tempdir().context("cannot make a temporary directory")?;
    let path = dir.path().join("chain.jsonl");

    say("building and writing the chain");
    let (hashes, headers) = write_chain(args, &path)?;

    say("measuring the sha2 chain (one core)");
    let mut h = sha256(b"bench");
    let started = Instant::now();
    let mut done = 0u64;
    while started.elapsed().as_secs_f64() < 1.0 {
        Backend::portable().chain(&mut h, 1 << 20);
        done += 1 << 20;
    }
    let sha2_chain_hps = done as f64 / started.elapsed().as_secs_f64();

    say("verifying the chain file on every core");
    let file = File::open(&path).with_context(|| format!("cannot open {}", path.display()))?;
    let started = Instant::now();
    let (start, reader) = ChainReader::open(BufReader::with_capacity(1 << 20, file))?;
    // Only the checks are timed: trust means nothing for a file the bench signed itself.
    let report = verify_chain(&start, reader, Backend::fastest(), &[], &|_| {})
        .map_err(|e| anyhow::anyhow!("the bench chain does not verify: {e}"))?;
    let verify_s = started.elapsed().as_secs_f64();
    if report.entries != args.entries || report.hashes != hashes || report.headers != headers {
        bail!("the verifier saw {report:?}, the chain has {hashes} hashes in {headers} headers");
    }
    let out = ChainReport {
        entries: args.entries,
        hashes,
        headers,
        verify_s,
        verify_hps: hashes as f64 / verify_s.max(1e-9),
        sha2_chain_hps,
    };
    if args.json {
        println!("{}", serde_json::to_string(&out)?);
        return Ok(());
    }
    let m = |v: f64| v / 1e6;
    println!(
        "chain: {} entries, {} headers, {} hashes",
        out.entries, out.headers, out.hashes
    );
    println!(
        "verify --chain: {:.2} s, {:.1} M hashes/s on {} threads = {:.2} × the sha2 chain ({:.1} M hashes/s, one core)",
        out.verify_s,
        m(out.verify_hps),
        rayon::current_num_threads(),
        out.verify_hps / out.sha2_chain_hps,
        m(out.sha2_chain_hps),
    );
    Ok(())
}

/// Generates the chain (ticks, and a record of four digests every eighth entry, as a node
/// under load), seals a header every `header_entries` entries, and writes the chain file.
fn write_chain(args: &ChainArgs, path: &std::path::Path) -> anyhow::Result<(u64, u64)> {
    let key = SigningKey::generate()?;
    let hpt = args.hashes_per_tick;
    let file = File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    let mut out = BufWriter::with_capacity(1 << 20, file);
    let start = ChainStart {
        format: FORMAT.into(),
        chain_id: CHAIN.into(),
        level: Level::Municipality,
        hashes_per_tick: hpt,
        public_key: hex::encode(key.public_key()),
        height: 0,
        prev_header_hash: Hash::default(),
        poh_start: 0,
        start_hash: poh_core::genesis(CHAIN),
        hashes_in_tick: Some(0),
        seq: 0,
        children: Vec::new(),
    };
    writeln!(out, "{}", serde_json::to_string(&start)?)?;
    let mut poh = Poh::new(PohState::genesis(CHAIN), hpt, Backend::fastest());
    let mut head = ChainHead::genesis(CHAIN);
    let mut pending: Vec<Entry> = Vec::new();
    let (mut hashes, mut headers) = (0u64, 0u64);
    for i in 0..args.entries {
        let entry = if i % 8 == 7 {
            poh.hash_steps(hpt / 2);
            let digests = (0..4u64)
                .map(|j| sha256(&[i.to_be_bytes(), j.to_be_bytes()].concat()))
                .collect();
            match poh.record(digests) {
                Ok(e) => e,
                Err(_) => crate::verify::tick(&mut poh),
            }
        } else {
            crate::verify::tick(&mut poh)
        };
        hashes += entry.num_hashes;
        pending.push(entry);
        if pending.len() as u64 == args.header_entries || i + 1 == args.entries {
            let mut batch = Batch::new(head.clone(), hpt);
            for e in &pending {
                batch
                    .push(e)
                    .map_err(|f| anyhow::anyhow!("generated entry breaks the rules: {f}"))?;
            }
            let Some((header, next)) = batch.seal(CHAIN, Level::Municipality, 0.0, &key)? else {
                bail!("an empty batch");
            };
            out.write_all(Record::Header(header).to_line().as_bytes())?;
            for e in pending.drain(..) {
                out.write_all(Record::Entry(e).to_line().as_bytes())?;
            }
            head = next;
            headers += 1;
        }
    }
    out.flush()?;
    Ok((hashes, headers))
}
