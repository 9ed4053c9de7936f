//! `poh serve`, `poh serve-grpc`, `poh serve-http`: run a node.
//!
//! Settings come from flags, then `POH_*` environment variables (clap reads both, flags
//! first), then the TOML file given by `--config`, then the defaults. The node stops
//! gracefully on SIGINT or SIGTERM and the process exits 0 once everything is flushed.

use std::{net::IpAddr, path::PathBuf};

use anyhow::Context as _;
use poh_core::PohMode;
use poh_node::{Node, NodeConfig};

/// Settings every node command takes.
#[derive(clap::Args, Debug, Default)]
pub struct NodeArgs {
    /// A TOML config file (see `poh.example.toml`); flags and POH_* variables override it.
    #[arg(long, env = "POH_CONFIG")]
    config: Option<PathBuf>,
    /// The chain's id, e.g. municipality/tokyo [default: local].
    #[arg(long, env = "POH_CHAIN_ID")]
    chain_id: Option<String>,
    /// The address every listener binds to [default: 127.0.0.1].
    #[arg(long, env = "POH_BIND")]
    bind: Option<IpAddr>,
    /// The peers file served by GET /v1/peers [default: ~/.poh_peers.json].
    #[arg(long, env = "POH_PEERS_FILE")]
    peers_file: Option<PathBuf>,
    /// Refuse unsigned transactions.
    #[arg(long, env = "POH_REQUIRE_SIGNATURES", num_args = 0..=1, default_missing_value = "true")]
    require_signatures: Option<bool>,
    /// Largest payload in bytes [default: 1048576].
    #[arg(long, env = "POH_MAX_PAYLOAD_BYTES")]
    max_payload_bytes: Option<usize>,
    /// PoH hash operations per tick [default: 12500].
    #[arg(long, env = "POH_HASHES_PER_TICK")]
    hashes_per_tick: Option<u64>,
    /// PoH ticks per second [default: 160].
    #[arg(long, env = "POH_TICKS_PER_SECOND")]
    ticks_per_second: Option<u64>,
    /// How the PoH generator runs: paced, unpaced, low-power [default: paced].
    #[arg(long, env = "POH_POH_MODE", value_parser = parse_mode)]
    poh_mode: Option<PohMode>,
    /// Acknowledge before fsync (benchmarks only: an acknowledged transaction may then be lost
    /// in a crash).
    #[arg(long, env = "POH_NO_FSYNC", num_args = 0..=1, default_missing_value = "true")]
    no_fsync: Option<bool>,
    /// Forward each newly stored transaction to the peers in the peers file, once.
    #[arg(long, env = "POH_RELAY", num_args = 0..=1, default_missing_value = "true")]
    relay: Option<bool>,
}

/// `poh serve`.
#[derive(clap::Args, Debug)]
pub struct ServeArgs {
    #[command(flatten)]
    node: NodeArgs,
    /// Where the embedded store lives [default: ./poh-data].
    #[arg(long, env = "POH_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// gRPC port [default: 50051].
    #[arg(long, env = "POH_GRPC_PORT")]
    grpc_port: Option<u16>,
    /// HTTP port [default: 8080].
    #[arg(long, env = "POH_HTTP_PORT")]
    http_port: Option<u16>,
    /// UDP port [default: 9000].
    #[arg(long, env = "POH_UDP_PORT")]
    udp_port: Option<u16>,
    /// QUIC port [default: 4433].
    #[arg(long, env = "POH_QUIC_PORT")]
    quic_port: Option<u16>,
}

/// `poh serve-grpc` / `poh serve-http`: one listener.
#[derive(clap::Args, Debug)]
pub struct ServeOneArgs {
    #[command(flatten)]
    node: NodeArgs,
    /// The listener's port [default: 50051 for gRPC, 8080 for HTTP].
    #[arg(long)]
    port: Option<u16>,
    /// The data directory [default: ./poh-data].
    #[arg(long, env = "POH_DATA_DIR")]
    base: Option<PathBuf>,
    /// The database file [default: <base>/poh.redb].
    #[arg(long)]
    db: Option<PathBuf>,
}

