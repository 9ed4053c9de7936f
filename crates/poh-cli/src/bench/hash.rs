//! `poh bench hash`: the sha2 chain, PoH generation, verification (serial, one core's lanes,
//! all cores) and ML-DSA-87, all in one run, as ratios to the sha2 chain on one core.

use std::{
    sync::mpsc,
    time::{Duration, Instant},
};

use anyhow::Context as _;
use poh_core::{
    Entry, Hash, Poh, PohConfig, PohMode, PohRecorder, PohState, SigningKey, Tx,
    chain::Backend,
    sha256, signing,
    verify::{verify_lanes, verify_parallel, verify_serial},
};
use serde::Serialize;

#[derive(clap::Args)]
pub struct HashArgs {
    /// Print one JSON object (keys are stable: scripts read them).
    #[arg(long)]
    json: bool,
    /// Seconds spent on each measurement.
    #[arg(long, default_value_t = 2.0)]
    seconds: f64,
}

/// The figures, in hashes or operations per second. The keys are a stable interface.
#[derive(Serialize)]
struct HashReport {
    sha2_chain_hps: f64,
    poh_generate_hps: f64,
    verify_serial_hps: f64,
    verify_per_core_hps: f64,
    verify_all_cores_hps: f64,
    mldsa87_sign_per_s: f64,
    mldsa87_verify_per_s: f64,
}

const HASHES_PER_TICK: u64 = 12_500;

/// Repeats `work` (which returns how many operations it did) for about `secs`.
fn rate(secs: f64, mut work: impl FnMut() -> u64) -> f64 {
    let started = Instant::now();
    let mut ops = 0;
    while started.elapsed().as_secs_f64() < secs {
        ops += work();
    }
    ops as f64 / started.elapsed().as_secs_f64()
}

pub fn run(args: &HashArgs) -> anyhow::Result<()> {
    let secs = args.seconds.max(0.1);
    let fast = Backend::fastest();
    let progress = |what: &str| {
        if !args.json {
            eprintln!("measuring {what}…");
        }
    };

    progress("the sha2 chain (one core)");
    let mut h = sha256(b"bench");
    let sha2_chain_hps = rate(secs, || {
        Backend::portable().chain(&mut h, 1 << 20);
        1 << 20
    });

    progress("PoH generation, unpaced (the recorder thread)");
    let poh_generate_hps = generate_rate(secs)?;

    // A chain like a node's: ticks, and a record of a few digests every fourth entry.
    let entries = sample_chain(
        fast,
        (sha2_chain_hps * secs / HASHES_PER_TICK as f64) as usize + 64,
    );
    let start = PohState::genesis("bench").hash;
    let hashes: u64 = entries.iter().map(|e| e.num_hashes).sum();

    progress("serial verification (plain, one entry at a time)");
    let verify_serial_hps = rate(secs, || {
        let n = (entries.len() / 8).max(1);
        // The chunk check cannot fail on a chain made above; the result is used to keep it.
        let ok = verify_serial(&start, &entries[..n], HASHES_PER_TICK).is_ok();
        entries[..n].iter().map(|e| e.num_hashes).sum::<u64>() * u64::from(ok)
    });

    progress(&format!(
        "verification on one core ({}, {} lanes)",
        fast.name(),
        fast.lanes()
    ));
    let verify_per_core_hps = rate(secs, || {
        let ok = verify_lanes(fast, &start, &entries, HASHES_PER_TICK).is_ok();
        hashes * u64::from(ok)
    });

    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    progress(&format!("verification on all {threads} cores"));
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .context("cannot start worker threads")?;
    let verify_all_cores_hps = rate(secs, || {
        let ok = pool.install(|| verify_parallel(fast, &start, &entries, HASHES_PER_TICK, &|_| {}));
        hashes * u64::from(ok.is_ok())
    });

    progress("ML-DSA-87 signing and verification (one core)");
    let key = SigningKey::generate()?;
    let tx = Tx {
        tx_id: "bench-1".into(),
        holder_id: "bench".into(),
        timestamp: 1_700_000_000.0,
        payload: vec![0xAB; 200],
        ..Tx::default()
    };
    let message = tx.signing_bytes();
    let mut signature = Vec::new();
    let mldsa87_sign_per_s = rate(secs / 2.0, || {
        signature = key.sign(&message).unwrap_or_default();
        1
    });
    let mldsa87_verify_per_s = rate(secs / 2.0, || {
        u64::from(signing::verify(key.public_key(), &message, &signature).is_ok())
    });

    let report = HashReport {
        sha2_chain_hps,
        poh_generate_hps,
        verify_serial_hps,
        verify_per_core_hps,
        verify_all_cores_hps,
        mldsa87_sign_per_s,
        mldsa87_verify_per_s,
    };
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
        return Ok(());
    }
    let m = |x: f64| x / 1e6;
    let base = report.sha2_chain_hps;
    println!(
        "hash backend: {} ({} lanes per core), {threads} cores",
        fast.name(),
        fast.lanes()
    );
    println!(
        "sha2 chain (one core)          {:>8.2} M hashes/s   1.00 ×",
        m(base)
    );
    for (name, v) in [
        ("PoH generation, unpaced", report.poh_generate_hps),
        ("verification, serial (sha2)", report.verify_serial_hps),
        ("verification, one core", report.verify_per_core_hps),
        ("verification, all cores", report.verify_all_cores_hps),
    ] {
        println!("{name:<30} {:>8.2} M hashes/s {:>6.2} ×", m(v), v / base);
    }
    println!(
        "all cores ÷ one core: {:.2} ×",
        report.verify_all_cores_hps / report.verify_per_core_hps
    );
    println!(
        "ML-DSA-87 sign                 {:>8.0} /s",
        report.mldsa87_sign_per_s
    );
    println!(
        "ML-DSA-87 verify               {:>8.0} /s",
        report.mldsa87_verify_per_s
    );
    Ok(())
}

