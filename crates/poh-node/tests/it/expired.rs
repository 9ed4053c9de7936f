//! Records the TTL expired are never a silent gap (SPEC §4): a `Subscribe` or `Sync` that
//! reaches them ends with `OUT_OF_RANGE` naming the expired seqs and the headers that sealed
//! them, `GET /v1/events` sends `event: expired` and goes on, and a node catching up from a
//! peer that expired records counts and logs them before it moves past them.

use std::time::Duration;

use poh_core::Tx;
use poh_node::{Peers, config::Span};
use poh_proto::v1::{self as pb, SubscribeRequest, SyncRequest};
use reqwest::{Client, StatusCode};
use serde_json::{Value, json as js};
use tokio::time::Instant;

use crate::{
    common::{self, Events, PATIENCE, TestNode, metric, tx},
    sealing::fast,
};

/// Young enough that what is stored after the old ones expired is read long before it
/// expires too.
const TTL: Duration = Duration::from_secs(2);

/// One run of expired seqs as the node must name it.
#[derive(Debug, PartialEq)]
struct Run {
    from_seq: u64,
    to_seq: u64,
    header_ids: Vec<String>,
}

impl Run {
    fn message(&self) -> String {
        format!(
            "expired seqs {}..={} sealed by headers {}; resume from_seq={} or restore them",
            self.from_seq,
            self.to_seq,
            self.header_ids.join(","),
            self.to_seq + 1
        )
    }

    fn json(&self) -> Value {
        js!({"from_seq": self.from_seq, "to_seq": self.to_seq, "header_ids": self.header_ids})
    }

    /// `status` is this run's `OUT_OF_RANGE`, in its message and its trailers.
    fn check(&self, status: &tonic::Status) {
        assert_eq!(status.code(), tonic::Code::OutOfRange, "{status:?}");
        assert_eq!(status.message(), self.message());
        let meta = |key: &str| {
            status
                .metadata()
                .get(key)
                .unwrap_or_else(|| panic!("no {key} in {:?}", status.metadata()))
                .to_str()
                .unwrap()
                .to_string()
        };
        assert_eq!(meta("poh-expired-from"), self.from_seq.to_string());
        assert_eq!(meta("poh-expired-to"), self.to_seq.to_string());
        assert_eq!(meta("poh-expired-headers"), self.header_ids.join(","));
    }
}

