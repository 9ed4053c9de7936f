//! No error answer, on any transport, carries a file path, a backtrace or a Rust type name.

use tonic::Request;

use crate::common::{self, pb, tx};

/// What an answer must never contain.
fn assert_clean(what: &str, text: &str) {
    for leak in [
        ".rs",
        "src/",
        "/root",
        "/tmp",
        "/home",
        "panicked",
        "backtrace",
        "RUST_BACKTRACE",
        "::",
        "Error {",
        "Os {",
        "Some(",
        "called `",
        "thread '",
    ] {
        assert!(!text.contains(leak), "{what} leaks {leak:?}: {text}");
    }
}

#[tokio::test]
async fn no_error_answer_leaks_paths_backtraces_or_type_names() {
    let node = common::start().await;
    let http = reqwest::Client::new();
    let good = common::json(&tx("stored-once"));
    http.post(node.http("/v1/tx"))
        .json(&good)
        .send()
        .await
        .unwrap();
    let mut conflicting = good.clone();
    conflicting["payload_b64"] = "b3RoZXI=".into();
    let mut bad_sig = common::json(&tx("bad-sig"));
    bad_sig["public_key_b64"] = base64_of(&[1u8; 2592]);
    bad_sig["signature_b64"] = base64_of(&[2u8; 4627]);

    let posts: Vec<(&str, &str, Vec<u8>, &str)> = vec![
        (
            "bad json",
            "/v1/tx",
            b"{not json".to_vec(),
            "application/json",
        ),
        (
            "missing field",
            "/v1/tx",
            br#"{"tx_id":"a"}"#.to_vec(),
            "application/json",
        ),
        (
            "wrong type",
            "/v1/tx",
            br#"{"tx_id":1,"holder_id":"h","timestamp":1,"payload_b64":""}"#.to_vec(),
            "application/json",
        ),
        (
            "bad base64",
            "/v1/tx",
            br#"{"tx_id":"a","holder_id":"h","timestamp":1,"payload_b64":"%%"}"#.to_vec(),
            "application/json",
        ),
        (
            "invalid id",
            "/v1/tx",
            br#"{"tx_id":"bad id!","holder_id":"h","timestamp":1,"payload_b64":""}"#.to_vec(),
            "application/json",
        ),
        (
            "negative time",
            "/v1/tx",
            br#"{"tx_id":"a","holder_id":"h","timestamp":-1,"payload_b64":""}"#.to_vec(),
            "application/json",
        ),
        (
            "conflict",
            "/v1/tx",
            serde_json::to_vec(&conflicting).unwrap(),
            "application/json",
        ),
        (
            "bad signature",
            "/v1/tx",
            serde_json::to_vec(&bad_sig).unwrap(),
            "application/json",
        ),
        ("not json type", "/v1/tx", b"x".to_vec(), "text/plain"),
        (
            "batch not array",
            "/v1/tx/batch",
            b"{}".to_vec(),
            "application/json",
        ),
        (
            "too large",
            "/v1/tx",
            vec![b'x'; 3 << 20],
            "application/json",
        ),
    ];
    for (what, path, body, content_type) in posts {
        let r = http
            .post(node.http(path))
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_client_error(), "{what}: {}", r.status());
        assert_clean(what, &r.text().await.unwrap());
    }
    for (what, path) in [
        ("unknown path", "/nope"),
        ("bad id", "/v1/tx/bad%20id"),
        ("unknown id", "/v1/tx/unknown"),
        ("bad entries query", "/v1/poh/entries?from=x"),
        ("entries limit", "/v1/poh/entries?limit=100000"),
    ] {
        let r = http.get(node.http(path)).send().await.unwrap();
        assert!(r.status().is_client_error(), "{what}");
        assert_clean(what, &r.text().await.unwrap());
    }
    let r = http.delete(node.http("/v1/tx")).send().await.unwrap();
    assert_eq!(r.status(), 405);
    assert_clean("method", &r.text().await.unwrap());

    // gRPC: every status message.
    let mut grpc = node.grpc().await;
    let mut statuses = Vec::new();
    statuses.push(
        grpc.get_tx(poh_proto::v1::GetTxRequest {
            tx_id: String::new(),
        })
        .await
        .unwrap_err(),
    );
    statuses.push(
        grpc.get_tx(poh_proto::v1::GetTxRequest {
            tx_id: "unknown".into(),
        })
        .await
        .unwrap_err(),
    );
    let mut invalid = pb(&tx("x"));
    invalid.timestamp = f64::NAN;
    let ack = grpc
        .broadcast(Request::new(invalid))
        .await
        .unwrap()
        .into_inner();
    assert_clean("invalid ack", &ack.message);
    let mut conflict = pb(&tx("stored-once"));
    conflict.payload = b"other".to_vec();
    let ack = grpc.broadcast(conflict).await.unwrap().into_inner();
    assert_clean("conflict ack", &ack.message);
    if let Err(s) = grpc
        .sync(poh_proto::v1::SyncRequest {
            from_seq: 0,
            limit: 100_000,
        })
        .await
    {
        statuses.push(s);
    }
    for s in &statuses {
        assert_clean("grpc status", s.message());
    }
    node.stop().await;
}

fn base64_of(bytes: &[u8]) -> serde_json::Value {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .encode(bytes)
        .into()
}
