//! The stored PoH chain, read back over HTTP, re-verifies from genesis and proves every stored
//! transaction; a restarted node continues the same chain.

use std::collections::HashMap;

use poh_core::{Entry, Hash, genesis, verify::verify_serial};
use poh_node::{Node, NodeError};
use reqwest::Client;
use serde_json::Value;

use crate::common::{HASHES_PER_TICK, all_entries, config, json, pb, start, tx};

#[tokio::test]
async fn stored_entries_reverify_and_prove_every_transaction() {
    let node = start().await;
    let c = Client::new();
    let base = format!("http://{}", node.node.http_addr().unwrap());
    let mut grpc = node.grpc().await;
    let mut answers = Vec::new();
    for i in 0..40 {
        let t = tx(&format!("c{i}"));
        let (seq, hash) = if i % 2 == 0 {
            let ack = grpc.broadcast(pb(&t)).await.unwrap().into_inner();
            (ack.poh_seq, hex::encode(ack.poh_hash))
        } else {
            let r: Value = c
                .post(format!("{base}/v1/tx"))
                .json(&json(&t))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            (
                r["poh_seq"].as_u64().unwrap(),
                r["poh_hash"].as_str().unwrap().to_string(),
            )
        };
        answers.push((t.digest(), seq, hash));
        if i % 10 == 0 {
            // Let ticks pass between some transactions.
            tokio::time::sleep(std::time::Duration::from_millis(30)).await;
        }
    }
    // Idle ticks are committed within ~100 ms.
    tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    let (start, entries) = all_entries(&c, &base).await;
    assert_eq!(start, genesis("local"));
    verify_serial(&start, &entries, HASHES_PER_TICK)
        .expect("the stored chain verifies from genesis");
    assert!(entries.iter().any(Entry::is_tick), "the generator ticks");

    let by_hash: HashMap<String, &Entry> = entries.iter().map(|e| (e.hash.to_hex(), e)).collect();
    let mut seq = 0;
    for entry in &entries {
        seq += entry.mixins.len() as u64;
    }
    assert_eq!(seq, 40, "every stored transaction is mixed in exactly once");
    for (digest, _, hash) in &answers {
        let entry = by_hash.get(hash).expect("poh_hash names a stored entry");
        assert!(
            entry.mixins.contains(digest),
            "the digest is a mixin of its entry"
        );
    }
    // poh_seq is the index in the stream of mixins.
    let stream: Vec<Hash> = entries.iter().flat_map(|e| e.mixins.clone()).collect();
    for (digest, seq, _) in &answers {
        assert_eq!(&stream[*seq as usize], digest);
    }
    node.stop().await;
}

#[tokio::test]
async fn a_restarted_node_continues_the_same_chain() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::spawn(config(dir.path())).await.unwrap();
    let base = format!("http://{}", node.http_addr().unwrap());
    let c = Client::new();
    c.post(format!("{base}/v1/tx"))
        .json(&json(&tx("before")))
        .send()
        .await
        .unwrap();
    let before = node.pipeline().poh().state;
    node.shutdown();
    node.join().await.unwrap();

    let node = Node::spawn(config(dir.path())).await.unwrap();
    let resumed = node.pipeline().poh().state;
    assert!(resumed.entries >= before.entries, "nothing stored was lost");
    assert_eq!(resumed.mixins, 1);
    let base = format!("http://{}", node.http_addr().unwrap());
    let r: Value = c
        .post(format!("{base}/v1/tx"))
        .json(&json(&tx("after")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["poh_seq"], 1, "poh_seq continues");
    let r: Value = c
        .post(format!("{base}/v1/tx"))
        .json(&json(&tx("before")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        r["status"], "duplicate",
        "what was stored before the restart is known"
    );
    tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    let (start, entries) = all_entries(&c, &base).await;
    verify_serial(&start, &entries, HASHES_PER_TICK).expect("one chain across the restart");
    node.shutdown();
    node.join().await.unwrap();

    // The data dir holds chain "local": another chain id is refused, naming both.
    let mut other = config(dir.path());
    other.chain_id = "municipality/tokyo".into();
    match Node::spawn(other).await {
        Err(e @ NodeError::ChainMismatch { .. }) => {
            let text = e.to_string();
            assert!(
                text.contains("local") && text.contains("municipality/tokyo"),
                "{text}"
            );
        }
        Err(e) => panic!("unexpected error {e}"),
        Ok(_) => panic!("a node started on another chain's data"),
    }
}

#[tokio::test]
async fn a_port_in_use_is_a_clear_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path());
    c.http.as_mut().unwrap().port = port;
    let err = match Node::spawn(c).await {
        Err(e) => e.to_string(),
        Ok(_) => panic!("bound a port in use"),
    };
    assert!(
        err.contains(&format!("127.0.0.1:{port}")) && err.contains("HTTP"),
        "{err}"
    );
}

