//! What a promotion can meet when replicas lag: the parent never ahead of them, and no chain
//! key to check against.

use serde_json::json;

use super::CHAIN;
use crate::common::{
    Http, keygen, node_flags, poh, serve_flags, signal, stop, text, wait_for, wait_within,
};

/// A replica stopped while its primary seals on (idle headers every `--max-batch-interval`)
/// holds fewer headers than the primary. With `--min-replica-acks 1` the primary's link pushes
/// no header the replica does not hold, so when the primary dies the parent is not ahead of
/// the replica, and the promoted replica's next header continues what the parent holds.
#[test]
fn a_primary_pushes_its_parent_no_header_its_replicas_do_not_hold() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let [asia_key, key] = ["asia", "tokyo"].map(|n| keygen(d, n));
    let chain_key = format!("{key}.pub");
    let http = Http::new();
    let (parent, mut primary) = super::parent_and_primary(d, &asia_key, &key);
    let mut flags = node_flags(CHAIN, "municipality", &key);
    flags.extend(["--parent", &parent.grpc, "--follow", &primary.grpc]);
    flags.extend(["--chain-key", &chain_key]);
    let replica = serve_flags(&d.join("replica"), &flags);
    let copied = wait_for("the replica copies a header", || {
        http.last_height(&replica.base).filter(|&h| h >= 1)
    });
    signal(&replica.child, "STOP");
    wait_for(
        "the primary seals 3 headers past the stopped replica",
        || http.last_height(&primary.base).filter(|&h| h >= copied + 3),
    );
    let parent_had = http.accepted_height(&parent.base, CHAIN).unwrap_or(0);
    assert!(
        parent_had <= copied,
        "the parent took header {parent_had}; the replica holds up to {copied}"
    );
    primary.child.kill().unwrap();
    primary.child.wait().unwrap();
    signal(&replica.child, "CONT");
    let out = poh(&["promote", "--url", &replica.base]);
    assert!(out.status.success(), "promote: {}", text(&out.stderr));
    let held = http.last_height(&replica.base).unwrap();
    wait_within(
        std::time::Duration::from_secs(30),
        "the parent accepts the promoted replica's next header",
        || {
            http.accepted_height(&parent.base, CHAIN)
                .filter(|&h| h > held)
        },
    );
    stop(replica);
    stop(parent);
}

/// A replica that has copied no header, started without `--chain-key`, has nothing to check
/// its node key against: its promotion is refused, saying what to do.
#[test]
fn a_replica_that_knows_no_chain_key_is_not_promoted() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let key = keygen(d, "tokyo");
    let http = Http::new();
    let mut flags = node_flags(CHAIN, "municipality", &key);
    // No header for a long while: the batch intervals, 600 s.
    (flags[7], flags[9]) = ("600", "600");
    let primary = serve_flags(&d.join("primary"), &flags);
    let mut flags = node_flags(CHAIN, "municipality", &key);
    flags.extend(["--follow", &primary.grpc]);
    let replica = serve_flags(&d.join("replica"), &flags);
    http.submit(&primary.base, "copied");
    wait_for("the replica copies a write", || {
        let url = format!("{}/v1/tx/copied", replica.base);
        (http.get(&url).0 == 200).then_some(())
    });
    let out = poh(&["promote", "--url", &replica.base]);
    let error = text(&out.stderr);
    assert!(!out.status.success(), "promoted knowing no chain key");
    assert!(
        error.contains("409") && error.contains("--chain-key"),
        "{error}"
    );
    let promote = format!("{}/v1/replica/promote", replica.base);
    assert_eq!(http.post(&promote, &json!({})), Some(409));
    stop(replica);
    stop(primary);
}
