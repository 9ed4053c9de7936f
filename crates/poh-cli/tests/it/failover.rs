//! Replicas (SPEC §10) taking over, across real `poh serve` processes: a primary killed with
//! SIGKILL under load whose replica is promoted loses no acknowledged write and continues
//! the same chain, header for header, up to its parent; a promotion under another key is
//! refused; a replica killed halfway through its copy resumes where its store ends; a copy
//! that was tampered with on the way is refused before any of it is stored; and a replica
//! that stops reading costs its primary no memory.

mod hostile;
mod lagging;

use std::{
    collections::HashSet,
    path::PathBuf,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    thread,
    time::{Duration, Instant},
};

use futures_util::StreamExt as _;
use poh_core::Hash;
use poh_proto::v1::{SyncRequest, poh_service_client::PohServiceClient};
use serde_json::{Value, json};

use crate::{
    common::{
        HASHES_PER_TICK, Http, Served, keygen, node_flags, peak_rss_mib, poh, serve_flags, stop,
        stored_digest, text, transaction, transaction_of, wait_for, wait_within,
    },
    hosts::audit_clean,
};
use hostile::{Flip, Hostile, Stalled, What};

const CHAIN: &str = "municipality/tokyo";
const PARENT: &str = "continental/asia";

/// `POST url` with a JSON body: the status and the JSON answer, or `None` when no answer
/// came (the node died under the request).
fn post(http: &Http, url: &str, body: &Value) -> Option<(u16, Value)> {
    http.runtime.block_on(async {
        let r = http.client.post(url).json(body).send().await.ok()?;
        let status = r.status().as_u16();
        Some((status, r.json().await.unwrap_or(Value::Null)))
    })
}

/// New transactions `{prefix}-{k}` for `k` in `range`, as sent, with their digests.
fn transactions(prefix: &str, range: std::ops::Range<u64>) -> (Vec<Value>, Vec<(String, Hash)>) {
    range
        .map(|k| {
            let id = format!("{prefix}-{k}");
            let (tx, digest) = transaction(&id, "failover", k);
            (tx, (id, digest))
        })
        .unzip()
}

/// Sends a batch; `None` when the node did not answer, else the ids it acknowledged as
/// stored, each with the digest of what was sent. Anything but a stored answer fails.
fn send_batch(http: &Http, base: &str, prefix: &str, n: u64) -> Option<Vec<(String, Hash)>> {
    let (txs, ids) = transactions(prefix, 0..n);
    let (status, answers) = post(http, &format!("{base}/v1/tx/batch"), &Value::from(txs))?;
    assert_eq!(status, 200, "{prefix}: {answers}");
    let answers = answers.as_array().unwrap();
    assert_eq!(answers.len(), ids.len(), "one answer per transaction");
    for ((id, _), answer) in ids.iter().zip(answers) {
        assert!(
            answer["tx_id"] == id.as_str() && answer["status"] == "stored",
            "{id}: {answer}"
        );
    }
    Some(ids)
}

/// `GET /v1/replica`: the entries and items the node holds durably.
fn held(http: &Http, base: &str) -> (u64, u64) {
    let stands = http.get_ok(&format!("{base}/v1/replica"));
    (
        stands["entries"].as_u64().unwrap(),
        stands["seq"].as_u64().unwrap(),
    )
}

/// The ids of `acked` the node at `base` does not serve with the digest acknowledged.
fn not_as_acked(http: &Http, base: &str, acked: &[(String, Hash)]) -> Vec<String> {
    http.runtime.block_on(async {
        futures_util::stream::iter(acked)
            .map(|(id, digest)| async move {
                let url = format!("{base}/v1/tx/{id}");
                let r = http.client.get(&url).send().await.ok()?;
                let status = r.status().as_u16();
                let body: Value = r.json().await.unwrap_or(Value::Null);
                (status != 200 || stored_digest(&body) != *digest)
                    .then(|| format!("{id}: {status} {body}"))
            })
            .buffer_unordered(32)
            .filter_map(|lost| async move { lost })
            .collect()
            .await
    })
}

/// The first line the node logged containing `needle`, once it has.
fn line_logged(node: &Served, needle: &str) -> String {
    wait_for(&format!("a log line with {needle:?}"), || {
        let log = node.log.lock().unwrap();
        log.iter().find(|l| l.contains(needle)).cloned()
    })
}

