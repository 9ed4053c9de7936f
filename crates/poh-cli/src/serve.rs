//! `poh serve`, `poh serve-grpc`, `poh serve-http`: run a node.
//!
//! Settings come from flags, then `POH_*` environment variables (clap reads both, flags
//! first), then the TOML file given by `--config`, then the defaults. The node stops
//! gracefully on SIGINT or SIGTERM and the process exits 0 once everything is flushed. SIGHUP
//! reads the settings again and applies what can change live (the TLS certificate and key,
//! client CA and allow-list, token file and JWT keys, and `[limits]`); a flag still wins over
//! the file, so a setting to be changed this way belongs in the file.

use std::{net::IpAddr, path::PathBuf};

use anyhow::Context as _;
use poh_core::{Level, PohMode};
use poh_node::{
    Node, NodeConfig,
    config::{ChildConfig, Span},
};

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
    /// The peers file: served by GET /v1/peers, relayed to, health-checked [default: ~/.poh_peers.json].
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
    /// TLS certificate chain (PEM) for every listener; with --tls-key.
    #[arg(long, env = "POH_TLS_CERT")]
    tls_cert: Option<PathBuf>,
    /// Its private key (PEM).
    #[arg(long, env = "POH_TLS_KEY")]
    tls_key: Option<PathBuf>,
    /// A PKCS#12 bundle instead of --tls-cert/--tls-key; its password comes from
    /// --tls-pkcs12-password-file or POH_TLS_PKCS12_PASSWORD, never a flag.
    #[arg(long, env = "POH_TLS_PKCS12")]
    tls_pkcs12: Option<PathBuf>,
    /// The file holding the PKCS#12 password.
    #[arg(long, env = "POH_TLS_PKCS12_PASSWORD_FILE")]
    tls_pkcs12_password_file: Option<PathBuf>,
    /// Require client certificates issued by this CA (mutual TLS); peers are checked against it.
    #[arg(long, env = "POH_TLS_CA")]
    tls_ca: Option<PathBuf>,
    /// A client identity allowed in (certificate CN or SAN; repeat); default: any the CA issued.
    #[arg(long = "tls-allow", env = "POH_TLS_ALLOW", value_delimiter = ',')]
    tls_allow: Vec<String>,
    /// Bearer tokens clients must send (one per line, compared in constant time).
    #[arg(long, env = "POH_AUTH_TOKEN_FILE")]
    auth_token_file: Option<PathBuf>,
    /// Accept HS256 JWTs signed with the secret in this file (exp and nbf are checked).
    #[arg(long, env = "POH_JWT_HS256_SECRET_FILE")]
    jwt_hs256_secret_file: Option<PathBuf>,
    /// Accept EdDSA JWTs verified with this Ed25519 public key (PEM).
    #[arg(long, env = "POH_JWT_EDDSA_PUBLIC_KEY_FILE")]
    jwt_eddsa_public_key_file: Option<PathBuf>,
    /// JWTs must carry exactly this `iss`.
    #[arg(long, env = "POH_JWT_ISSUER")]
    jwt_issuer: Option<String>,
    /// JWTs must carry this `aud`.
    #[arg(long, env = "POH_JWT_AUDIENCE")]
    jwt_audience: Option<String>,
    /// Forward each newly stored transaction to the peers in the peers file, once.
    #[arg(long, env = "POH_RELAY", num_args = 0..=1, default_missing_value = "true")]
    relay: Option<bool>,
    /// Accept any certificate from peers, unverified (development only; logged as a warning).
    /// Without it, peers are verified against --tls-ca, their pin, or the system's roots.
    #[arg(long, env = "POH_INSECURE", num_args = 0..=1, default_missing_value = "true")]
    insecure: Option<bool>,
    /// Store UDP datagrams even when client authentication is on (they carry no credentials).
    #[arg(long, env = "POH_UDP_ALLOW_UNAUTHENTICATED")]
    udp_allow_unauthenticated: bool,
    /// This chain's federation level: municipality, continental or global
    /// [default: municipality].
    #[arg(long, env = "POH_LEVEL")]
    level: Option<Level>,
    /// The parent's gRPC address (host:port, or https://host:port for TLS verified against
    /// the system roots unless --tls-ca or a pin is given), where this node pushes its headers.
    #[arg(long, env = "POH_PARENT")]
    parent: Option<String>,
    /// The ML-DSA-87 key headers are signed with (from `poh keygen`)
    /// [default: <data-dir>/node.key, made on first start].
    #[arg(long, env = "POH_NODE_KEY")]
    node_key: Option<PathBuf>,
    /// Run as a replica of the primary at this gRPC address (host:port, or https://host:port):
    /// copy its chain, verified, serve its reads, and refuse writes (SPEC §10). Dialled with
    /// the peers' TLS settings and token.
    #[arg(long, env = "POH_FOLLOW")]
    follow: Option<String>,
    /// On a replica: the chain's public key file (`.pub` from `poh keygen`) every copied
    /// header must be signed with [default: the key of the first header copied].
    #[arg(long, env = "POH_CHAIN_KEY")]
    chain_key: Option<PathBuf>,
    /// Answer a write only once this many replicas hold it durably (they acknowledge after
    /// their fsync), so promoting one of them loses nothing acknowledged [default: 0].
    #[arg(long, env = "POH_MIN_REPLICA_ACKS")]
    min_replica_acks: Option<usize>,
    /// A child chain whose headers this node accepts, as
    /// CHAIN_ID=PUBKEY_FILE[@HASHES_PER_TICK]: the `.pub` file `poh keygen` writes, and the
    /// child's hashes_per_tick (default: this node's own); repeat for each child.
    #[arg(long = "child", value_parser = parse_child)]
    children: Vec<ChildConfig>,
    /// Shortest time between two headers, in seconds [default: 1].
    #[arg(long, env = "POH_MIN_BATCH_INTERVAL")]
    min_batch_interval: Option<f64>,
    /// Longest time between two headers, in seconds; an idle node seals an empty header this
    /// often [default: 10].
    #[arg(long, env = "POH_MAX_BATCH_INTERVAL")]
    max_batch_interval: Option<f64>,
    /// Sealed transactions received longer ago than this leave the store (e.g. 7d, 12h);
    /// their PoH entries and headers stay [default: never].
    #[arg(long, env = "POH_TTL")]
    ttl: Option<Span>,
    /// How often the TTL sweep runs [default: 1m].
    #[arg(long, env = "POH_TTL_SWEEP_INTERVAL")]
    ttl_sweep_interval: Option<Span>,
    /// How often to catch up from the gRPC peers (Sync); 0s turns it off [default: 30s].
    #[arg(long, env = "POH_SYNC_INTERVAL")]
    sync_interval: Option<Span>,
    /// How often to look for missing parents and ask the peers (Repair); 0s turns it off
    /// [default: 1s].
    #[arg(long, env = "POH_REPAIR_INTERVAL")]
    repair_interval: Option<Span>,
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
    /// Turn the gRPC listener off.
    #[arg(long, env = "POH_NO_GRPC")]
    no_grpc: bool,
    /// Turn the HTTP listener off.
    #[arg(long, env = "POH_NO_HTTP")]
    no_http: bool,
    /// Turn the UDP listener off (datagrams carry no credentials: with authentication on,
    /// UDP must be off or --udp-allow-unauthenticated).
    #[arg(long, env = "POH_NO_UDP", conflicts_with = "udp_allow_unauthenticated")]
    no_udp: bool,
    /// Turn the QUIC listener off (with authentication on, QUIC needs --tls-ca).
    #[arg(long, env = "POH_NO_QUIC")]
    no_quic: bool,
    /// Print the effective configuration (flags, then POH_* variables, then the --config
    /// file, then the defaults) as TOML with secrets masked, check it, and exit without
    /// starting the node.
    #[arg(long)]
    print_config: bool,
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
    /// The store's directory [default: <base>/store].
    #[arg(long)]
    db: Option<PathBuf>,
}

