//! The client commands: `broadcast` (every peer, every protocol), `submit` (DAGService, round
//! robin over `--endpoint`s with fail-over), `status TX_ID`, and `check-peers`.

use std::{
    path::PathBuf,
    sync::atomic::{AtomicUsize, Ordering},
    time::Duration,
};

use anyhow::{Context as _, bail};
use poh_core::{SigningKey, Tx};
use poh_node::{
    PeerBook, PeerProtocol,
    broadcast::{BroadcastReport, Broadcaster, ClientTls, Delivery, grpc_channel},
    config::PeersConfig,
    tls::ServerTrust,
};
use poh_proto::v1::{self as pb, dag_service_client::DagServiceClient};
use serde_json::json;

/// TLS towards the nodes: trust a CA (or pin a certificate), present a certificate (mTLS).
#[derive(clap::Args, Debug, Default)]
pub struct TlsArgs {
    /// Trust servers whose certificate this CA issued (PEM); turns TLS on for gRPC.
    #[arg(long, env = "POH_TLS_CA")]
    tls_ca: Option<PathBuf>,
    /// Trust exactly the server certificate with this SHA-256 fingerprint (hex).
    #[arg(long, conflicts_with = "tls_ca", value_parser = poh_node::tls::parse_pin)]
    tls_pin: Option<String>,
    /// This client's certificate (PEM), for mutual TLS.
    #[arg(long, env = "POH_TLS_CERT", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// Its private key (PEM).
    #[arg(long, env = "POH_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// A file whose first line is the bearer token (or JWT) to send.
    #[arg(long, env = "POH_TOKEN_FILE")]
    token_file: Option<PathBuf>,
}

impl TlsArgs {
    fn client_tls(&self) -> anyhow::Result<ClientTls> {
        let trust = match (&self.tls_ca, &self.tls_pin) {
            (Some(ca), _) => ServerTrust::Ca(ca.clone()),
            (None, Some(pin)) => ServerTrust::Pinned(pin.clone()),
            (None, None) => ServerTrust::AnyCertificate,
        };
        let identity = match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => Some(poh_node::tls::Identity::from_pem(cert, key)?),
            _ => None,
        };
        let token = self
            .token_file
            .as_deref()
            .map(poh_node::auth::read_token_file)
            .transpose()?;
        Ok(ClientTls {
            trust,
            identity,
            token,
        })
    }
}

/// The transaction to send: from flags, or a JSON file in the `POST /v1/tx` shape.
#[derive(clap::Args, Debug)]
pub struct TxArgs {
    /// The transaction's id.
    #[arg(long, required_unless_present = "tx_file", conflicts_with = "tx_file")]
    tx_id: Option<String>,
    /// Who holds it.
    #[arg(long, default_value = "")]
    holder_id: String,
    /// The payload, as text.
    #[arg(long, conflicts_with = "payload_file")]
    payload: Option<String>,
    /// The payload, from a file (any bytes).
    #[arg(long)]
    payload_file: Option<PathBuf>,
    /// Unix seconds [default: now].
    #[arg(long)]
    timestamp: Option<f64>,
    /// A DAG parent (repeat for several).
    #[arg(long = "parent")]
    parents: Vec<String>,
    /// A JSON transaction as `POST /v1/tx` takes it (instead of the fields above).
    #[arg(long)]
    tx_file: Option<PathBuf>,
    /// Sign with this ML-DSA-87 key (written by `poh keygen`).
    #[arg(long)]
    sign_key: Option<PathBuf>,
}

impl TxArgs {
    fn build(&self) -> anyhow::Result<Tx> {
        let mut all = self.build_all()?;
        match (all.pop(), all.is_empty()) {
            (Some(tx), true) => Ok(tx),
            _ => bail!("give exactly one transaction here (the file holds several)"),
        }
    }