/// `b` continues `a` in one chain of headers: it links to `a`, covers the entries right
/// after `a`'s, and is signed by the same key.
fn assert_continues(a: &Value, b: &Value) {
    assert_eq!(
        b["prev_header_hash"], a["header_id"],
        "{b} does not link to {a}"
    );
    assert_eq!(
        b["poh_start"], a["poh_end"],
        "a gap in the entries: {a} then {b}"
    );
    assert_eq!(b["public_key_b64"], a["public_key_b64"], "another key: {b}");
}

/// What the writers share with the test.
#[derive(Default)]
struct Writes {
    /// Every write the primary acknowledged, with the digest of what was sent.
    acked: Mutex<Vec<(String, Hash)>>,
    /// How many acknowledgements there are to be when the primary is killed (0: not yet
    /// known).
    kill_at: AtomicUsize,
    killed: Mutex<Option<Instant>>,
}

/// Writer `w`: batches of new transactions back to back to the primary until it stops
/// answering. Writer 0 kills the primary (SIGKILL) the moment an acknowledgement takes their
/// count to `kill_at`, while writer 1 waits for one: the newest acknowledged write is then
/// microseconds old, so a replica holds it only if the primary waited for that before
/// answering.
fn write(w: usize, primary: &Mutex<Served>, base: &str, writes: &Writes) {
    let http = Http::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    for b in 0.. {
        assert!(Instant::now() < deadline, "the primary was not killed");
        let Some(ids) = send_batch(&http, base, &format!("w{w}-{b}"), 200) else {
            return;
        };
        let mut acked = writes.acked.lock().unwrap();
        acked.extend(ids);
        let kill_at = writes.kill_at.load(Ordering::Acquire);
        if w == 0 && kill_at > 0 && acked.len() >= kill_at {
            primary.lock().unwrap().child.kill().unwrap();
            *writes.killed.lock().unwrap() = Some(Instant::now());
            return;
        }
    }
}

/// A continental parent that takes the chain's headers under `key`'s public half, and the
/// chain's primary under `key`, linked to it, answering writes once one replica holds them.
fn parent_and_primary(d: &std::path::Path, asia_key: &str, key: &str) -> (Served, Served) {
    let child = format!("{CHAIN}={key}.pub");
    let mut flags = node_flags(PARENT, "continental", asia_key);
    flags.extend(["--child", &child]);
    let parent = serve_flags(&d.join("asia"), &flags);
    let mut flags = node_flags(CHAIN, "municipality", key);
    flags.extend(["--parent", &parent.grpc, "--min-replica-acks", "1"]);
    let primary = serve_flags(&d.join("primary"), &flags);
    (parent, primary)
}