fn parse_child(s: &str) -> Result<ChildConfig, String> {
    const FORM: &str = "expected CHAIN_ID=PUBKEY_FILE[@HASHES_PER_TICK]";
    let (chain_id, rest) = s.split_once('=').ok_or(FORM)?;
    // A key file's name may hold '@'; only a number after the last one is a tick rate.
    let (file, hashes_per_tick) = match rest.rsplit_once('@') {
        Some((file, n)) if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => {
            let n = n
                .parse::<u64>()
                .map_err(|_| format!("{FORM}: {n} is not a hashes_per_tick"))?;
            (file, Some(n))
        }
        _ => (rest, None),
    };
    if chain_id.is_empty() || file.is_empty() {
        return Err(FORM.into());
    }
    Ok(ChildConfig {
        chain_id: chain_id.to_string(),
        public_key_file: PathBuf::from(file),
        hashes_per_tick,
    })
}

fn parse_mode(s: &str) -> Result<PohMode, String> {
    match s {
        "paced" => Ok(PohMode::Paced),
        "unpaced" => Ok(PohMode::Unpaced),
        "low-power" | "low_power" => Ok(PohMode::LowPower),
        _ => Err("expected paced, unpaced or low-power".into()),
    }
}

/// The TOML config file at `path`, or the defaults without one (no flags applied).
pub(crate) fn load_config(path: Option<&std::path::Path>) -> anyhow::Result<NodeConfig> {
    Ok(match path {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read the config file {}", path.display()))?;
            NodeConfig::from_toml(&text)
                .with_context(|| format!("config file {}", path.display()))?
        }
        None => NodeConfig::default(),
    })
}

