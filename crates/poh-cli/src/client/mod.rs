//! The client commands, one module each: [`broadcast`] (every peer, every protocol),
//! [`check`] (`check-peers`), [`submit`] (DAGService, round robin over `--endpoint`s with
//! fail-over), [`status`] (`status TX_ID`), [`subscribe`] (every transaction as it is stored),
//! [`list`] (a holder's transactions) and [`headers`] (a node's sealed headers); and what they share: the TLS and token flags,
//! the transaction flags, and the endpoints a call fails over between.

mod broadcast;
mod check;
mod headers;
mod list;
mod status;
mod submit;
mod subscribe;

pub use self::{
    broadcast::{BroadcastArgs, broadcast},
    check::{CheckArgs, check_peers},
    headers::{HeadersArgs, headers},
    list::{ListArgs, list},
    status::{StatusArgs, status},
    submit::{SubmitArgs, submit},
    subscribe::{SubscribeArgs, subscribe},
};

use std::{path::PathBuf, time::Duration};

use anyhow::{Context as _, bail};
use poh_core::{SigningKey, Tx};
use poh_node::{
    Peers,
    config::PeersConfig,
    network::client::{Bearer, ClientTls, Endpoints},
};

/// TLS towards the nodes: trust a CA (or pin a certificate), present a certificate (mTLS).
#[derive(clap::Args, Debug, Default)]
pub struct TlsArgs {
    /// Trust servers whose certificate this CA issued (PEM); turns TLS on for gRPC.
    #[arg(long, env = "POH_TLS_CA")]
    tls_ca: Option<PathBuf>,
    /// Trust exactly the server certificate with this SHA-256 fingerprint (hex).
    #[arg(long, conflicts_with = "tls_ca", value_parser = poh_node::tls::parse_pin)]
    tls_pin: Option<String>,
    /// Accept any server certificate, unverified (development only; every connection logs a
    /// warning). Without --tls-ca, --tls-pin or this, servers are verified against the
    /// system's trust roots.
    #[arg(long, env = "POH_INSECURE", conflicts_with_all = ["tls_ca", "tls_pin"])]
    insecure: bool,
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
    pub(crate) fn client_tls(&self) -> anyhow::Result<ClientTls> {
        Ok(ClientTls::from_files(
            self.tls_ca.as_deref(),
            self.tls_pin.as_deref(),
            self.insecure,
            self.tls_cert.as_deref().zip(self.tls_key.as_deref()),
            self.token_file.as_deref(),
        )?)
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
    pub(crate) fn build_all(&self) -> anyhow::Result<Vec<Tx>> {
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

/// A node's HTTP API as the read commands use it: a client that trusts the node per the TLS
/// flags, and the bearer token.
pub(crate) struct NodeHttp {
    client: reqwest::Client,
    base: String,
    token: Option<String>,
}

impl NodeHttp {
    /// Refuses a token for an `http://` URL off this machine unless `--insecure`.
    pub(crate) fn new(url: &str, tls: &TlsArgs, timeout: Duration) -> anyhow::Result<Self> {
        let tls = tls.client_tls()?;
        tls.check_url(url).with_context(|| format!("--url {url}"))?;
        let client =
            poh_node::network::client::http_client(timeout, &tls.trust, tls.identity.as_ref())?;
        Ok(Self {
            client,
            base: url.trim_end_matches('/').to_string(),
            token: tls.token.as_ref().map(Bearer::token),
        })
    }

    /// The node's address, for messages.
    pub(crate) fn base(&self) -> &str {
        &self.base
    }

    /// `GET base + path`, whatever the answer's status.
    pub(crate) async fn send(&self, path: &str) -> anyhow::Result<reqwest::Response> {
        let base = &self.base;
        let mut request = self.client.get(format!("{base}{path}"));
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        request
            .send()
            .await
            .with_context(|| format!("cannot reach {base}"))
    }

    /// `POST base + path` with no body; an answer other than a success is an error carrying
    /// its body.
    pub(crate) async fn post(&self, path: &str) -> anyhow::Result<reqwest::Response> {
        let base = &self.base;
        let mut request = self.client.post(format!("{base}{path}"));
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        let response = (request.send().await).with_context(|| format!("cannot reach {base}"))?;
        let status = response.status();
        if !status.is_success() {
            let body = response.text().await.unwrap_or_default();
            bail!("{base} answered {status}: {body}");
        }
        Ok(response)
    }

    /// `GET base + path`; an answer other than a success is an error carrying its body.
    pub(crate) async fn get(&self, path: &str) -> anyhow::Result<reqwest::Response> {
        let base = &self.base;
        let response = self.send(path).await?;
        let status = response.status();
        if !status.is_success() {
            let body = response.text().await.unwrap_or_default();
            bail!("{base} answered {status}: {body}");
        }
        Ok(response)
    }
}

pub(crate) fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// The peers a command reaches: the peers file, how long each may take, and how to trust
/// them.
#[derive(clap::Args, Debug)]
pub struct PeersArgs {
    #[command(flatten)]
    file: crate::peers::FileArg,
    /// Milliseconds each peer may take (a broadcast's retries included).
    #[arg(long, default_value_t = 2000)]
    timeout_ms: u64,
    #[command(flatten)]
    tls: TlsArgs,
}

impl PeersArgs {
    /// The peers (at least one), the settings for `--timeout-ms`, and the client TLS.
    fn load(&self) -> anyhow::Result<(Peers, PeersConfig, ClientTls)> {
        let tls = self.tls.client_tls()?;
        let peers = self.file.book()?.load()?;
        if peers.is_empty() {
            bail!("no peers: add some with `poh add-peer PROTOCOL ADDR`");
        }
        let settings = PeersConfig {
            timeout_ms: self.timeout_ms.max(1),
            ..PeersConfig::default()
        };
        Ok((peers, settings, tls))
    }
}

/// The nodes a DAGService command talks to.
#[derive(clap::Args, Debug)]
pub struct EndpointArgs {
    /// A node's gRPC address (repeat for several: each call starts at the next one, failing
    /// over past one that is down): `https://HOST:PORT` is always TLS; `HOST:PORT` is TLS
    /// when a TLS flag is given, else plaintext, which carries a token only to loopback.
    #[arg(long = "endpoint", default_value = "127.0.0.1:50051")]
    endpoints: Vec<String>,
    /// Milliseconds to wait for one endpoint.
    #[arg(long, default_value_t = 5000)]
    timeout_ms: u64,
    #[command(flatten)]
    tls: TlsArgs,
}

impl EndpointArgs {
    /// A runtime, and the endpoints' channels made on it (tonic spawns their workers there).
    fn connect(&self) -> anyhow::Result<(tokio::runtime::Runtime, Endpoints)> {
        let runtime = runtime()?;
        let endpoints = {
            let _context = runtime.enter();
            self.channels()?
        };
        Ok((runtime, endpoints))
    }

    /// The endpoints' channels, made on the runtime the caller is in.
    pub(crate) fn channels(&self) -> anyhow::Result<Endpoints> {
        Ok(Endpoints::new(
            &self.endpoints,
            self.timeout(),
            &self.tls.client_tls()?,
        )?)
    }

    /// How long one endpoint may take to answer.
    pub(crate) fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms.max(1))
    }

    /// The TLS and token flags, which a command that also reads the node's HTTP API uses
    /// there too.
    pub(crate) fn tls(&self) -> &TlsArgs {
        &self.tls
    }
}
