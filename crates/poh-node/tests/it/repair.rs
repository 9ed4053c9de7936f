//! Catch-up and repair between real nodes: a restarted node takes what it missed from its
//! peer's `Sync`, a relaying node passes it on, a missing parent is fetched with `Repair`,
//! and a peer that answers with a tampered transaction is refused while an honest one
//! completes the repair.

use std::{collections::BTreeMap, time::Duration};

use poh_core::{Hash, SigningKey, Tx};
use poh_node::{NodeConfig, Peers, config::Span};
use poh_proto::v1::{self as pb, RepairRequest, SyncRequest};
use reqwest::Client;
use serde_json::Value;

use crate::common::{self, FakePeer, TestNode, get_json, json, metric, signed, submit_batch, tx};

/// Every record a node stores, by id, with its digest recomputed from the transaction.
async fn all_records(node: &TestNode) -> BTreeMap<String, Hash> {
    let mut client = node.grpc().await;
    let mut out = BTreeMap::new();
    let mut from = 0;
    loop {
        let mut stream = client
            .sync(SyncRequest {
                from_seq: from,
                limit: 10_000,
            })
            .await
            .unwrap()
            .into_inner();
        let mut n = 0;
        while let Some(record) = stream.message().await.unwrap() {
            let t = poh_node::tx_from_pb(record.tx.unwrap());
            out.insert(t.tx_id.clone(), t.digest());
            from = record.poh_seq + 1;
            n += 1;
        }
        if n < 10_000 {
            return out;
        }
    }
}

fn write_peers(path: &std::path::Path, grpc: &[&TestNode]) {
    let peers = Peers {
        grpc: grpc
            .iter()
            .map(|n| n.node.grpc_addr().unwrap().to_string())
            .collect(),
        ..Peers::default()
    };
    std::fs::write(path, serde_json::to_vec(&peers).unwrap()).unwrap();
}

fn every(config: &mut NodeConfig, sync: Duration, repair: Duration) {
    config.repair.sync_interval = Span(sync);
    config.repair.repair_interval = Span(repair);
}

