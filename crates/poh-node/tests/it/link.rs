//! The federation link against callers that misbehave: what a link may hold, how long it
//! lives, whose rules it is checked by, and what proofs cost to ask for.

use std::time::{Duration, Instant};

use poh_core::{Entry, Header, Level, SigningKey};
use poh_node::{NodeConfig, wire::protobuf::sealed_to_pb};
use poh_proto::federation::{
    self as fed, ChildMessage, child_message, federation_client::FederationClient, parent_message,
};
use reqwest::Client;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use crate::{
    common::{HASHES_PER_TICK, TestNode, all_entries, get_json, json, metric, start_with, tx},
    federation::{child_config, child_height, key_files},
    sealing::{fast, headers},
};

const CHILD: &str = "municipality/kobe";

/// The child chain's key, as its node and its parent have it; the directory lives as long
/// as the test needs the files.
struct ChildKey {
    key: SigningKey,
    path: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

/// A continental parent with one configured child, `CHILD` (its setting changed by
/// `change`), and that child's key.
async fn parent(change: impl FnOnce(&mut NodeConfig)) -> (TestNode, ChildKey) {
    let dir = tempfile::tempdir().unwrap();
    let (key, path) = key_files(dir.path(), "kobe.key");
    let children = vec![child_config(dir.path(), CHILD, "kobe.key")];
    let parent = start_with(|c: &mut NodeConfig| {
        c.chain_id = "continental/asia".into();
        c.federation.level = Level::Continental;
        c.federation.children = children;
        change(c);
    })
    .await;
    (
        parent,
        ChildKey {
            key,
            path,
            _dir: dir,
        },
    )
}

/// The child's node, sealing fast, linked to `parent` when given.
async fn child(key: &ChildKey, parent: Option<&TestNode>) -> TestNode {
    let parent = parent.map(|p| p.node.grpc_addr().unwrap().to_string());
    start_with(|c: &mut NodeConfig| {
        fast(c);
        c.chain_id = CHILD.into();
        c.federation.node_key = Some(key.path.clone());
        c.federation.parent = parent;
    })
    .await
}

/// `node`'s first sealed header and the entries it covers.
async fn first_header(c: &Client, node: &TestNode) -> (Header, Vec<Entry>) {
    let mut sealed = Vec::new();
    for _ in 0..200 {
        sealed = headers(c, node, 0).await;
        if !sealed.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let (_, entries) = all_entries(c, &node.http("")).await;
    let first = sealed.swap_remove(0);
    let covered = entries[first.poh_start as usize..first.poh_end as usize].to_vec();
    (first, covered)
}

/// A raw link: what the test sends, and the parent's answers.
struct RawLink {
    out: mpsc::Sender<ChildMessage>,
    answers: Result<tonic::Streaming<fed::ParentMessage>, tonic::Status>,
}

async fn open(parent: &TestNode, first: ChildMessage) -> RawLink {
    let client =
        FederationClient::connect(format!("http://{}", parent.node.grpc_addr().unwrap())).await;
    let mut client = client
        .unwrap()
        .max_decoding_message_size(16 << 20)
        .max_encoding_message_size(16 << 20);
    let (out, rx) = mpsc::channel(64);
    out.send(first).await.unwrap();
    let answers = client
        .link(ReceiverStream::new(rx))
        .await
        .map(|r| r.into_inner());
    RawLink { out, answers }
}

fn hello(chain_id: &str, hashes_per_tick: u64) -> ChildMessage {
    ChildMessage {
        kind: Some(child_message::Kind::Hello(fed::Hello {
            chain_id: chain_id.into(),
            hashes_per_tick,
        })),
    }
}

fn header_message(sealed: fed::SealedHeader) -> ChildMessage {
    ChildMessage {
        kind: Some(child_message::Kind::Header(sealed)),
    }
}

/// A message of `bytes` that is no header at all.
fn junk(bytes: usize) -> ChildMessage {
    header_message(fed::SealedHeader {
        header: vec![0xAB; bytes],
        signature: Vec::new(),
        entries: Vec::new(),
    })
}

/// How the parent ended a link, waiting at most ten seconds.
async fn ending(answers: &mut tonic::Streaming<fed::ParentMessage>) -> Option<tonic::Status> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, answers.message()).await {
            Err(_) => panic!("the parent kept the link open"),
            Ok(Ok(Some(_))) => continue,
            Ok(Ok(None)) => return None,
            Ok(Err(status)) => return Some(status),
        }
    }
}