    /// The transactions: one from the flags or a JSON object, or each of a JSON array.
    fn build_all(&self) -> anyhow::Result<Vec<Tx>> {
        let mut txs = match &self.tx_file {
            Some(path) => {
                let bytes = std::fs::read(path)
                    .with_context(|| format!("cannot read {}", path.display()))?;
                let bad = |e: String| {
                    anyhow::anyhow!(
                        "{} is not a JSON transaction or array of them: {e}",
                        path.display()
                    )
                };
                if bytes.trim_ascii_start().starts_with(b"[") {
                    let items: Vec<serde_json::Value> =
                        serde_json::from_slice(&bytes).map_err(|e| bad(e.to_string()))?;
                    items
                        .iter()
                        .map(|item| {
                            let one = serde_json::to_vec(item).map_err(|e| bad(e.to_string()))?;
                            poh_node::tx_from_json(&one).map_err(bad)
                        })
                        .collect::<anyhow::Result<Vec<_>>>()?
                } else {
                    vec![poh_node::tx_from_json(&bytes).map_err(bad)?]
                }
            }
            None => {
                let payload = match (&self.payload, &self.payload_file) {
                    (Some(text), _) => text.clone().into_bytes(),
                    (None, Some(path)) => std::fs::read(path)
                        .with_context(|| format!("cannot read {}", path.display()))?,
                    (None, None) => bail!("give --payload TEXT or --payload-file FILE"),
                };
                vec![Tx {
                    tx_id: self.tx_id.clone().unwrap_or_default(),
                    holder_id: self.holder_id.clone(),
                    timestamp: self.timestamp.unwrap_or_else(unix_now),
                    payload,
                    parent_ids: self.parents.clone(),
                    ..Tx::default()
                }]
            }
        };
        if let Some(path) = &self.sign_key {
            let seed = std::fs::read(path)
                .with_context(|| format!("cannot read the key {}", path.display()))?;
            let key = SigningKey::from_key_file(&seed)
                .with_context(|| format!("{} is not a poh keygen key", path.display()))?;
            for tx in &mut txs {
                tx.sign(&key).context("cannot sign")?;
            }
        }
        Ok(txs)
    }
}

fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

fn peers_file(given: &Option<PathBuf>) -> anyhow::Result<PeerBook> {
    Ok(PeerBook::new(match given {
        Some(p) => p.clone(),
        None => PeerBook::default_path()?,
    }))
}

/// `poh broadcast`.
#[derive(clap::Args, Debug)]
pub struct BroadcastArgs {
    #[command(flatten)]
    tx: TxArgs,
    /// The peers file [default: ~/.poh_peers.json].
    #[arg(long, env = "POH_PEERS_FILE")]
    peers_file: Option<PathBuf>,
    /// Milliseconds each peer may take, retries included.
    #[arg(long, default_value_t = 2000)]
    timeout_ms: u64,
    /// One JSON object instead of lines.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    tls: TlsArgs,
}

/// The peers to talk to (at least one) and the settings for `timeout_ms`.
fn peers_and_settings(
    file: &Option<PathBuf>,
    timeout_ms: u64,
) -> anyhow::Result<(poh_node::Peers, PeersConfig)> {
    let peers = peers_file(file)?.load()?;
    if peers.is_empty() {
        bail!("no peers: add some with `poh add-peer PROTOCOL ADDR`");
    }
    let settings = PeersConfig {
        timeout_ms: timeout_ms.max(1),
        ..PeersConfig::default()
    };
    Ok((peers, settings))
}

pub fn broadcast(args: &BroadcastArgs) -> anyhow::Result<()> {
    let tx = args.tx.build()?;
    let tls = args.tls.client_tls()?;
    let (peers, settings) = peers_and_settings(&args.peers_file, args.timeout_ms)?;
    let report = runtime()?.block_on(async {
        let broadcaster = Broadcaster::new(settings, tls, None).await?;
        let report = broadcaster.broadcast(&peers, &tx).await;
        broadcaster.close();
        anyhow::Ok(report)
    })?;
    print_report(&tx.tx_id, &report, &peers, args.json)?;
    if !report.any_ok() {
        bail!("no peer acknowledged {}", tx.tx_id);
    }
    Ok(())
}

