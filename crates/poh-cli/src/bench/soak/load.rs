//! The paced load of `bench soak`: one sender per `bench ingest` transport, each a task that
//! sends its share of `--rate` every [`TICK`] as one step of that transport's `bench ingest`
//! sender (unary calls, one client stream, one HTTP batch, one QUIC stream, one burst of
//! datagrams), over connections made once and kept, as a steady population of clients would.
//! A leak per connection is then not what grows; a leak per request, per stream or per
//! transaction is.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use anyhow::Context as _;
use futures_util::StreamExt as _;
use poh_core::Tx;
use poh_node::{network::client::QuicClient, tls::ServerTrust};
use poh_proto::v1::poh_service_client::PohServiceClient;
use tokio_util::sync::CancellationToken;

use super::super::ingest::{IngestTransport, grpc, http, http_client, quic, udp};

/// How often each sender sends: often enough that the load is steady at the scale of a
/// sampling interval, seldom enough that a step carries more than a handful of transactions.
const TICK: Duration = Duration::from_millis(100);
/// Unary calls in flight at once within one step.
const UNARY_IN_FLIGHT: usize = 16;
/// The longest one step may take: far above a healthy node's latency at a paced rate, so
/// what times out is a stuck node.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// The senders, in the order they are reported.
pub(super) const TRANSPORTS: [IngestTransport; 5] = [
    IngestTransport::GrpcUnary,
    IngestTransport::GrpcStream,
    IngestTransport::HttpBatch,
    IngestTransport::Udp,
    IngestTransport::Quic,
];

/// What one sender counted so far.
#[derive(Default)]
pub(super) struct Tally {
    /// Transactions sent (for UDP: datagrams the socket took).
    pub sent: AtomicU64,
    /// Transactions the node acknowledged; not counted for UDP, whose datagrams have no
    /// answer (the node's counters tell).
    pub acked: AtomicU64,
    /// Transactions refused, or lost with a call that failed.
    pub failed: AtomicU64,
    /// The latest failure.
    pub last_error: Mutex<Option<String>>,
}

impl Tally {
    fn record(&self, sent: Sent) {
        self.acked.fetch_add(sent.acked as u64, Ordering::Relaxed);
        self.failed.fetch_add(sent.failed as u64, Ordering::Relaxed);
        if let Some(e) = sent.error {
            let mut last = self.last_error.lock().unwrap_or_else(|p| p.into_inner());
            *last = Some(super::brief(&e));
        }
    }