fn parse_mode(s: &str) -> Result<PohMode, String> {
    match s {
        "paced" => Ok(PohMode::Paced),
        "unpaced" => Ok(PohMode::Unpaced),
        "low-power" | "low_power" => Ok(PohMode::LowPower),
        _ => Err("expected paced, unpaced or low-power".into()),
    }
}

impl NodeArgs {
    /// The TOML file (or the defaults), with every given flag or variable applied on top.
    pub fn resolve(&self) -> anyhow::Result<NodeConfig> {
        let mut config = match &self.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read the config file {}", path.display()))?;
                NodeConfig::from_toml(&text)
                    .with_context(|| format!("config file {}", path.display()))?
            }
            None => NodeConfig::default(),
        };
        set(&mut config.chain_id, &self.chain_id);
        set(&mut config.bind, &self.bind);
        set(
            &mut config.ingest.require_signatures,
            &self.require_signatures,
        );
        set(
            &mut config.ingest.max_payload_bytes,
            &self.max_payload_bytes,
        );
        set(&mut config.poh.hashes_per_tick, &self.hashes_per_tick);
        set(&mut config.poh.ticks_per_second, &self.ticks_per_second);
        set(&mut config.poh.mode, &self.poh_mode);
        set(&mut config.relay, &self.relay);
        if let Some(no_fsync) = self.no_fsync {
            config.ingest.fsync = !no_fsync;
        }
        config.peers_file = self
            .peers_file
            .clone()
            .or(config.peers_file)
            .or_else(|| std::env::home_dir().map(|h| h.join(".poh_peers.json")));
        Ok(config)
    }
}

fn set<T: Clone>(target: &mut T, value: &Option<T>) {
    if let Some(v) = value {
        *target = v.clone();
    }
}

pub fn serve(args: &ServeArgs) -> anyhow::Result<()> {
    let mut config = args.node.resolve()?;
    set(&mut config.data_dir, &args.data_dir);
    if let (Some(grpc), Some(port)) = (config.grpc.as_mut(), args.grpc_port) {
        grpc.port = port;
    }
    if let (Some(http), Some(port)) = (config.http.as_mut(), args.http_port) {
        http.port = port;
    }
    if let (Some(udp), Some(port)) = (config.udp.as_mut(), args.udp_port) {
        udp.port = port;
    }
    if let (Some(quic), Some(port)) = (config.quic.as_mut(), args.quic_port) {
        quic.port = port;
    }
    run(config)
}

/// Which single listener `serve-grpc` / `serve-http` / `listen-udp` runs.
pub enum Only {
    Grpc,
    Http,
    Udp,
}

pub fn serve_one(args: &ServeOneArgs, only: Only) -> anyhow::Result<()> {
    let mut config = args.node.resolve()?;
    set(&mut config.data_dir, &args.base);
    if args.db.is_some() {
        config.db_file = args.db.clone();
    }
    config.quic = None;
    if !matches!(only, Only::Udp) {
        config.udp = None;
    }
    match only {
        Only::Udp => {
            config.grpc = None;
            config.http = None;
            let udp = config.udp.get_or_insert_with(Default::default);
            set(&mut udp.port, &args.port);
        }
        Only::Grpc => {
            config.http = None;
            let grpc = config.grpc.get_or_insert_with(Default::default);
            set(&mut grpc.port, &args.port);
        }
        Only::Http => {
            config.grpc = None;
            let http = config.http.get_or_insert_with(Default::default);
            set(&mut http.port, &args.port);
        }
    }
    run(config)
}

fn run(config: NodeConfig) -> anyhow::Result<()> {
    init_logging();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("poh-rt")
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let node = Node::spawn(config).await?;
        let stop = node.shutdown_token();
        tokio::spawn(async move {
            wait_for_signal().await;
            tracing::info!("signal received: finishing in-flight work, then stopping");
            stop.cancel();
        });
        node.join().await?;
        Ok(())
    })
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Logs to stderr, filtered by `RUST_LOG` (default `info`).
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    use std::io::IsTerminal as _;
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .try_init();
}