/// A link that said Hello as `CHILD` and was welcomed: what it sends, and what follows.
async fn welcomed(
    parent: &TestNode,
    hashes_per_tick: u64,
) -> (
    mpsc::Sender<ChildMessage>,
    tonic::Streaming<fed::ParentMessage>,
) {
    let link = open(parent, hello(CHILD, hashes_per_tick)).await;
    let mut answers = link.answers.unwrap();
    assert!(matches!(
        answers.message().await.unwrap().and_then(|m| m.kind),
        Some(parent_message::Kind::Welcome(_))
    ));
    (link.out, answers)
}

/// Sends `header` with the entries it covers over a new link whose Hello names
/// `hashes_per_tick`; why the parent refused it. The parent then ends the link.
async fn refusal(
    parent: &TestNode,
    hashes_per_tick: u64,
    header: &Header,
    covered: &[Entry],
) -> String {
    let (out, mut answers) = welcomed(parent, hashes_per_tick).await;
    out.send(header_message(sealed_to_pb(header, covered)))
        .await
        .unwrap();
    let Some(parent_message::Kind::Ack(ack)) = answers.message().await.unwrap().unwrap().kind
    else {
        panic!("expected an Ack");
    };
    assert_eq!(ack.result, fed::HeaderResult::Rejected as i32, "{ack:?}");
    let ended = ending(&mut answers).await;
    assert!(ended.is_none(), "a refused header ends the link: {ended:?}");
    ack.message
}

/// Waits until `series` reads `value`.
async fn settles(c: &Client, node: &TestNode, series: &str, value: f64) {
    let mut seen = f64::NAN;
    for _ in 0..200 {
        seen = metric(c, node, series).await;
        if seen == value {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("{series} stays at {seen}, not {value}");
}

/// Eight links that say Hello as the child, send 16 MiB of junk headers each and fall
/// silent used to pin the whole request budget, so that every client's write got 503.
#[tokio::test]
async fn silent_links_hold_nothing_and_never_take_the_room_of_writes() {
    let (parent, _key) = parent(|_| {}).await;
    let mut attackers = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let mut link = open(&parent, hello(CHILD, HASHES_PER_TICK)).await;
        attackers.spawn(async move {
            for _ in 0..16 {
                if link.out.send(junk(1 << 20)).await.is_err() {
                    break;
                }
            }
            // Until the parent has answered every junk header or ended the link: then all
            // of it was read.
            if let Ok(answers) = &mut link.answers {
                let mut answered = 0;
                while answered < 17 {
                    match tokio::time::timeout(Duration::from_secs(20), answers.message()).await {
                        Ok(Ok(Some(_))) => answered += 1,
                        _ => break,
                    }
                }
            }
            // Silent, but still open.
            link.out
        });
    }
    let mut links = Vec::new();
    while let Some(out) = attackers.join_next().await {
        links.push(out.unwrap());
    }
    let c = Client::new();
    settles(&c, &parent, "poh_buffered_bytes", 0.0).await;
    settles(&c, &parent, "poh_link_buffered_bytes", 0.0).await;
    for i in 0..20 {
        let r = c
            .post(parent.http("/v1/tx"))
            .json(&json(&tx(&format!("write-{i}"))))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), reqwest::StatusCode::CREATED, "write {i}");
    }
    drop(links);
    parent.stop().await;
}

/// Before its Hello names a child, a caller is held to a few KiB: a large first message is
/// refused by its length prefix, before the parent reads it.
#[tokio::test]
async fn a_first_message_larger_than_a_hello_is_refused_unread() {
    let (parent, _key) = parent(|_| {}).await;
    let mut link = open(&parent, junk(1 << 20)).await;
    let status = match &mut link.answers {
        Ok(answers) => ending(answers).await.expect("an error status"),
        Err(status) => status.clone(),
    };
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    assert!(status.message().contains("at most 4096"), "{status:?}");
    parent.stop().await;
}

/// After Hello, a message is checked before it is decoded: entries past the cap (each two
/// bytes on the wire and dozens in memory) end the link.
#[tokio::test]
async fn a_header_message_past_the_entry_cap_is_refused_before_decoding() {
    let (parent, _key) = parent(|_| {}).await;
    let (out, mut answers) = welcomed(&parent, HASHES_PER_TICK).await;
    let entries = vec![fed::Entry::default(); (1 << 16) + 1];
    out.send(header_message(fed::SealedHeader {
        header: Vec::new(),
        signature: Vec::new(),
        entries,
    }))
    .await
    .unwrap();
    let status = ending(&mut answers).await.expect("an error status");
    assert!(status.message().contains("more entries"), "{status:?}");
    parent.stop().await;
}

