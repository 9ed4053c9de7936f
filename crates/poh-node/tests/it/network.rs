//! UDP and QUIC listeners: real sockets on loopback.

use std::time::Duration;

use poh_node::{
    network::client::{QuicClient, quic::client_config},
    tls::ServerTrust,
    wire::frame::{self, FrameDecoder, MALFORMED_FRAME},
};
use poh_proto::v1 as pb;

use crate::common::{self, TestNode, json, pb, tx};

/// The value of the first sample of `family` whose labels include every one of `labels`.
async fn metric(node: &TestNode, family: &str, labels: &[&str]) -> f64 {
    let text = reqwest::get(node.http("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .filter(|l| l.starts_with(&format!("{family}{{")))
        .find(|l| labels.iter().all(|want| l.contains(want)))
        .and_then(|l| l.rsplit(' ').next())
        .map_or(0.0, |v| v.parse().unwrap())
}

async fn wait_stored(node: &TestNode, ids: &[String]) {
    let client = reqwest::Client::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    for id in ids {
        loop {
            let status = client
                .get(node.http(&format!("/v1/tx/{id}")))
                .send()
                .await
                .unwrap()
                .status();
            if status == 200 {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{id} not stored in 30 s"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

#[tokio::test]
async fn udp_stores_every_valid_datagram_and_counts_every_bad_one() {
    let node = common::start().await;
    let target = node.node.udp_addr().unwrap();
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let garbage: [&[u8]; 5] = [
        b"not json",
        b"{\"tx_id\":\"x\"}",
        b"{\"tx_id\":\"y\",\"holder_id\":\"h\",\"timestamp\":1,\"payload_b64\":\"%%%\"}",
        &[0xff, 0x00, 0x12],
        b"",
    ];
    let mut ids = Vec::new();
    let mut bad = 0;
    for i in 0..200 {
        let id = format!("udp-{i}");
        let body = serde_json::to_vec(&json(&tx(&id))).unwrap();
        socket.send_to(&body, target).await.unwrap();
        ids.push(id);
        if i % 2 == 0 {
            socket
                .send_to(garbage[(i / 2) % garbage.len()], target)
                .await
                .unwrap();
            bad += 1;
        }
        if i % 50 == 0 {
            // A rule breaker that decodes: the pipeline refuses it as invalid.
            let mut invalid = json(&tx(&format!("udp-invalid-{i}")));
            invalid["timestamp"] = (-1.0).into();
            socket
                .send_to(&serde_json::to_vec(&invalid).unwrap(), target)
                .await
                .unwrap();
        }
    }
    wait_stored(&node, &ids).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let malformed = metric(
            &node,
            "poh_tx_rejected_total",
            &["transport=\"udp\"", "reason=\"malformed\""],
        )
        .await;
        let invalid = metric(
            &node,
            "poh_tx_rejected_total",
            &["transport=\"udp\"", "reason=\"invalid\""],
        )
        .await;
        if malformed == f64::from(bad) && invalid == 4.0 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "malformed {malformed} (want {bad}), invalid {invalid} (want 4)"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let received = metric(&node, "poh_tx_received_total", &["transport=\"udp\""]).await;
    assert_eq!(
        received, 204.0,
        "every decoded datagram is counted received"
    );
    node.stop().await;
}

/// What the kernel dropped so far at the UDP socket bound to `port` (`/proc/net/udp`).
fn kernel_drops(port: u16) -> u64 {
    let port = format!(":{port:04X}");
    std::fs::read_to_string("/proc/net/udp")
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|f| f[1].ends_with(&port) && f[2].ends_with(":0000"))
        .map_or(0, |f| f.last().unwrap().parse().unwrap())
}

/// Datagrams beyond the pipeline's budget wait in the socket's buffer for room instead of
/// being refused as overload: each one sent is stored, or dropped by the kernel when that
/// buffer overflows, never refused by the node.
#[tokio::test]
async fn a_udp_burst_beyond_the_queue_waits_for_room_and_nothing_is_refused() {
    // A 1 MiB budget holds about a hundred 8 KiB transactions.
    let node = common::start_with(|c| c.ingest.queue_bytes = 1 << 20).await;
    let target = node.node.udp_addr().unwrap();
    let dropped_before = kernel_drops(target.port());
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let sent = 1000u64;
    for i in 0..sent {
        let mut t = tx(&format!("burst-{i}"));
        t.payload = vec![(i % 251) as u8; 8192];
        let body = serde_json::to_vec(&json(&t)).unwrap();
        socket.send_to(&body, target).await.unwrap();
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let stored = loop {
        let poh: serde_json::Value = reqwest::get(node.http("/v1/poh"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let stored = poh["seq"].as_u64().unwrap();
        let dropped = kernel_drops(target.port()) - dropped_before;
        if stored + dropped == sent {
            break stored;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{stored} stored and {dropped} dropped of {sent}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(
        stored > 200,
        "only {stored} stored: the budget was never exceeded"
    );
    let refused = metric(
        &node,
        "poh_tx_rejected_total",
        &["transport=\"udp\"", "reason=\"overloaded\""],
    )
    .await;
    assert_eq!(refused, 0.0, "a datagram was refused as overload");
    node.stop().await;
}

#[tokio::test]
async fn quic_acks_a_batch_on_one_stream_in_order() {
    let node = common::start().await;
    let peer = node.node.quic_addr().unwrap().to_string();
    let pin = node.quic_pin();
    let client = QuicClient::new(&ServerTrust::System, None).unwrap();
    let txs: Vec<pb::Tx> = (0..3000).map(|i| pb(&tx(&format!("quic-{i}")))).collect();
    let acks = client.send(&peer, Some(&pin), &txs).await.unwrap();
    assert_eq!(acks.len(), 3000);
    let mut last = None;
    for ack in &acks {
        assert_eq!(ack.code, pb::AckCode::Stored as i32, "{ack:?}");
        assert!(last < Some(ack.poh_seq), "acks come in submission order");
        last = Some(ack.poh_seq);
    }
    // The same connection again: duplicates answer with the original places.
    let again = client.send(&peer, Some(&pin), &txs[..10]).await.unwrap();
    for (a, b) in again.iter().zip(&acks) {
        assert_eq!(a.code, pb::AckCode::Duplicate as i32);
        assert_eq!((a.poh_seq, &a.poh_hash), (b.poh_seq, &b.poh_hash));
    }
    client.close();
    node.stop().await;
}

#[tokio::test]
async fn a_malformed_quic_frame_closes_only_its_stream() {
    let node = common::start().await;
    let addr = node.node.quic_addr().unwrap();
    let mut endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    endpoint.set_default_client_config(client_config(&ServerTrust::Insecure, None).unwrap());
    let connection = endpoint.connect(addr, "localhost").unwrap().await.unwrap();

    let (mut send, mut recv) = connection.open_bi().await.unwrap();
    let mut wire = Vec::new();
    frame::encode(&pb(&tx("before-garbage")), &mut wire);
    wire.extend_from_slice(&[0, 0, 0, 3, 0xff, 0xff, 0xff]);
    send.write_all(&wire).await.unwrap();
    send.finish().unwrap();
    let mut decoder = FrameDecoder::new(1 << 20);
    let mut acks = Vec::new();
    let ended = loop {
        match recv.read_chunk(usize::MAX, true).await {
            Ok(Some(chunk)) => {
                decoder.push(&chunk.bytes);
                while let Some(body) = decoder.next_frame().unwrap() {
                    acks.push(frame::decode::<pb::Ack>(body).unwrap());
                }
            }
            Ok(None) => break None,
            Err(e) => break Some(e),
        }
    };
    assert!(
        matches!(ended, Some(quinn::ReadError::Reset(code)) if code == quinn::VarInt::from_u32(MALFORMED_FRAME)),
        "the stream is reset as malformed: {ended:?}"
    );
    assert!(acks.len() <= 1);

    // The connection, and the node, keep serving.
    let (mut send, mut recv) = connection.open_bi().await.unwrap();
    let mut wire = Vec::new();
    frame::encode(&pb(&tx("after-garbage")), &mut wire);
    send.write_all(&wire).await.unwrap();
    send.finish().unwrap();
    let answer = recv.read_to_end(1 << 20).await.unwrap();
    let mut decoder = FrameDecoder::new(1 << 20);
    decoder.push(&answer);
    let ack = frame::decode::<pb::Ack>(decoder.next_frame().unwrap().unwrap()).unwrap();
    assert_eq!(ack.code, pb::AckCode::Stored as i32);
    wait_stored(&node, &["after-garbage".to_string()]).await;
    endpoint.close(quinn::VarInt::from_u32(0), b"");
    node.stop().await;
}

/// A peer that never answers costs only its own sends: the client connects to each peer
/// outside any lock the others need.
#[tokio::test]
async fn an_unreachable_quic_peer_does_not_hold_up_the_others() {
    let node = common::start().await;
    let good = node.node.quic_addr().unwrap().to_string();
    let pin = node.quic_pin();
    // A bound UDP socket that reads nothing: a handshake to it waits until it times out.
    let silent = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let silent_addr = silent.local_addr().unwrap().to_string();
    let client = std::sync::Arc::new(QuicClient::new(&ServerTrust::System, None).unwrap());
    let stuck = {
        let client = client.clone();
        tokio::spawn(async move { client.send(&silent_addr, None, &[pb(&tx("lost"))]).await })
    };
    // The test runtime has one thread: this lets the stuck connect start, and hold whatever
    // it holds, before the good send.
    tokio::task::yield_now().await;
    let started = std::time::Instant::now();
    let acks = tokio::time::timeout(
        std::time::Duration::from_secs(3),
        client.send(&good, Some(&pin), &[pb(&tx("delivered"))]),
    )
    .await
    .expect("the good peer was held up by the silent one")
    .unwrap();
    assert!(acks[0].success);
    assert!(!stuck.is_finished(), "the silent peer is still connecting");
    assert!(started.elapsed() < std::time::Duration::from_secs(3));
    stuck.abort();
    client.close();
    node.stop().await;
}
