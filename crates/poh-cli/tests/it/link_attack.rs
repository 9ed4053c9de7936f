//! A `poh serve` parent under attack over the federation link, with its default limits: links
//! that say Hello as a child, send 16 MiB of junk headers and fall silent (they once pinned
//! every byte of the node's request budget, so every write got 503), and single messages
//! built to inflate in memory (16 MiB of empty entries, before and after a Hello; one such
//! message once took the parent from 24 MB to 734 MB). A well-behaved client writes all the
//! while: every write is served, and the parent's peak resident memory stays bounded.

use std::{
    net::{IpAddr, SocketAddr},
    sync::Arc,
    time::{Duration, Instant},
};

use poh_proto::federation::{self as fed, ChildMessage, child_message};
use prost::Message as _;
use serde_json::json;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};

use crate::common::{keygen, peak_rss_mib, scrape, serve_flags, stop};

/// The bound asserted on the parent's peak resident set.
const PEAK_RSS_MIB: u64 = 256;
const CHILD: &str = "municipality/kobe";
/// The largest message the link takes, less a little: what the review's attack sent.
const INFLATING_BYTES: usize = 16_776_005;

/// Sends messages already encoded, so the test can send what no honest encoder would.
#[derive(Default)]
struct Raw;

impl Codec for Raw {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = Raw;
    type Decoder = Raw;
    fn encoder(&mut self) -> Raw {
        Raw
    }
    fn decoder(&mut self) -> Raw {
        Raw
    }
}

impl Encoder for Raw {
    type Item = Vec<u8>;
    type Error = tonic::Status;
    fn encode(&mut self, item: Vec<u8>, buf: &mut EncodeBuf<'_>) -> Result<(), tonic::Status> {
        use prost::bytes::BufMut as _;
        buf.put_slice(&item);
        Ok(())
    }
}

impl Decoder for Raw {
    type Item = Vec<u8>;
    type Error = tonic::Status;
    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<Vec<u8>>, tonic::Status> {
        use prost::bytes::Buf as _;
        Ok(Some(buf.copy_to_bytes(buf.remaining()).to_vec()))
    }
}

fn hello() -> Vec<u8> {
    ChildMessage {
        kind: Some(child_message::Kind::Hello(fed::Hello {
            chain_id: CHILD.into(),
            hashes_per_tick: 0,
        })),
    }
    .encode_to_vec()
}

/// A header message of junk header bytes.
fn junk(bytes: usize) -> Vec<u8> {
    ChildMessage {
        kind: Some(child_message::Kind::Header(fed::SealedHeader {
            header: vec![0xAB; bytes],
            signature: Vec::new(),
            entries: Vec::new(),
        })),
    }
    .encode_to_vec()
}

/// A header message of `bytes` made of empty entries: two bytes each on the wire.
fn empty_entries(bytes: usize) -> Vec<u8> {
    let entries = (bytes - 8) / 2;
    let mut sealed = Vec::with_capacity(bytes);
    for _ in 0..entries {
        sealed.extend([0x1a, 0x00]);
    }
    let mut message = vec![0x12];
    prost::encoding::encode_varint(sealed.len() as u64, &mut message);
    message.extend(sealed);
    message
}

/// One Link call from `ip` that sends `messages`, then stays silent until `until`.
async fn link(ip: IpAddr, to: SocketAddr, messages: Vec<Vec<u8>>, until: Instant) {
    let Ok(endpoint) = tonic::transport::Endpoint::from_shared(format!("http://{to}")) else {
        return;
    };
    let Ok(channel) = endpoint.local_address(Some(ip)).connect().await else {
        return;
    };
    let mut grpc = tonic::client::Grpc::new(channel).max_encoding_message_size(usize::MAX);
    if grpc.ready().await.is_err() {
        return;
    }
    let (out, rx) = tokio::sync::mpsc::channel(4);
    tokio::spawn(async move {
        for m in messages {
            if out.send(m).await.is_err() {
                return;
            }
        }
        // Silent, but open.
        tokio::time::sleep_until(until.into()).await;
        drop(out);
    });
    let path = http::uri::PathAndQuery::from_static("/poh.federation.v1.Federation/Link");
    let request = tonic::Request::new(tokio_stream::wrappers::ReceiverStream::new(rx));
    if let Ok(answers) = grpc.streaming(request, path, Raw).await {
        let mut answers = answers.into_inner();
        while let Ok(Some(_)) = answers.message().await {}
    }
}

