//! Subscriptions against a real `poh serve` process: a subscriber that stops reading costs
//! the node no memory, `poh subscribe` prints what the node stores, and says which
//! transactions the node no longer holds (TTL) instead of passing over them.

use std::{
    io::{BufRead as _, BufReader},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use poh_proto::v1::{self as pb, poh_service_client::PohServiceClient};
use serde_json::{Value, json};

use crate::common::{Http, Served, poh, serve_flags, stop, text, wait_for};

/// Transactions sent while the subscriber reads nothing…
const TXS: u64 = 200_000;
/// …each with this much payload: 400 MiB in all.
const PAYLOAD: usize = 2048;
/// The node's peak resident set may reach this (page cache 32 MiB, admission queue 8 MiB).
/// The same run with no subscriber peaks at about 140 MiB on the development machine; a
/// node that queued the stalled subscriber's records would need the whole 400 MiB more.
const PEAK_RSS_MIB: u64 = 224;

/// The node's resident set now (`VmRSS`) and at its peak (`VmHWM`), in MiB.
fn rss_mib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .unwrap()
            / 1024
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// `poh serve` with `toml` as its config file, and a runtime for the clients.
fn serve_toml(dir: &std::path::Path, toml: &str) -> (Served, tokio::runtime::Runtime) {
    let config = dir.join("node.toml");
    std::fs::write(&config, toml).unwrap();
    let node = serve_flags(&dir.join("data"), &["--config", config.to_str().unwrap()]);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    (node, runtime)
}

/// A subscriber opens a stream and reads nothing for 10 s while 200,000 transactions of 2 KiB
/// arrive: the node's memory stays within a stated bound (it holds nothing for the stalled
/// reader: flow control stops the stream, and the cursor waits), and the subscriber then
/// receives every one of them, in order.
#[test]
fn a_stalled_subscriber_costs_the_node_no_memory_and_then_gets_everything() {
    let dir = tempfile::tempdir().unwrap();
    let (node, runtime) = serve_toml(
        dir.path(),
        "db_cache_mb = 32\n[ingest]\nfsync = false\nqueue_bytes = 8388608\n",
    );
    let pid = node.child.id();
    let grpc = format!("http://{}", node.grpc);
    let (before, after, stalled_for, seqs) = runtime.block_on(async {
        let mut client = PohServiceClient::connect(grpc.clone()).await.unwrap();
        let mut stream = client
            .subscribe(pb::SubscribeRequest { from_seq: 0 })
            .await
            .unwrap()
            .into_inner();
        let stalled = Instant::now();
        let (before, _) = rss_mib(pid);
        // Four streams of 50,000 at once.
        let mut senders = tokio::task::JoinSet::new();
        for k in 0..4u64 {
            let grpc = grpc.clone();
            senders.spawn(async move {
                let mut client = PohServiceClient::connect(grpc).await.unwrap();
                let txs = (k..TXS).step_by(4).map(|i| pb::Tx {
                    tx_id: format!("s{i}"),
                    holder_id: "h".into(),
                    timestamp: 1.0,
                    payload: vec![(i % 251) as u8; PAYLOAD],
                    ..pb::Tx::default()
                });
                let mut acks = client
                    .broadcast_stream(futures_util::stream::iter(txs))
                    .await
                    .unwrap()
                    .into_inner();
                while let Some(ack) = acks.message().await.unwrap() {
                    assert_eq!(ack.code, pb::AckCode::Stored as i32, "{ack:?}");
                }
            });
        }
        while let Some(sent) = senders.join_next().await {
            sent.unwrap();
        }
        let (_, after) = rss_mib(pid);
        eprintln!("node RSS {before} MiB before, peak {after} MiB while the subscriber stalled");
        tokio::time::sleep(Duration::from_secs(10).saturating_sub(stalled.elapsed())).await;
        let stalled_for = stalled.elapsed();
        let mut seqs = Vec::with_capacity(TXS as usize);
        while (seqs.len() as u64) < TXS {
            let record = tokio::time::timeout(Duration::from_secs(30), stream.message())
                .await
                .expect("the stream went quiet")
                .unwrap()
                .expect("the stream ended");
            assert_eq!(record.tx.unwrap().payload.len(), PAYLOAD);
            seqs.push(record.poh_seq);
        }
        (before, after, stalled_for, seqs)
    });
    assert!(stalled_for >= Duration::from_secs(10));
    assert!(
        seqs.iter().copied().eq(0..TXS),
        "every transaction, in order"
    );
    assert!(
        after <= PEAK_RSS_MIB,
        "the node grew from {before} MiB to a peak of {after} MiB"
    );
    stop(node);
}

/// `poh subscribe --json` prints each stored transaction as one JSON line, in order, and
/// `--once` exits 0 when the node stops.
#[test]
fn poh_subscribe_prints_every_stored_transaction() {
    let dir = tempfile::tempdir().unwrap();
    let node = serve_flags(dir.path(), &[]);
    let http = Http::new();
    let url = format!("{}/v1/tx/batch", node.base);
    let batch = |from: usize| -> Value {
        (from..from + 50)
            .map(|i| {
                json!({"tx_id": format!("c{i}"), "holder_id": "h", "timestamp": 2.5,
                            "payload_b64": "aGk="})
            })
            .collect()
    };
    assert_eq!(http.post(&url, &batch(0)), Some(200));
    let mut child = Command::new(env!("CARGO_BIN_EXE_poh"))
        .args([
            "subscribe",
            "--json",
            "--once",
            "--from-seq",
            "10",
            "--endpoint",
        ])
        .arg(&node.grpc)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (lines_tx, lines) = std::sync::mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = lines_tx.send(line);
        }
    });
    // 40 stored before it started, then 50 more while it runs.
    let mut seen: Vec<Value> = Vec::new();
    let mut take = |n: usize| {
        for _ in 0..n {
            let line = lines.recv_timeout(Duration::from_secs(30)).expect("a line");
            seen.push(serde_json::from_str(&line).unwrap());
        }
    };
    take(40);
    assert_eq!(http.post(&url, &batch(50)), Some(200));
    take(50);
    for (k, record) in seen.iter().enumerate() {
        let i = k + 10;
        assert_eq!(record["poh_seq"], i as u64);
        assert_eq!(record["tx_id"], format!("c{i}"));
        assert_eq!(record["payload_b64"], "aGk=");
        assert_eq!(record["status"], "ORDERED");
        assert_eq!(record["poh_hash"].as_str().unwrap().len(), 64);
    }
    stop(node);
    let status = wait_for("poh subscribe to exit", || child.try_wait().unwrap());
    assert!(status.success());
}

