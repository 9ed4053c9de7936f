//! `kill -9` at random moments loses nothing acknowledged. One data dir, twenty rounds: a real
//! `poh serve`, sealing headers every 50–200 ms, takes batches of new transactions back to
//! back and is killed with SIGKILL after a random 50–500 ms of that load. After each restart
//! every transaction acknowledged in this or any earlier round is found by its id with the
//! `poh_seq` and `poh_hash` it was answered and the digest of what was sent, and that digest is
//! the chain's mixin at its `poh_seq`, in the entry whose hash is its `poh_hash`; the PoH state
//! (entries and mixins) has not gone back from what the node reported just before the kill;
//! and the whole chain, exported, verifies against the node's key. What was in flight at the
//! kill is sent again and answered as stored or as a duplicate, never refused.

use std::{
    collections::{BTreeMap, HashMap},
    path::Path,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    thread,
    time::{Duration, Instant},
};

use poh_core::Hash;
use poh_proto::v1::{self as pb, poh_service_client::PohServiceClient};
use serde_json::Value;

use crate::common::{
    Http, Served, poh, random, serve_flags, stop, stored_digest, text, transaction, wait_for,
};

/// Kills, each followed by a restart and the checks.
const ROUNDS: u64 = 20;
/// Clients sending batches at once (one already acknowledges about 12,000 transactions a
/// second here; more only make the checks, which read everything after each kill, longer).
const LOADERS: usize = 1;
/// Transactions in one batch.
const BATCH: usize = 50;
/// Seals headers while the load runs, so header commits are killed too.
const FLAGS: &[&str] = &[
    "--min-batch-interval",
    "0.05",
    "--max-batch-interval",
    "0.2",
];
/// The holder of every transaction here.
const HOLDER: &str = "crash";

/// What the node answered for a transaction it stored, and the digest of what was sent.
#[derive(Clone, Debug)]
struct Ack {
    round: u64,
    poh_seq: u64,
    poh_hash: String,
    digest: Hash,
}

/// The PoH state as `GET /v1/poh` reports it (the durable one).
#[derive(Clone, Copy, Debug, Default)]
struct PohSeen {
    entries: u64,
    seq: u64,
}

/// What one load client saw until the node died under it.
#[derive(Default)]
struct Loaded {
    acked: Vec<(String, Ack)>,
    /// The ids of the last batch acknowledged: the closest to the kill.
    last: Vec<String>,
    /// The batch whose answer never came, neither acknowledged nor refused: each id, as sent
    /// and its digest.
    in_flight: Vec<(String, Value, Hash)>,
}

/// `POST /v1/tx/batch`: the status and the per-transaction answers, or `None` when no answer
/// came (the node died).
fn post_batch(http: &Http, base: &str, txs: &[Value]) -> Option<(u16, Value)> {
    http.runtime.block_on(async {
        let r = http
            .client
            .post(format!("{base}/v1/tx/batch"))
            .json(txs)
            .send()
            .await
            .ok()?;
        let status = r.status().as_u16();
        Some((status, r.json().await.ok()?))
    })
}

/// The answer for one transaction of a batch, if the node took it (`stored`, or `duplicate`
/// when `duplicate_ok`); anything else fails the test.
fn taken(answer: &Value, id: &str, digest: Hash, round: u64, duplicate_ok: bool) -> Ack {
    let status = answer["status"].as_str();
    assert!(
        status == Some("stored") || (duplicate_ok && status == Some("duplicate")),
        "round {round}: {id} answered {answer}"
    );
    assert_eq!(answer["tx_id"], id, "round {round}: answers out of order");
    Ack {
        round,
        poh_seq: answer["poh_seq"].as_u64().unwrap(),
        poh_hash: answer["poh_hash"].as_str().unwrap().to_string(),
        digest,
    }
}