/// The recorder thread, unpaced, for `secs`: hashes per second it produced.
fn generate_rate(secs: f64) -> anyhow::Result<f64> {
    let (sink, entries) = mpsc::sync_channel(1 << 16);
    let drain = std::thread::spawn(move || entries.iter().count());
    let config = PohConfig {
        hashes_per_tick: HASHES_PER_TICK,
        mode: PohMode::Unpaced,
        ..PohConfig::default()
    };
    let mut recorder = PohRecorder::spawn(config, PohState::genesis("bench"), sink)?;
    let started = Instant::now();
    std::thread::sleep(Duration::from_secs_f64(secs));
    // The state moves one entry (12,500 hashes) at a time: on a slow or busy machine a short
    // measurement may end before the first, and would read as zero. Wait for one (bounded).
    while recorder.state().total_hashes == 0 && started.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(10));
    }
    let hashes = recorder.state().total_hashes;
    let elapsed = started.elapsed().as_secs_f64();
    recorder.shutdown()?;
    drop(recorder);
    let _ = drain.join();
    Ok(hashes as f64 / elapsed)
}

fn sample_chain(backend: Backend, n: usize) -> Vec<Entry> {
    let mut poh = Poh::new(PohState::genesis("bench"), HASHES_PER_TICK, backend);
    (0..n)
        .map(|i| {
            if i % 4 == 3 {
                poh.hash_steps(HASHES_PER_TICK / 2);
                let batch: Vec<Hash> = (0..8u8).map(|j| sha256(&[j, i as u8])).collect();
                if let Ok(entry) = poh.record(batch) {
                    return entry;
                }
            }
            poh.hash_steps(u64::MAX);
            poh.tick()
                .unwrap_or_else(|| unreachable!("a tick is due after hash_steps(MAX)"))
        })
        .collect()
}