/// Subscribers at once, over this many connections (at most 256 streams each)…
const SUBSCRIBERS: usize = 1000;
const CONNECTIONS: usize = 32;
/// …while this many transactions of 1 KiB arrive: 2 MiB for each subscriber to receive.
const FAN_TXS: u64 = 2000;
/// The node's peak resident set with them (about 150 MiB on the development machine; a node
/// that queued what the 500 stalled subscribers have yet to read would need 1,000 MiB more).
const FAN_PEAK_RSS_MIB: u64 = 256;

/// A thousand subscribers, half of them reading nothing until the end: each gets every
/// transaction in order, and the node's memory stays bounded (at most a page and the HTTP/2
/// send buffer per stalled subscriber, not what each has yet to receive; their store reads
/// take turns, so they do not each hold a blocking thread).
#[test]
fn a_thousand_subscribers_cost_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    let (node, runtime) = serve_toml(
        dir.path(),
        "db_cache_mb = 32\n[limits]\nmax_subscriptions_per_client = 1000\n",
    );
    let pid = node.child.id();
    let grpc = format!("http://{}", node.grpc);
    let (before, peak) = runtime.block_on(async {
        let mut channels = Vec::new();
        for _ in 0..CONNECTIONS {
            let channel = tonic::transport::Endpoint::from_shared(grpc.clone())
                .unwrap()
                .connect()
                .await
                .unwrap();
            channels.push(channel);
        }
        // Readers and stalled subscribers on separate connections: a stalled stream keeps
        // its connection's HTTP/2 window for itself, so readers beside it would stall too.
        let mut streams = Vec::new();
        for i in 0..SUBSCRIBERS {
            let connection = (i % 2) * CONNECTIONS / 2 + (i / 2) % (CONNECTIONS / 2);
            let mut client = PohServiceClient::new(channels[connection].clone());
            let stream = client
                .subscribe(pb::SubscribeRequest { from_seq: 0 })
                .await
                .unwrap()
                .into_inner();
            streams.push(stream);
        }
        let (before, _) = rss_mib(pid);
        let read_all = |mut stream: tonic::Streaming<pb::TxRecord>| async move {
            for seq in 0..FAN_TXS {
                let record = tokio::time::timeout(Duration::from_secs(60), stream.message())
                    .await
                    .unwrap_or_else(|_| panic!("a subscriber went quiet at seq {seq}"))
                    .unwrap()
                    .expect("a stream ended");
                assert_eq!(record.poh_seq, seq);
            }
        };
        let mut stalled = Vec::new();
        let mut readers = tokio::task::JoinSet::new();
        for (i, stream) in streams.into_iter().enumerate() {
            if i % 2 == 0 {
                stalled.push(stream);
            } else {
                readers.spawn(read_all(stream));
            }
        }
        let mut client = PohServiceClient::connect(grpc.clone()).await.unwrap();
        let txs = (0..FAN_TXS).map(|i| pb::Tx {
            tx_id: format!("f{i}"),
            holder_id: "h".into(),
            timestamp: 1.0,
            payload: vec![7; 1024],
            ..pb::Tx::default()
        });
        let mut acks = client
            .broadcast_stream(futures_util::stream::iter(txs))
            .await
            .unwrap()
            .into_inner();
        while let Some(ack) = acks.message().await.unwrap() {
            assert_eq!(ack.code, pb::AckCode::Stored as i32);
        }
        while let Some(read) = readers.join_next().await {
            read.unwrap();
        }
        let (_, peak) = rss_mib(pid);
        for stream in stalled {
            readers.spawn(read_all(stream));
        }
        while let Some(read) = readers.join_next().await {
            read.unwrap();
        }
        (before, peak)
    });
    eprintln!("node RSS {before} MiB with {SUBSCRIBERS} subscribers open, peak {peak} MiB");
    assert!(
        peak <= FAN_PEAK_RSS_MIB,
        "the node peaked at {peak} MiB with {SUBSCRIBERS} subscribers"
    );
    stop(node);
}

