//! Queries on a real node: a holder's transactions paged by seq over HTTP and gRPC `List`
//! (the same answers), a transaction's children, and what is refused.

use poh_core::Tx;
use poh_proto::v1::ListRequest;
use reqwest::{Client, StatusCode};
use serde_json::Value;

use crate::common::{self, get_json, submit_batch, tx};

/// `id` of `holder`, naming `parents`.
fn of(id: &str, holder: &str, parents: &[&str]) -> Tx {
    Tx {
        holder_id: holder.into(),
        parent_ids: parents.iter().map(|p| p.to_string()).collect(),
        ..tx(id)
    }
}

#[tokio::test]
async fn a_holders_transactions_page_by_seq_alike_over_http_and_grpc() {
    let c = Client::new();
    let node = common::start().await;
    // Three holders interleaved; `bob` has 25, each naming the one before.
    let mut txs = Vec::new();
    for i in 0..25 {
        let prev = format!("bob-{}", i.max(1) - 1);
        let parents: &[&str] = if i == 0 { &[] } else { &[prev.as_str()] };
        txs.push(of(&format!("bob-{i}"), "bob", parents));
        txs.push(of(&format!("carol-{i}"), "carol", &[]));
        txs.push(of(&format!("dave-{i}"), "dave/é ü", &["bob-0"]));
    }
    let seqs = submit_batch(&c, &node, &txs).await;
    let bob: Vec<u64> = seqs.iter().step_by(3).copied().collect();

    // Pages of 10 from the start: 10, 10, 5, each `next_seq` the next page's first seq.
    let mut from = 0;
    let mut got = Vec::new();
    let mut grpc = node.grpc().await;
    loop {
        let page = get_json(
            &c,
            node.http(&format!("/v1/tx?holder_id=bob&from_seq={from}&limit=10")),
        )
        .await;
        let list = grpc
            .list(ListRequest {
                holder_id: "bob".into(),
                from_seq: from,
                limit: 10,
            })
            .await
            .unwrap()
            .into_inner();
        let http_seqs: Vec<u64> = (page["transactions"].as_array().unwrap().iter())
            .map(|t| t["poh_seq"].as_u64().unwrap())
            .collect();
        let grpc_seqs: Vec<u64> = list.records.iter().map(|r| r.poh_seq).collect();
        assert_eq!(http_seqs, grpc_seqs);
        assert_eq!(
            page["next_seq"].as_u64(),
            list.more.then_some(list.next_seq)
        );
        // Each as `GET /v1/tx/{id}` answers it.
        let first = &page["transactions"][0];
        let id = first["tx_id"].as_str().unwrap();
        assert_eq!(
            *first,
            get_json(&c, node.http(&format!("/v1/tx/{id}"))).await
        );
        got.extend(http_seqs);
        match page["next_seq"].as_u64() {
            Some(next) => from = next,
            None => break,
        }
    }
    assert_eq!(got, bob);
    // From the middle; a holder whose name needs escaping; nobody's.
    let page = get_json(
        &c,
        node.http(&format!("/v1/tx?holder_id=bob&from_seq={}", bob[20])),
    )
    .await;
    assert_eq!(page["transactions"].as_array().unwrap().len(), 5);
    assert!(page["next_seq"].is_null());
    let escaped = get_json(&c, node.http("/v1/tx?holder_id=dave%2F%C3%A9%20%C3%BC")).await;
    assert_eq!(escaped["transactions"].as_array().unwrap().len(), 25);
    let zero = get_json(&c, node.http("/v1/tx?holder_id=bob&limit=0")).await;
    assert_eq!(
        zero["transactions"].as_array().unwrap().len(),
        25,
        "0 is the default, 100"
    );
    let none = get_json(&c, node.http("/v1/tx?holder_id=nobody")).await;
    assert_eq!(
        none,
        serde_json::json!({"transactions": [], "next_seq": null})
    );
    // gRPC: limit 0 is 100.
    let all = grpc
        .list(ListRequest {
            holder_id: "carol".into(),
            ..ListRequest::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((all.records.len(), all.more), (25, false));

    // Children: in seq order; an unknown id is 404.
    let children = get_json(&c, node.http("/v1/tx/bob-0/children")).await;
    // In seq order: dave-0 was stored before bob-1.
    let mut want = vec![Value::from("dave-0"), Value::from("bob-1")];
    want.extend((1..25).map(|i| Value::from(format!("dave-{i}"))));
    assert_eq!(children["tx_id"], "bob-0");
    assert_eq!(children["children"].as_array().unwrap(), &want);
    let leaf = get_json(&c, node.http("/v1/tx/bob-24/children")).await;
    assert_eq!(leaf["children"], serde_json::json!([]));
    let r = c
        .get(node.http("/v1/tx/ghost/children"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn bad_queries_are_refused_with_a_reason() {
    let c = Client::new();
    let node = common::start().await;
    for query in [
        "/v1/tx",
        "/v1/tx?holder_id=",
        "/v1/tx?holder_id=a&limit=1001",
        "/v1/tx?holder_id=a&from_seq=-1",
        "/v1/tx?holder_id=a&limit=ten",
    ] {
        let r = c.get(node.http(query)).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{query}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"], "invalid", "{query}: {body}");
    }
    let long = "x".repeat(200);
    let r = c
        .get(node.http(&format!("/v1/tx/{long}/children")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let mut grpc = node.grpc().await;
    for request in [
        ListRequest::default(),
        ListRequest {
            holder_id: "a".into(),
            limit: 1001,
            ..ListRequest::default()
        },
    ] {
        let e = grpc.list(request).await.unwrap_err();
        assert_eq!(e.code(), tonic::Code::InvalidArgument, "{e}");
    }
}