fn print_report(
    tx_id: &str,
    report: &BroadcastReport,
    peers: &poh_node::Peers,
    as_json: bool,
) -> anyhow::Result<()> {
    let (grpc_ok, http_ok, udp_ok, quic_ok) = report.summary();
    if as_json {
        let results: Vec<_> = report
            .peers
            .iter()
            .map(|r| {
                let mut v = json!({
                    "protocol": r.protocol.as_str(),
                    "peer": r.peer,
                    "ok": r.outcome.is_ok(),
                    "attempts": r.attempts,
                    "ms": r.elapsed.as_secs_f64() * 1e3,
                });
                match &r.outcome {
                    Ok(Delivery::Stored { poh_seq }) => {
                        v["result"] = "stored".into();
                        v["poh_seq"] = (*poh_seq).into();
                    }
                    Ok(Delivery::Duplicate { poh_seq }) => {
                        v["result"] = "duplicate".into();
                        v["poh_seq"] = (*poh_seq).into();
                    }
                    Ok(Delivery::Sent) => v["result"] = "sent".into(),
                    Err(e) => v["error"] = e.clone().into(),
                }
                v
            })
            .collect();
        let skipped: Vec<&str> = PeerProtocol::ALL
            .iter()
            .filter(|p| peers.get(**p).is_empty())
            .map(|p| p.as_str())
            .collect();
        let out = json!({
            "tx_id": tx_id,
            "peers": results,
            "skipped": skipped,
            "summary": {"grpc_ok": grpc_ok, "http_ok": http_ok, "udp_ok": udp_ok, "quic_ok": quic_ok},
        });
        println!("{}", serde_json::to_string(&out)?);
        return Ok(());
    }
    for protocol in PeerProtocol::ALL {
        if peers.get(protocol).is_empty() {
            println!("{:<5} skipped (no peers)", protocol.as_str());
        }
    }
    for r in &report.peers {
        let ms = r.elapsed.as_secs_f64() * 1e3;
        let retries = match r.attempts {
            0 | 1 => String::new(),
            n => format!(", {n} attempts"),
        };
        match &r.outcome {
            Ok(Delivery::Stored { poh_seq }) => println!(
                "{:<5} {} ok: stored, poh_seq {poh_seq} ({ms:.1} ms{retries})",
                r.protocol.as_str(),
                r.peer
            ),
            Ok(Delivery::Duplicate { poh_seq }) => println!(
                "{:<5} {} ok: duplicate, poh_seq {poh_seq} ({ms:.1} ms{retries})",
                r.protocol.as_str(),
                r.peer
            ),
            Ok(Delivery::Sent) => println!(
                "{:<5} {} ok: sent (UDP has no reply) ({ms:.1} ms)",
                r.protocol.as_str(),
                r.peer
            ),
            Err(e) => println!(
                "{:<5} {} FAILED: {e} ({ms:.1} ms{retries})",
                r.protocol.as_str(),
                r.peer
            ),
        }
    }
    println!("grpc_ok={grpc_ok} http_ok={http_ok} udp_ok={udp_ok} quic_ok={quic_ok}");
    Ok(())
}

/// Endpoints tried in turn: each call starts at the next one (round robin) and moves past
/// endpoints that cannot be reached.
struct Endpoints {
    channels: Vec<(String, tonic::transport::Channel)>,
    next: AtomicUsize,
    bearer: Option<tonic::metadata::MetadataValue<tonic::metadata::Ascii>>,
}

impl Endpoints {
    fn new(endpoints: &[String], timeout: Duration, tls: &TlsArgs) -> anyhow::Result<Self> {
        let client = tls.client_tls()?;
        let config = client.grpc_config()?;
        let bearer = match &client.token {
            Some(t) => Some(
                format!("Bearer {t}")
                    .parse()
                    .context("the token has characters a header cannot carry")?,
            ),
            None => None,
        };
        let channels = endpoints
            .iter()
            .map(|e| {
                let channel = grpc_channel(e, config.as_ref(), timeout)
                    .map_err(|why| anyhow::anyhow!("--endpoint {e}: {why}"))?;
                Ok((e.clone(), channel))
            })
            .collect::<anyhow::Result<_>>()?;
        Ok(Self {
            channels,
            next: AtomicUsize::new(0),
            bearer,
        })
    }

    /// `message` as a request carrying the bearer token, when there is one.
    fn request<T>(&self, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        if let Some(b) = &self.bearer {
            request.metadata_mut().insert("authorization", b.clone());
        }
        request
    }