/// `poh subscribe` from seqs the node's TTL expired exits non-zero with one line naming them
/// and the header that sealed them; with `--skip-expired` it warns and prints what follows.
#[test]
fn poh_subscribe_names_expired_transactions_and_skips_them_only_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    let node = serve_flags(
        &dir.path().join("data"),
        &[
            "--ttl",
            "2s",
            "--ttl-sweep-interval",
            "50ms",
            "--min-batch-interval",
            "0.05",
            "--max-batch-interval",
            "0.2",
        ],
    );
    let http = Http::new();
    let tx =
        |id: &str| json!({"tx_id": id, "holder_id": "h", "timestamp": 1.5, "payload_b64": "aGk="});
    let batch: Vec<Value> = (0..5).map(|i| tx(&format!("old-{i}"))).collect();
    let url = format!("{}/v1/tx/batch", node.base);
    assert_eq!(http.post(&url, &Value::Array(batch)), Some(200));
    let header_id = wait_for("old-4 expired", || {
        let (status, body) = http.get(&format!("{}/v1/tx/old-4", node.base));
        (status == 410).then(|| body["header_id"].as_str().unwrap().to_string())
    });
    let (status, old_0) = http.get(&format!("{}/v1/tx/old-0", node.base));
    assert_eq!(
        (status, &old_0["header_id"]),
        (410, &Value::from(header_id.clone()))
    );
    assert_eq!(http.post(&url, &json!([tx("new-0")])), Some(200));

    let out = poh(&[
        "subscribe",
        "--from-seq",
        "0",
        "--once",
        "--endpoint",
        &node.grpc,
    ]);
    assert!(!out.status.success());
    assert_eq!(text(&out.stdout), "");
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "the node no longer holds seqs 0..=4: 5 transactions expired by its TTL, sealed by \
             headers {header_id}; restore them there (poh restore HEADER_ID) or resume after \
             them (--from-seq 5 or --skip-expired)"
        )),
        "{stderr}"
    );

    let mut child = Command::new(env!("CARGO_BIN_EXE_poh"))
        .args([
            "subscribe",
            "--from-seq",
            "0",
            "--skip-expired",
            "--endpoint",
        ])
        .arg(&node.grpc)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    assert!(first.starts_with("5 new-0 "), "{first}");
    child.kill().unwrap();
    child.wait().unwrap();
    stop(node);
}