/// Client `client` of round `round`: batches of new transactions back to back until the node
/// stops answering (bounded in count and time).
fn load(base: String, round: u64, client: usize, started: Arc<AtomicBool>) -> Loaded {
    let http = Http::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut loaded = Loaded::default();
    for b in 0..2_000u64 {
        assert!(
            Instant::now() < deadline,
            "round {round}: the node was not killed within 30 s"
        );
        let batch: Vec<(String, Value, Hash)> = (0..BATCH as u64)
            .map(|k| {
                let id = format!("r{round}-c{client}-b{b}-{k}");
                let n = random(round << 32 | (client as u64) << 24 | b << 8 | k);
                let (tx, digest) = transaction(&id, HOLDER, n);
                (id, tx, digest)
            })
            .collect();
        let txs: Vec<Value> = batch.iter().map(|(_, tx, _)| tx.clone()).collect();
        let Some((status, answers)) = post_batch(&http, &base, &txs) else {
            loaded.in_flight = batch;
            return loaded;
        };
        assert_eq!(status, 200, "round {round}: {answers}");
        let answers = answers.as_array().unwrap();
        assert_eq!(
            answers.len(),
            BATCH,
            "round {round}: one answer per transaction"
        );
        loaded.last.clear();
        for ((id, _, digest), answer) in batch.into_iter().zip(answers) {
            let ack = taken(answer, &id, digest, round, false);
            loaded.last.push(id.clone());
            loaded.acked.push((id, ack));
        }
        started.store(true, Ordering::Release);
    }
    panic!("round {round}: 2,000 batches and the node was never killed");
}

/// The chain as served, mixin by mixin: for each `poh_seq` from 0, the mixin (hex) and the
/// hash of the entry that recorded it.
fn mixins_by_seq(http: &Http, base: &str) -> Vec<(String, String)> {
    let mut by_seq = Vec::new();
    let mut from = 0;
    for _ in 0..1_000 {
        let page = http.get_ok(&format!("{base}/v1/poh/entries?from={from}&limit=10000"));
        let page = page["entries"].as_array().unwrap();
        if page.is_empty() {
            return by_seq;
        }
        from += page.len();
        for e in page {
            let hash = e["hash"].as_str().unwrap();
            for m in e["mixins"].as_array().unwrap() {
                by_seq.push((m.as_str().unwrap().to_string(), hash.to_string()));
            }
        }
    }
    panic!("more than 1,000 pages of entries");
}

/// The records of `ids` the node finds by id, many at once (gRPC `Repair`, which looks each
/// one up as `GET /v1/tx/{id}` does and answers the ones it has, in order, a page at a time),
/// on a few calls at a time.
fn records_by_id(
    runtime: &tokio::runtime::Runtime,
    grpc: &str,
    ids: &[&String],
) -> HashMap<String, pb::TxRecord> {
    runtime.block_on(async {
        let client = PohServiceClient::connect(format!("http://{grpc}"))
            .await
            .unwrap();
        let calls = ids.chunks(5_000).map(|chunk| {
            let mut client = client.clone();
            async move {
                let mut found = Vec::new();
                let mut rest = chunk;
                // Each call answers at least one more id or ends the loop.
                for _ in 0..=chunk.len() {
                    if rest.is_empty() {
                        break;
                    }
                    let tx_ids = rest.iter().map(|id| (*id).clone()).collect();
                    let records = client
                        .repair(pb::RepairRequest { tx_ids })
                        .await
                        .unwrap()
                        .into_inner()
                        .records;
                    let Some(last) = records.last() else {
                        break; // none of the rest is stored
                    };
                    let last = &last.tx.as_ref().unwrap().tx_id;
                    let at = rest.iter().position(|id| *id == last).unwrap();
                    rest = &rest[at + 1..];
                    found.extend(records);
                }
                found
            }
        });
        let found = futures_util::future::join_all(calls).await;
        found
            .into_iter()
            .flatten()
            .map(|r| (r.tx.as_ref().unwrap().tx_id.clone(), r))
            .collect()
    })
}