    /// Runs `call` on the next endpoint, failing over while the error is that the endpoint is
    /// unreachable; the answer and the endpoint that gave it.
    async fn call<T, F, Fut>(&self, mut call: F) -> anyhow::Result<(T, &str)>
    where
        F: FnMut(DagServiceClient<tonic::transport::Channel>) -> Fut,
        Fut: std::future::Future<Output = Result<T, tonic::Status>>,
    {
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let mut errors = Vec::new();
        for i in 0..self.channels.len() {
            let (name, channel) = &self.channels[(start + i) % self.channels.len()];
            match call(DagServiceClient::new(channel.clone())).await {
                Ok(answer) => return Ok((answer, name)),
                Err(status)
                    if matches!(
                        status.code(),
                        tonic::Code::Unavailable | tonic::Code::DeadlineExceeded
                    ) =>
                {
                    errors.push(format!("{name}: {}", status.message()));
                }
                Err(status) => bail!("{name}: {:?}: {}", status.code(), status.message()),
            }
        }
        bail!("no endpoint answered ({})", errors.join("; "))
    }
}

/// `poh submit`.
#[derive(clap::Args, Debug)]
pub struct SubmitArgs {
    #[command(flatten)]
    tx: TxArgs,
    /// A node's gRPC address (repeat for several: round robin, failing over past one that is
    /// down).
    #[arg(long = "endpoint", default_value = "127.0.0.1:50051")]
    endpoints: Vec<String>,
    /// Milliseconds to wait for one endpoint.
    #[arg(long, default_value_t = 5000)]
    timeout_ms: u64,
    /// One JSON object instead of a line.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    tls: TlsArgs,
}

pub fn submit(args: &SubmitArgs) -> anyhow::Result<()> {
    let txs = args.tx.build_all()?;
    let runtime = runtime()?;
    // Channels are made inside the runtime: tonic spawns their workers on it.
    let _context = runtime.enter();
    let endpoints = Endpoints::new(
        &args.endpoints,
        Duration::from_millis(args.timeout_ms),
        &args.tls,
    )?;
    let mut rejected = 0;
    for tx in txs {
        let payload = String::from_utf8(tx.payload.clone()).with_context(|| {
            format!(
                "{}: DAGService carries the payload as UTF-8 text; use `poh broadcast` for other bytes",
                tx.tx_id
            )
        })?;
        let request = pb::TxRequest {
            tx_id: tx.tx_id.clone(),
            payload,
            parent_ids: tx.parent_ids.clone(),
            holder_id: tx.holder_id.clone(),
            timestamp: tx.timestamp,
            public_key: tx.public_key.clone(),
            signature: tx.signature.clone(),
        };
        let (answer, endpoint) = runtime.block_on(endpoints.call(|mut client| {
            let request = endpoints.request(request.clone());
            async move {
                client
                    .submit_transaction(request)
                    .await
                    .map(|r| r.into_inner())
            }
        }))?;
        if args.json {
            println!(
                "{}",
                json!({"tx_id": tx.tx_id, "endpoint": endpoint, "status": answer.status,
                       "message": answer.message, "poh_seq": answer.poh_seq})
            );
        } else {
            println!(
                "{}: {} via {endpoint}, poh_seq {}{}",
                tx.tx_id,
                answer.status,
                answer.poh_seq,
                if answer.message.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", answer.message)
                }
            );
        }
        if answer.status == "rejected" {
            rejected += 1;
        }
    }
    if rejected > 0 {
        bail!("{rejected} transaction(s) rejected");
    }
    Ok(())
}

/// `poh status`.
#[derive(clap::Args, Debug)]
pub struct StatusArgs {
    /// The transaction's id.
    tx_id: String,
    /// A node's gRPC address (repeat for several: fail-over).
    #[arg(long = "endpoint", default_value = "127.0.0.1:50051")]
    endpoints: Vec<String>,
    /// Milliseconds to wait for one endpoint.
    #[arg(long, default_value_t = 5000)]
    timeout_ms: u64,
    /// One JSON object instead of lines.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    tls: TlsArgs,
}