/// The generator's rate is reported from the first answer, measured so far, not 0 until a
/// window of samples fills.
#[tokio::test]
async fn the_hash_rate_is_reported_from_the_start() {
    let node = start().await;
    let poh: Value = reqwest::get(node.http("/v1/poh"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let rate = poh["hashes_per_second"].as_f64().unwrap();
    let configured = (HASHES_PER_TICK * 50) as f64;
    assert!(
        rate > 0.0 && rate < 2.0 * configured,
        "{rate} of {configured}"
    );
    node.stop().await;
}

/// A tick period of one hash could never hold a record (the tick takes its last hash), so
/// the generator would only tick: such a setting is refused at start.
#[tokio::test]
async fn too_few_hashes_per_tick_are_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path());
    c.poh.hashes_per_tick = 1;
    match Node::spawn(c).await {
        Err(NodeError::Poh(e)) => assert!(e.to_string().contains("between 2 and"), "{e}"),
        Err(e) => panic!("another error: {e}"),
        Ok(_) => panic!("started with hashes_per_tick = 1"),
    }
}

/// Long answers are read from the store page by page while they are sent: `GET
/// /v1/poh/entries` of thousands of entries and a `Sync` of a thousand records come whole, in
/// order, and the entries verify.
#[tokio::test]
async fn long_answers_stream_whole_and_in_order() {
    // A fast paced clock: thousands of entries in seconds, at a rate the store keeps up with
    // however fast the machine hashes (an unpaced clock writes entries as fast as it can,
    // which starves a busy test machine's disk).
    let node = crate::common::start_with(|c| c.poh.ticks_per_second = 1_000).await;
    let c = Client::new();
    let batch: Vec<Value> = (0..1200)
        .map(|i| {
            let mut t = tx(&format!("s{i}"));
            t.payload = vec![7; 1024];
            json(&t)
        })
        .collect();
    let r = c
        .post(node.http("/v1/tx/batch"))
        .json(&batch)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let durable = loop {
        let poh: Value = c
            .get(node.http("/v1/poh"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let entries = poh["entries"].as_u64().unwrap();
        if entries >= 3000 {
            break entries;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "only {entries} entries"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    let page: Value = c
        .get(node.http("/v1/poh/entries?from=0&limit=10000"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    // The clock may be past the page's limit already: the page is full, or holds every entry
    // that was durable.
    let served = page["entries"].as_array().unwrap();
    assert!(
        served.len() as u64 >= durable.min(10_000),
        "{} of {durable}",
        served.len()
    );
    let (start, entries) =
        all_entries(&c, &format!("http://{}", node.node.http_addr().unwrap())).await;
    assert_eq!(start, genesis("local"));
    verify_serial(&start, &entries[..served.len()], HASHES_PER_TICK).unwrap();
    for (e, s) in entries.iter().zip(served) {
        assert_eq!(e.hash.to_hex(), s["hash"].as_str().unwrap());
    }

    let mut grpc = node.grpc().await;
    let mut stream = grpc
        .sync(poh_proto::v1::SyncRequest {
            from_seq: 0,
            limit: 0,
        })
        .await
        .unwrap()
        .into_inner();
    let mut seqs = Vec::new();
    while let Some(r) = stream.message().await.unwrap() {
        assert_eq!(r.tx.unwrap().payload.len(), 1024);
        seqs.push(r.poh_seq);
    }
    assert_eq!(seqs, (0..1000).collect::<Vec<_>>(), "limit 0 means 1000");
    node.stop().await;
}