#[tokio::test]
async fn a_newer_link_of_a_child_replaces_the_open_one() {
    let (parent, _key) = parent(|_| {}).await;
    let (_first, mut first_answers) = welcomed(&parent, HASHES_PER_TICK).await;
    let _second = welcomed(&parent, HASHES_PER_TICK).await;
    let status = ending(&mut first_answers).await.expect("an error status");
    assert_eq!(status.code(), tonic::Code::Aborted, "{status:?}");
    assert!(status.message().contains("replaced"), "{status:?}");
    parent.stop().await;
}

/// The parent holds a child to the rate it was configured with, whatever the child says.
#[tokio::test]
async fn a_child_is_checked_at_the_parents_setting_for_it_not_its_own_word() {
    // The real child ticks at 500 hashes; its parent is told 250.
    let (parent, key) = parent(|c| c.federation.children[0].hashes_per_tick = Some(250)).await;
    let mut claimed = open(&parent, hello(CHILD, 500)).await;
    let status = claimed.answers.as_mut().err().unwrap().clone();
    assert_eq!(status.code(), tonic::Code::FailedPrecondition, "{status:?}");
    assert!(status.message().contains("250"), "{status:?}");

    // A link that claims no rate is still checked at 250: the child's ticks are too long.
    let child = child(&key, None).await;
    let c = Client::new();
    let (first, covered) = first_header(&c, &child).await;
    let why = refusal(&parent, 0, &first, &covered).await;
    assert!(why.contains("hashes_per_tick"), "{why}");
    child.stop().await;
    parent.stop().await;
}

/// A parent's links end with it: it stops at once, not after the drain timeout.
#[tokio::test]
async fn a_parent_with_a_linked_child_stops_at_once() {
    let (parent, key) = parent(|_| {}).await;
    let child = child(&key, Some(&parent)).await;
    let c = Client::new();
    for _ in 0..400 {
        if child_height(&c, &parent, CHILD).await.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(child_height(&c, &parent, CHILD).await.is_some());
    let started = Instant::now();
    parent.stop().await;
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(2),
        "the parent took {took:?} to stop"
    );
    child.stop().await;
}

/// A sealed header's tree is built once and kept: asking for the proofs of every
/// transaction it covers reads its entries once.
#[tokio::test]
async fn proofs_of_one_header_build_its_tree_once() {
    let node = start_with(fast).await;
    let c = Client::new();
    let ids: Vec<String> = (0..40).map(|i| format!("proven-{i}")).collect();
    let batch: Vec<_> = ids.iter().map(|id| json(&tx(id))).collect();
    let r = c
        .post(node.http("/v1/tx/batch"))
        .json(&batch)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    let mut header_ids = std::collections::HashSet::new();
    for id in &ids {
        let mut record = serde_json::Value::Null;
        for _ in 0..200 {
            record = get_json(&c, node.http(&format!("/v1/tx/{id}"))).await;
            if record["status"] == "SEALED" {
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        header_ids.insert(record["header_id"].as_str().unwrap().to_string());
    }
    for round in 0..3 {
        for id in &ids {
            let r = c
                .get(node.http(&format!("/v1/tx/{id}/proof")))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), reqwest::StatusCode::OK, "{id}, round {round}");
        }
    }
    let built = metric(&c, &node, "poh_proof_trees_total{result=\"built\"}").await;
    let kept = metric(&c, &node, "poh_proof_trees_total{result=\"kept\"}").await;
    assert_eq!(built, header_ids.len() as f64, "trees built");
    assert_eq!(kept, 120.0 - built, "proofs from kept trees");
    node.stop().await;
}

/// A header signed by the child's own key whose last entry claims far more hashes than a
/// tick is refused from its claims alone: nothing is hashed, so no key holder can make the
/// parent hash for it.
#[tokio::test]
async fn a_signed_header_claiming_a_long_entry_is_refused_before_hashing() {
    let (parent, key) = parent(|_| {}).await;
    let child = child(&key, None).await;
    let c = Client::new();
    let (mut header, mut covered) = first_header(&c, &child).await;
    let long = 1u64 << 30;
    covered.last_mut().unwrap().num_hashes += long;
    header.poh_hashes += long;
    header.sign(&key.key).unwrap();
    let verified = "poh_verify_latency_seconds_count";
    let before = metric(&c, &parent, verified).await;
    let why = refusal(&parent, HASHES_PER_TICK, &header, &covered).await;
    assert!(why.contains("num_hashes"), "{why}");
    assert_eq!(
        metric(&c, &parent, verified).await,
        before,
        "no entry was hashed"
    );
    child.stop().await;
    parent.stop().await;
}