#[test]
fn failover_loses_no_acknowledged_write_and_the_parent_sees_one_chain() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let test_started = Instant::now();
    let [asia_key, key] = ["asia", "tokyo"].map(|n| keygen(d, n));
    let chain_key = format!("{key}.pub");
    let http = Http::new();

    // Every write waits for one replica to hold it durably, so the one that holds the most
    // holds every acknowledged write when the primary dies.
    let (parent, primary) = parent_and_primary(d, &asia_key, &key);
    let (primary_grpc, primary_base) = (primary.grpc.clone(), primary.base.clone());
    let primary = Arc::new(Mutex::new(primary));
    // The replicas hold the chain's key too, and know the parent, so that the promoted one
    // can seal and push the chain's next headers.
    let names = ["r1", "r2"];
    let mut replicas: Vec<Served> = (names.iter())
        .map(|name| {
            let mut flags = node_flags(CHAIN, "municipality", &key);
            flags.extend(["--parent", &parent.grpc, "--follow", &primary_grpc]);
            flags.extend(["--chain-key", &chain_key]);
            serve_flags(&d.join(name), &flags)
        })
        .collect();
    for r in &replicas {
        wait_for("each replica copies", || {
            (held(&http, &r.base).0 > 0).then_some(())
        });
    }

    let writes = Arc::new(Writes::default());
    let writers: Vec<_> = (0..2)
        .map(|w| {
            let (primary, base, writes) = (primary.clone(), primary_base.clone(), writes.clone());
            thread::spawn(move || write(w, &primary, &base, &writes))
        })
        .collect();
    wait_for(
        "5,000 writes acknowledged, and headers at the parent",
        || {
            let enough = writes.acked.lock().unwrap().len() >= 5_000;
            (enough && http.accepted_height(&parent.base, CHAIN) >= Some(4)).then_some(())
        },
    );
    // Killed a few thousand writes later: at a moment unrelated to the headers' sealing.
    let now = writes.acked.lock().unwrap().len();
    writes.kill_at.store(now + 3_000, Ordering::Release);
    for writer in writers {
        writer.join().unwrap();
    }
    primary.lock().unwrap().child.wait().unwrap();
    let killed = writes.killed.lock().unwrap().expect("killed by writer 0");
    let mut acked = std::mem::take(&mut *writes.acked.lock().unwrap());
    let parent_had = http.accepted_height(&parent.base, CHAIN);

    // The replica that holds the most: both copy one chain, so it holds what the other does.
    let stands: Vec<u64> = replicas.iter().map(|r| held(&http, &r.base).0).collect();
    let best = usize::from(stands[1] > stands[0]);
    let new = replicas.remove(best);
    let other = replicas.pop().unwrap();
    let copied = http.headers(&new.base);
    let last = copied.last().expect("the replica copied headers").clone();
    // A replica makes no PoH of its own, so its hash-rate target (what the alert compares
    // against) is 0 until it leads.
    let target = |base: &str| http.metric(base, "poh_target_hashes_per_second");
    assert_eq!(target(&new.base), Some(0.0));
    let promoting = Instant::now();
    let out = poh(&["promote", "--url", &new.base]);
    let promote_took = promoting.elapsed();
    let said = text(&out.stdout) + &text(&out.stderr);
    assert!(
        out.status.success() && said.contains("primary of its chain now"),
        "{said}"
    );
    assert!(http.get_ok(&format!("{}/v1/replica", new.base))["primary"].is_null());
    assert!(target(&new.base).is_some_and(|rate| rate > 0.0));

    let after = send_batch(&http, &new.base, "after", 20).expect("the new primary answers");
    let first_write = killed.elapsed();
    // The chain's next header, sealed by the new primary, reaches the parent.
    let next = last["height"].as_u64().unwrap() + 1;
    let accepted = wait_for("the parent accepts the chain's next header", || {
        http.accepted_height(&parent.base, CHAIN)
            .filter(|&h| h >= next)
    });
    let linked = killed.elapsed();
    let lost = not_as_acked(&http, &new.base, &acked);
    assert!(
        lost.is_empty(),
        "{} of {} acknowledged writes are not on the new primary, e.g. {:?}",
        lost.len(),
        acked.len(),
        &lost[..lost.len().min(5)]
    );
    acked.extend(after);

    // The chain of headers goes on from the last copied one: same key, no gap, no fork.
    wait_for("the new primary seals the chain's next header", || {
        http.last_height(&new.base).filter(|&h| h >= next)
    });
    let headers = http.headers(&new.base);
    assert_eq!(
        headers[..copied.len()],
        copied[..],
        "copied headers changed"
    );
    for pair in headers[copied.len() - 1..].windows(2) {
        assert_continues(&pair[0], &pair[1]);
    }
    // The parent took the new primary's headers as the same child's next ones: every header
    // it holds of the child up to there is the new primary's own.
    for header in &headers[..=next as usize] {
        let id = header["header_id"].as_str().unwrap();
        let (status, mut served) = http.get(&format!("{}/v1/headers/{id}", parent.base));
        assert_eq!(
            status, 200,
            "the parent holds another header at height {} than the new primary (it had \
             accepted up to {parent_had:?}, the replica had copied up to {})",
            header["height"], last["height"]
        );
        served.as_object_mut().unwrap().remove("recorded_at_seq");
        assert_eq!(&served, header);
    }

    if poh(&["audit", "--help"]).status.success() {
        let expect = d.join("expect.jsonl");
        let lines: Vec<String> = (acked.iter())
            .map(|(id, digest)| json!({"tx_id": id, "digest": digest.to_hex()}).to_string())
            .collect();
        std::fs::write(&expect, lines.join("\n") + "\n").unwrap();
        let trust = [PathBuf::from(format!("{asia_key}.pub"))];
        audit_clean(&[new.base.clone(), parent.base.clone()], &expect, &trust);
    }
    eprintln!(
        "failover: {} writes acknowledged, killed at {:.2} s; the replica held header {} \
         (the parent {parent_had:?}); promote took {} ms; first write acknowledged {} ms \
         after the kill; header {next} accepted by the parent (height {accepted}) {} ms \
         after the kill; {:.1} s in all",
        acked.len() - 20,
        (killed - test_started).as_secs_f64(),
        last["height"],
        promote_took.as_millis(),
        first_write.as_millis(),
        linked.as_millis(),
        test_started.elapsed().as_secs_f64()
    );
    // The other replica follows the new primary: its copy is a part of the same chain.
    stop(other);
    let mut flags = node_flags(CHAIN, "municipality", &key);
    flags.extend(["--follow", &new.grpc, "--chain-key", &chain_key]);
    let other = serve_flags(&d.join(names[1 - best]), &flags);
    wait_for("the other replica copies the new primary's headers", || {
        http.last_height(&other.base).filter(|&h| h >= next)
    });
    assert_eq!(
        http.headers(&other.base)[..=next as usize],
        headers[..=next as usize]
    );
    stop(other);
    stop(new);
    stop(parent);
}

