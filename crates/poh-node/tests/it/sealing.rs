//! Sealed headers (SPEC §6) on a real node: transactions become `SEALED` on every transport
//! that reports status, the headers read back over HTTP verify against the node's own PoH
//! entries, and a restarted node continues the header chain.

use std::time::Duration;

use poh_core::{ChainHead, Header, HeaderVerifier, Level};
use poh_node::{NodeConfig, wire::headers::HeaderJson};
use poh_proto::v1::{GetTxRequest, StatusRequest, TxStatus};
use reqwest::{Client, StatusCode};
use serde_json::Value;

use crate::common::{HASHES_PER_TICK, TestNode, all_entries, config, get_json, json, metric, tx};

/// Seals often, so tests see headers within a fraction of a second.
pub fn fast(config: &mut NodeConfig) {
    config.federation.min_batch_interval = 0.05;
    config.federation.max_batch_interval = 0.2;
}

pub async fn headers(c: &Client, node: &TestNode, from: u64) -> Vec<Header> {
    let body: Value = c
        .get(node.http(&format!("/v1/headers?from={from}&limit=1000")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    body["headers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            serde_json::from_value::<HeaderJson>(h.clone())
                .unwrap()
                .to_header()
                .unwrap()
        })
        .collect()
}

/// Polls `GET /v1/tx/{id}` until it is sealed; its JSON.
async fn sealed(c: &Client, node: &TestNode, id: &str) -> Value {
    for _ in 0..200 {
        let v = get_json(c, node.http(&format!("/v1/tx/{id}"))).await;
        if v["status"] == "SEALED" {
            return v;
        }
        assert_eq!(v["header_id"], Value::Null, "a header_id comes with SEALED");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("{id} was not sealed within 5 s");
}

fn verifier(public_key: &[u8]) -> HeaderVerifier {
    HeaderVerifier {
        chain_id: "local".into(),
        level: Level::Municipality,
        public_key: public_key.to_vec(),
        hashes_per_tick: HASHES_PER_TICK,
    }
}

#[tokio::test]
async fn stored_transactions_are_sealed_by_headers_that_verify_against_the_chain() {
    let node = crate::common::start_with(fast).await;
    let c = Client::new();
    for i in 0..20 {
        let r = c
            .post(node.http("/v1/tx"))
            .json(&json(&tx(&format!("seal-{i}"))))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::CREATED);
    }
    let first = sealed(&c, &node, "seal-0").await;
    let last = sealed(&c, &node, "seal-19").await;
    let header_id = last["header_id"].as_str().unwrap().to_string();

    // gRPC reports the same header.
    let record = node
        .grpc()
        .await
        .get_tx(GetTxRequest {
            tx_id: "seal-19".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(record.status, TxStatus::Sealed as i32);
    assert_eq!(record.header_id, header_id);
    let status = node
        .dag()
        .await
        .query_transaction_status(StatusRequest {
            tx_id: "seal-19".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(status.status, TxStatus::Sealed as i32);
    assert_eq!(status.header_id, header_id);

    // The header by id is one of the listed ones, and covers the transaction's digest.
    let one: HeaderJson = c
        .get(node.http(&format!("/v1/headers/{header_id}")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let one = one.to_header().unwrap();
    assert_eq!(one.id(), header_id);

    // Every header verifies, in order, against the entries the node serves (wait for a
    // second one, to page by height).
    let mut list = headers(&c, &node, 0).await;
    for _ in 0..100 {
        if list.len() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        list = headers(&c, &node, 0).await;
    }
    assert!(list.len() >= 2, "{} headers", list.len());
    assert!(list.contains(&one));
    let (start, entries) = all_entries(&c, &node.http("")).await;
    let verifier = verifier(&list[0].public_key);
    let mut head = ChainHead::genesis("local");
    assert_eq!(head.start_hash, start);
    let mut items = Vec::new();
    for h in &list {
        let covered = &entries[h.poh_start as usize..h.poh_end as usize];
        head = verifier.verify(&head, h, covered).unwrap();
        items.extend(covered.iter().flat_map(|e| e.mixins.clone()));
    }
    assert_eq!(items.len(), 20, "each stored transaction is one item");
    let digest = poh_core::Tx::digest(&tx("seal-0"));
    assert!(items.contains(&digest));
    assert_ne!(first["header_id"], Value::Null);

    // Paging by height.
    let later = headers(&c, &node, 1).await;
    assert_eq!(later[0], list[1]);
    let bad = c
        .get(node.http("/v1/headers?limit=1001"))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    for unknown in ["00".repeat(32), "not-a-hash".into()] {
        let r = c
            .get(node.http(&format!("/v1/headers/{unknown}")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"], "not_found");
    }

    let fed = get_json(&c, node.http("/v1/federation")).await;
    assert_eq!(fed["chain_id"], "local");
    assert_eq!(fed["level"], "municipality");
    assert!(fed["height"].as_u64().unwrap() >= list.last().unwrap().height);
    assert_eq!(fed["parent"], Value::Null);
    assert_eq!(fed["children"], serde_json::json!([]));

    let count = metric(&c, &node, "poh_block_count").await;
    assert!(count >= list.len() as f64, "{count}");
    node.stop().await;
}

#[tokio::test]
async fn an_idle_node_seals_empty_headers_and_a_restart_continues_the_chain() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    fast(&mut cfg);
    let c = Client::new();
    let node = TestNode::spawn(cfg.clone(), tempfile::tempdir().unwrap()).await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    let before = headers(&c, &node, 0).await;
    assert!(
        before.len() >= 2,
        "an idle node seals: {} headers",
        before.len()
    );
    assert!(before.iter().all(|h| h.item_count == 0));
    let key = before[0].public_key.clone();
    node.stop().await;

    let node = TestNode::spawn(cfg, tempfile::tempdir().unwrap()).await;
    let first_new = before.len() as u64;
    let mut after = Vec::new();
    for _ in 0..100 {
        after = headers(&c, &node, first_new).await;
        if !after.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let next = &after[0];
    let last = before.last().unwrap();
    assert_eq!(next.height, last.height + 1);
    assert_eq!(next.prev_header_hash, last.hash());
    assert_eq!(next.poh_start, last.poh_end);
    assert_eq!(next.public_key, key, "the key made on first start is kept");
    let (_, entries) = all_entries(&c, &node.http("")).await;
    let mut head = ChainHead::genesis("local");
    for h in before.iter().chain(&after) {
        let covered = &entries[h.poh_start as usize..h.poh_end as usize];
        head = verifier(&key).verify(&head, h, covered).unwrap();
    }
    node.stop().await;
}