impl NodeArgs {
    /// The TOML file (or the defaults), with every given flag or variable applied on top.
    pub fn resolve(&self) -> anyhow::Result<NodeConfig> {
        let mut config = load_config(self.config.as_deref())?;
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
        let federation = &mut config.federation;
        set(&mut federation.level, &self.level);
        set(&mut federation.parent, &self.parent.clone().map(Some));
        set(&mut federation.node_key, &self.node_key.clone().map(Some));
        set(&mut federation.min_batch_interval, &self.min_batch_interval);
        set(&mut federation.max_batch_interval, &self.max_batch_interval);
        if !self.children.is_empty() {
            federation.children = self.children.clone();
        }
        set(&mut config.replica.follow, &self.follow.clone().map(Some));
        set(
            &mut config.replica.chain_key,
            &self.chain_key.clone().map(Some),
        );
        set(&mut config.replica.min_replica_acks, &self.min_replica_acks);
        set(&mut config.ttl.after, &self.ttl.map(Some));
        set(&mut config.ttl.sweep_interval, &self.ttl_sweep_interval);
        set(&mut config.repair.sync_interval, &self.sync_interval);
        set(&mut config.repair.repair_interval, &self.repair_interval);
        if self.auth_token_file.is_some()
            || self.jwt_hs256_secret_file.is_some()
            || self.jwt_eddsa_public_key_file.is_some()
        {
            let auth = config.auth.get_or_insert_with(Default::default);
            set(
                &mut auth.token_file,
                &self.auth_token_file.clone().map(Some),
            );
            set(
                &mut auth.jwt_hs256_secret_file,
                &self.jwt_hs256_secret_file.clone().map(Some),
            );
            set(
                &mut auth.jwt_eddsa_public_key_file,
                &self.jwt_eddsa_public_key_file.clone().map(Some),
            );
        }
        if let Some(auth) = config.auth.as_mut() {
            set(&mut auth.jwt_issuer, &self.jwt_issuer.clone().map(Some));
            set(&mut auth.jwt_audience, &self.jwt_audience.clone().map(Some));
        }
        if self.tls_cert.is_some()
            || self.tls_key.is_some()
            || self.tls_pkcs12.is_some()
            || self.tls_ca.is_some()
            || !self.tls_allow.is_empty()
            || self.insecure.is_some()
        {
            let tls = config.tls.get_or_insert_with(Default::default);
            if self.tls_cert.is_some() || self.tls_key.is_some() {
                tls.cert = self.tls_cert.clone();
                tls.key = self.tls_key.clone();
                tls.pkcs12 = None;
            }
            if self.tls_pkcs12.is_some() {
                tls.pkcs12 = self.tls_pkcs12.clone();
                tls.cert = None;
                tls.key = None;
            }
            set(
                &mut tls.pkcs12_password_file,
                &self.tls_pkcs12_password_file.clone().map(Some),
            );
            set(&mut tls.ca, &self.tls_ca.clone().map(Some));
            if !self.tls_allow.is_empty() {
                tls.allowed_clients = self.tls_allow.clone();
            }
            set(&mut tls.insecure, &self.insecure);
        }
        if let Some(udp) = config.udp.as_mut() {
            udp.allow_unauthenticated |= self.udp_allow_unauthenticated;
        }
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
    let config = serve_config(args)?;
    if args.print_config {
        print!("{}", effective_toml(&config)?);
        return config
            .validate()
            .context("this configuration cannot start a node");
    }
    run(config, || serve_config(args))
}

/// What `poh serve` runs with: the node's settings, then its listeners'.
fn serve_config(args: &ServeArgs) -> anyhow::Result<NodeConfig> {
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
    if args.no_grpc {
        config.grpc = None;
    }
    if args.no_http {
        config.http = None;
    }
    if args.no_udp {
        config.udp = None;
    }
    if args.no_quic {
        config.quic = None;
    }
    Ok(config)
}

/// The configuration as TOML that `--config` reads back to the same settings. Secrets stay
/// out of it: key ids show only their last four characters, and the files that hold secrets
/// (tokens, keys, passwords) are named, never read.
fn effective_toml(config: &NodeConfig) -> anyhow::Result<String> {
    let mut shown = config.clone();
    if let Some(id) = shown.fragments.s3.access_key_id.as_mut() {
        *id = mask(id);
    }
    toml::to_string(&shown).context("cannot print the configuration as TOML")
}

fn mask(secret: &str) -> String {
    let chars: Vec<char> = secret.chars().collect();
    match chars.len() {
        0..=8 => "****".into(),
        n => format!("****{}", chars[n - 4..].iter().collect::<String>()),
    }
}

/// Which single listener `serve-grpc` / `serve-http` / `listen-udp` runs.
pub enum Only {
    Grpc,
    Http,
    Udp,
}

pub fn serve_one(args: &ServeOneArgs, only: Only) -> anyhow::Result<()> {
    run(one_config(args, &only)?, || one_config(args, &only))
}

/// What a one-listener command runs with.
fn one_config(args: &ServeOneArgs, only: &Only) -> anyhow::Result<NodeConfig> {
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
    Ok(config)
}

/// Runs a node with `config` until SIGINT or SIGTERM; on SIGHUP, applies `reread()` (the
/// flags, variables and config file read again) where it can change live.
fn run(config: NodeConfig, reread: impl Fn() -> anyhow::Result<NodeConfig>) -> anyhow::Result<()> {
    crate::init_logging("info");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("poh-rt")
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let node = Node::spawn(config).await?;
        let stop = node.shutdown_token();
        let mut signals = Signals::new();
        loop {
            tokio::select! {
                // The node stopping by itself (a failure) ends the wait too.
                () = stop.cancelled() => break,
                signal = signals.next() => match signal {
                    Signal::Reload => {
                        tracing::info!("SIGHUP: reading the configuration and its files again");
                        match reread() {
                            // Success and failure are both logged by the node.
                            Ok(config) => { let _ = node.reload(&config); }
                            Err(e) => node.reload_failed(&format!("{e:#}")),
                        }
                    }
                    Signal::Stop => {
                        tracing::info!("signal received: finishing in-flight work, then stopping");
                        stop.cancel();
                        break;
                    }
                },
            }
        }
        node.join().await?;
        Ok(())
    })
}