    /// The latest failure, if any.
    pub(super) fn last_error(&self) -> Option<String> {
        self.last_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// Where the node listens.
pub(super) struct Addresses {
    /// gRPC `host:port`.
    pub grpc: String,
    /// The HTTP base URL.
    pub http: String,
    /// UDP `host:port`.
    pub udp: String,
    /// QUIC `host:port`, and the fingerprint of the certificate to pin.
    pub quic: String,
    pub quic_pin: String,
}

/// One sender's connection, made once.
enum Client {
    Unary(PohServiceClient<tonic::transport::Channel>),
    Stream(PohServiceClient<tonic::transport::Channel>),
    Http {
        client: reqwest::Client,
        url: String,
    },
    Quic {
        client: QuicClient,
        target: String,
        pin: String,
    },
    Udp(tokio::net::UdpSocket),
}

/// What became of one step's transactions.
struct Sent {
    acked: usize,
    failed: usize,
    error: Option<anyhow::Error>,
}

impl Sent {
    /// All of `n` acknowledged, or none of them.
    fn all_or_none(n: usize, result: anyhow::Result<()>) -> Self {
        match result {
            Ok(()) => Self {
                acked: n,
                failed: 0,
                error: None,
            },
            Err(e) => Self {
                acked: 0,
                failed: n,
                error: Some(e),
            },
        }
    }
}

impl Client {
    async fn connect(transport: IngestTransport, node: &Addresses) -> anyhow::Result<Self> {
        Ok(match transport {
            IngestTransport::GrpcUnary => {
                Self::Unary(PohServiceClient::new(grpc::connect(&node.grpc).await?))
            }
            IngestTransport::GrpcStream => {
                Self::Stream(PohServiceClient::new(grpc::connect(&node.grpc).await?))
            }
            IngestTransport::HttpBatch => Self::Http {
                client: http_client(REQUEST_TIMEOUT)?,
                url: format!("{}/v1/tx/batch", node.http),
            },
            IngestTransport::Quic => {
                let client = QuicClient::new(&ServerTrust::System, None)?;
                client
                    .connect(&node.quic, Some(&node.quic_pin))
                    .await
                    .with_context(|| format!("cannot connect to {}", node.quic))?;
                Self::Quic {
                    client,
                    target: node.quic.clone(),
                    pin: node.quic_pin.clone(),
                }
            }
            IngestTransport::Udp => Self::Udp(udp::connect(&node.udp).await?),
        })
    }

    /// Sends `txs` as one step of this transport's `bench ingest` sender.
    async fn send(&mut self, txs: Vec<Tx>) -> Sent {
        let n = txs.len();
        let pb = || txs.iter().cloned().map(poh_node::tx_to_pb);
        match self {
            Self::Unary(client) => {
                let calls = futures_util::stream::iter(pb().map(|tx| {
                    let mut client = client.clone();
                    async move { grpc::submit(&mut client, tx).await }
                }))
                .buffer_unordered(UNARY_IN_FLIGHT);
                let results: Vec<anyhow::Result<()>> = calls.collect().await;
                let mut sent = Sent::all_or_none(0, Ok(()));
                for result in results {
                    match result {
                        Ok(()) => sent.acked += 1,
                        Err(e) => {
                            sent.failed += 1;
                            sent.error = Some(e);
                        }
                    }
                }
                sent
            }
            Self::Stream(client) => {
                let mut acked = 0;
                let result = grpc::send_stream(client, pb().collect(), |_| acked += 1).await;
                // What came before a refusal or a broken stream was acknowledged; the rest
                // was not.
                Sent {
                    acked,
                    failed: n - acked,
                    error: result.err(),
                }
            }
            Self::Http { client, url } => {
                let result = match http::batch_body(&txs) {
                    Ok(body) => http::post_batch(client, url, body, n).await,
                    Err(e) => Err(e),
                };
                Sent::all_or_none(n, result)
            }
            Self::Quic {
                client,
                target,
                pin,
            } => {
                let batch: Vec<_> = pb().collect();
                let result = quic::send_batch(client, target, Some(pin), &batch).await;
                Sent::all_or_none(n, result)
            }
            Self::Udp(socket) => {
                let datagrams: Vec<Vec<u8>> = txs.iter().map(poh_node::tx_to_json).collect();
                let mut went = 0;
                let result = udp::send_burst(socket, &datagrams, |k| went += k).await;
                // Datagrams are acknowledged by nobody: the node's counters say what it took.
                Sent {
                    acked: 0,
                    failed: n - went,
                    error: result.err().map(anyhow::Error::from),
                }
            }
        }
    }
}

/// One sender: its transport and what it counted.
pub(super) struct Sender {
    pub transport: IngestTransport,
    pub tally: Arc<Tally>,
}

/// Connects every sender to `node`, then starts each on `tasks`, sending `rate` transactions
/// per second in all (an even share each) of `payload` bytes until `stop`.
pub(super) async fn start(
    node: &Addresses,
    rate: f64,
    payload: usize,
    stop: &CancellationToken,
    tasks: &mut tokio::task::JoinSet<()>,
) -> anyhow::Result<Vec<Sender>> {
    // A per-run prefix, so no transaction of this run repeats one of an earlier run.
    let run = format!(
        "{:x}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_nanos()
    );
    let share = rate / TRANSPORTS.len() as f64;
    let mut senders = Vec::new();
    for transport in TRANSPORTS {
        let client = Client::connect(transport, node)
            .await
            .with_context(|| format!("{}: cannot connect", transport.name()))?;
        let tally = Arc::new(Tally::default());
        let lane = Lane {
            name: transport.name(),
            run: run.clone(),
            payload,
            per_second: share,
        };
        tasks.spawn(lane.run(client, tally.clone(), stop.clone()));
        senders.push(Sender { transport, tally });
    }
    Ok(senders)
}

/// What one sender sends.
struct Lane {
    name: &'static str,
    run: String,
    payload: usize,
    per_second: f64,
}

impl Lane {
    async fn run(self, mut client: Client, tally: Arc<Tally>, stop: CancellationToken) {
        let mut ticks = tokio::time::interval(TICK);
        // A step that overran its tick loses the ticks it overran: a node that falls behind
        // shows as fewer transactions per second, not as a burst when it catches up.
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mut credit = 0.0;
        let mut next = 0u64;
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                _ = ticks.tick() => {}
            }
            // Whole transactions per step; the fractions carry over, so any rate is kept on
            // average.
            credit += self.per_second * TICK.as_secs_f64();
            let n = credit.floor() as u64;
            credit -= n as f64;
            if n == 0 {
                continue;
            }
            let txs = (next..next + n).map(|i| self.tx(i)).collect();
            next += n;
            tally.sent.fetch_add(n, Ordering::Relaxed);
            let step = tokio::time::timeout(REQUEST_TIMEOUT, client.send(txs));
            let sent = tokio::select! {
                () = stop.cancelled() => return,
                sent = step => sent,
            };
            // A step with no answer at all (a node that stopped reading) loses all of it.
            tally.record(sent.unwrap_or_else(|_| {
                let e = anyhow::anyhow!("no answer within {} s", REQUEST_TIMEOUT.as_secs());
                Sent::all_or_none(n as usize, Err(e))
            }));
        }
    }

    fn tx(&self, i: u64) -> Tx {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        Tx {
            tx_id: format!("soak-{}-{}-{i}", self.run, self.name),
            holder_id: format!("soak-{}", self.name),
            timestamp: now,
            payload: (0..self.payload).map(|b| (b as u64 ^ i) as u8).collect(),
            ..Tx::default()
        }
    }
}