/// What the attackers send, made once: encoding 16 MiB messages in every round would take the
/// test's own cores from the well-behaved writer.
struct Messages {
    junk: Vec<Vec<u8>>,
    inflating: Vec<u8>,
}

impl Messages {
    fn new() -> Self {
        Self {
            junk: std::iter::once(hello())
                .chain((0..16).map(|_| junk(1 << 20)))
                .collect(),
            inflating: empty_entries(INFLATING_BYTES),
        }
    }
}

/// From `ip`, until `until`: two links at a time that Hello and send 16 MiB of junk headers,
/// and messages of empty entries, as a first message and after a Hello.
async fn attacker(ip: IpAddr, to: SocketAddr, messages: Arc<Messages>, until: Instant) {
    let mut round = 0usize;
    while Instant::now() < until {
        let mut calls = tokio::task::JoinSet::new();
        for _ in 0..2 {
            calls.spawn(link(ip, to, messages.junk.clone(), until));
        }
        let inflating = if round.is_multiple_of(2) {
            vec![messages.inflating.clone()]
        } else {
            vec![hello(), messages.inflating.clone()]
        };
        calls.spawn(link(ip, to, inflating, until));
        // A round ends when the parent has ended its calls, or the attack ends.
        let round_ends = Instant::now() + Duration::from_secs(2);
        let _ = tokio::time::timeout_at(round_ends.min(until).into(), async {
            while calls.join_next().await.is_some() {}
        })
        .await;
        calls.abort_all();
        round += 1;
    }
}

/// Writes one transaction at a time from its own address and thread until `until`: how
/// many were stored, and what answered anything else.
fn writer(base: String, until: Instant) -> (u32, Vec<String>) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let client = reqwest::Client::builder()
            .local_address(IpAddr::from([127, 0, 0, 6]))
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap();
        let (mut served, mut refused) = (0u32, Vec::new());
        let mut n = 0;
        while Instant::now() < until {
            n += 1;
            let tx = json!({"tx_id": format!("w-{n}"), "holder_id": "h", "timestamp": 1.0,
                            "payload_b64": "AAAA"});
            match client.post(format!("{base}/v1/tx")).json(&tx).send().await {
                Ok(r) if r.status().as_u16() == 201 => served += 1,
                Ok(r) => refused.push(r.status().to_string()),
                Err(e) => refused.push(e.to_string()),
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        (served, refused)
    })
}

#[test]
fn link_attacks_neither_block_writes_nor_take_the_parents_memory() {
    let dir = tempfile::tempdir().unwrap();
    let key = keygen(dir.path(), "kobe");
    let child = format!("{CHILD}={key}.pub");
    let node = serve_flags(
        &dir.path().join("data"),
        &[
            "--chain-id",
            "continental/asia",
            "--level",
            "continental",
            "--child",
            &child,
        ],
    );
    let pid = node.child.id();
    let grpc: SocketAddr = node.grpc.parse().unwrap();
    let messages = Arc::new(Messages::new());
    let until = Instant::now() + Duration::from_secs(10);
    let base = node.base.clone();
    let writes = std::thread::spawn(move || writer(base, until));
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let mut attack = tokio::task::JoinSet::new();
        for i in 2..6u8 {
            let ip = IpAddr::from([127, 0, 0, i]);
            attack.spawn(attacker(ip, grpc, messages.clone(), until));
        }
        tokio::time::sleep_until(until.into()).await;
        attack.abort_all();
        while attack.join_next().await.is_some() {}
    });
    let (served, refused) = writes.join().unwrap();
    let peak = peak_rss_mib(pid);
    let metrics = runtime.block_on(scrape(&node.base));
    stop(node);
    // The attack reached the parent: its Link calls, and the junk headers it refused.
    let count = |prefix: &str| -> f64 {
        metrics
            .lines()
            .filter(|l| l.starts_with(prefix))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    };
    let links = count("grpc_requests_total{method=\"Link\"");
    let refused_headers = count("poh_child_headers_total{result=\"rejected\"}");
    eprintln!("{links} Link calls; {refused_headers} junk headers refused");
    assert!(
        links >= 40.0 && refused_headers >= 10.0,
        "{links} links, {refused_headers} refused"
    );
    eprintln!(
        "peak RSS {peak} MiB; {served} writes served, {} refused",
        refused.len()
    );
    assert!(
        served > 50 && refused.is_empty(),
        "well-behaved writer: {served} served, refused: {:?}",
        &refused[..refused.len().min(5)]
    );
    assert!(
        peak < PEAK_RSS_MIB,
        "peak RSS {peak} MiB, bound {PEAK_RSS_MIB} MiB"
    );
}
