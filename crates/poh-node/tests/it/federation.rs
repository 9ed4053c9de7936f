//! The federation link (SPEC §6) between real nodes: a municipality pushes its headers to its
//! continental parent, which checks each one and records its hash in its own PoH; a
//! hand-driven link shows what the parent refuses and how it fills a gap.

use std::time::Duration;

use poh_core::{
    Entry, Header, Level, SigningKey,
    chain::Backend,
    chain_file::{
        ChainReader,
        verify::{ChainAnchor, verify_chain},
    },
    proof::Anchor,
};
use poh_node::{
    NodeConfig,
    config::ChildConfig,
    wire::{headers::ProofJson, protobuf::sealed_to_pb},
};
use poh_proto::federation::{
    self as fed, ChildMessage, HeaderResult, child_message, federation_client::FederationClient,
    parent_message,
};
use reqwest::Client;
use serde_json::Value;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use crate::{
    common::{HASHES_PER_TICK, TestNode, all_entries, get_json, json, metric, start_with, tx},
    sealing::{fast, headers},
};

fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// A key file and its `.pub` beside it, in `dir`.
pub(crate) fn key_files(dir: &std::path::Path, name: &str) -> (SigningKey, std::path::PathBuf) {
    let key = SigningKey::generate().unwrap();
    let path = dir.join(name);
    std::fs::write(&path, key.to_key_file().as_bytes()).unwrap();
    std::fs::write(
        dir.join(format!("{name}.pub")),
        hex::encode(key.public_key()),
    )
    .unwrap();
    (key, path)
}

pub(crate) fn child_config(keys: &std::path::Path, chain_id: &str, name: &str) -> ChildConfig {
    ChildConfig {
        chain_id: chain_id.into(),
        public_key_file: keys.join(format!("{name}.pub")),
        hashes_per_tick: None,
    }
}

/// The parent's height for `chain_id` in `GET /v1/federation`.
pub(crate) async fn child_height(c: &Client, parent: &TestNode, chain_id: &str) -> Option<u64> {
    let fed = get_json(c, parent.http("/v1/federation")).await;
    fed["children"]
        .as_array()
        .unwrap()
        .iter()
        .find(|ch| ch["chain_id"] == chain_id)
        .and_then(|ch| ch["height"].as_u64())
}