/// An expired node: `old-0..=4`, `waits` (its parent is missing, so it stays), `old-5..=9`
/// stored, sealed and expired, then `new-0..=2` stored. Returns the node, its two expired
/// runs (0..=4 and 6..=10, around `waits` at 5) and the ids stored after them.
async fn expired_node(c: &Client) -> (TestNode, [Run; 2], Vec<String>) {
    let node = common::start_with(|cfg| {
        fast(cfg);
        cfg.ttl.after = Some(Span(TTL));
        cfg.ttl.sweep_interval = Span(Duration::from_millis(50));
    })
    .await;
    let mut waits = tx("waits");
    waits.parent_ids = vec!["never-sent".into()];
    let old: Vec<Tx> = (0..5)
        .map(|i| tx(&format!("old-{i}")))
        .chain([waits])
        .chain((5..10).map(|i| tx(&format!("old-{i}"))))
        .collect();
    assert_eq!(
        common::submit_batch(c, &node, &old).await,
        (0..11).collect::<Vec<_>>()
    );

    // Each old one reads as expired (410) naming the header that sealed it.
    let mut sealed_by = Vec::new();
    for t in old.iter().filter(|t| t.tx_id != "waits") {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let r = c
                .get(node.http(&format!("/v1/tx/{}", t.tx_id)))
                .send()
                .await
                .unwrap();
            if r.status() == StatusCode::GONE {
                let v: Value = r.json().await.unwrap();
                sealed_by.push(v["header_id"].as_str().unwrap().to_string());
                break;
            }
            assert!(Instant::now() < deadline, "{} never expired", t.tx_id);
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
    let run = |from_seq: u64, to_seq: u64, ids: &[String]| {
        let mut header_ids = ids.to_vec();
        header_ids.dedup();
        Run {
            from_seq,
            to_seq,
            header_ids,
        }
    };
    let runs = [run(0, 4, &sealed_by[..5]), run(6, 10, &sealed_by[5..])];

    let new: Vec<Tx> = (0..3).map(|i| tx(&format!("new-{i}"))).collect();
    assert_eq!(common::submit_batch(c, &node, &new).await, [11, 12, 13]);
    let new_ids = new.into_iter().map(|t| t.tx_id).collect();
    (node, runs, new_ids)
}

/// What comes next on a gRPC stream of records: `Ok((poh_seq, tx_id))`, or the status that
/// ended it.
async fn next(stream: &mut tonic::Streaming<pb::TxRecord>) -> Result<(u64, String), tonic::Status> {
    match tokio::time::timeout(PATIENCE, stream.message()).await {
        Err(_) => panic!("nothing came within {PATIENCE:?}"),
        Ok(Ok(Some(r))) => Ok((r.poh_seq, r.tx.unwrap().tx_id)),
        Ok(Ok(None)) => panic!("the stream ended with OK"),
        Ok(Err(status)) => Err(status),
    }
}

#[tokio::test]
async fn a_subscriber_reaching_expired_seqs_is_told_the_range_and_its_headers() {
    let c = Client::new();
    let (node, [first, second], new) = expired_node(&c).await;
    let mut grpc = node.grpc().await;
    let mut subscribe = async |from_seq| {
        grpc.subscribe(SubscribeRequest { from_seq })
            .await
            .unwrap()
            .into_inner()
    };

    let mut stream = subscribe(0).await;
    first.check(&next(&mut stream).await.unwrap_err());

    // Resumed where it says: what is stored up to the next run, then that run.
    let mut stream = subscribe(5).await;
    assert_eq!(next(&mut stream).await.unwrap(), (5, "waits".into()));
    second.check(&next(&mut stream).await.unwrap_err());

    let mut stream = subscribe(11).await;
    for (seq, id) in (11..).zip(&new) {
        assert_eq!(next(&mut stream).await.unwrap(), (seq, id.clone()));
    }
    node.stop().await;
}

#[tokio::test]
async fn an_event_stream_reaching_expired_seqs_sends_expired_and_goes_on() {
    let c = Client::new();
    let (node, [first, second], new) = expired_node(&c).await;
    let mut events = Events::open(node.http("/v1/events?from_seq=0"), None).await;
    // Up to the second transaction stored after the expired ones.
    let mut seen = Vec::new();
    loop {
        let e = events.next().await.expect("the stream ended");
        if e.event == "header" {
            continue;
        }
        let data: Value = serde_json::from_str(&e.data).unwrap();
        let last = data["tx_id"] == new[1];
        seen.push((e.event, e.id, data));
        if last {
            break;
        }
    }
    let tx = |seq: u64, id: &str| ("tx".to_string(), Some(seq.to_string()), id.to_string());
    let got: Vec<_> = seen
        .iter()
        .map(|(event, id, data)| match event.as_str() {
            "tx" => (
                event.clone(),
                id.clone(),
                data["tx_id"].as_str().unwrap().into(),
            ),
            _ => (event.clone(), id.clone(), data.to_string()),
        })
        .collect();
    let expired = |run: &Run| {
        (
            "expired".to_string(),
            Some(run.to_seq.to_string()),
            run.json().to_string(),
        )
    };
    assert_eq!(
        got,
        [
            expired(&first),
            tx(5, "waits"),
            expired(&second),
            tx(11, &new[0]),
            tx(12, &new[1]),
        ]
    );
    node.stop().await;
}

#[tokio::test]
async fn sync_reaching_expired_seqs_ends_out_of_range_naming_them() {
    let c = Client::new();
    let (node, [first, second], new) = expired_node(&c).await;
    let mut grpc = node.grpc().await;
    let mut sync = async |from_seq| {
        grpc.sync(SyncRequest { from_seq, limit: 0 })
            .await
            .unwrap()
            .into_inner()
    };
    let mut stream = sync(0).await;
    first.check(&next(&mut stream).await.unwrap_err());
    let mut stream = sync(5).await;
    assert_eq!(next(&mut stream).await.unwrap(), (5, "waits".into()));
    second.check(&next(&mut stream).await.unwrap_err());
    let mut stream = sync(11).await;
    for (seq, id) in (11..).zip(&new) {
        assert_eq!(next(&mut stream).await.unwrap(), (seq, id.clone()));
    }
    assert!(stream.message().await.unwrap().is_none(), "then the end");
    node.stop().await;
}

#[tokio::test]
async fn catch_up_counts_what_a_peer_expired_and_moves_past_it_deliberately() {
    let c = Client::new();
    let (peer, _, new) = expired_node(&c).await;
    let dir = tempfile::tempdir().unwrap();
    let peers_file = dir.path().join("peers.json");
    let peers = Peers {
        grpc: vec![peer.node.grpc_addr().unwrap().to_string()],
        ..Peers::default()
    };
    std::fs::write(&peers_file, serde_json::to_vec(&peers).unwrap()).unwrap();
    let config = {
        let mut cfg = common::config(&dir.path().join("data"));
        cfg.peers_file = Some(peers_file);
        cfg.repair.sync_interval = Span(Duration::from_millis(100));
        cfg.repair.repair_interval = Span(Duration::ZERO);
        cfg
    };
    let node = TestNode::spawn(config.clone(), tempfile::tempdir().unwrap()).await;

    // Everything the peer still has arrives; what it expired is counted, once.
    let deadline = Instant::now() + PATIENCE;
    for id in new.iter().chain([&"waits".to_string()]) {
        let url = node.http(&format!("/v1/tx/{id}"));
        while c.get(&url).send().await.unwrap().status() != StatusCode::OK {
            assert!(Instant::now() < deadline, "{id} never caught up");
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
    assert_eq!(metric(&c, &node, "poh_sync_expired_total").await, 10.0);
    let stored = r#"poh_repair_records_total{source="sync",result="stored"}"#;
    assert_eq!(metric(&c, &node, stored).await, 4.0);
    for i in 0..10 {
        let r = c
            .get(node.http(&format!("/v1/tx/old-{i}")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "old-{i} was never sent");
    }
    node.stop().await;

    // The sync point is past the expired seqs: a restart does not count them again.
    let store = config.open_store().unwrap();
    let key = format!("sync/{}", peer.node.grpc_addr().unwrap());
    assert_eq!(store.progress(&key).unwrap(), Some(14));
    peer.stop().await;
}
