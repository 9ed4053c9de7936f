//! The transactions the indexing tests send, over every transport a node takes: HTTP single
//! and batch, gRPC unary and stream, QUIC and UDP.

use std::ops::Range;

use base64::{Engine as _, engine::general_purpose::STANDARD as B64};
use poh_core::SigningKey;
use poh_proto::v1::{self as pb, poh_service_client::PohServiceClient};
use serde_json::{Value, json};

/// Holders the transactions are spread over.
pub const HOLDERS: u64 = 16;

pub fn id(i: u64) -> String {
    format!("ix{i}")
}

pub fn holder(i: u64) -> String {
    format!("holder-{}", i % HOLDERS)
}

/// The parents transaction `i` names: every fifth the one before it; some a parent sent
/// only at the end ([`send_late`]), so they are PENDING, and sealed, until it comes; and
/// some one never sent, so they stay PENDING.
pub fn parents(i: u64) -> Vec<String> {
    let mut out = Vec::new();
    if i % 5 == 1 {
        out.push(id(i - 1));
    }
    if i % 97 == 5 {
        out.push(late(i));
    }
    if i % 89 == 7 {
        out.push(format!("never-{i}"));
    }
    out
}

/// The parent of `i` sent last.
pub fn late(i: u64) -> String {
    format!("late-{i}")
}

/// Whether `i` names a parent sent last.
pub fn has_late(i: u64) -> bool {
    i % 97 == 5
}

/// How transaction `i` is sent, by `i % 20`: 1 in 20 one HTTP POST each, 7 in HTTP
/// batches, 2 gRPC unary, 7 on a gRPC stream, 2 over QUIC, 1 as a UDP datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Via {
    Post,
    Batch,
    Unary,
    Stream,
    Quic,
    Udp,
}

pub fn via(i: u64) -> Via {
    match i % 20 {
        0 => Via::Post,
        1..=7 => Via::Batch,
        8 | 9 => Via::Unary,
        10..=16 => Via::Stream,
        17 | 18 => Via::Quic,
        _ => Via::Udp,
    }
}

/// Transaction `i`; every 40th (some of the unary ones) signed with `key`.
pub fn tx(i: u64, key: &SigningKey) -> pb::Tx {
    let mut tx = poh_core::Tx {
        tx_id: id(i),
        holder_id: holder(i),
        timestamp: 1_700_000_000.0 + i as f64 / 7.0,
        payload: format!("p{i}:{}", "x".repeat((i % 60) as usize)).into_bytes(),
        parent_ids: parents(i),
        ..poh_core::Tx::default()
    };
    if i % 40 == 8 {
        tx.sign(key).unwrap();
    }
    poh_node::tx_to_pb(tx)
}

fn json_of(tx: &pb::Tx) -> Value {
    let mut v = json!({"tx_id": tx.tx_id, "holder_id": tx.holder_id, "timestamp": tx.timestamp,
                       "payload_b64": B64.encode(&tx.payload), "parent_ids": tx.parent_ids});
    if !tx.public_key.is_empty() {
        v["public_key_b64"] = B64.encode(&tx.public_key).into();
        v["signature_b64"] = B64.encode(&tx.signature).into();
    }
    v
}

/// Where a node takes transactions.
#[derive(Clone)]
pub struct Addresses {
    pub base: String,
    pub grpc: String,
    pub udp: String,
    pub quic: String,
    pub quic_pin: String,
}

/// Sends transactions `ids`, each over its transport ([`via`]), all transports at once;
/// every one but the datagrams is acknowledged as stored.
pub async fn send(to: &Addresses, ids: Range<u64>, key: &SigningKey) {
    let of = |v: Via| -> Vec<pb::Tx> {
        ids.clone()
            .filter(|&i| via(i) == v)
            .map(|i| tx(i, key))
            .collect()
    };
    let http = reqwest::Client::new();
    let post = async {
        for t in of(Via::Post) {
            let r = http
                .post(format!("{}/v1/tx", to.base))
                .json(&json_of(&t))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
        }
    };
    let batch = async {
        for chunk in of(Via::Batch).chunks(1000) {
            let body: Vec<Value> = chunk.iter().map(json_of).collect();
            let r = http
                .post(format!("{}/v1/tx/batch", to.base))
                .json(&body)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
            for result in r.json::<Vec<Value>>().await.unwrap() {
                assert_eq!(result["status"], "stored", "{result}");
            }
        }
    };
    let grpc = || async {
        PohServiceClient::connect(format!("http://{}", to.grpc))
            .await
            .unwrap()
    };
    let unary = async {
        let mut client = grpc().await;
        for t in of(Via::Unary) {
            let ack = client.broadcast(t).await.unwrap().into_inner();
            assert_eq!(ack.code, pb::AckCode::Stored as i32, "{ack:?}");
        }
    };
    let stream = async {
        let mut acks = grpc()
            .await
            .broadcast_stream(futures_util::stream::iter(of(Via::Stream)))
            .await
            .unwrap()
            .into_inner();
        while let Some(ack) = acks.message().await.unwrap() {
            assert_eq!(ack.code, pb::AckCode::Stored as i32, "{ack:?}");
        }
    };
    let quic = async {
        let trust = poh_node::tls::ServerTrust::Pinned(to.quic_pin.clone());
        let client = poh_node::network::client::QuicClient::new(&trust, None).unwrap();
        for chunk in of(Via::Quic).chunks(500) {
            let acks = client
                .send(&to.quic, Some(&to.quic_pin), chunk)
                .await
                .unwrap();
            assert!(acks.iter().all(|a| a.success), "{acks:?}");
        }
        client.close();
    };
    let udp = async {
        let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        for (n, t) in of(Via::Udp).iter().enumerate() {
            let datagram = serde_json::to_vec(&json_of(t)).unwrap();
            socket.send_to(&datagram, &to.udp).await.unwrap();
            // Paced, so loopback's socket buffer does not drop them.
            if n % 50 == 49 {
                tokio::time::sleep(std::time::Duration::from_millis(2)).await;
            }
        }
    };
    tokio::join!(post, batch, unary, stream, quic, udp);
}

/// The late parents of transactions `ids`, in one HTTP batch.
pub async fn send_late(to: &Addresses, ids: Range<u64>) {
    let body: Vec<Value> = ids
        .filter(|&i| has_late(i))
        .map(|i| {
            json!({"tx_id": late(i), "holder_id": "late", "timestamp": 1.5,
                   "payload_b64": B64.encode(b"late")})
        })
        .collect();
    let r = reqwest::Client::new()
        .post(format!("{}/v1/tx/batch", to.base))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}
