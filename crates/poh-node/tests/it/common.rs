//! A real node on loopback ports, and the clients that talk to it.

use base64::{Engine as _, engine::general_purpose::STANDARD as B64};
use poh_core::{Entry, Hash, PohConfig, PohMode, SigningKey, Tx};
use poh_node::{
    Node, NodeConfig,
    config::{GrpcConfig, HttpConfig, QuicConfig, UdpConfig},
};
use poh_proto::v1::{dag_service_client::DagServiceClient, poh_service_client::PohServiceClient};
use reqwest::Client;
use serde_json::Value;
use tokio::time::Instant;
use tonic::transport::Channel;

/// Small PoH settings: the chain is real, but the generator costs almost no CPU, so many test
/// nodes can run at once.
pub const HASHES_PER_TICK: u64 = 500;

pub struct TestNode {
    pub node: Node,
    /// What it was started with.
    pub config: NodeConfig,
    /// Kept so the data directory lives as long as the node.
    pub _dir: tempfile::TempDir,
}

pub fn config(dir: &std::path::Path) -> NodeConfig {
    NodeConfig {
        data_dir: dir.to_path_buf(),
        grpc: Some(GrpcConfig {
            port: 0,
            ..GrpcConfig::default()
        }),
        http: Some(HttpConfig {
            port: 0,
            ..HttpConfig::default()
        }),
        udp: Some(UdpConfig {
            port: 0,
            ..UdpConfig::default()
        }),
        quic: Some(QuicConfig {
            port: 0,
            ..QuicConfig::default()
        }),
        poh: PohConfig {
            hashes_per_tick: HASHES_PER_TICK,
            ticks_per_second: 50,
            mode: PohMode::Paced,
        },
        ..NodeConfig::default()
    }
}

pub async fn start() -> TestNode {
    start_with(|_| {}).await
}

pub async fn start_with(change: impl FnOnce(&mut NodeConfig)) -> TestNode {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(dir.path());
    change(&mut config);
    TestNode::spawn(config, dir).await
}

impl TestNode {
    /// A node started with `config`, keeping `dir` as long as it runs.
    pub async fn spawn(config: NodeConfig, dir: tempfile::TempDir) -> Self {
        let node = Node::spawn(config.clone()).await.unwrap();
        Self {
            node,
            config,
            _dir: dir,
        }
    }

    /// Reloads with the settings it started with: every file read again, as when one changes.
    pub fn reload(&self) -> Result<(), poh_node::NodeError> {
        self.node.reload(&self.config)
    }

    pub fn http(&self, path: &str) -> String {
        format!("http://{}{path}", self.node.http_addr().unwrap())
    }

    pub async fn grpc(&self) -> PohServiceClient<Channel> {
        PohServiceClient::connect(format!("http://{}", self.node.grpc_addr().unwrap()))
            .await
            .unwrap()
    }

    pub async fn dag(&self) -> DagServiceClient<Channel> {
        DagServiceClient::connect(format!("http://{}", self.node.grpc_addr().unwrap()))
            .await
            .unwrap()
    }

    /// The SHA-256 fingerprint of the node's QUIC development certificate: what a client pins.
    pub fn quic_pin(&self) -> String {
        let certs = poh_node::tls::read_certs(&self._dir.path().join("quic-dev-cert.pem")).unwrap();
        poh_node::tls::fingerprint(&certs[0])
    }

    pub async fn stop(self) {
        self.node.shutdown();
        self.node.join().await.unwrap();
    }

    /// Stops the node and starts it again on the same data directory and settings.
    pub async fn restart(self) -> Self {
        self.node.shutdown();
        self.node.join().await.unwrap();
        Self::spawn(self.config, self._dir).await
    }
}

pub fn tx(id: &str) -> Tx {
    Tx {
        tx_id: id.into(),
        holder_id: "alice".into(),
        timestamp: 1_700_000_000.25,
        payload: format!("payload of {id}").into_bytes(),
        ..Tx::default()
    }
}

pub fn signed(id: &str, key: &SigningKey) -> Tx {
    let mut t = tx(id);
    t.sign(key).unwrap();
    t
}

pub fn pb(tx: &Tx) -> poh_proto::v1::Tx {
    poh_node::tx_to_pb(tx.clone())
}

pub fn json(tx: &Tx) -> serde_json::Value {
    let mut v = serde_json::json!({
        "tx_id": tx.tx_id,
        "holder_id": tx.holder_id,
        "timestamp": tx.timestamp,
        "payload_b64": B64.encode(&tx.payload),
        "parent_ids": tx.parent_ids,
    });
    if !tx.public_key.is_empty() {
        v["public_key_b64"] = B64.encode(&tx.public_key).into();
        v["signature_b64"] = B64.encode(&tx.signature).into();
    }
    v
}