/// Every transaction of `holder`, from `GET /v1/tx?holder_id=` page after page.
fn listed(http: &Http, base: &str, holder: &str) -> std::collections::HashSet<String> {
    let mut ids = std::collections::HashSet::new();
    let mut from = 0;
    loop {
        let page = http.get_ok(&format!(
            "{base}/v1/tx?holder_id={holder}&from_seq={from}&limit=1000"
        ));
        for tx in page["transactions"].as_array().unwrap() {
            ids.insert(tx["tx_id"].as_str().unwrap().to_string());
        }
        match page["next_seq"].as_u64() {
            Some(next) => from = next,
            None => return ids,
        }
    }
}

/// After the restart that follows the kill of round `round`: every acknowledged transaction
/// is there as it was answered (by id; and its digest is the mixin at its `poh_seq`, in the
/// entry whose hash is its `poh_hash`), those in `newest` also over `GET /v1/tx/{id}`; the
/// PoH has not gone back from `before`; once the last of them is sealed, the exported chain
/// verifies against the node's key.
fn check_nothing_lost(
    http: &Http,
    node: &Served,
    data: &Path,
    acked: &BTreeMap<String, Ack>,
    newest: &[String],
    before: PohSeen,
    round: u64,
) {
    let base = &node.base;
    let now = poh_seen(http, base);
    assert!(
        now.entries >= before.entries && now.seq >= before.seq,
        "after kill {round}: the PoH went back from {before:?} (before the kill) to {now:?}"
    );
    let top = acked.values().map(|a| a.poh_seq).max().unwrap_or(0);
    assert!(
        now.seq > top,
        "after kill {round}: {} mixins, but poh_seq {top} was acknowledged",
        now.seq
    );

    let ids: Vec<&String> = acked.keys().collect();
    let records = records_by_id(&http.runtime, &node.grpc, &ids);
    let chain = mixins_by_seq(http, base);
    for (id, ack) in acked {
        let when = format!(
            "after kill {round}: {id} (acknowledged in round {})",
            ack.round
        );
        let record = records.get(id).unwrap_or_else(|| panic!("{when} is lost"));
        assert_eq!(record.poh_seq, ack.poh_seq, "{when}: poh_seq changed");
        assert_eq!(
            hex::encode(&record.poh_hash),
            ack.poh_hash,
            "{when}: poh_hash changed"
        );
        let stored = poh_node::tx_from_pb(record.tx.clone().unwrap());
        assert_eq!(stored.digest(), ack.digest, "{when}: its digest changed");
        let at = usize::try_from(ack.poh_seq).unwrap();
        assert_eq!(
            chain.get(at),
            Some(&(ack.digest.to_hex(), ack.poh_hash.clone())),
            "{when}: the chain does not record its digest at its poh_seq in its entry"
        );
    }
    // The holder index lost none of them either: it is learned again from the log.
    let listed = listed(http, base, HOLDER);
    for id in acked.keys() {
        assert!(
            listed.contains(id.as_str()),
            "after kill {round}: {id} is not in GET /v1/tx?holder_id={HOLDER}"
        );
    }
    for id in newest {
        let ack = &acked[id];
        let (status, stored) = http.get(&format!("{base}/v1/tx/{id}"));
        let when = format!("after kill {round}: GET {id}");
        assert_eq!(status, 200, "{when}: {stored}");
        assert_eq!(stored["poh_seq"], ack.poh_seq, "{when}");
        assert_eq!(stored["poh_hash"], ack.poh_hash, "{when}");
        assert_eq!(stored_digest(&stored), ack.digest, "{when}");
    }

    // Sealed since the restart if not before: then the chain ends in a signed header.
    let (last, _) = acked.iter().max_by_key(|(_, a)| a.poh_seq).unwrap();
    wait_for(&format!("after kill {round}: {last} sealed"), || {
        let stored = http.get_ok(&format!("{base}/v1/tx/{last}"));
        (stored["status"] == "SEALED").then_some(())
    });
    let file = data.with_extension(format!("chain-{round}"));
    let file = file.to_str().unwrap();
    let export = poh(&["export", "--url", base, "--out", file]);
    assert!(export.status.success(), "{}", text(&export.stderr));
    let key = data.join("node.key.pub");
    let verify = poh(&["verify", "--chain", file, "--trust", key.to_str().unwrap()]);
    assert!(
        verify.status.success(),
        "after kill {round}: the chain does not verify: {}",
        text(&verify.stderr)
    );
    std::fs::remove_file(file).unwrap();
}