/// Waits until `node` stores exactly `want`.
async fn converges(node: &TestNode, want: &BTreeMap<String, Hash>, what: &str) {
    let mut have = BTreeMap::new();
    for _ in 0..600 {
        have = all_records(node).await;
        if have.len() >= want.len() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(have.len(), want.len(), "{what}: count");
    assert!(have == *want, "{what}: the same ids with the same digests");
}

#[tokio::test]
async fn a_stopped_node_catches_up_and_a_relaying_node_converges() {
    let c = Client::new();
    let a = common::start().await;
    // C takes what B newly stores only through B's relay: its own catch-up is off.
    let c_node = common::start_with(|cfg| every(cfg, Duration::ZERO, Duration::ZERO)).await;

    let b_dir = tempfile::tempdir().unwrap();
    let peers_file = b_dir.path().join("peers.json");
    write_peers(&peers_file, &[&a, &c_node]);
    let b_config = {
        let mut cfg = common::config(&b_dir.path().join("data"));
        cfg.peers_file = Some(peers_file.clone());
        cfg.relay = true;
        every(&mut cfg, Duration::from_millis(200), Duration::from_secs(1));
        cfg
    };
    let b = TestNode::spawn(b_config.clone(), tempfile::tempdir().unwrap()).await;
    let first: Vec<Tx> = (0..10).map(|i| tx(&format!("early-{i}"))).collect();
    submit_batch(&c, &a, &first).await;
    converges(&b, &all_records(&a).await, "the first run").await;
    b.stop().await;

    // While B is down, A takes 5,000 more.
    for chunk in 0..5 {
        let txs: Vec<Tx> = (0..1000).map(|i| tx(&format!("gap-{chunk}-{i}"))).collect();
        submit_batch(&c, &a, &txs).await;
    }
    let want = all_records(&a).await;
    assert_eq!(want.len(), 5_010);

    // Restarted on the same data directory, B resumes from its sync point.
    let synced_before = {
        let store = b_config.open_store().unwrap();
        store
            .progress(&format!("sync/{}", a.node.grpc_addr().unwrap()))
            .unwrap()
    };
    assert!(
        synced_before.is_some_and(|seq| seq >= 10),
        "B kept its sync point with A"
    );
    let b = TestNode::spawn(b_config, b_dir).await;
    converges(&b, &want, "the restarted node").await;
    converges(&c_node, &want, "the node B relays to").await;
    let stored = metric(
        &c,
        &b,
        "poh_repair_records_total{source=\"sync\",result=\"stored\"}",
    )
    .await;
    assert_eq!(
        stored, 5_000.0,
        "only the gap was fetched after the restart"
    );
    b.stop().await;
    c_node.stop().await;
    a.stop().await;
}

/// A node that has `parent`, and one whose child of it waits for it.
async fn child_waiting_for(
    parent: &Tx,
    peers: impl FnOnce(&std::path::Path),
) -> (TestNode, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("peers.json");
    peers(&file);
    let node = common::start_with(|cfg| {
        cfg.peers_file = Some(file);
        every(cfg, Duration::ZERO, Duration::from_millis(100));
    })
    .await;
    let mut child = tx("child");
    child.parent_ids = vec![parent.tx_id.clone()];
    let ack = node
        .grpc()
        .await
        .broadcast(common::pb(&child))
        .await
        .unwrap()
        .into_inner();
    assert!(ack.success, "{ack:?}");
    (node, dir)
}

/// Waits until `id` is no longer `PENDING` on `node`; its JSON.
async fn settled(c: &Client, node: &TestNode, id: &str) -> Value {
    for _ in 0..200 {
        let v = get_json(c, node.http(&format!("/v1/tx/{id}"))).await;
        if v["status"] != "PENDING" {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{id} still PENDING after 10 s");
}

#[tokio::test]
async fn a_missing_parent_is_repaired_and_its_child_is_ordered() {
    let c = Client::new();
    let honest = common::start().await;
    let parent = tx("parent");
    submit_batch(&c, &honest, std::slice::from_ref(&parent)).await;
    let (node, _dir) = child_waiting_for(&parent, |f| write_peers(f, &[&honest])).await;

    let child = settled(&c, &node, "child").await;
    assert_eq!(child["status"], "ORDERED", "{child}");
    let got = get_json(&c, node.http("/v1/tx/parent")).await;
    assert_eq!(got["payload_b64"], json(&parent)["payload_b64"]);
    let stored = metric(
        &c,
        &node,
        "poh_repair_records_total{source=\"repair\",result=\"stored\"}",
    )
    .await;
    assert_eq!(stored, 1.0);
    node.stop().await;
    honest.stop().await;
}

#[tokio::test]
async fn a_tampered_repair_answer_is_refused_and_an_honest_peer_completes_it() {
    let c = Client::new();
    let key = SigningKey::generate().unwrap();
    let parent = signed("parent", &key);
    let honest = common::start().await;
    submit_batch(&c, &honest, std::slice::from_ref(&parent)).await;

    // The tampering peer serves the parent with its payload changed, signature kept.
    let mut altered = parent.clone();
    altered.payload = b"pay the attacker".to_vec();
    let (evil_addr, evil) = FakePeer {
        repair_answers: vec![pb::TxRecord {
            tx: Some(common::pb(&altered)),
            ..Default::default()
        }],
        ..FakePeer::default()
    }
    .serve()
    .await;
    let (node, _dir) = child_waiting_for(&parent, |f| {
        // The tampering peer is asked first.
        let peers = Peers {
            grpc: vec![
                evil_addr.to_string(),
                honest.node.grpc_addr().unwrap().to_string(),
            ],
            ..Peers::default()
        };
        std::fs::write(f, serde_json::to_vec(&peers).unwrap()).unwrap();
    })
    .await;

    let child = settled(&c, &node, "child").await;
    assert_eq!(child["status"], "ORDERED", "{child}");
    let got = get_json(&c, node.http("/v1/tx/parent")).await;
    assert_eq!(
        got["payload_b64"],
        json(&parent)["payload_b64"],
        "the honest parent is stored"
    );
    let refused = metric(
        &c,
        &node,
        "poh_repair_records_total{source=\"repair\",result=\"refused\"}",
    )
    .await;
    assert!(refused >= 1.0, "the tampered answer is counted: {refused}");
    let rejected = metric(
        &c,
        &node,
        "poh_tx_rejected_total{transport=\"grpc\",reason=\"bad_signature\"}",
    )
    .await;
    assert!(rejected >= 1.0, "{rejected}");
    evil.abort();
    node.stop().await;
    honest.stop().await;
}

#[tokio::test]
async fn repair_answers_are_bounded_by_bytes_and_page() {
    let c = Client::new();
    let node = common::start().await;
    // 40 transactions of 100 KB: 4 MB, twice the default 2 MiB message limit.
    let txs: Vec<Tx> = (0..40)
        .map(|i| {
            let mut t = tx(&format!("big-{i}"));
            t.payload = vec![b'x'; 100_000];
            t
        })
        .collect();
    for chunk in txs.chunks(10) {
        submit_batch(&c, &node, chunk).await;
    }
    let mut client = node.grpc().await;
    let mut ask: Vec<String> = txs.iter().map(|t| t.tx_id.clone()).collect();
    ask.insert(5, "never-stored".into());
    let mut got = Vec::new();
    let mut calls = 0;
    while !ask.is_empty() {
        let records = client
            .repair(RepairRequest {
                tx_ids: ask.clone(),
            })
            .await
            .expect("an answer within the message limit")
            .into_inner()
            .records;
        calls += 1;
        let Some(last) = records.last() else { break };
        let last = ask
            .iter()
            .position(|id| *id == last.tx.as_ref().unwrap().tx_id)
            .unwrap();
        got.extend(records.into_iter().map(|r| r.tx.unwrap().tx_id));
        ask.drain(..=last);
    }
    assert!(calls >= 4, "the caller paged: {calls} calls");
    let want: Vec<String> = txs.iter().map(|t| t.tx_id.clone()).collect();
    assert_eq!(got, want, "every stored one, once, in the order asked");
    node.stop().await;
}