/// Stores `txs` with one `POST /v1/tx/batch`, every one new; their `poh_seq`s.
pub async fn submit_batch(c: &Client, node: &TestNode, txs: &[Tx]) -> Vec<u64> {
    let body: Vec<serde_json::Value> = txs.iter().map(json).collect();
    let answer: Vec<serde_json::Value> = c
        .post(node.http("/v1/tx/batch"))
        .json(&body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(answer.iter().all(|a| a["status"] == "stored"), "{answer:?}");
    answer
        .iter()
        .map(|a| a["poh_seq"].as_u64().unwrap())
        .collect()
}

/// Every stored entry, from `/v1/poh/entries` pages, and the start hash of entry 0.
pub async fn all_entries(c: &Client, base: &str) -> (Hash, Vec<Entry>) {
    let mut entries = Vec::new();
    let mut start = None;
    loop {
        let page: Value = c
            .get(format!(
                "{base}/v1/poh/entries?from={}&limit=700",
                entries.len()
            ))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let start_hash: Hash = page["start_hash"].as_str().unwrap().parse().unwrap();
        if let Some(last) = entries.last() {
            let last: &Entry = last;
            assert_eq!(
                start_hash, last.hash,
                "each page starts where the last ended"
            );
        }
        start.get_or_insert(start_hash);
        let page = page["entries"].as_array().unwrap();
        if page.is_empty() {
            break;
        }
        for e in page {
            entries.push(Entry {
                num_hashes: e["num_hashes"].as_u64().unwrap(),
                hash: e["hash"].as_str().unwrap().parse().unwrap(),
                mixins: e["mixins"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|m| m.as_str().unwrap().parse().unwrap())
                    .collect(),
            });
        }
    }
    (start.unwrap(), entries)
}

/// `GET url`, as JSON.
pub async fn get_json(c: &Client, url: String) -> Value {
    c.get(url).send().await.unwrap().json().await.unwrap()
}

/// The node's `/metrics` page.
pub async fn metrics_text(c: &Client, node: &TestNode) -> String {
    c.get(node.http("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// The value of one series (`name{labels}`) in the node's `/metrics`.
pub async fn metric(c: &Client, node: &TestNode, series: &str) -> f64 {
    let text = metrics_text(c, node).await;
    series_value(&text, series).unwrap_or_else(|| panic!("no series {series} in /metrics"))
}

/// The value of one series (`name{labels}`) in a `/metrics` page, if it is there.
pub fn series_value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))?
        .parse()
        .ok()
}

/// A misbehaving gRPC peer, served on a loopback port: `Broadcast` is UNAVAILABLE for its
/// first `unavailable_first` calls, then stores; `Repair` answers with whichever of
/// `repair_answers` were asked for, as they are (a test alters them to play a tampering
/// peer). Everything else is UNIMPLEMENTED.
#[derive(Default)]
pub struct FakePeer {
    pub calls: std::sync::Arc<std::sync::atomic::AtomicU32>,
    pub unavailable_first: u32,
    pub repair_answers: Vec<poh_proto::v1::TxRecord>,
}

type BoxStream<T> =
    std::pin::Pin<Box<dyn futures_util::Stream<Item = Result<T, tonic::Status>> + Send>>;

impl FakePeer {
    /// Serves the peer until the returned task is aborted.
    pub async fn serve(self) -> (std::net::SocketAddr, tokio::task::JoinHandle<()>) {
        use poh_proto::v1::poh_service_server::PohServiceServer;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            tonic::transport::Server::builder()
                .add_service(PohServiceServer::new(self))
                .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener))
                .await
                .unwrap();
        });
        (addr, server)
    }
}