#[test]
fn promotion_is_refused_with_a_key_that_is_not_the_chains() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let [key, other] = ["tokyo", "other"].map(|n| keygen(d, n));
    let http = Http::new();
    let primary = serve_flags(&d.join("primary"), &node_flags(CHAIN, "municipality", &key));
    // No --chain-key: the chain's key is the one its copied headers are signed with.
    let mut flags = node_flags(CHAIN, "municipality", &other);
    flags.extend(["--follow", &primary.grpc]);
    let replica = serve_flags(&d.join("replica"), &flags);
    wait_for("the replica copies a header", || {
        http.last_height(&replica.base)
    });

    let out = poh(&["promote", "--url", &replica.base]);
    let error = text(&out.stderr);
    assert!(!out.status.success(), "promoted under another key");
    assert!(
        error.contains("409") && error.contains("is not the chain's"),
        "{error}"
    );
    let promote = format!("{}/v1/replica/promote", replica.base);
    assert_eq!(http.post(&promote, &json!({})), Some(409));

    // Still a replica: it refuses writes, naming its primary, and goes on copying.
    let (tx, _) = transaction("refused", "h", 1);
    let (status, body) = post(&http, &format!("{}/v1/tx", replica.base), &tx).unwrap();
    assert_eq!(
        (status, &body["error"]),
        (421, &json!("read_only")),
        "{body}"
    );
    assert_eq!(body["primary"], primary.grpc.as_str());
    http.submit(&primary.base, "after-the-refusal");
    wait_for("the replica copies a write made after the refusal", || {
        let url = format!("{}/v1/tx/after-the-refusal", replica.base);
        (http.get(&url).0 == 200).then_some(())
    });
    let stands = http.get_ok(&format!("{}/v1/replica", replica.base));
    assert_eq!(stands["primary"], primary.grpc.as_str());
    stop(replica);
    stop(primary);
}

/// Transactions the primary of the restart test holds, sent 10,000 to a batch.
const BULK: u64 = 200_000;
const BULK_BATCH: u64 = 10_000;

/// Every transaction the node at `grpc` holds, in seq order (gRPC `Sync` from 0): its id.
fn synced_ids(runtime: &tokio::runtime::Runtime, grpc: &str) -> Vec<String> {
    runtime.block_on(async {
        let mut client = PohServiceClient::connect(format!("http://{grpc}"))
            .await
            .unwrap();
        let mut ids = Vec::new();
        loop {
            let request = SyncRequest {
                from_seq: ids.len() as u64,
                limit: 10_000,
            };
            let mut records = client.sync(request).await.unwrap().into_inner();
            let before = ids.len();
            while let Some(record) = records.message().await.unwrap() {
                assert_eq!(record.poh_seq, ids.len() as u64, "Sync out of seq order");
                ids.push(record.tx.unwrap().tx_id);
            }
            if ids.len() == before {
                return ids;
            }
        }
    })
}

