//! Broadcast, relay and peer health: real nodes on loopback, plus two misbehaving peers (one
//! that answers UNAVAILABLE before it succeeds, one that never answers).

use std::{
    sync::{
        Arc,
        atomic::{AtomicU32, Ordering},
    },
    time::{Duration, Instant},
};

use poh_node::{
    Peers,
    config::PeersConfig,
    network::{Broadcaster, Delivery, client::ClientTls},
};
use poh_proto::v1 as pb;

use crate::common::{self, FakePeer, TestNode, tx};

fn peers_of(nodes: &[&TestNode]) -> Peers {
    let mut peers = Peers::default();
    for n in nodes {
        peers.grpc.push(n.node.grpc_addr().unwrap().to_string());
        peers
            .http
            .push(format!("http://{}", n.node.http_addr().unwrap()));
        peers.udp.push(n.node.udp_addr().unwrap().to_string());
        let quic = n.node.quic_addr().unwrap().to_string();
        // A development certificate: trusted by its pin.
        peers.pins.insert(quic.clone(), n.quic_pin());
        peers.quic.push(quic);
    }
    peers
}

fn settings(timeout_ms: u64) -> PeersConfig {
    PeersConfig {
        timeout_ms,
        backoff_ms: 5,
        ..PeersConfig::default()
    }
}

async fn stored(node: &TestNode, id: &str) -> bool {
    reqwest::get(node.http(&format!("/v1/tx/{id}")))
        .await
        .unwrap()
        .status()
        == 200
}

async fn wait_until_stored(node: &TestNode, id: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !stored(node, id).await {
        assert!(Instant::now() < deadline, "{id} never stored");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn broadcast_reaches_three_nodes_over_all_four_protocols() {
    let (a, b, c) = tokio::join!(common::start(), common::start(), common::start());
    let peers = peers_of(&[&a, &b, &c]);
    let broadcaster = Broadcaster::new(settings(2000), ClientTls::default(), None)
        .await
        .unwrap();
    let report = broadcaster.broadcast(&peers, &tx("everywhere")).await;
    assert_eq!(report.peers.len(), 12);
    for r in &report.peers {
        assert!(r.outcome.is_ok(), "{r:?}");
    }
    assert_eq!(report.summary(), (true, true, true, true));
    for node in [&a, &b, &c] {
        wait_until_stored(node, "everywhere").await;
    }
    // Four protocols to one node: stored by one of them, a duplicate for the others that
    // answer, with the same poh_seq.
    let seqs: Vec<u64> = report
        .peers
        .iter()
        .filter(|r| r.peer.contains(&a.node.grpc_addr().unwrap().to_string()))
        .filter_map(|r| match r.outcome {
            Ok(Delivery::Stored { poh_seq } | Delivery::Duplicate { poh_seq }) => Some(poh_seq),
            _ => None,
        })
        .collect();
    assert_eq!(seqs.len(), 1);
    broadcaster.close();
    for n in [a, b, c] {
        n.stop().await;
    }
}

#[tokio::test]
async fn a_node_that_is_down_is_named_and_costs_no_more_than_its_timeout() {
    let (a, b, down) = tokio::join!(common::start(), common::start(), common::start());
    let peers = peers_of(&[&a, &b, &down]);
    let down_grpc = down.node.grpc_addr().unwrap().to_string();
    down.stop().await;
    let broadcaster = Broadcaster::new(settings(500), ClientTls::default(), None)
        .await
        .unwrap();
    let started = Instant::now();
    let report = broadcaster.broadcast(&peers, &tx("one-down")).await;
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "{:?}",
        started.elapsed()
    );
    let failed: Vec<_> = report.peers.iter().filter(|r| r.outcome.is_err()).collect();
    assert!(
        failed.iter().any(|r| r.peer == down_grpc),
        "the down node is named: {failed:?}"
    );
    // UDP cannot tell; every other protocol of the two live nodes acknowledged.
    assert_eq!(
        failed.len(),
        3,
        "grpc, http and quic of the down node: {failed:?}"
    );
    assert_eq!(report.summary(), (true, true, true, true));
    assert!(report.any_ok());
    broadcaster.close();
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn unavailable_twice_then_success_is_retried_to_success() {
    let calls = Arc::new(AtomicU32::new(0));
    let (addr, server) = FakePeer {
        calls: calls.clone(),
        unavailable_first: 2,
        ..FakePeer::default()
    }
    .serve()
    .await;
    let broadcaster = Broadcaster::new(settings(2000), ClientTls::default(), None)
        .await
        .unwrap();
    let peers = Peers {
        grpc: vec![addr.to_string()],
        ..Peers::default()
    };
    let report = broadcaster.broadcast(&peers, &tx("flaky")).await;
    let r = &report.peers[0];
    assert_eq!(r.outcome, Ok(Delivery::Stored { poh_seq: 7 }));
    assert_eq!(r.attempts, 3);
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    server.abort();
}

#[tokio::test]
async fn a_peer_that_never_answers_costs_its_timeout_and_no_more() {
    // Accepts connections and datagrams, never says a word.
    let silent_tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_udp = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let tcp = silent_tcp.local_addr().unwrap();
    let held = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((s, _)) = silent_tcp.accept().await {
            open.push(s);
        }
    });
    let live = common::start().await;
    let peers = Peers {
        grpc: vec![tcp.to_string(), live.node.grpc_addr().unwrap().to_string()],
        http: vec![format!("http://{tcp}")],
        quic: vec![silent_udp.local_addr().unwrap().to_string()],
        ..Peers::default()
    };
    let broadcaster = Broadcaster::new(settings(300), ClientTls::default(), None)
        .await
        .unwrap();
    let started = Instant::now();
    let report = broadcaster.broadcast(&peers, &tx("silence")).await;
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(300) && elapsed < Duration::from_millis(900),
        "{elapsed:?}"
    );
    for r in &report.peers {
        if r.peer == live.node.grpc_addr().unwrap().to_string() {
            assert!(r.outcome.is_ok(), "{r:?}");
        } else {
            assert!(r.outcome.is_err(), "{r:?}");
            assert!(r.elapsed < Duration::from_millis(600), "{r:?}");
        }
    }
    held.abort();
    broadcaster.close();
    live.stop().await;
}

