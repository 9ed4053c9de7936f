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

/// A primary whose TTL expired the head of its chain: a new replica copies the expired
/// transactions as the primary kept them (id, digest, DAG parents) and answers for them as the
/// primary does; what came after links to them as it did on the primary.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_copies_what_the_primarys_ttl_expired_and_answers_as_it_does() {
    let c = Client::new();
    let dir = tempfile::tempdir().unwrap();
    let mut config = lean(dir.path());
    crate::sealing::fast(&mut config);
    config.ttl.after = Some(poh_node::config::Span(Duration::from_millis(500)));
    config.ttl.sweep_interval = poh_node::config::Span(Duration::from_millis(100));
    let primary = TestNode::spawn(config, dir).await;
    let named = |id: &str, parent: &str| {
        let mut t = tx(id);
        t.parent_ids = vec![parent.to_string()];
        t
    };
    // A chain, each naming the one before; and one waiting for a parent never sent.
    let mut old = vec![tx("old-0"), named("waits", "never")];
    old.extend((1..30).map(|i| named(&format!("old-{i}"), &format!("old-{}", i - 1))));
    submit_batch(&c, &primary, &old).await;
    for _ in 0..400 {
        let r = c.get(primary.http("/v1/tx/old-29")).send().await.unwrap();
        if r.status() == reqwest::StatusCode::GONE {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    // After the expiry: one naming an expired parent, one naming nothing (linked to tips).
    submit_batch(&c, &primary, &[named("late", "old-29"), tx("loose")]).await;

    let replica = replica_of(&primary).await;
    let held = get_json(&c, primary.http("/v1/replica")).await;
    let status = replica_until(&c, &replica, |s| {
        !s["stopped"].is_null() || s["seq"].as_u64() >= held["seq"].as_u64()
    })
    .await;
    assert!(status["stopped"].is_null(), "{status}");
    let ids = (old.iter().map(|t| t.tx_id.clone())).chain(["late".into(), "loose".into()]);
    let mut gone = 0;
    for id in ids {
        let (a, b) = (
            c.get(primary.http(&format!("/v1/tx/{id}")))
                .send()
                .await
                .unwrap(),
            c.get(replica.http(&format!("/v1/tx/{id}")))
                .send()
                .await
                .unwrap(),
        );
        assert_eq!(a.status(), b.status(), "{id}");
        gone += usize::from(a.status() == reqwest::StatusCode::GONE);
        assert_eq!(a.bytes().await.unwrap(), b.bytes().await.unwrap(), "{id}");
    }
    assert!(gone >= 30, "the old chain expired on the primary: {gone}");
    // A Sync from the start is told the same expired run on both.
    let sync = |node: &TestNode| {
        let addr = node.node.grpc_addr().unwrap();
        async move {
            let mut client = poh_proto::v1::poh_service_client::PohServiceClient::connect(format!(
                "http://{addr}"
            ))
            .await
            .unwrap();
            let mut stream = client
                .sync(poh_proto::v1::SyncRequest::default())
                .await
                .unwrap()
                .into_inner();
            let mut seqs = Vec::new();
            loop {
                match stream.message().await {
                    Ok(Some(r)) => seqs.push(r.poh_seq),
                    Ok(None) => return (seqs, String::new()),
                    Err(e) => return (seqs, e.message().to_string()),
                }
            }
        }
    };
    let (from_primary, from_replica) = (sync(&primary).await, sync(&replica).await);
    assert!(from_primary.1.contains("expired"), "{from_primary:?}");
    assert_eq!(from_primary, from_replica);

    // The DAG's tips end as the primary's: what the expired stubs named stopped being tips.
    let tips = |node: TestNode| async move {
        node.node.shutdown();
        node.node.join().await.unwrap();
        node.config.open_store().unwrap().tips().unwrap()
    };
    let tips_primary = tips(primary).await;
    assert_eq!(tips_primary, tips(replica).await);
    assert!(
        tips_primary.iter().all(|(_, id)| !id.starts_with("old-")),
        "{tips_primary:?}"
    );
}