#[tonic::async_trait]
impl poh_proto::v1::poh_service_server::PohService for FakePeer {
    async fn broadcast(
        &self,
        _: tonic::Request<poh_proto::v1::Tx>,
    ) -> Result<tonic::Response<poh_proto::v1::Ack>, tonic::Status> {
        let n = self.calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        if n < self.unavailable_first {
            return Err(tonic::Status::unavailable("warming up"));
        }
        Ok(tonic::Response::new(poh_proto::v1::Ack {
            success: true,
            code: poh_proto::v1::AckCode::Stored as i32,
            poh_seq: 7,
            poh_hash: vec![0; 32],
            message: String::new(),
        }))
    }
    type BroadcastStreamStream = BoxStream<poh_proto::v1::Ack>;
    async fn broadcast_stream(
        &self,
        _: tonic::Request<tonic::Streaming<poh_proto::v1::Tx>>,
    ) -> Result<tonic::Response<Self::BroadcastStreamStream>, tonic::Status> {
        Err(tonic::Status::unimplemented(""))
    }
    async fn get_tx(
        &self,
        _: tonic::Request<poh_proto::v1::GetTxRequest>,
    ) -> Result<tonic::Response<poh_proto::v1::TxRecord>, tonic::Status> {
        Err(tonic::Status::unimplemented(""))
    }
    async fn repair(
        &self,
        request: tonic::Request<poh_proto::v1::RepairRequest>,
    ) -> Result<tonic::Response<poh_proto::v1::RepairResponse>, tonic::Status> {
        let asked = request.into_inner().tx_ids;
        let records = self
            .repair_answers
            .iter()
            .filter(|r| r.tx.as_ref().is_some_and(|t| asked.contains(&t.tx_id)))
            .cloned()
            .collect();
        Ok(tonic::Response::new(poh_proto::v1::RepairResponse {
            records,
        }))
    }
    type SyncStream = BoxStream<poh_proto::v1::TxRecord>;
    async fn sync(
        &self,
        _: tonic::Request<poh_proto::v1::SyncRequest>,
    ) -> Result<tonic::Response<Self::SyncStream>, tonic::Status> {
        Err(tonic::Status::unimplemented(""))
    }
    type SubscribeStream = BoxStream<poh_proto::v1::TxRecord>;
    async fn subscribe(
        &self,
        _: tonic::Request<poh_proto::v1::SubscribeRequest>,
    ) -> Result<tonic::Response<Self::SubscribeStream>, tonic::Status> {
        Err(tonic::Status::unimplemented(""))
    }
    async fn list(
        &self,
        _: tonic::Request<poh_proto::v1::ListRequest>,
    ) -> Result<tonic::Response<poh_proto::v1::ListResponse>, tonic::Status> {
        Err(tonic::Status::unimplemented(""))
    }
}

/// How long an event a test waits for may take.
pub const PATIENCE: std::time::Duration = std::time::Duration::from_secs(30);

/// One Server-Sent Event.
#[derive(Debug, Default, PartialEq)]
pub struct Event {
    pub id: Option<String>,
    pub event: String,
    pub data: String,
}

/// A `text/event-stream` response, read event by event.
pub struct Events {
    pub response: reqwest::Response,
    pub buffer: String,
    /// Comment lines seen so far (keep-alives).
    pub comments: usize,
}

impl Events {
    pub async fn open(url: String, last_event_id: Option<u64>) -> Self {
        let mut request = Client::new().get(url);
        if let Some(id) = last_event_id {
            request = request.header("last-event-id", id.to_string());
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(
            response.headers()["content-type"].to_str().unwrap(),
            "text/event-stream"
        );
        Self {
            response,
            buffer: String::new(),
            comments: 0,
        }
    }

    /// The next event; `None` when the stream ended.
    pub async fn next(&mut self) -> Option<Event> {
        // Keep-alive comments do not count: an event must come within the patience.
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let mut event = Event::default();
                for line in block.lines() {
                    match line.split_once(':') {
                        Some(("", _)) => self.comments += 1,
                        Some(("id", v)) => event.id = Some(v.trim_start().to_string()),
                        Some(("event", v)) => event.event = v.trim_start().to_string(),
                        Some(("data", v)) => event.data.push_str(v.trim_start()),
                        _ => {}
                    }
                }
                if !event.event.is_empty() {
                    return Some(event);
                }
                continue;
            }
            let chunk = tokio::time::timeout_at(deadline, self.response.chunk())
                .await
                .expect("no event within the patience")
                .unwrap()?;
            self.buffer.push_str(std::str::from_utf8(&chunk).unwrap());
        }
    }

    /// The next `n` transaction events: `(id, tx_id)`, checking each event's data. They
    /// must all come within the patience (header events do not extend it).
    pub async fn take_txs(&mut self, n: usize) -> Vec<(u64, String)> {
        let mut seen = Vec::with_capacity(n);
        let deadline = Instant::now() + PATIENCE;
        while seen.len() < n {
            let e = tokio::time::timeout_at(deadline, self.next())
                .await
                .unwrap_or_else(|_| panic!("only {} of {n} events came", seen.len()))
                .expect("the stream ended");
            if e.event != "tx" {
                continue;
            }
            let data: Value = serde_json::from_str(&e.data).unwrap();
            let id: u64 = e.id.unwrap().parse().unwrap();
            assert_eq!(data["poh_seq"], id, "id: is the poh_seq");
            seen.push((id, data["tx_id"].as_str().unwrap().to_string()));
        }
        seen
    }
}