async fn metric(node: &TestNode, line_start: &str) -> f64 {
    let text = reqwest::get(node.http("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find(|l| l.starts_with(line_start))
        .and_then(|l| l.rsplit(' ').next())
        .map_or(0.0, |v| v.parse().unwrap())
}

#[tokio::test]
async fn a_ring_of_three_relaying_nodes_stores_once_each_and_stops() {
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let files: Vec<_> = dirs.iter().map(|d| d.path().join("peers.json")).collect();
    let start = |i: usize| {
        let file = files[i].clone();
        common::start_with(move |c| {
            c.relay = true;
            c.peers_file = Some(file);
            // Only relaying moves transactions here: catch-up would add receptions.
            c.repair.sync_interval = poh_node::config::Span(Duration::ZERO);
        })
    };
    let (a, b, c) = tokio::join!(start(0), start(1), start(2));
    let ring = [&a, &b, &c];
    for i in 0..3 {
        let next = ring[(i + 1) % 3];
        let peers = Peers {
            grpc: vec![next.node.grpc_addr().unwrap().to_string()],
            ..Peers::default()
        };
        std::fs::write(&files[i], serde_json::to_vec(&peers).unwrap()).unwrap();
    }
    let ack = a
        .grpc()
        .await
        .broadcast(common::pb(&tx("around")))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(ack.code, pb::AckCode::Stored as i32);
    for node in ring {
        wait_until_stored(node, "around").await;
    }
    // Let any further relaying happen, then check it did not: A got it from the client and
    // once back from C (a duplicate, not relayed again); B and C once each.
    let received = "poh_tx_received_total{transport=\"grpc\"}";
    let deadline = Instant::now() + Duration::from_secs(10);
    while metric(&a, received).await < 2.0 {
        assert!(Instant::now() < deadline, "the ring never came back to A");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(metric(&a, received).await, 2.0);
    assert_eq!(metric(&b, received).await, 1.0);
    assert_eq!(metric(&c, received).await, 1.0);
    let ok = "poh_broadcast_total{protocol=\"grpc\",result=\"ok\"}";
    for node in ring {
        assert_eq!(
            metric(node, ok).await,
            1.0,
            "each node relayed exactly once"
        );
    }
    for n in [a, b, c] {
        n.stop().await;
    }
}

/// A burst relayed to an HTTP peer arrives whole. Each relay send over HTTP/1.1 holds a
/// connection, and the peer holds every client address to `limits.max_connections_per_client`
/// (64): the relay must stay under it, whatever it has in flight.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_relayed_to_an_http_peer_arrives_whole() {
    let no_catch_up = |c: &mut poh_node::NodeConfig| {
        c.repair.sync_interval = poh_node::config::Span(Duration::ZERO);
    };
    let b = common::start_with(no_catch_up).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("peers.json");
    let peers = Peers {
        http: vec![format!("http://{}", b.node.http_addr().unwrap())],
        ..Peers::default()
    };
    std::fs::write(&file, serde_json::to_vec(&peers).unwrap()).unwrap();
    let a = common::start_with(move |c| {
        no_catch_up(c);
        c.relay = true;
        c.peers_file = Some(file);
    })
    .await;

    const BURST: usize = 2_000;
    let client = reqwest::Client::new();
    let txs: Vec<_> = (0..BURST)
        .map(|i| common::json(&tx(&format!("burst-{i}"))))
        .collect();
    for chunk in txs.chunks(500) {
        let r = client
            .post(a.http("/v1/tx/batch"))
            .json(chunk)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success());
    }
    let ok = "poh_broadcast_total{protocol=\"http\",result=\"ok\"}";
    let failed = "poh_broadcast_total{protocol=\"http\",result=\"failed\"}";
    let deadline = Instant::now() + Duration::from_secs(60);
    while metric(&a, ok).await + metric(&a, failed).await < BURST as f64 {
        assert!(Instant::now() < deadline, "the relay did not finish");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(metric(&a, failed).await, 0.0, "every relay send succeeded");
    assert_eq!(
        metric(&b, "poh_issued_total{result=\"success\"}").await,
        BURST as f64
    );
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn health_checks_count_the_peers_that_answer() {
    let target = common::start().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("peers.json");
    let peers = Peers {
        grpc: vec![
            target.node.grpc_addr().unwrap().to_string(),
            "127.0.0.1:1".into(),
        ],
        http: vec![format!("http://{}", target.node.http_addr().unwrap())],
        quic: vec![target.node.quic_addr().unwrap().to_string()],
        pins: [(
            target.node.quic_addr().unwrap().to_string(),
            target.quic_pin(),
        )]
        .into(),
        ..Peers::default()
    };
    std::fs::write(&file, serde_json::to_vec(&peers).unwrap()).unwrap();
    let node = common::start_with(|c| {
        c.peers_file = Some(file);
        c.peers.health_interval_secs = 1;
        c.peers.timeout_ms = 500;
    })
    .await;
    let deadline = Instant::now() + Duration::from_secs(15);
    while metric(&node, "active_peers ").await != 3.0 {
        assert!(
            Instant::now() < deadline,
            "active_peers = {}",
            metric(&node, "active_peers ").await
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    node.stop().await;
    target.stop().await;
}

/// A signed transaction with the timestamp `-0.0` (valid: SPEC §2 stores it bit-exact) goes
/// out over each protocol to a node of its own. Every node must verify the signature and
/// store the same bits, so none of the encoders may drop the sign (prost's derive did).
#[tokio::test]
async fn a_negative_zero_timestamp_crosses_every_protocol_bit_exact() {
    let key = poh_core::SigningKey::generate().unwrap();
    let mut t = tx("negative-zero");
    t.timestamp = -0.0;
    t.sign(&key).unwrap();
    let nodes = [
        common::start_with(|c| c.ingest.require_signatures = true).await,
        common::start_with(|c| c.ingest.require_signatures = true).await,
        common::start_with(|c| c.ingest.require_signatures = true).await,
        common::start_with(|c| c.ingest.require_signatures = true).await,
    ];
    let all = peers_of(&nodes.iter().collect::<Vec<_>>());
    let peers = Peers {
        grpc: vec![all.grpc[0].clone()],
        http: vec![all.http[1].clone()],
        udp: vec![all.udp[2].clone()],
        quic: vec![all.quic[3].clone()],
        pins: all.pins.clone(),
    };
    let broadcaster = Broadcaster::new(settings(2000), ClientTls::default(), None)
        .await
        .unwrap();
    let report = broadcaster.broadcast(&peers, &t).await;
    for r in &report.peers {
        assert!(
            matches!(r.outcome, Ok(Delivery::Stored { .. } | Delivery::Sent)),
            "{r:?}"
        );
    }
    for node in &nodes {
        wait_until_stored(node, "negative-zero").await;
        let record = node
            .grpc()
            .await
            .get_tx(pb::GetTxRequest {
                tx_id: "negative-zero".into(),
            })
            .await
            .unwrap()
            .into_inner();
        let stored = record.tx.unwrap();
        assert_eq!(stored.timestamp.to_bits(), (-0.0f64).to_bits());
        assert_eq!(poh_node::tx_from_pb(stored), t);
    }
    broadcaster.close();
    for n in nodes {
        n.stop().await;
    }
}