/// `GET /v1/poh`: the durable PoH state.
fn poh_seen(http: &Http, base: &str) -> PohSeen {
    let now = http.get_ok(&format!("{base}/v1/poh"));
    PohSeen {
        entries: now["entries"].as_u64().unwrap(),
        seq: now["seq"].as_u64().unwrap(),
    }
}

#[test]
fn kill_9_at_random_moments_loses_nothing_acknowledged() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let http = Http::new();
    let started_at = Instant::now();
    let mut acked: BTreeMap<String, Ack> = BTreeMap::new();
    // Those acknowledged last before the kill, and those sent again after it: also read over
    // HTTP by id.
    let mut newest: Vec<String> = Vec::new();
    let mut in_flight: Vec<Vec<(String, Value, Hash)>> = Vec::new();
    let mut before = PohSeen::default();
    let (mut resent, mut duplicates) = (0, 0);
    for round in 0..=ROUNDS {
        let mut node = serve_flags(&data, FLAGS);
        if round > 0 {
            check_nothing_lost(&http, &node, &data, &acked, &newest, before, round - 1);
            // What was in flight at the kill may or may not have been stored; sent again,
            // each is stored now or answered as the duplicate of what the node stored then.
            newest.clear();
            for batch in in_flight.drain(..) {
                let txs: Vec<Value> = batch.iter().map(|(_, tx, _)| tx.clone()).collect();
                let (status, answers) = post_batch(&http, &node.base, &txs).unwrap();
                assert_eq!(status, 200, "{answers}");
                let answers = answers.as_array().unwrap();
                assert_eq!(answers.len(), batch.len(), "one answer per transaction");
                for ((id, _, digest), answer) in batch.into_iter().zip(answers) {
                    let ack = taken(answer, &id, digest, round - 1, true);
                    resent += 1;
                    duplicates += usize::from(answer["status"] == "duplicate");
                    newest.push(id.clone());
                    acked.insert(id, ack);
                }
            }
        }
        if round == ROUNDS {
            stop(node);
            break;
        }

        let started = Arc::new(AtomicBool::new(false));
        let loaders: Vec<_> = (0..LOADERS)
            .map(|client| {
                let (base, started) = (node.base.clone(), started.clone());
                thread::spawn(move || load(base, round, client, started))
            })
            .collect();
        wait_for("the first batch acknowledged", || {
            started.load(Ordering::Acquire).then_some(())
        });
        let delay = Duration::from_millis(50 + random(round) % 451);
        thread::sleep(delay);
        before = poh_seen(&http, &node.base);
        node.child.kill().unwrap(); // SIGKILL
        node.child.wait().unwrap();
        let mut this_round = 0;
        for loader in loaders {
            let loaded = loader.join().unwrap();
            this_round += loaded.acked.len();
            acked.extend(loaded.acked);
            newest.extend(loaded.last);
            if !loaded.in_flight.is_empty() {
                in_flight.push(loaded.in_flight);
            }
        }
        eprintln!(
            "round {round}: killed after {} ms of load; {this_round} acknowledged, {} in all",
            delay.as_millis(),
            acked.len()
        );
    }
    eprintln!(
        "{ROUNDS} kills in {:.1} s: {} transactions acknowledged, none lost; {resent} in \
         flight at a kill sent again, {duplicates} of them already stored",
        started_at.elapsed().as_secs_f64(),
        acked.len(),
    );
}
