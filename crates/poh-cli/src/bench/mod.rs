//! `poh bench`: measurements, taken as ratios or CPU per item in one run, because these
//! machines are noisy.
//!
//! - [`hash`]: hashing, PoH generation and verification, ML-DSA-87 on this machine;
//! - [`ingest`]: a node's ingest throughput and latency over one transport;
//! - [`broadcast`]: broadcast latency to nodes started on loopback;
//! - [`chain`]: a chain with headers built, exported and checked whole, against the sha2 chain;
//! - [`gc`]: the longest commit while the store expires records and while it compacts;
//! - [`store`]: the store alone: writer CPU and disk per transaction, commit and get latency,
//!   opening after a kill;
//! - [`replica`]: a replica's copy from genesis, its lag under load, and what
//!   `--min-replica-acks` costs the primary's writers;
//! - [`index`]: `poh index` catching up with a loaded node into PostgreSQL (rows/s);
//! - [`soak`]: a node under steady load on every transport for minutes, whether its memory,
//!   file descriptors or threads grow without bound;
//! - [`node`]: the `poh serve` process the ingest, broadcast, soak and replica benches start;
//! - [`cpu`]: a process's CPU time, for CPU per transaction.

mod broadcast;
mod chain;
mod cpu;
mod gc;
mod hash;
mod index;
mod ingest;
mod node;
mod replica;
mod soak;
mod store;

#[derive(clap::Subcommand)]
pub enum Bench {
    /// Hashing, PoH generation and verification, and ML-DSA-87 on this machine.
    Hash(hash::HashArgs),
    /// Ingest throughput and latency of a node over one transport.
    Ingest(ingest::IngestArgs),
    /// Broadcast latency to `--peers` nodes started on loopback.
    Broadcast(broadcast::BroadcastArgs),
    /// Build a chain with headers, write it as `poh export` does and time `verify --chain`.
    Chain(chain::ChainArgs),
    /// The longest commit beside the TTL's expiry and beside a compaction of a filled store.
    Gc(gc::GcArgs),
    /// The store alone: writer CPU and disk per transaction, commit and get-by-id latency,
    /// and opening it after its writer was killed.
    Store(store::StoreArgs),
    /// A node under steady, paced load on every transport with subscribers open, sampled
    /// for memory, file descriptors and threads; fails when one grows without bound.
    Soak(soak::SoakArgs),
    /// A replica of a loaded primary: its copy from genesis (records/s, CPU per record), its
    /// lag while the primary takes load, and the cost of --min-replica-acks 1 against 0.
    Replica(replica::ReplicaArgs),
    /// `poh index` catching up with a node loaded with --count transactions, into a
    /// PostgreSQL started for the run: rows/s and the indexer's CPU per row.
    Index(index::IndexArgs),
}

pub fn run(bench: &Bench) -> anyhow::Result<()> {
    match bench {
        Bench::Hash(args) => hash::run(args),
        Bench::Ingest(args) => ingest::run(args),
        Bench::Broadcast(args) => broadcast::run(args),
        Bench::Chain(args) => chain::run(args),
        Bench::Gc(args) => gc::run(args),
        Bench::Store(args) => store::run(args),
        Bench::Soak(args) => soak::run(args),
        Bench::Replica(args) => replica::run(args),
        Bench::Index(args) => index::run(args),
    }
}