enum Signal {
    /// SIGINT or SIGTERM.
    Stop,
    /// SIGHUP.
    Reload,
}

/// The signals a node acts on.
struct Signals {
    #[cfg(unix)]
    term: Option<tokio::signal::unix::Signal>,
    #[cfg(unix)]
    hangup: Option<tokio::signal::unix::Signal>,
}

impl Signals {
    fn new() -> Self {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Self {
                term: signal(SignalKind::terminate()).ok(),
                hangup: signal(SignalKind::hangup()).ok(),
            }
        }
        #[cfg(not(unix))]
        Self {}
    }

    async fn next(&mut self) -> Signal {
        #[cfg(unix)]
        {
            let term = async {
                match &mut self.term {
                    Some(term) => term.recv().await,
                    None => std::future::pending().await,
                }
            };
            let hangup = async {
                match &mut self.hangup {
                    Some(hangup) => hangup.recv().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = tokio::signal::ctrl_c() => Signal::Stop,
                _ = term => Signal::Stop,
                _ = hangup => Signal::Reload,
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
            Signal::Stop
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_child_is_a_chain_a_key_file_and_maybe_a_tick_rate() {
        let plain = parse_child("municipality/tokyo=keys/tokyo.key.pub").unwrap();
        assert_eq!(plain.chain_id, "municipality/tokyo");
        assert_eq!(plain.public_key_file, PathBuf::from("keys/tokyo.key.pub"));
        assert_eq!(plain.hashes_per_tick, None);
        let rated = parse_child("municipality/tokyo=tokyo.pub@12500").unwrap();
        assert_eq!(rated.public_key_file, PathBuf::from("tokyo.pub"));
        assert_eq!(rated.hashes_per_tick, Some(12_500));
        // An '@' that is not followed by a number belongs to the file's name.
        let at = parse_child("municipality/tokyo=keys@home/tokyo.pub").unwrap();
        assert_eq!(at.public_key_file, PathBuf::from("keys@home/tokyo.pub"));
        for bad in [
            "tokyo.pub",
            "=tokyo.pub",
            "municipality/tokyo=",
            "a=b@99999999999999999999",
        ] {
            assert!(parse_child(bad).is_err(), "{bad}");
        }
    }
}