#[tokio::test]
async fn a_municipality_pushes_its_headers_and_the_continental_chain_records_them() {
    let keys = tempfile::tempdir().unwrap();
    let (tokyo, tokyo_key) = key_files(keys.path(), "tokyo.key");
    let (asia, asia_key) = key_files(keys.path(), "asia.key");
    let parent = start_with(|c: &mut NodeConfig| {
        fast(c);
        c.chain_id = "continental/asia".into();
        c.federation.level = Level::Continental;
        c.federation.node_key = Some(asia_key.clone());
        c.federation.children = vec![child_config(keys.path(), "municipality/tokyo", "tokyo.key")];
    })
    .await;
    let parent_grpc = parent.node.grpc_addr().unwrap().to_string();
    let c = Client::new();
    let child_seen = "poh_child_last_header_timestamp_seconds{child=\"municipality/tokyo\"}";
    let started = metric(&c, &parent, child_seen).await;
    assert!(
        started > 1.7e9,
        "a child's silence counts from the parent's start: {started}"
    );
    let child = start_with(|c: &mut NodeConfig| {
        fast(c);
        c.chain_id = "municipality/tokyo".into();
        c.federation.node_key = Some(tokyo_key.clone());
        c.federation.parent = Some(parent_grpc.clone());
    })
    .await;

    for i in 0..10 {
        let r = c
            .post(child.http("/v1/tx"))
            .json(&json(&tx(&format!("fed-{i}"))))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success());
    }
    // Wait until the parent has accepted every header sealed after the transactions.
    let mut sealed_tx = Value::Null;
    for _ in 0..200 {
        sealed_tx = get_json(&c, child.http("/v1/tx/fed-9")).await;
        if sealed_tx["status"] == "SEALED" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(sealed_tx["status"], "SEALED");
    let header_id = sealed_tx["header_id"].as_str().unwrap().to_string();
    let mut recorded = Value::Null;
    for _ in 0..200 {
        recorded = get_json(&c, parent.http(&format!("/v1/headers/{header_id}"))).await;
        if recorded.get("recorded_at_seq").is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let seq = recorded["recorded_at_seq"]
        .as_u64()
        .expect("the parent records the header");
    assert_eq!(recorded["chain_id"], "municipality/tokyo");

    // The parent's PoH holds the child's header hash as the item with that seq, and each
    // accepted height once, in order.
    let (_, entries) = all_entries(&c, &parent.http("")).await;
    let items: Vec<_> = entries
        .iter()
        .flat_map(|e: &Entry| e.mixins.clone())
        .collect();
    assert_eq!(items[seq as usize].to_hex(), header_id);
    let height = child_height(&c, &parent, "municipality/tokyo")
        .await
        .unwrap();
    let child_headers = headers(&c, &child, 0).await;
    for h in &child_headers[..=height as usize] {
        let n = items.iter().filter(|i| **i == h.hash()).count();
        assert_eq!(n, 1, "height {} recorded {n} times", h.height);
    }

    let accepted = metric(&c, &parent, "poh_child_headers_total{result=\"accepted\"}").await;
    assert!(accepted > height as f64, "{accepted}");
    let last_seen = metric(&c, &parent, child_seen).await;
    assert!(last_seen > started, "an accepted header moves {child_seen}");

    // Both chains export whole and verify, each anchored by its own key; the parent's, once
    // its own headers cover them, with every child header it recorded.
    let tokyo_public = tokyo.public_key().to_vec();
    let asia_public = asia.public_key().to_vec();
    let export = |node: &TestNode, trusted: Vec<u8>| {
        let (c, url) = (c.clone(), node.http("/v1/export"));
        async move {
            let bytes = c.get(url).send().await.unwrap().bytes().await.unwrap();
            let (start, reader) = ChainReader::open(&bytes[..]).unwrap();
            verify_chain(&start, reader, Backend::fastest(), &[trusted], &|_| {}).unwrap()
        }
    };
    let own = export(&child, tokyo_public.clone()).await;
    assert!(
        own.headers >= 1 && own.items >= 10 && own.child_headers == 0,
        "{own:?}"
    );
    assert_eq!(own.anchor, ChainAnchor::Trusted);
    let mut report = export(&parent, asia_public.clone()).await;
    for _ in 0..100 {
        if report.child_headers > height {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
        report = export(&parent, asia_public.clone()).await;
    }
    assert!(report.child_headers > height, "{report:?}");
    assert_eq!(report.anchor, ChainAnchor::Trusted);

    // The transaction's proof reaches the continental chain once it has sealed over it.
    let (mut links, mut anchor) = (Vec::new(), Anchor::Unanchored);
    for _ in 0..200 {
        let proof: ProofJson = c
            .get(child.http("/v1/tx/fed-9/proof"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        (links, anchor) = proof
            .verify(&[tokyo_public.clone(), asia_public.clone()])
            .unwrap();
        if links.len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(links.len(), 2);
    assert_eq!(links[0].header.id(), header_id);
    assert_eq!(links[1].header.chain_id, "continental/asia");
    assert_eq!(
        anchor,
        Anchor::Trusted {
            link: 1,
            chain_id: "continental/asia".into()
        }
    );
    let unknown = c.get(child.http("/v1/tx/nope/proof")).send().await.unwrap();
    assert_eq!(unknown.status(), reqwest::StatusCode::NOT_FOUND);
    child.stop().await;
    parent.stop().await;
}

/// A link driven by hand: what a child sends, and the parent's answers, one at a time.
struct HandLink {
    out: mpsc::Sender<ChildMessage>,
    inbound: tonic::Streaming<fed::ParentMessage>,
}

impl HandLink {
    async fn open(parent: &TestNode, chain_id: &str) -> Result<(Self, u64), tonic::Status> {
        let mut client =
            FederationClient::connect(format!("http://{}", parent.node.grpc_addr().unwrap()))
                .await
                .unwrap()
                .max_decoding_message_size(16 << 20)
                .max_encoding_message_size(16 << 20);
        let (out, rx) = mpsc::channel(8);
        let hello = fed::Hello {
            chain_id: chain_id.into(),
            hashes_per_tick: HASHES_PER_TICK,
        };
        out.send(ChildMessage {
            kind: Some(child_message::Kind::Hello(hello)),
        })
        .await
        .unwrap();
        let mut inbound = client.link(ReceiverStream::new(rx)).await?.into_inner();
        let Some(parent_message::Kind::Welcome(w)) = inbound.message().await?.and_then(|m| m.kind)
        else {
            panic!("no Welcome");
        };
        Ok((Self { out, inbound }, w.next_height))
    }

    /// The parent has ended the link.
    async fn closed(&mut self) {
        let next = tokio::time::timeout(Duration::from_secs(10), self.inbound.message())
            .await
            .expect("the parent ends the link");
        assert!(matches!(next, Ok(None) | Err(_)), "{next:?}");
    }

    async fn push(&mut self, header: &Header, entries: &[Entry]) -> parent_message::Kind {
        self.out
            .send(ChildMessage {
                kind: Some(child_message::Kind::Header(sealed_to_pb(header, entries))),
            })
            .await
            .unwrap();
        self.inbound
            .message()
            .await
            .unwrap()
            .and_then(|m| m.kind)
            .unwrap()
    }
}

fn result(answer: &parent_message::Kind) -> (HeaderResult, String) {
    match answer {
        parent_message::Kind::Ack(ack) => (
            HeaderResult::try_from(ack.result).unwrap(),
            ack.message.clone(),
        ),
        other => panic!("expected an Ack, got {other:?}"),
    }
}

#[tokio::test]
async fn the_parent_refuses_bad_headers_and_fetches_missing_heights() {
    let keys = tempfile::tempdir().unwrap();
    let (key, key_path) = key_files(keys.path(), "osaka.key");
    // A real municipality seals headers (it has no parent); the test plays its link.
    let child = start_with(|c: &mut NodeConfig| {
        fast(c);
        c.chain_id = "municipality/osaka".into();
        c.federation.node_key = Some(key_path.clone());
    })
    .await;
    let parent = start_with(|c: &mut NodeConfig| {
        c.chain_id = "continental/asia".into();
        c.federation.level = Level::Continental;
        c.federation.children = vec![child_config(keys.path(), "municipality/osaka", "osaka.key")];
    })
    .await;
    let c = Client::new();
    let mut sealed = Vec::new();
    for _ in 0..200 {
        sealed = headers(&c, &child, 0).await;
        if sealed.len() >= 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let (_, entries) = all_entries(&c, &child.http("")).await;
    let covered = |h: &Header| entries[h.poh_start as usize..h.poh_end as usize].to_vec();
    let resigned = |change: &dyn Fn(&mut Header)| {
        let mut h = sealed[0].clone();
        change(&mut h);
        h.sign(&key).unwrap();
        h
    };

    let denied = HandLink::open(&parent, "municipality/nara")
        .await
        .err()
        .unwrap();
    assert_eq!(denied.code(), tonic::Code::PermissionDenied);

    let (mut link, next) = HandLink::open(&parent, "municipality/osaka").await.unwrap();
    assert_eq!(next, 0);
    // A gap: the parent asks for height 0 again, and the link goes on.
    match link.push(&sealed[1], &covered(&sealed[1])).await {
        parent_message::Kind::Fetch(f) => assert_eq!(f.from_height, 0),
        other => panic!("expected Fetch, got {other:?}"),
    }
    let mut bad_signature = sealed[0].clone();
    bad_signature.signature[100] ^= 1;
    let at_now = |h: &mut Header| h.timestamp = unix_now() + 3600.0;
    // Each refusal ends the link; those refused before any entry is hashed leave the child
    // free to link again at once.
    let refusals: Vec<(Header, Vec<Entry>, &str)> = vec![
        (bad_signature, covered(&sealed[0]), "signature"),
        (
            resigned(&|h| h.prev_header_hash.0[0] ^= 1),
            covered(&sealed[0]),
            "prev_header_hash",
        ),
        (
            resigned(&|h| h.timestamp = f64::NAN),
            covered(&sealed[0]),
            "not a time",
        ),
        (
            resigned(&at_now),
            covered(&sealed[0]),
            "ahead of this node's clock",
        ),
    ];
    for (header, entries, why) in refusals {
        let (result, message) = result(&link.push(&header, &entries).await);
        assert_eq!(result, HeaderResult::Rejected, "{why}");
        assert!(message.contains(why), "{why}: {message}");
        link.closed().await;
        link = HandLink::open(&parent, "municipality/osaka")
            .await
            .unwrap()
            .0;
    }
    // Refused once its entries were hashed: the link ends and the child is kept out a while.
    let hashed: Vec<(Header, Vec<Entry>, &str)> = vec![
        (
            resigned(&|h| h.items_root.0[0] ^= 1),
            covered(&sealed[0]),
            "items_root",
        ),
        (sealed[0].clone(), covered(&sealed[1]), "PoH entr"),
    ];
    for (header, entries, why) in hashed {
        let (r, m) = result(&link.push(&header, &entries).await);
        assert_eq!(r, HeaderResult::Rejected, "{why}");
        assert!(m.contains(why), "{why}: {m}");
        link.closed().await;
        // Kept out for at least 2 s from the refusal, which came before this: a machine too
        // busy to ask again within them may find it let in, any other may not.
        let asked = std::time::Instant::now();
        match HandLink::open(&parent, "municipality/osaka").await {
            Err(kept_out) => {
                assert_eq!(kept_out.code(), tonic::Code::Unavailable, "{kept_out:?}");
                assert!(kept_out.message().contains("retry in"), "{kept_out:?}");
            }
            Ok(_) => assert!(
                asked.elapsed() >= Duration::from_secs(2),
                "{why}: the child was let in again at once"
            ),
        }
        // Let in again once the time is up.
        link = loop {
            match HandLink::open(&parent, "municipality/osaka").await {
                Ok((link, _)) => break link,
                Err(status) => assert_eq!(status.code(), tonic::Code::Unavailable),
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        };
    }
    for h in &sealed[..3] {
        let (r, m) = result(&link.push(h, &covered(h)).await);
        assert_eq!(r, HeaderResult::Accepted, "height {}: {m}", h.height);
    }
    let (r, _) = result(&link.push(&sealed[1], &covered(&sealed[1])).await);
    assert_eq!(r, HeaderResult::Duplicate);
    // A different header at an accepted height.
    let (r, m) = result(
        &link
            .push(&resigned(&|h| h.timestamp += 1.0), &covered(&sealed[0]))
            .await,
    );
    assert_eq!(r, HeaderResult::Rejected);
    assert!(m.contains("already accepted"), "{m}");
    link.closed().await;

    // A new link resumes where the parent stands.
    let (_, next) = HandLink::open(&parent, "municipality/osaka").await.unwrap();
    assert_eq!(next, 3);
    assert_eq!(
        child_height(&c, &parent, "municipality/osaka").await,
        Some(2)
    );
    child.stop().await;
    parent.stop().await;
}

#[tokio::test]
async fn with_authentication_on_a_child_without_the_token_is_refused() {
    let keys = tempfile::tempdir().unwrap();
    let (_, kyoto_key) = key_files(keys.path(), "kyoto.key");
    let tokens = keys.path().join("tokens");
    std::fs::write(&tokens, "federation-token\n").unwrap();
    let parent = start_with(|c: &mut NodeConfig| {
        fast(c);
        c.chain_id = "continental/asia".into();
        c.federation.level = Level::Continental;
        c.federation.children = vec![child_config(keys.path(), "municipality/kyoto", "kyoto.key")];
        c.auth = Some(poh_node::config::AuthConfig {
            token_file: Some(tokens.clone()),
            ..Default::default()
        });
        c.udp = None;
        c.quic = None;
    })
    .await;

    // A hand-driven link without credentials gets nothing.
    let refused = HandLink::open(&parent, "municipality/kyoto")
        .await
        .err()
        .unwrap();
    assert_eq!(refused.code(), tonic::Code::Unauthenticated);

    // A child node that sends the peers' token is linked, and its headers are accepted.
    let parent_grpc = parent.node.grpc_addr().unwrap().to_string();
    let child = start_with(|c: &mut NodeConfig| {
        fast(c);
        c.chain_id = "municipality/kyoto".into();
        c.federation.node_key = Some(kyoto_key.clone());
        c.federation.parent = Some(parent_grpc.clone());
        c.peers.token_file = Some(tokens.clone());
    })
    .await;
    let c = Client::new();
    let mut height = None;
    for _ in 0..200 {
        let fed = c
            .get(parent.http("/v1/federation"))
            .bearer_auth("federation-token")
            .send()
            .await
            .unwrap()
            .json::<Value>()
            .await
            .unwrap();
        height = fed["children"][0]["height"].as_u64();
        if height.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(
        height.is_some(),
        "the authenticated child's headers are accepted"
    );
    child.stop().await;
    parent.stop().await;
}
