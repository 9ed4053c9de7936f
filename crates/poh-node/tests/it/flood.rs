//! One client floods far beyond its limits: it is refused with the overload code, another
//! client is still served, and the node's resident memory stays bounded.

use std::{
    net::IpAddr,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use poh_node::{
    config::ClientLimits,
    network::client::quic::client_config,
    tls::ServerTrust,
    wire::frame::{self, FrameDecoder, OVERLOADED},
};
use tokio_stream::wrappers::ReceiverStream;
use tonic::Code;

use crate::common::{self, pb, tx};

/// This process's resident set in KiB (the node runs in it).
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flooding_client_is_refused_while_another_is_served_and_memory_stays_bounded() {
    let node = Arc::new(
        common::start_with(|c| {
            c.limits = ClientLimits {
                max_connections_per_client: 16,
                max_in_flight_per_client: 1024,
                requests_per_second: 200,
                burst: 200,
                ..ClientLimits::default()
            };
        })
        .await,
    );
    let before = rss_kib();
    let flooder: IpAddr = "127.0.0.1".parse().unwrap();
    let polite: IpAddr = "127.0.0.2".parse().unwrap();

    let (ok, refused, other) = (
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
    );
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut flood = Vec::new();
    for worker in 0..12 {
        let (node, ok, refused, other) = (node.clone(), ok.clone(), refused.clone(), other.clone());
        flood.push(tokio::spawn(async move {
            // Twelve connections from one address, within its connection limit.
            let client = reqwest::Client::builder()
                .local_address(flooder)
                .timeout(Duration::from_secs(5))
                .build()
                .unwrap();
            let mut n = 0;
            while Instant::now() < deadline {
                n += 1;
                let body = common::json(&tx(&format!("flood-{worker}-{n}")));
                match client.post(node.http("/v1/tx")).json(&body).send().await {
                    Ok(r) if r.status() == 201 => ok.fetch_add(1, Ordering::Relaxed),
                    Ok(r) if r.status() == 503 => {
                        assert!(r.headers().contains_key("retry-after"));
                        refused.fetch_add(1, Ordering::Relaxed)
                    }
                    // Connections beyond the per-client limit are closed at accept.
                    _ => other.fetch_add(1, Ordering::Relaxed),
                };
            }
        }));
    }
    // Meanwhile a second client, from another address, is served every time.
    let polite_client = reqwest::Client::builder()
        .local_address(polite)
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    for i in 0..20 {
        let r = polite_client
            .post(node.http("/v1/tx"))
            .json(&common::json(&tx(&format!("polite-{i}"))))
            .send()
            .await
            .unwrap();
        assert_eq!(
            r.status(),
            201,
            "the other client is served during the flood"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // gRPC from the flooding address is refused with RESOURCE_EXHAUSTED.
    let mut grpc = node.grpc().await;
    let mut exhausted = 0;
    for i in 0..400 {
        if let Err(s) = grpc.broadcast(pb(&tx(&format!("grpc-flood-{i}")))).await {
            assert_eq!(
                s.code(),
                Code::ResourceExhausted,
                "call {i} after {exhausted}: {s:?}"
            );
            exhausted += 1;
        }
    }
    for f in flood {
        f.await.unwrap();
    }
    let (ok, refused, other) = (
        ok.load(Ordering::Relaxed),
        refused.load(Ordering::Relaxed),
        other.load(Ordering::Relaxed),
    );
    assert!(exhausted > 0, "gRPC flood refused");
    assert!(refused > 0, "refused {refused}, stored {ok}, other {other}");
    assert!(
        ok <= 200 + 200 * 4,
        "stored {ok}: no more than the burst plus the rate"
    );

    let after = rss_kib();
    let grown = after.saturating_sub(before);
    eprintln!(
        "flood: stored {ok}, refused {refused}, closed {other}, gRPC refused {exhausted}; RSS {before} KiB -> {after} KiB (+{grown} KiB)"
    );
    // The process also holds whatever other tests run beside this one (cargo test runs them
    // on threads of one process), so the bound is generous; alone it grows by about 8 MiB.
    assert!(
        grown < 256 * 1024,
        "resident memory grew by {grown} KiB under the flood"
    );
    Arc::try_unwrap(node).ok().unwrap().stop().await;
}

/// Requests in flight are limited per client across every transport: while one client holds
/// two open gRPC streams (its limit), its next gRPC call, HTTP request and QUIC stream are all
/// refused with the overload code, another client is served, and closing a stream frees a slot.
#[tokio::test]
async fn requests_in_flight_are_limited_per_client_on_every_transport() {
    let node = common::start_with(|c| {
        c.limits = ClientLimits {
            max_in_flight_per_client: 2,
            ..ClientLimits::default()
        };
    })
    .await;
    let mut grpc = node.grpc().await;
    let mut open = Vec::new();
    for s in 0..2 {
        let (sender, receiver) = tokio::sync::mpsc::channel(4);
        sender.send(pb(&tx(&format!("stream-{s}")))).await.unwrap();
        let mut acks = grpc
            .broadcast_stream(ReceiverStream::new(receiver))
            .await
            .unwrap()
            .into_inner();
        let ack = acks.message().await.unwrap().unwrap();
        assert!(ack.success, "{ack:?}");
        open.push((sender, acks));
    }

    let refused = grpc.broadcast(pb(&tx("third-call"))).await.unwrap_err();
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
    assert!(refused.message().contains("in flight"), "{refused:?}");

    let http = reqwest::Client::new();
    let r = http
        .post(node.http("/v1/tx"))
        .json(&common::json(&tx("http-while-full")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    assert!(r.headers().contains_key("retry-after"));

    let mut endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    endpoint.set_default_client_config(client_config(&ServerTrust::Insecure, None).unwrap());
    let connection = endpoint
        .connect(node.node.quic_addr().unwrap(), "localhost")
        .unwrap()
        .await
        .unwrap();
    let quic_tx = |id: &str| {
        let mut wire = Vec::new();
        frame::encode(&pb(&tx(id)), &mut wire);
        wire
    };
    let (mut send, mut recv) = connection.open_bi().await.unwrap();
    send.write_all(&quic_tx("quic-while-full")).await.unwrap();
    let _ = send.finish();
    let ended = recv.read_to_end(1 << 20).await;
    assert!(
        matches!(ended, Err(quinn::ReadToEndError::Read(quinn::ReadError::Reset(code)))
            if code == quinn::VarInt::from_u32(OVERLOADED)),
        "the QUIC stream is reset as overloaded: {ended:?}"
    );

    // Another client address is not affected.
    let other = reqwest::Client::builder()
        .local_address("127.0.0.2".parse::<IpAddr>().unwrap())
        .build()
        .unwrap();
    let r = other
        .post(node.http("/v1/tx"))
        .json(&common::json(&tx("other-client")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    assert!(
        r.headers().contains_key("content-length"),
        "holding the slot keeps the answer's length: {:?}",
        r.headers()
    );

    // Ending one stream gives its slot back: the next call and QUIC stream are served.
    let (sender, mut acks) = open.pop().unwrap();
    drop(sender);
    while acks.message().await.unwrap().is_some() {}
    drop(acks);
    let ack = grpc
        .broadcast(pb(&tx("after-a-stream-ended")))
        .await
        .unwrap()
        .into_inner();
    assert!(ack.success, "{ack:?}");
    let (mut send, mut recv) = connection.open_bi().await.unwrap();
    send.write_all(&quic_tx("quic-after")).await.unwrap();
    send.finish().unwrap();
    let answer = recv.read_to_end(1 << 20).await.unwrap();
    let mut decoder = FrameDecoder::new(1 << 20);
    decoder.push(&answer);
    let ack = frame::decode::<poh_proto::v1::Ack>(decoder.next_frame().unwrap().unwrap()).unwrap();
    assert!(ack.success, "{ack:?}");

    endpoint.close(quinn::VarInt::from_u32(0), b"");
    drop(open);
    node.stop().await;
}

/// A client holding its share of the read budget with a slow body is refused more (503
/// `overloaded`) before anything more is read; once the slow body goes, it is served again.
#[tokio::test]
async fn request_bytes_beyond_a_clients_share_are_refused_before_they_are_read() {
    use tokio::io::AsyncWriteExt as _;
    let node = common::start_with(|c| {
        c.limits.buffered_bytes_per_client = 1 << 20;
        if let Some(http) = c.http.as_mut() {
            http.max_batch_body_bytes = 1 << 20;
            http.max_body_bytes = 1 << 20;
        }
        if let Some(grpc) = c.grpc.as_mut() {
            grpc.max_message_bytes = 1 << 20;
        }
        if let Some(quic) = c.quic.as_mut() {
            quic.max_frame_bytes = 1 << 20;
        }
    })
    .await;
    let mut slow = tokio::net::TcpStream::connect(node.node.http_addr().unwrap())
        .await
        .unwrap();
    slow.write_all(
        b"POST /v1/tx/batch HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n\
          content-length: 1000000\r\n\r\n[",
    )
    .await
    .unwrap();
    slow.write_all(&vec![b' '; 900_000]).await.unwrap();

    let batch: Vec<serde_json::Value> = (0..150)
        .map(|i| {
            let mut t = tx(&format!("share-{i}"));
            t.payload = vec![1; 1500];
            common::json(&t)
        })
        .collect();
    let client = reqwest::Client::new();
    // Until the node holds the slow body, nothing is decided: wait for it (the gauge).
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = common::metrics_text(&client, &node).await;
        let held: f64 = text
            .lines()
            .find_map(|l| l.strip_prefix("poh_buffered_bytes "))
            .unwrap()
            .parse()
            .unwrap();
        if held >= 900_000.0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the node never read the slow body: {held}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let post = || client.post(node.http("/v1/tx/batch")).json(&batch).send();
    let r = post().await.unwrap();
    assert_eq!(r.status(), 503, "315 kB more than the 1 MiB share holds");
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"], "overloaded");
    drop(slow);
    let deadline = Instant::now() + Duration::from_secs(10);
    while post().await.unwrap().status() != 200 {
        assert!(
            Instant::now() < deadline,
            "still refused after the slow body went"
        );
    }
    node.stop().await;
}
