//! `poh`, the operator's command-line tool (SPEC §9): one module per command group —
//! [`serve`] (a node), [`peers`] (the peers file), [`client`] (broadcast, check-peers,
//! submit, status, subscribe, headers), [`bench`] (hash, ingest, broadcast), [`verify`] (PoH logs),
//! [`chain`] (export, verify --chain), [`prove`] (prove, verify --proof), [`trust`] (the
//! `--trust` keys those three need), [`restore`],
//! [`index`] (a node into PostgreSQL), [`keygen`], [`certs`] and [`docs`] (completions, man). Each is a thin shell over the
//! library crates, and every error ends as one line on stderr with a non-zero exit code.
#![forbid(unsafe_code)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

mod audit;
mod bench;
mod certs;
mod chain;
mod client;
mod docs;
mod index;
mod keygen;
mod migrate;
mod peers;
mod prove;
mod restore;
mod serve;
mod trust;
mod tx;
mod verify;

use std::{path::PathBuf, process::ExitCode};

use clap::{Parser, Subcommand};

// The gRPC and HTTP/2 stacks allocate per request, and glibc's allocator showed in profiles
// as the largest single cost of a unary call. Built without transparent huge pages
// (`no_thp`): with them, memory freed and touched again came back as whole 2 MiB pages that
// the kernel zeroed again, 10–17 % of the node's CPU under load and ~100 MiB of resident
// memory.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "poh", version, about = "Proof of History ledger node tools")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a node: gRPC and HTTP listeners, the PoH generator and the embedded store.
    ///
    /// SIGINT or SIGTERM stops it once in-flight work is done. SIGHUP reads the settings again
    /// and applies the certificate, CA and allow-list, tokens, JWT keys and [limits] without a
    /// restart; any other change is logged and waits for one.
    Serve(serve::ServeArgs),
    /// Run a node with only the gRPC listener.
    ServeGrpc(serve::ServeOneArgs),
    /// Run a node with only the HTTP listener.
    ServeHttp(serve::ServeOneArgs),
    /// Run a node with only the UDP listener.
    ListenUdp(serve::ServeOneArgs),
    /// Make a development CA and a certificate per node name (for --tls-cert/--tls-key/--tls-ca).
    Certs(certs::CertsArgs),
    /// Print the SHA-256 fingerprint of certificates (PEM), for --tls-pin and add-peer --pin.
    Fingerprint(certs::FingerprintArgs),
    /// Generate an ML-DSA-87 signing key (a 32-byte seed, written with mode 0600).
    Keygen(keygen::Args),
    /// Verify a PoH log file, a chain file (--chain) from `poh export` on every core, or a
    /// proof (--proof) from `poh prove`; exits non-zero naming the first bad item, or when no
    /// --trust key signs a chain file or proof (unless --untrusted).
    Verify(verify::VerifyArgs),
    /// Write a node's chain (headers, PoH entries, recorded child headers, keys) to a file.
    Export(chain::ExportArgs),
    /// Make a replica (`serve --follow`) the primary of its chain: it stops copying, continues
    /// the chain from its last copied entry and header with its --node-key (which must be the
    /// chain's key), and takes writes.
    Promote(chain::PromoteArgs),
    /// Check a running federation from its nodes' HTTP APIs: every chain re-verified from
    /// genesis, every child header recorded exactly once by its parent, and every
    /// transaction in --expect stored with its digest and proven up to the highest level;
    /// one line per finding, and a non-zero exit on any.
    Audit(audit::AuditArgs),
    /// A transaction's inclusion proof, from its header up the federation, checked before
    /// it is written: it must be signed by a --trust key (unless --untrusted).
    Prove(prove::ProveArgs),
    /// Rebuild a sealed batch from any k of its erasure-coded fragments, check it against
    /// the header in a stopped node's store, and put its expired transactions back.
    Restore(restore::RestoreArgs),
    /// Move a stopped node's store from an earlier release's file (data_dir/poh.redb) into
    /// the log engine's directory, as `poh serve` does on its first start.
    Migrate(migrate::MigrateArgs),
    /// Run a PoH generator for a number of entries and write them as a PoH log file.
    GenerateLog(verify::GenerateArgs),
    /// Measure this machine.
    #[command(subcommand)]
    Bench(bench::Bench),
    /// Add a peer to the peers file (created if missing); adding a listed peer changes nothing.
    AddPeer(peers::AddArgs),
    /// Remove a peer from the peers file; an address that is not listed is an error.
    RemovePeer(peers::EditArgs),
    /// List the peers file: one `protocol address` line per peer, or --json.
    ListPeers(peers::ListArgs),
    /// Check each peer's reachability and latency, per protocol (gRPC: the health service).
    CheckPeers(client::CheckArgs),
    /// Send one transaction to every peer of every protocol at once; exit 0 when at least
    /// one peer acknowledged.
    Broadcast(client::BroadcastArgs),
    /// Submit one transaction through DAGService (round robin over --endpoint, with fail-over).
    Submit(client::SubmitArgs),
    /// A transaction's status (UNKNOWN, PENDING, ORDERED, SEALED) and its header; exit 1
    /// when UNKNOWN.
    Status(client::StatusArgs),
    /// Print every transaction a node stores, one line each, from --from-seq and then as
    /// they are stored; resumes after the last one printed when the node restarts.
    Subscribe(client::SubscribeArgs),
    /// List a holder's transactions by poh_seq (PohService.List), a page at a time or
    /// --all of them.
    List(client::ListArgs),
    /// List a node's sealed headers by height (GET /v1/headers).
    Headers(client::HeadersArgs),
    /// Keep a node's transactions and sealed headers in PostgreSQL: follows its Subscribe
    /// stream from the cursor stored there (and its headers), each batch committed with the
    /// cursor; retries an unreachable node or database; SIGINT or SIGTERM stops it cleanly.
    Index(index::IndexArgs),
    /// Print a transaction's signing bytes and digest (hex), whether its signature verifies,
    /// and its JSON (signed with --sign-key), one JSON object per transaction; nothing is sent.
    Tx(tx::TxCommandArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions(docs::CompletionsArgs),
    /// Print the manual page (roff), or write one per command with --dir.
    Man(docs::ManArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if matches!(
        cli.command,
        Command::CheckPeers(_)
            | Command::Broadcast(_)
            | Command::Submit(_)
            | Command::Status(_)
            | Command::Subscribe(_)
            | Command::List(_)
            | Command::Headers(_)
    ) {
        // Warnings only (an unverified server, say): the answer itself goes to stdout.
        init_logging("warn");
    }
    let result = match cli.command {
        Command::Serve(args) => serve::serve(&args),
        Command::ServeGrpc(args) => serve::serve_one(&args, serve::Only::Grpc),
        Command::ServeHttp(args) => serve::serve_one(&args, serve::Only::Http),
        Command::ListenUdp(args) => serve::serve_one(&args, serve::Only::Udp),
        Command::Keygen(args) => keygen::run(&args),
        Command::Certs(args) => certs::run(&args),
        Command::Fingerprint(args) => certs::fingerprint(&args),
        Command::Verify(args) => verify::verify(&args),
        Command::Audit(args) => audit::audit(&args),
        Command::Export(args) => chain::export(&args),
        Command::Promote(args) => chain::promote(&args),
        Command::Prove(args) => prove::prove(&args),
        Command::Restore(args) => restore::restore(&args),
        Command::Migrate(args) => migrate::run(&args),
        Command::GenerateLog(args) => verify::generate(&args),
        Command::Bench(bench) => bench::run(&bench),
        Command::AddPeer(args) => peers::add(&args),
        Command::RemovePeer(args) => peers::remove(&args),
        Command::ListPeers(args) => peers::list(&args),
        Command::CheckPeers(args) => client::check_peers(&args),
        Command::Broadcast(args) => client::broadcast(&args),
        Command::Submit(args) => client::submit(&args),
        Command::Status(args) => client::status(&args),
        Command::Subscribe(args) => client::subscribe(&args),
        Command::Headers(args) => client::headers(&args),
        Command::List(args) => client::list(&args),
        Command::Index(args) => index::index(&args),
        Command::Tx(args) => tx::tx(&args),
        Command::Completions(args) => docs::completions(&args),
        Command::Man(args) => docs::man(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Creates `path` for writing, refusing to replace an existing file unless `force`; on Unix
/// the file is created with `mode`, so a secret is never readable by others, not even briefly.
fn create_file(path: &PathBuf, force: bool, mode: u32) -> anyhow::Result<std::fs::File> {
    use anyhow::Context as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true);
    if force {
        options.create(true).truncate(true);
    } else {
        options.create_new(true);
    }
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, mode);
    #[cfg(not(unix))]
    let _ = mode;
    options.open(path).with_context(|| {
        if path.exists() && !force {
            format!("{} exists; pass --force to replace it", path.display())
        } else {
            format!("cannot create {}", path.display())
        }
    })
}

/// Logs to stderr, filtered by `RUST_LOG` (default: `default`).
fn init_logging(default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    use std::io::IsTerminal as _;
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .try_init();
}