/// `GET url`'s body, byte for byte.
fn raw(http: &Http, url: &str) -> Vec<u8> {
    http.runtime.block_on(async {
        let r = http.client.get(url).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 200, "GET {url}");
        r.bytes().await.unwrap().to_vec()
    })
}

#[test]
fn a_replica_restarted_mid_copy_resumes_without_a_duplicate() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let key = keygen(d, "tokyo");
    let http = Http::new();
    let flags = node_flags(CHAIN, "municipality", &key);
    let primary = serve_flags(&d.join("primary"), &flags);
    let loading = Instant::now();
    let loaders: Vec<_> = (0..2)
        .map(|t| {
            let base = primary.base.clone();
            thread::spawn(move || {
                let http = Http::new();
                for b in (t..BULK / BULK_BATCH).step_by(2) {
                    send_batch(&http, &base, &format!("bulk{b}"), BULK_BATCH).unwrap();
                }
            })
        })
        .collect();
    for loader in loaders {
        loader.join().unwrap();
    }
    let (target, seq) = held(&http, &primary.base);
    assert_eq!(seq, BULK);
    eprintln!("{BULK} stored in {:.1} s", loading.elapsed().as_secs_f64());

    let mut flags = node_flags(CHAIN, "municipality", &key);
    flags.extend(["--follow", &primary.grpc]);
    let data = d.join("replica");
    let copying = Instant::now();
    let mut replica = serve_flags(&data, &flags);
    let (entries, seq) = wait_within(Duration::from_secs(60), "a replica partway", || {
        let (entries, seq) = held(&http, &replica.base);
        assert!(seq < BULK, "copied whole before it could be killed partway");
        (seq > 0).then_some((entries, seq))
    });
    replica.child.kill().unwrap(); // SIGKILL
    replica.child.wait().unwrap();
    drop(replica);
    eprintln!(
        "killed after {:.1} s at entry {entries}, seq {seq} of {BULK}",
        copying.elapsed().as_secs_f64()
    );

    // It resumes after what it held durably, not from genesis.
    let replica = serve_flags(&data, &flags);
    let line = line_logged(&replica, "copying from the primary");
    let from: u64 = (line.split(" entries=").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{line}"));
    assert!(
        from >= entries,
        "resumed from entry {from}, below {entries}"
    );
    wait_within(Duration::from_secs(60), "the replica caught up", || {
        let (entries, seq) = held(&http, &replica.base);
        (entries >= target && seq == BULK).then_some(())
    });
    eprintln!(
        "resumed from entry {from}; caught up {:.1} s after the first start",
        copying.elapsed().as_secs_f64()
    );
    // What it held is not copied again: this run copied at most what it lacked at the kill.
    let copied = http.metric(&replica.base, "poh_replica_copied_records_total");
    assert!(
        copied.is_some_and(|n| n > 0.0 && n <= (BULK - seq) as f64),
        "{copied:?} records copied after the restart, {seq} of {BULK} held before"
    );

    // The same entries, byte for byte, as the primary serves them.
    let mut at = 0;
    while at < target {
        let page = |base: &str| {
            let limit = (target - at).min(1_000);
            raw(
                &http,
                &format!("{base}/v1/poh/entries?from={at}&limit={limit}"),
            )
        };
        let ours = page(&primary.base);
        assert!(ours == page(&replica.base), "entries from {at} differ");
        let json: Value = serde_json::from_slice(&ours).unwrap();
        at += json["entries"].as_array().unwrap().len() as u64;
    }
    // Every transaction once, at consecutive seqs.
    let ids = synced_ids(&http.runtime, &replica.grpc);
    assert_eq!(ids.len() as u64, BULK);
    let unique: HashSet<&String> = ids.iter().collect();
    assert_eq!(unique.len(), ids.len(), "a transaction copied twice");
    stop(replica);
    stop(primary);
}

