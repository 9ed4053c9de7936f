//! TTL on a real node: sealed transactions older than the TTL leave the store and read as
//! expired (`410` naming their header, gRPC `NOT_FOUND` with it), ids still deduplicate,
//! the exported chain still verifies; unsealed ones stay however old.

use std::time::Duration;

use poh_core::{
    chain::Backend,
    chain_file::{ChainReader, verify::verify_chain},
};
use poh_node::config::Span;
use poh_proto::v1::{GetTxRequest, StatusRequest, TxStatus};
use reqwest::{Client, StatusCode};
use serde_json::Value;

use crate::{
    common::{self, get_json, json, metric, tx},
    sealing::fast,
};

#[tokio::test]
async fn sealed_old_transactions_expire_and_the_chain_still_verifies() {
    let c = Client::new();
    let node = common::start_with(|cfg| {
        fast(cfg);
        cfg.ttl.after = Some(Span(Duration::from_millis(500)));
        cfg.ttl.sweep_interval = Span(Duration::from_millis(100));
        // A compaction is due as soon as anything was removed.
        cfg.ttl.compact_after_bytes = 1;
    })
    .await;
    let txs: Vec<_> = (0..20).map(|i| tx(&format!("old-{i}"))).collect();
    let body: Vec<Value> = txs.iter().map(json).collect();
    c.post(node.http("/v1/tx/batch"))
        .json(&body)
        .send()
        .await
        .unwrap();

    // Sealed first (a header id), then gone: 410 naming that header.
    let mut header_id = Value::Null;
    let mut gone = None;
    for _ in 0..200 {
        let r = c.get(node.http("/v1/tx/old-0")).send().await.unwrap();
        let status = r.status();
        let v: Value = r.json().await.unwrap();
        if status == StatusCode::OK && v["status"] == "SEALED" {
            header_id = v["header_id"].clone();
        }
        if status == StatusCode::GONE {
            gone = Some(v);
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let gone = gone.expect("old-0 expired within 5 s");
    assert_eq!(gone["error"], "expired", "{gone}");
    assert!(header_id.is_string(), "seen sealed before it expired");
    assert_eq!(gone["header_id"], header_id);

    let mut grpc = node.grpc().await;
    let missing = grpc
        .get_tx(GetTxRequest {
            tx_id: "old-0".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), tonic::Code::NotFound);
    assert!(
        missing.message().contains(header_id.as_str().unwrap()),
        "{}",
        missing.message()
    );
    let status = node
        .dag()
        .await
        .query_transaction_status(StatusRequest {
            tx_id: "old-0".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(status.status, TxStatus::Sealed as i32);
    assert_eq!(status.header_id, header_id.as_str().unwrap());

    // The id still deduplicates: the same transaction again is a duplicate, not a new one.
    let again = c
        .post(node.http("/v1/tx"))
        .json(&json(&txs[0]))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::OK);
    assert_eq!(again.json::<Value>().await.unwrap()["status"], "duplicate");

    assert!(metric(&c, &node, "gc_events_total{type=\"minor\"}").await >= 1.0);
    // A compaction holds the whole store, so it never runs while the node serves, however
    // many sweeps pass; it runs at the next start, before the node serves.
    let sweeps = metric(&c, &node, "poh_ttl_sweeps_total").await;
    while metric(&c, &node, "poh_ttl_sweeps_total").await < sweeps + 3.0 {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let major = "gc_events_total{type=\"major\"}";
    assert_eq!(
        metric(&c, &node, major).await,
        0.0,
        "compacted while serving"
    );
    let node = node.restart().await;
    assert_eq!(
        metric(&c, &node, major).await,
        1.0,
        "compacted at the start"
    );

    // Every entry and header stayed: the whole chain verifies, with every item.
    let bytes = c
        .get(node.http("/v1/export"))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let (start, reader) = ChainReader::open(&bytes[..]).unwrap();
    let report = verify_chain(&start, reader, Backend::fastest(), &[], &|_| {}).unwrap();
    assert!(report.items >= 20, "{report:?}");
    node.stop().await;
}

#[tokio::test]
async fn unsealed_transactions_stay_however_old() {
    let c = Client::new();
    let node = common::start_with(|cfg| {
        // No header for an hour.
        cfg.federation.min_batch_interval = 3600.0;
        cfg.federation.max_batch_interval = 3600.0;
        cfg.federation.target_items = u64::MAX;
        cfg.ttl.after = Some(Span(Duration::from_millis(10)));
        cfg.ttl.sweep_interval = Span(Duration::from_millis(20))
    })
    .await;
    c.post(node.http("/v1/tx"))
        .json(&json(&tx("young-but-unsealed")))
        .send()
        .await
        .unwrap();
    // Fifty sweeps see it old enough, and not sealed.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let v = get_json(&c, node.http("/v1/tx/young-but-unsealed")).await;
    assert_eq!(v["status"], "ORDERED", "{v}");
    assert_eq!(
        metric(&c, &node, "gc_events_total{type=\"minor\"}").await,
        0.0
    );
    node.stop().await;
}
