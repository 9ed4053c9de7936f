//! A `poh serve` process under a memory attack from several clients at once: slow, huge HTTP
//! bodies; QUIC frames announcing their largest length and arriving only in part, and
//! announcing more than any frame may hold; and relaying to peers that never answer. The
//! node's peak resident memory stays under a stated bound while a well-behaved client is
//! served throughout.

use std::{
    net::{IpAddr, SocketAddr},
    time::{Duration, Instant},
};

use serde_json::{Value, json};
use tokio::io::AsyncWriteExt as _;

use crate::common::{peak_rss_mib, poh, scrape, serve_flags, stop};

/// The bound asserted: the node's peak resident set, with the settings below.
const PEAK_RSS_MIB: u64 = 512;

/// Opens `connections` HTTP/1 connections from `ip`, each announcing a body just under the
/// batch limit and sending it slowly, until the node refuses or the attack ends.
async fn slow_huge_bodies(ip: IpAddr, to: SocketAddr, connections: usize, until: Instant) {
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..connections {
        tasks.spawn(async move {
            let socket = tokio::net::TcpSocket::new_v4().unwrap();
            socket.bind(SocketAddr::new(ip, 0)).unwrap();
            let Ok(mut stream) = socket.connect(to).await else {
                return;
            };
            let head = "POST /v1/tx/batch HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n\
                        content-length: 8000000\r\n\r\n[";
            if stream.write_all(head.as_bytes()).await.is_err() {
                return;
            }
            let chunk = vec![b' '; 256 << 10];
            while Instant::now() < until {
                if stream.write_all(&chunk).await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        });
    }
    while tasks.join_next().await.is_some() {}
}

/// From `ip`, QUIC streams that announce the largest frame and send half of it, and streams
/// that announce more than any frame may hold.
async fn partial_quic_frames(
    ip: IpAddr,
    to: SocketAddr,
    pin: String,
    streams: usize,
    until: Instant,
) {
    let mut endpoint = quinn::Endpoint::client(SocketAddr::new(ip, 0)).unwrap();
    endpoint.set_default_client_config(
        poh_node::network::client::quic::client_config(
            &poh_node::tls::ServerTrust::Pinned(pin),
            None,
        )
        .unwrap(),
    );
    let Ok(connection) = endpoint.connect(to, "localhost").unwrap().await else {
        return;
    };
    let mut tasks = tokio::task::JoinSet::new();
    for s in 0..streams {
        let connection = connection.clone();
        tasks.spawn(async move {
            let Ok((mut send, _recv)) = connection.open_bi().await else {
                return;
            };
            let announced: u32 = if s % 4 == 0 { u32::MAX } else { 2 << 20 };
            let _ = send.write_all(&announced.to_be_bytes()).await;
            let half = vec![0u8; 1 << 20];
            let _ = send.write_all(&half).await;
            // Never finished: the node holds what arrived until it gives up on the stream.
            while Instant::now() < until {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    endpoint.close(0u32.into(), b"");
}

#[test]
fn memory_stays_bounded_under_slow_huge_and_partial_requests_and_a_stalled_relay() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    // Peers that never answer: a TCP listener that never reads (gRPC, HTTP) and a UDP socket
    // that never replies (QUIC).
    let stalled_tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let stalled_udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let peers = dir.path().join("peers.json");
    std::fs::write(
        &peers,
        json!({
            "grpc": [stalled_tcp.local_addr().unwrap().to_string()],
            "http": [format!("http://{}", stalled_tcp.local_addr().unwrap())],
            "udp": [],
            "quic": [stalled_udp.local_addr().unwrap().to_string()],
        })
        .to_string(),
    )
    .unwrap();
    let config = dir.path().join("node.toml");
    std::fs::write(
        &config,
        "db_cache_mb = 32\nrelay = true\n\
         [http]\nmax_batch_body_bytes = 8388608\n\
         [limits]\nbuffered_bytes = 67108864\nbuffered_bytes_per_client = 8388608\n\
         requests_per_second = 1000000\nburst = 1000000\n\
         [ingest]\nqueue_bytes = 67108864\n\
         [peers]\nrelay_queue_bytes = 1048576\ntimeout_ms = 1000\nhealth_interval_secs = 0\n",
    )
    .unwrap();
    let data = dir.path().join("data");
    let node = serve_flags(
        &data,
        &[
            "--config",
            config.to_str().unwrap(),
            "--peers-file",
            peers.to_str().unwrap(),
        ],
    );
    let pid = node.child.id();
    let http: SocketAddr = node.base.trim_start_matches("http://").parse().unwrap();
    let quic: SocketAddr = node.quic.parse().unwrap();
    let pin = {
        let cert = data.join("quic-dev-cert.pem");
        let out = poh(&["fingerprint", cert.to_str().unwrap()]);
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .next()
            .unwrap()
            .to_string()
    };

    let (served, refused) = runtime.block_on(async {
        let until = Instant::now() + Duration::from_secs(4);
        let mut attack = tokio::task::JoinSet::new();
        for i in 2..6u8 {
            let ip = IpAddr::from([127, 0, 0, i]);
            attack.spawn(slow_huge_bodies(ip, http, 24, until));
            attack.spawn(partial_quic_frames(ip, quic, pin.clone(), 32, until));
        }
        // The well-behaved client: batches of real transactions, each relayed to the stalled
        // peers, all the while.
        let client = reqwest::Client::builder()
            .local_address(IpAddr::from([127, 0, 0, 6]))
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap();
        let (mut served, mut refused) = (0, 0);
        let mut n = 0;
        while Instant::now() < until {
            let batch: Vec<Value> = (0..200)
                .map(|i| {
                    n += 1;
                    json!({"tx_id": format!("ok-{n}-{i}"), "holder_id": "h", "timestamp": 1.0,
                           "payload_b64": "A".repeat(1368)})
                })
                .collect();
            let r = client
                .post(format!("{}/v1/tx/batch", node.base))
                .json(&batch)
                .send()
                .await
                .unwrap();
            match r.status().as_u16() {
                200 => served += 1,
                _ => refused += 1,
            }
        }
        attack.abort_all();
        while attack.join_next().await.is_some() {}
        (served, refused)
    });
    let peak = peak_rss_mib(pid);
    let metrics = runtime.block_on(scrape(&node.base));
    stop(node);
    assert!(
        served > 0 && refused == 0,
        "well-behaved: {served} served, {refused} refused"
    );
    assert!(
        peak < PEAK_RSS_MIB,
        "peak RSS {peak} MiB, bound {PEAK_RSS_MIB} MiB"
    );
    let dropped: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("poh_relay_dropped_total "))
        .unwrap()
        .parse()
        .unwrap();
    assert!(dropped > 0.0, "a stalled relay drops, and counts it");
    eprintln!("peak RSS {peak} MiB; {served} batches served; {dropped} relays dropped");
}
