//! Replicas in one process: where a replica pointed at another chain stops, and what it says.

use std::time::Duration;

use poh_node::NodeConfig;
use reqwest::Client;
use serde_json::Value;

use crate::common::{TestNode, all_entries, config, get_json, metric, submit_batch, tx};

/// A node without the listeners these tests do not use.
fn lean(dir: &std::path::Path) -> NodeConfig {
    NodeConfig {
        udp: None,
        quic: None,
        ..config(dir)
    }
}

async fn replica_of(primary: &TestNode) -> TestNode {
    let dir = tempfile::tempdir().unwrap();
    let mut config = lean(dir.path());
    config.replica.follow = Some(primary.node.grpc_addr().unwrap().to_string());
    TestNode::spawn(config, dir).await
}

/// Polls `GET /v1/replica` until `done` holds.
async fn replica_until(c: &Client, node: &TestNode, done: impl Fn(&Value) -> bool) -> Value {
    for _ in 0..600 {
        let status = get_json(c, node.http("/v1/replica")).await;
        if done(&status) {
            return status;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the replica never got there");
}

/// A primary's data directory copied while it was stopped, then both copies run on and take
/// different writes: one chain forked. A replica that copied one side, pointed at the other,
/// stops and names the first entry where its chain and that primary's differ, exactly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_pointed_at_a_fork_names_the_first_entry_where_they_diverge() {
    let c = Client::new();
    let dir_a = tempfile::tempdir().unwrap();
    let a = TestNode::spawn(lean(dir_a.path()), dir_a).await;
    let before: Vec<_> = (0..20).map(|i| tx(&format!("shared-{i}"))).collect();
    submit_batch(&c, &a, &before).await;
    let config_a = a.config.clone();
    let dir_a = a._dir;
    a.node.shutdown();
    a.node.join().await.unwrap();

    let dir_b = tempfile::tempdir().unwrap();
    let copied = std::process::Command::new("cp")
        .arg("-a")
        .arg(format!("{}/.", dir_a.path().display()))
        .arg(dir_b.path())
        .status()
        .unwrap();
    assert!(copied.success());
    let a = TestNode::spawn(config_a, dir_a).await;
    let b = TestNode::spawn(lean(dir_b.path()), dir_b).await;
    submit_batch(&c, &a, &[tx("only-on-a")]).await;
    submit_batch(&c, &b, &[tx("only-on-b")]).await;

    // The replica copies side A past the fork.
    let replica = replica_of(&a).await;
    let a_seq = get_json(&c, a.http("/v1/poh")).await["seq"]
        .as_u64()
        .unwrap();
    replica_until(&c, &replica, |s| s["seq"].as_u64() >= Some(a_seq)).await;
    let mut config = replica.config.clone();
    let dir = replica._dir;
    replica.node.shutdown();
    replica.node.join().await.unwrap();
    a.stop().await;

    // Pointed at side B, it stops copying and says where.
    config.replica.follow = Some(b.node.grpc_addr().unwrap().to_string());
    let replica = TestNode::spawn(config, dir).await;
    let status = replica_until(&c, &replica, |s| s["stopped"].is_string()).await;
    let why = status["stopped"].as_str().unwrap();
    let at: usize = why
        .split("diverge at entry ")
        .nth(1)
        .and_then(|rest| rest.split(':').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no entry named: {why}"));
    assert_eq!(metric(&c, &replica, "poh_replica_refused_total").await, 1.0);

    let (_, ours) = all_entries(&c, &replica.http("")).await;
    let (_, theirs) = all_entries(&c, &b.http("")).await;
    assert_eq!(
        ours[..at],
        theirs[..at],
        "the entries before {at} are the same"
    );
    assert_ne!(ours[at], theirs[at], "entry {at} differs");
    // It stored nothing of side B, and keeps serving what it holds.
    let only_b = c
        .get(replica.http("/v1/tx/only-on-b"))
        .send()
        .await
        .unwrap();
    assert_eq!(only_b.status(), 404);
    let only_a = c
        .get(replica.http("/v1/tx/only-on-a"))
        .send()
        .await
        .unwrap();
    assert_eq!(only_a.status(), 200);
    replica.stop().await;
    b.stop().await;
}

/// A replica can be the primary of another: the chain reaches the second one through the
/// first, the same to the last byte.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_of_a_replica_holds_the_same_chain() {
    let c = Client::new();
    let dir = tempfile::tempdir().unwrap();
    let primary = TestNode::spawn(lean(dir.path()), dir).await;
    let first = replica_of(&primary).await;
    let second = replica_of(&first).await;
    let txs: Vec<_> = (0..300).map(|i| tx(&format!("chained-{i}"))).collect();
    submit_batch(&c, &primary, &txs).await;
    let seq = get_json(&c, primary.http("/v1/poh")).await["seq"]
        .as_u64()
        .unwrap();
    let held = replica_until(&c, &second, |s| s["seq"].as_u64() >= Some(seq)).await;
    assert_eq!(held["primary"], first.node.grpc_addr().unwrap().to_string());
    let (_, ours) = all_entries(&c, &second.http("")).await;
    let (_, theirs) = all_entries(&c, &primary.http("")).await;
    assert_eq!(ours[..], theirs[..ours.len()]);
    for id in ["chained-0", "chained-299"] {
        let on = |n: &TestNode| n.http(&format!("/v1/tx/{id}"));
        let a = c
            .get(on(&primary))
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        let b = c
            .get(on(&second))
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        assert_eq!(a, b, "{id}");
    }
    for node in [second, first, primary] {
        node.stop().await;
    }
}

/// With `--min-replica-acks 1`, a write is answered only once a replica holds it: with none
/// connected it waits; once one follows, the answer comes, and the replica already serves it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_waits_for_a_replica_to_hold_it_when_asked_to() {
    let c = Client::new();
    let dir = tempfile::tempdir().unwrap();
    let mut config = lean(dir.path());
    config.replica.min_replica_acks = 1;
    let primary = TestNode::spawn(config, dir).await;
    let submit = {
        let (c, url) = (c.clone(), primary.http("/v1/tx"));
        tokio::spawn(async move {
            let answer = c.post(url).json(&crate::common::json(&tx("held"))).send();
            answer.await.unwrap().status()
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!submit.is_finished(), "answered with no replica holding it");
    let replica = replica_of(&primary).await;
    let status = tokio::time::timeout(Duration::from_secs(30), submit)
        .await
        .expect("answered once a replica held it")
        .unwrap();
    assert_eq!(status, 201);
    let held = c.get(replica.http("/v1/tx/held")).send().await.unwrap();
    assert_eq!(held.status(), 200, "the replica held it before the answer");

    // With the replica gone a write waits again, and a node stopping under it answers at
    // once that it is unavailable (stored here; a retry elsewhere finds it), not after the
    // listeners' drain gives up.
    replica.stop().await;
    let waiting = {
        let (c, url) = (c.clone(), primary.http("/v1/tx"));
        tokio::spawn(async move {
            let answer = c.post(url).json(&crate::common::json(&tx("unheld"))).send();
            answer.await.unwrap().status()
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!waiting.is_finished());
    let stopped = std::time::Instant::now();
    primary.node.shutdown();
    let status = waiting.await.unwrap();
    assert_eq!(status, 503);
    assert!(
        stopped.elapsed() < Duration::from_secs(5),
        "{:?}",
        stopped.elapsed()
    );
    primary.node.join().await.unwrap();
}

/// Transactions naming the most parents they may (64, none of them stored, so each is PENDING
/// and its DAG parents are those 64 too) make a page of records carry far more names than
/// records: the primary cuts its messages by names as well, and the replica copies them all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transactions_with_the_most_parents_are_copied_in_messages_that_fit() {
    let c = Client::new();
    let dir = tempfile::tempdir().unwrap();
    let primary = TestNode::spawn(lean(dir.path()), dir).await;
    let parents: Vec<String> = (0..poh_core::validate::MAX_PARENTS)
        .map(|i| format!("p{i}"))
        .collect();
    // 9,000 of them: more than 1 M names at 128 each, what one message may carry.
    for round in 0..9 {
        let txs: Vec<_> = (0..1_000)
            .map(|i| poh_core::Tx {
                parent_ids: parents.clone(),
                ..tx(&format!("many-{round}-{i}"))
            })
            .collect();
        submit_batch(&c, &primary, &txs).await;
    }
    let seq = get_json(&c, primary.http("/v1/poh")).await["seq"]
        .as_u64()
        .unwrap();
    assert_eq!(seq, 9_000);
    let replica = replica_of(&primary).await;
    let held = replica_until(&c, &replica, |s| {
        s["seq"].as_u64() >= Some(seq) || s["stopped"].is_string()
    })
    .await;
    assert_eq!(held["stopped"], Value::Null, "{held}");
    assert_eq!(metric(&c, &replica, "poh_replica_refused_total").await, 0.0);
    // The same answer once the replica also holds the header that sealed it.
    let on = |n: &TestNode| n.http("/v1/tx/many-8-999");
    let body = |url: String| {
        let c = c.clone();
        async move { c.get(url).send().await.unwrap().bytes().await.unwrap() }
    };
    let (mut a, mut b) = (Default::default(), Default::default());
    for _ in 0..300 {
        (a, b) = (body(on(&primary)).await, body(on(&replica)).await);
        if a == b && !a.windows(14).any(|w| w == b"\"header_id\":nu") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(a, b, "the replica answers as the primary");
    assert!(!a.windows(14).any(|w| w == b"\"header_id\":nu"), "sealed");
    replica.stop().await;
    primary.stop().await;
}