#[test]
fn a_tampered_copy_is_refused_and_nothing_of_it_is_stored() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let key = keygen(d, "tokyo");
    let chain_key = format!("{key}.pub");
    let http = Http::new();
    let primary = serve_flags(&d.join("primary"), &node_flags(CHAIN, "municipality", &key));
    let proxies = [
        Hostile::start(&primary.grpc, Flip::RecordPayload, 3),
        Hostile::start(&primary.grpc, Flip::HeaderSignature, 3),
    ];
    let replicas: Vec<Served> = (proxies.iter().enumerate())
        .map(|(i, proxy)| {
            let mut flags = node_flags(CHAIN, "municipality", &key);
            flags.extend(["--follow", &proxy.addr, "--chain-key", &chain_key]);
            serve_flags(&d.join(format!("replica-{i}")), &flags)
        })
        .collect();

    // One write at a time, so each is a batch of its own, until both proxies have lied.
    let mut n = 0;
    wait_for("both proxies change a batch", || {
        http.submit(&primary.base, &format!("t-{n}"));
        n += 1;
        (proxies.iter().all(|p| p.tampered().is_some())).then_some(())
    });
    for (proxy, replica) in proxies.iter().zip(&replicas) {
        let tampered = proxy.tampered().unwrap();
        let line = line_logged(replica, "stopped copying");
        let refused = || http.metric(&replica.base, "poh_replica_refused_total");
        wait_for("poh_replica_refused_total 1", || {
            (refused() == Some(1.0)).then_some(())
        });
        let (entries, _) = held(&http, &replica.base);
        match &tampered.what {
            What::Record { seq, tx_id } => {
                assert!(
                    line.contains(&format!("seq {seq} (entry ")) && line.contains(tx_id),
                    "{line}"
                );
                // The batch is stored whole or not at all: here, none of its entries.
                assert!(
                    entries <= tampered.first_entry,
                    "{entries} entries held, the tampered batch starts at {tampered:?}"
                );
                let url = format!("{}/v1/tx/{tx_id}", replica.base);
                assert_eq!(http.get(&url).0, 404, "the tampered record is served");
            }
            What::Header { height } => {
                assert!(line.contains(&format!("header {height}:")), "{line}");
                // Its entries verify on their own; the header, and all after it, is not
                // stored.
                assert!(
                    entries <= tampered.first_entry + tampered.entries,
                    "{entries} entries held, beyond the tampered batch {tampered:?}"
                );
                let height_held = http.last_height(&replica.base);
                assert!(height_held < Some(*height), "holds header {height_held:?}");
            }
        }
        // Reads of what it copied before still work, and it copies nothing more while the
        // primary goes on.
        assert_eq!(http.get(&format!("{}/v1/tx/t-0", replica.base)).0, 200);
        wait_for("the primary 25 entries further", || {
            (held(&http, &primary.base).0 > entries + 25).then_some(())
        });
        assert_eq!(
            held(&http, &replica.base).0,
            entries,
            "copied after refusing"
        );
        assert_eq!(refused(), Some(1.0));
    }
    for replica in replicas {
        stop(replica);
    }
    stop(primary);
}

/// The bound on the primary's peak resident set while a replica does not read its stream,
/// in MiB. It takes ~100 MiB of writes meanwhile; the node holds ~170 MiB after them with no
/// replica at all.
const SLOW_PEAK_RSS_MIB: u64 = 256;

#[test]
fn a_slow_replica_costs_the_primary_no_memory() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let key = keygen(d, "tokyo");
    let http = Http::new();
    let primary = serve_flags(&d.join("primary"), &node_flags(CHAIN, "municipality", &key));
    let stalled = Stalled::start(&http.runtime, &primary.grpc, CHAIN, HASHES_PER_TICK);
    let loading = Instant::now();
    let payload = vec![b'p'; 1024];
    for b in 0..10u64 {
        let txs: Vec<Value> = (0..BULK_BATCH)
            .map(|k| transaction_of(&format!("slow{b}-{k}"), "slow", 1.7e9, &payload).0)
            .collect();
        let (status, body) = post(&http, &format!("{}/v1/tx/batch", primary.base), &txs.into())
            .expect("the primary answers");
        assert_eq!(status, 200, "{body}");
    }
    let peak = peak_rss_mib(primary.child.id());
    eprintln!(
        "100,000 writes of 1 KiB in {:.1} s beside a stalled replica: peak RSS {peak} MiB",
        loading.elapsed().as_secs_f64()
    );
    assert!(
        peak < SLOW_PEAK_RSS_MIB,
        "peak RSS {peak} MiB, bound {SLOW_PEAK_RSS_MIB} MiB"
    );
    drop(stalled); // open until now
    stop(primary);
}
