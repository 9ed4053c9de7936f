//! Subscriptions: gRPC `Subscribe` and `GET /v1/events` against real nodes, with
//! transactions arriving over all four transports.

use std::{collections::HashSet, net::SocketAddr, time::Duration};

use poh_node::{network::client::QuicClient, tls::ServerTrust};
use poh_proto::v1::{self as pb, poh_service_client::PohServiceClient};
use reqwest::Client;
use serde_json::Value;
use tokio::time::Instant;

use crate::common::{self, Events, PATIENCE, TestNode, get_json, json, metric, pb, tx};

/// Where to send transactions: every transport of one node.
#[derive(Clone)]
struct Targets {
    grpc: SocketAddr,
    http: String,
    udp: SocketAddr,
    quic: String,
    quic_pin: String,
}

impl Targets {
    fn of(node: &TestNode) -> Self {
        Self::of_node(&node.node, node._dir.path())
    }

    /// A node whose data directory (where its QUIC certificate is) is `dir`.
    fn of_node(node: &poh_node::Node, dir: &std::path::Path) -> Self {
        let cert = poh_node::tls::read_certs(&dir.join("quic-dev-cert.pem")).unwrap();
        Self {
            grpc: node.grpc_addr().unwrap(),
            http: format!("http://{}", node.http_addr().unwrap()),
            udp: node.udp_addr().unwrap(),
            quic: node.quic_addr().unwrap().to_string(),
            quic_pin: poh_node::tls::fingerprint(&cert[0]),
        }
    }

    /// Sends `t{i}` for every `i` in `ids`, a quarter over each transport, all at once, and
    /// waits until each transport's share is stored.
    async fn send(&self, ids: std::ops::Range<usize>) {
        let share = |k: usize| -> Vec<poh_core::Tx> {
            ids.clone()
                .filter(|i| i % 4 == k)
                .map(|i| tx(&format!("t{i}")))
                .collect()
        };
        let (grpc, http, udp, quic) = (share(0), share(1), share(2), share(3));
        tokio::join!(
            self.send_grpc(grpc),
            self.send_http(http),
            self.send_udp(udp),
            self.send_quic(quic)
        );
    }

    async fn send_grpc(&self, txs: Vec<poh_core::Tx>) {
        let mut client = PohServiceClient::connect(format!("http://{}", self.grpc))
            .await
            .unwrap();
        let n = txs.len();
        let outbound = futures_util::stream::iter(txs.iter().map(pb).collect::<Vec<_>>());
        let mut acks = client
            .broadcast_stream(outbound)
            .await
            .unwrap()
            .into_inner();
        let mut stored = 0;
        while let Some(ack) = acks.message().await.unwrap() {
            assert_eq!(ack.code, pb::AckCode::Stored as i32, "{ack:?}");
            stored += 1;
        }
        assert_eq!(stored, n);
    }

    async fn send_http(&self, txs: Vec<poh_core::Tx>) {
        let client = Client::new();
        for chunk in txs.chunks(250) {
            let batch: Vec<Value> = chunk.iter().map(json).collect();
            let r = client
                .post(format!("{}/v1/tx/batch", self.http))
                .json(&batch)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
            let answers: Vec<Value> = r.json().await.unwrap();
            assert!(
                answers.iter().all(|a| a["status"] == "stored"),
                "{answers:?}"
            );
        }
    }

