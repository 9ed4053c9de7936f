//! Erasure-coded fragments of sealed batches, end to end on a real node: the writer puts
//! `k + m` fragments of every sealed height in local directories and in an S3-compatible
//! bucket (a real `moto_server`), any `k` of them rebuild a batch byte for byte, a corrupted
//! one is caught by its checksum and skipped, `m + 1` missing is one clear error, and
//! `restore` puts expired transactions back.

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{Arc, OnceLock},
    time::{Duration, Instant},
};

use object_store::{ObjectStoreExt as _, PutPayload};
use poh_node::{
    NodeConfig, NodeError,
    config::{FragmentsConfig, Span},
    retention::fragments::{self, FragmentError, Location, SealedBatch, location},
};
use poh_store::Store;
use reqwest::{Client, StatusCode};

use crate::{
    common::{TestNode, get_json, json, metric, metrics_text, series_value, tx},
    sealing::fast,
};

const K: usize = 4;
const M: usize = 2;

/// Starts a node writing fragments to `locations`, submits `n` transactions, waits until
/// the last one is sealed and its header's fragments are written, and stops the node. The
/// data directory, the header's id and height, and the ids submitted.
async fn seal_and_fragment(
    prefix: &str,
    fragments: FragmentsConfig,
    n: usize,
) -> (tempfile::TempDir, String, u64, Vec<String>) {
    let test = crate::common::start_with(|c| {
        fast(c);
        c.fragments = fragments;
    })
    .await;
    let c = Client::new();
    let ids: Vec<String> = (0..n).map(|i| format!("{prefix}-{i}")).collect();
    for id in &ids {
        let r = c
            .post(test.http("/v1/tx"))
            .json(&json(&tx(id)))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::CREATED);
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    let header_id = loop {
        let v = get_json(&c, test.http(&format!("/v1/tx/{}", ids[n - 1]))).await;
        if v["status"] == "SEALED" {
            break v["header_id"].as_str().unwrap().to_string();
        }
        assert!(Instant::now() < deadline, "not sealed: {v}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    };
    let header = get_json(&c, test.http(&format!("/v1/headers/{header_id}"))).await;
    let height = header["height"].as_u64().unwrap();
    while metric(&c, &test, "poh_fragments_height").await <= height as f64 {
        assert!(
            Instant::now() < deadline,
            "fragments of height {height} not written"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(metric(&c, &test, "poh_fragments_written_total").await >= ((height + 1) as f64) * 6.0);
    let TestNode {
        node, _dir: dir, ..
    } = test;
    node.shutdown();
    node.join().await.unwrap();
    (dir, header_id, height, ids)
}

fn open_store(dir: &Path) -> Arc<dyn Store> {
    let config = NodeConfig {
        data_dir: dir.to_path_buf(),
        ..NodeConfig::default()
    };
    config.open_store().unwrap()
}

/// The batch of `height` as the store holds it, encoded: what the fragments must rebuild.
fn expected(store: &Arc<dyn Store>, height: u64) -> Vec<u8> {
    SealedBatch::read(store.as_ref(), height)
        .unwrap()
        .unwrap()
        .encode()
        .unwrap()
}

async fn rebuild(
    locations: &[Location],
    store: &Arc<dyn Store>,
    id: &str,
) -> Result<fragments::Rebuilt, NodeError> {
    fragments::rebuild(locations, K, M, store.clone(), id).await
}

/// Expires the batch's records from the store, restores them from the fragments, and checks
/// they are back as they were.
async fn expire_and_restore(
    locations: &[Location],
    store: &Arc<dyn Store>,
    id: &str,
    height: u64,
    ids: &[String],
) {
    let end = store.head_after(height).unwrap().unwrap().seq;
    // The last id is sealed by this header (earlier ones may be by earlier headers).
    let last = ids.last().unwrap();
    let before = store.tx(last).unwrap().unwrap();
    let expired = store.expire(f64::MAX, end, 100_000).unwrap();
    assert!(expired.removed > 0, "{expired:?}");
    assert!(store.tx(last).unwrap().is_none());
    let report = fragments::restore(locations, K, M, store.clone(), id)
        .await
        .unwrap();
    assert!(report.restored > 0 && report.restored <= report.transactions as u64);
    assert_eq!(report.header_id, id);
    let after = store.tx(last).unwrap().unwrap();
    assert_eq!(after.tx, before.tx);
    assert_eq!(after.poh_seq, before.poh_seq);
    assert_eq!(after.digest, before.digest);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn any_k_local_fragments_rebuild_the_batch_byte_for_byte() {
    let frag_root = tempfile::tempdir().unwrap();
    let dirs: Vec<PathBuf> = (0..K + M)
        .map(|i| frag_root.path().join(format!("loc{i}")))
        .collect();
    let config = FragmentsConfig {
        locations: dirs.iter().map(|d| d.display().to_string()).collect(),
        ..FragmentsConfig::default()
    };
    let (dir, id, height, ids) = seal_and_fragment("frag", config.clone(), 20).await;
    let store = open_store(dir.path());
    let want = expected(&store, height);
    let locations = location::open_all(&config).unwrap();
    let file = |i: usize| dirs[i].join(&id).join(i.to_string());

    // Every choice of m fragments lost, all-data and all-but-parity included.
    for a in 0..K + M {
        for b in a + 1..K + M {
            for i in [a, b] {
                std::fs::rename(file(i), file(i).with_extension("gone")).unwrap();
            }
            let got = rebuild(&locations, &store, &id).await.unwrap();
            assert_eq!(got.bytes, want, "without fragments {a} and {b}");
            assert_eq!(got.missing, vec![a, b]);
            assert_eq!(got.batch.txs.len(), want_txs(&got));
            for i in [a, b] {
                std::fs::rename(file(i).with_extension("gone"), file(i)).unwrap();
            }
        }
    }

    // m + 1 lost: one line naming what is missing and what is needed.
    for i in [1, 4, 5] {
        std::fs::rename(file(i), file(i).with_extension("gone")).unwrap();
    }
    let err = rebuild(&locations, &store, &id).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "header {id}: only 3 of the 4 fragments needed are readable (missing: 1, 4, 5; \
             corrupt: none); restore needs any 4 of 6"
        )
    );
    assert!(matches!(
        err,
        NodeError::Fragments(FragmentError::NotEnough { .. })
    ));
    for i in [1, 4, 5] {
        std::fs::rename(file(i).with_extension("gone"), file(i)).unwrap();
    }

    // One byte of a shard flipped: the fragment's checksum catches it, the others rebuild.
    let mut bytes = std::fs::read(file(2)).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x40;
    std::fs::write(file(2), &bytes).unwrap();
    let got = rebuild(&locations, &store, &id).await.unwrap();
    assert_eq!(got.bytes, want);
    assert_eq!(got.corrupt, vec![2]);
    // …and with m more lost, corrupt counts as unreadable.
    std::fs::rename(file(0), file(0).with_extension("gone")).unwrap();
    std::fs::rename(file(5), file(5).with_extension("gone")).unwrap();
    let err = rebuild(&locations, &store, &id)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("(missing: 0, 5; corrupt: 2)"), "{err}");
    std::fs::rename(file(0).with_extension("gone"), file(0)).unwrap();
    std::fs::rename(file(5).with_extension("gone"), file(5)).unwrap();

    expire_and_restore(&locations, &store, &id, height, &ids).await;
}

/// How many of the submitted transactions a batch holds, from its own header.
fn want_txs(got: &fragments::Rebuilt) -> usize {
    got.batch.header.item_count as usize
}

/// A node whose TTL expired records before it had fragments configured: once fragments are
/// configured, the batch that lost them is incomplete (records + child headers fall short of
/// the header's `item_count`). No fragment of it is written and its height is never marked,
/// so nothing after it expires either; the writer counts it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_missing_expired_records_is_never_marked_written() {
    let test = crate::common::start_with(|c| {
        fast(c);
        c.ttl.after = Some(Span(Duration::from_millis(200)));
        c.ttl.sweep_interval = Span(Duration::from_millis(50));
    })
    .await;
    let c = Client::new();
    for i in 0..5 {
        let r = c
            .post(test.http("/v1/tx"))
            .json(&json(&tx(&format!("early-{i}"))))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::CREATED);
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    let header_id = loop {
        let r = c.get(test.http("/v1/tx/early-0")).send().await.unwrap();
        if r.status() == StatusCode::GONE {
            let v: serde_json::Value = r.json().await.unwrap();
            break v["header_id"].as_str().unwrap().to_string();
        }
        assert!(Instant::now() < deadline, "early-0 not expired");
        tokio::time::sleep(Duration::from_millis(25)).await;
    };
    let header = get_json(&c, test.http(&format!("/v1/headers/{header_id}"))).await;
    let height = header["height"].as_u64().unwrap();
    let TestNode {
        node,
        config,
        _dir: dir,
    } = test;
    node.shutdown();
    node.join().await.unwrap();

    let frag_root = tempfile::tempdir().unwrap();
    let dirs: Vec<PathBuf> = (0..K + M)
        .map(|i| frag_root.path().join(format!("loc{i}")))
        .collect();
    let mut config = config;
    config.fragments = FragmentsConfig {
        locations: dirs.iter().map(|d| d.display().to_string()).collect(),
        ..FragmentsConfig::default()
    };
    let test = TestNode::spawn(config, dir).await;
    // The writer goes through the heights before it in order; wait until it has judged this
    // one (counted incomplete, or gone past it).
    let (written, incomplete) = loop {
        let text = metrics_text(&c, &test).await;
        let written = series_value(&text, "poh_fragments_height").unwrap();
        let incomplete =
            series_value(&text, "poh_fragment_batches_incomplete_total").unwrap_or(0.0);
        if incomplete >= 1.0 || written > height as f64 {
            break (written, incomplete);
        }
        assert!(Instant::now() < deadline, "height {height} not judged");
        tokio::time::sleep(Duration::from_millis(25)).await;
    };
    assert_eq!(
        written, height as f64,
        "height {height}, whose batch lost expired records, was marked written"
    );
    assert_eq!(incomplete, 1.0);
    for d in &dirs {
        assert!(!d.join(&header_id).exists(), "a fragment of it in {d:?}");
    }
    let TestNode {
        node, _dir: dir, ..
    } = test;
    node.shutdown();
    node.join().await.unwrap();
    let store = open_store(dir.path());
    assert_eq!(
        store
            .progress(fragments::PROGRESS_KEY)
            .unwrap()
            .unwrap_or(0),
        height
    );
}

// ---- S3, through a real moto_server ----

/// The moto_server binary: `POH_MOTO_SERVER`, else `<workspace>/target/moto-venv`, made
/// there once (`python3 -m venv`, `pip install 'moto[server]'`) when missing.
fn moto_binary() -> PathBuf {
    if let Ok(path) = std::env::var("POH_MOTO_SERVER") {
        return PathBuf::from(path);
    }
    static MADE: OnceLock<PathBuf> = OnceLock::new();
    MADE.get_or_init(|| {
        let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/moto-venv");
        let bin = venv.join("bin/moto_server");
        if bin.exists() {
            return bin;
        }
        // Another test process may be making it too: one at a time, by a file lock.
        std::fs::create_dir_all(venv.parent().unwrap()).unwrap();
        let lock = std::fs::File::create(venv.with_extension("lock")).unwrap();
        lock.lock().unwrap();
        if !bin.exists() {
            let run = |cmd: &mut Command| {
                let status = cmd.status().unwrap();
                assert!(status.success(), "{cmd:?} failed");
            };
            run(Command::new("python3").args(["-m", "venv"]).arg(&venv));
            run(Command::new(venv.join("bin/pip")).args(["install", "-q", "moto[server]"]));
        }
        bin
    })
    .clone()
}

/// A moto_server on a free loopback port, killed when dropped.
struct Moto {
    child: Child,
    endpoint: String,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn moto(bucket: &str) -> Moto {
    let bin = tokio::task::spawn_blocking(moto_binary).await.unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(&bin)
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("{}: {e}", bin.display()));
    let moto = Moto {
        child,
        endpoint: format!("http://127.0.0.1:{port}"),
    };
    // object_store cannot create buckets: moto's S3 API can, with a plain PUT.
    let c = Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match c.put(format!("{}/{bucket}", moto.endpoint)).send().await {
            Ok(r) if r.status().is_success() => break,
            other => {
                assert!(Instant::now() < deadline, "moto_server: {other:?}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    moto
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fragments_in_an_s3_bucket_rebuild_and_restore() {
    let moto = moto("poh-fragments").await;
    let secrets = tempfile::tempdir().unwrap();
    let secret = secrets.path().join("secret");
    std::fs::write(&secret, "testing\n").unwrap();
    let mut config = FragmentsConfig {
        locations: vec![
            "s3://poh-fragments/node-a/east".into(),
            "s3://poh-fragments/node-a/west".into(),
        ],
        ..FragmentsConfig::default()
    };
    config.s3.endpoint = Some(moto.endpoint.clone());
    config.s3.region = Some("us-east-1".into());
    config.s3.access_key_id = Some("testing".into());
    config.s3.secret_access_key_file = Some(secret);
    config.s3.allow_http = true;
    let (dir, id, height, ids) = seal_and_fragment("s3frag", config.clone(), 10).await;
    let store = open_store(dir.path());
    let want = expected(&store, height);
    let locations = location::open_all(&config).unwrap();
    let object = |i: usize| {
        let l = location::for_index(&locations, i).unwrap();
        (l.store().clone(), l.object(&id, i))
    };

    // A data and a parity fragment lost.
    for i in [1, 5] {
        let (s, path) = object(i);
        s.delete(&path).await.unwrap();
    }
    let got = rebuild(&locations, &store, &id).await.unwrap();
    assert_eq!(got.bytes, want);
    assert_eq!(got.missing, vec![1, 5]);

    // One more corrupted: caught, and now too few.
    let (s, path) = object(2);
    let mut bytes = s.get(&path).await.unwrap().bytes().await.unwrap().to_vec();
    bytes[100] ^= 1;
    s.put(&path, PutPayload::from(bytes)).await.unwrap();
    let err = rebuild(&locations, &store, &id)
        .await
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        format!(
            "header {id}: only 3 of the 4 fragments needed are readable (missing: 1, 5; \
             corrupt: 2); restore needs any 4 of 6"
        )
    );

    // The lost ones written back from the store's own batch: restore works again.
    let all = fragments::format::encode(&id.parse().unwrap(), &want, K, M).unwrap();
    for i in [1, 2] {
        let (s, path) = object(i);
        s.put(&path, PutPayload::from(all[i].clone()))
            .await
            .unwrap();
    }
    expire_and_restore(&locations, &store, &id, height, &ids).await;
}