pub fn status(args: &StatusArgs) -> anyhow::Result<()> {
    let runtime = runtime()?;
    let _context = runtime.enter();
    let endpoints = Endpoints::new(
        &args.endpoints,
        Duration::from_millis(args.timeout_ms),
        &args.tls,
    )?;
    let request = pb::StatusRequest {
        tx_id: args.tx_id.clone(),
    };
    let (answer, _) = runtime.block_on(endpoints.call(|mut client| {
        let request = endpoints.request(request.clone());
        async move {
            client
                .query_transaction_status(request)
                .await
                .map(|r| r.into_inner())
        }
    }))?;
    let status =
        pb::TxStatus::try_from(answer.status).map_or("TX_STATUS_UNSPECIFIED", |s| s.as_str_name());
    if args.json {
        println!(
            "{}",
            json!({"tx_id": answer.tx_id, "status": status, "message": answer.message,
                   "poh_seq": answer.poh_seq, "poh_hash": hex::encode(&answer.poh_hash),
                   "parent_ids": answer.parent_ids, "header_id": answer.header_id})
        );
    } else {
        println!("{}: {status}", answer.tx_id);
        if !answer.poh_hash.is_empty() {
            println!("  poh_seq   {}", answer.poh_seq);
            println!("  poh_hash  {}", hex::encode(&answer.poh_hash));
        }
        if !answer.parent_ids.is_empty() {
            println!("  parents   {}", answer.parent_ids.join(", "));
        }
        if !answer.header_id.is_empty() {
            println!("  header    {}", answer.header_id);
        }
        if !answer.message.is_empty() {
            println!("  {}", answer.message);
        }
    }
    if status == "UNKNOWN" {
        bail!("{} is not known to the node", args.tx_id);
    }
    Ok(())
}

/// `poh check-peers`.
#[derive(clap::Args, Debug)]
pub struct CheckArgs {
    /// The peers file [default: ~/.poh_peers.json].
    #[arg(long, env = "POH_PEERS_FILE")]
    peers_file: Option<PathBuf>,
    /// Milliseconds each peer may take.
    #[arg(long, default_value_t = 2000)]
    timeout_ms: u64,
    /// One JSON object instead of lines.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    tls: TlsArgs,
}

pub fn check_peers(args: &CheckArgs) -> anyhow::Result<()> {
    let tls = args.tls.client_tls()?;
    let (peers, settings) = peers_and_settings(&args.peers_file, args.timeout_ms)?;
    let results = runtime()?.block_on(async {
        let broadcaster = Broadcaster::new(settings, tls, None).await?;
        let checks = peers.iter().map(|(protocol, peer)| {
            let (b, pin) = (&broadcaster, peers.pin(peer));
            async move { (protocol, peer, b.check(protocol, peer, pin).await) }
        });
        let results = futures_util::future::join_all(checks).await;
        broadcaster.close();
        anyhow::Ok(results)
    })?;
    let unreachable = results.iter().filter(|(_, _, r)| r.is_err()).count();
    if args.json {
        let rows: Vec<_> = results
            .iter()
            .map(|(protocol, peer, r)| match r {
                Ok(d) => json!({"protocol": protocol.as_str(), "peer": peer, "reachable": true,
                                "ms": d.as_secs_f64() * 1e3}),
                Err(e) => json!({"protocol": protocol.as_str(), "peer": peer, "reachable": false,
                                 "error": e}),
            })
            .collect();
        println!("{}", json!({"peers": rows, "unreachable": unreachable}));
    } else {
        for (protocol, peer, r) in &results {
            match (protocol, r) {
                (PeerProtocol::Udp, Ok(_)) => {
                    println!("udp   {peer} resolves (UDP has no reply to measure)")
                }
                (_, Ok(d)) => println!(
                    "{:<5} {peer} reachable ({:.1} ms)",
                    protocol.as_str(),
                    d.as_secs_f64() * 1e3
                ),
                (_, Err(e)) => println!("{:<5} {peer} UNREACHABLE: {e}", protocol.as_str()),
            }
        }
    }
    if unreachable > 0 {
        bail!("{unreachable} of {} peers unreachable", results.len());
    }
    Ok(())
}