    /// Datagrams, paced so the socket's receive buffer never overflows; then waits until
    /// every one is stored.
    async fn send_udp(&self, txs: Vec<poh_core::Tx>) {
        let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        for chunk in txs.chunks(20) {
            for t in chunk {
                let body = serde_json::to_vec(&json(t)).unwrap();
                socket.send_to(&body, self.udp).await.unwrap();
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let client = Client::new();
        let deadline = Instant::now() + PATIENCE;
        for t in &txs {
            let url = format!("{}/v1/tx/{}", self.http, t.tx_id);
            while client.get(&url).send().await.unwrap().status() != 200 {
                assert!(Instant::now() < deadline, "{} never stored", t.tx_id);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }

    async fn send_quic(&self, txs: Vec<poh_core::Tx>) {
        let client = QuicClient::new(&ServerTrust::System, None).unwrap();
        for chunk in txs.chunks(250) {
            let frames: Vec<pb::Tx> = chunk.iter().map(pb).collect();
            let acks = client
                .send(&self.quic, Some(&self.quic_pin), &frames)
                .await
                .unwrap();
            assert!(acks.iter().all(|a| a.code == pb::AckCode::Stored as i32));
        }
        client.close();
    }
}

/// Reads `n` records from a `Subscribe` stream: each one's `(poh_seq, tx_id)`.
async fn take(stream: &mut tonic::Streaming<pb::TxRecord>, n: usize) -> Vec<(u64, String)> {
    let mut seen = Vec::with_capacity(n);
    while seen.len() < n {
        let record = tokio::time::timeout(PATIENCE, stream.message())
            .await
            .unwrap_or_else(|_| panic!("only {} of {n} records came", seen.len()))
            .unwrap()
            .unwrap_or_else(|| panic!("the stream ended after {} of {n}", seen.len()));
        seen.push((record.poh_seq, record.tx.unwrap().tx_id));
    }
    seen
}

async fn subscribe(node: &TestNode, from_seq: u64) -> tonic::Streaming<pb::TxRecord> {
    node.grpc()
        .await
        .subscribe(pb::SubscribeRequest { from_seq })
        .await
        .unwrap()
        .into_inner()
}

async fn wait_seq(c: &Client, node: &TestNode, seq: u64) {
    let deadline = Instant::now() + PATIENCE;
    while get_json(c, node.http("/v1/poh")).await["seq"]
        .as_u64()
        .unwrap()
        < seq
    {
        assert!(Instant::now() < deadline, "fewer than {seq} stored");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn ids(range: std::ops::Range<usize>) -> HashSet<String> {
    range.map(|i| format!("t{i}")).collect()
}

/// A subscriber from before the first transaction sees all 10,000 (sent over four transports
/// at once) exactly once, in `poh_seq` order; one started at `from_seq` 5,000 while the load
/// goes on gets the stored rest and then the live ones, with nothing lost or repeated where
/// the one turns into the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribers_get_every_transaction_once_in_order_across_the_hand_over() {
    let node = common::start().await;
    let c = Client::new();
    let targets = Targets::of(&node);
    let mut early = subscribe(&node, 0).await;

    targets.send(0..6000).await;
    wait_seq(&c, &node, 6000).await;
    let rest = {
        let targets = targets.clone();
        tokio::spawn(async move { targets.send(6000..10_000).await })
    };
    let mut late = Events::open(node.http("/v1/events?from_seq=5000"), None).await;
    assert_eq!(metric(&c, &node, "poh_subscribers").await, 2.0);
    let late_seen = late.take_txs(5000).await;
    rest.await.unwrap();
    let early_seen = take(&mut early, 10_000).await;

    let seqs: Vec<u64> = early_seen.iter().map(|(s, _)| *s).collect();
    assert_eq!(
        seqs,
        (0..10_000).collect::<Vec<_>>(),
        "every seq once, in order"
    );
    let got: HashSet<String> = early_seen.into_iter().map(|(_, id)| id).collect();
    assert_eq!(got, ids(0..10_000), "exactly the transactions sent");
    let seqs: Vec<u64> = late_seen.iter().map(|(s, _)| *s).collect();
    assert_eq!(seqs, (5000..10_000).collect::<Vec<_>>());

    drop((early, late));
    let deadline = Instant::now() + PATIENCE;
    while metric(&c, &node, "poh_subscribers").await != 0.0 {
        assert!(
            Instant::now() < deadline,
            "a closed subscription is still counted"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let calls = r#"grpc_requests_total{method="Subscribe",code="CANCELLED"}"#;
    assert_eq!(metric(&c, &node, calls).await, 1.0);
    node.stop().await;
}

/// A dropped `GET /v1/events` connection resumes with `Last-Event-ID`: nothing missed, nothing
/// twice, while transactions keep arriving; sealed headers come as `event: header`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_resume_after_the_last_event_id_and_carry_sealed_headers() {
    let node = common::start_with(|c| {
        c.federation.min_batch_interval = 0.05;
        c.federation.max_batch_interval = 0.2;
    })
    .await;
    let c = Client::new();
    let targets = Targets::of(&node);
    let mut first = Events::open(node.http("/v1/events"), None).await;
    let load = {
        let targets = targets.clone();
        tokio::spawn(async move {
            for k in 0..6 {
                targets.send(k * 500..(k + 1) * 500).await;
            }
        })
    };
    let mut seen = first.take_txs(1234).await;
    drop(first);
    let last = seen.last().unwrap().0;
    let mut second = Events::open(node.http("/v1/events?from_seq=0"), Some(last)).await;
    seen.extend(second.take_txs(3000 - seen.len()).await);
    load.await.unwrap();
    let seqs: Vec<u64> = seen.iter().map(|(s, _)| *s).collect();
    assert_eq!(seqs, (0..3000).collect::<Vec<_>>(), "no gap, no duplicate");
    let got: HashSet<String> = seen.into_iter().map(|(_, id)| id).collect();
    assert_eq!(got, ids(0..3000));

    // Headers come as they are sealed, without an id; they verify as GET /v1/headers does.
    let header = loop {
        let e = second.next().await.unwrap();
        if e.event == "header" {
            break e;
        }
    };
    assert_eq!(header.id, None);
    let header: Value = serde_json::from_str(&header.data).unwrap();
    let id = header["header_id"].as_str().unwrap();
    let stored = get_json(&c, node.http(&format!("/v1/headers/{id}"))).await;
    assert_eq!(stored, header);

    // Bad starting points are refused before anything is held.
    for (query, last) in [("?from_seq=x", None), ("", Some("seven"))] {
        let mut request = c.get(node.http(&format!("/v1/events{query}")));
        if let Some(last) = last {
            request = request.header("last-event-id", last);
        }
        let r = request.send().await.unwrap();
        assert_eq!(r.status(), 400);
        assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid");
    }
    node.stop().await;
}

/// An idle stream carries keep-alive comments, so a proxy does not cut it.
#[tokio::test]
async fn an_idle_event_stream_carries_keep_alive_comments() {
    let node = common::start_with(|c| {
        c.http.as_mut().unwrap().events_keepalive_secs = 1;
        c.federation.max_batch_interval = 1000.0;
        c.federation.min_batch_interval = 1000.0;
    })
    .await;
    let mut events = Events::open(node.http("/v1/events"), None).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while events.comments < 2 {
        assert!(Instant::now() < deadline, "no keep-alive in 10 s");
        let chunk = tokio::time::timeout(Duration::from_secs(5), events.response.chunk())
            .await
            .expect("nothing for 5 s")
            .unwrap()
            .unwrap();
        events.buffer.push_str(std::str::from_utf8(&chunk).unwrap());
        while let Some(end) = events.buffer.find('\n') {
            let line: String = events.buffer.drain(..=end).collect();
            if line.starts_with(':') {
                events.comments += 1;
            }
        }
    }
    node.stop().await;
}

/// Stopping the node ends every stream cleanly (gRPC OK, the SSE body's end) at once, even
/// one whose reader has stalled; a restarted node gives the rest from the last seq seen.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_ends_streams_cleanly_and_the_rest_follows_from_the_last_seq() {
    let dir = tempfile::tempdir().unwrap();
    let node = poh_node::Node::spawn(common::config(dir.path()))
        .await
        .unwrap();
    let targets = Targets::of_node(&node, dir.path());
    let grpc = format!("http://{}", node.grpc_addr().unwrap());
    let mut client = PohServiceClient::connect(grpc).await.unwrap();
    let request = |from_seq| pb::SubscribeRequest { from_seq };
    let mut reader = client.subscribe(request(0)).await.unwrap().into_inner();
    let _stalled = client.subscribe(request(0)).await.unwrap().into_inner();
    let url = format!("{}/v1/events?from_seq=0", targets.http);
    let mut events = Events::open(url, None).await;
    targets.send(0..400).await;
    let mut seen = take(&mut reader, 400).await;
    assert_eq!(events.take_txs(400).await.len(), 400);

    let stopping = Instant::now();
    node.shutdown();
    let end = tokio::time::timeout(Duration::from_secs(5), reader.message())
        .await
        .expect("the stream did not end");
    assert_eq!(
        end.unwrap().map(|r| r.poh_seq),
        None,
        "the stream ends with OK"
    );
    while let Some(e) = events.next().await {
        assert_eq!(e.event, "header", "only headers could still come");
    }
    node.join().await.unwrap();
    // Well inside the listeners' 10 s drain: nobody waited on the subscribers.
    assert!(
        stopping.elapsed() < Duration::from_secs(5),
        "the node took {:?} to stop",
        stopping.elapsed()
    );

    // The same data directory, new ports.
    let node = poh_node::Node::spawn(common::config(dir.path()))
        .await
        .unwrap();
    let targets = Targets::of_node(&node, dir.path());
    let grpc = format!("http://{}", node.grpc_addr().unwrap());
    let mut client = PohServiceClient::connect(grpc).await.unwrap();
    let last = seen.last().unwrap().0;
    let mut resumed = client
        .subscribe(request(last + 1))
        .await
        .unwrap()
        .into_inner();
    targets.send(400..800).await;
    seen.extend(take(&mut resumed, 400).await);
    let seqs: Vec<u64> = seen.iter().map(|(s, _)| *s).collect();
    assert_eq!(seqs, (0..800).collect::<Vec<_>>());
    let got: HashSet<String> = seen.into_iter().map(|(_, id)| id).collect();
    assert_eq!(got, ids(0..800));
    drop(resumed);
    node.shutdown();
    node.join().await.unwrap();
}

/// Subscriptions are limited per client and in total (RESOURCE_EXHAUSTED / 503), need the
/// same credentials as any call, and are counted in `poh_subscribers` while open.
#[tokio::test]
async fn subscriptions_are_limited_and_authenticated_like_every_call() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens");
    std::fs::write(&tokens, "sesame\n").unwrap();
    let node = common::start_with(|c| {
        c.limits.max_subscriptions_per_client = 2;
        c.udp = None;
        c.quic = None;
        c.auth = Some(poh_node::config::AuthConfig {
            token_file: Some(tokens.clone()),
            ..poh_node::config::AuthConfig::default()
        });
    })
    .await;
    let c = Client::new();
    let bearer = |from_seq| {
        let mut r = tonic::Request::new(pb::SubscribeRequest { from_seq });
        r.metadata_mut()
            .insert("authorization", "Bearer sesame".parse().unwrap());
        r
    };
    let mut grpc = node.grpc().await;
    let anonymous = grpc
        .subscribe(pb::SubscribeRequest { from_seq: 0 })
        .await
        .unwrap_err();
    assert_eq!(anonymous.code(), tonic::Code::Unauthenticated);
    let r = c.get(node.http("/v1/events")).send().await.unwrap();
    assert_eq!(r.status(), 401);

    let events = || async {
        c.get(node.http("/v1/events"))
            .bearer_auth("sesame")
            .send()
            .await
            .unwrap()
    };
    let one = grpc.subscribe(bearer(0)).await.unwrap().into_inner();
    let two = events().await;
    assert_eq!(two.status(), 200);
    let third = grpc.subscribe(bearer(0)).await.unwrap_err();
    assert_eq!(third.code(), tonic::Code::ResourceExhausted);
    assert!(
        third.message().contains("subscriptions"),
        "{}",
        third.message()
    );
    let r = events().await;
    assert_eq!(r.status(), 503);
    assert!(r.headers().contains_key("retry-after"));

    // One closed, one more may open.
    drop(one);
    let deadline = Instant::now() + PATIENCE;
    let reopened = loop {
        match grpc.subscribe(bearer(0)).await {
            Ok(stream) => break stream,
            Err(e) => assert_eq!(e.code(), tonic::Code::ResourceExhausted),
        }
        assert!(
            Instant::now() < deadline,
            "a closed subscription still counts"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    // /metrics is a health path: open without the token.
    let deadline = Instant::now() + PATIENCE;
    while metric(&c, &node, "poh_subscribers").await != 2.0 {
        assert!(Instant::now() < deadline, "poh_subscribers is not 2");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let text = common::metrics_text(&c, &node).await;
    assert!(
        text.contains(r#"grpc_requests_total{method="Subscribe",code="RESOURCE_EXHAUSTED"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(r#"http_requests_total{method="GET",path="/v1/events",status="503"} 1"#),
        "{text}"
    );
    drop((reopened, two));
    node.stop().await;
}
