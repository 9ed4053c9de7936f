//! A data directory written by the release before the log engine (`fixtures/redb-store.tar.gz`,
//! made by `fixtures/make-redb-store.py` with that release's `poh`) opens in this one: moved
//! into the log engine by `poh serve` on its first start, or ahead of it by `poh migrate`, after
//! which every transaction, header and PoH entry reads back as that release answered, and the
//! chain verifies under the node's key.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::common::{Http, poh, serve_flags, stop, text};

/// The fixture unpacked in `tmp`: its data directory, and the answers its node gave.
fn unpack(tmp: &Path) -> (PathBuf, Value) {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/redb-store.tar.gz");
    let status = std::process::Command::new("tar")
        .arg("xzf")
        .arg(&fixture)
        .arg("-C")
        .arg(tmp)
        .status()
        .unwrap();
    assert!(status.success());
    let data = tmp.join("data");
    let expected = std::fs::read(data.join("expected.json")).unwrap();
    std::fs::remove_file(data.join("expected.json")).unwrap();
    (data, serde_json::from_slice(&expected).unwrap())
}

/// `GET path`: its status and JSON body, as the fixture keeps them.
fn answer(http: &Http, base: &str, path: &str) -> Value {
    let (code, body) = http.get(&format!("{base}{path}"));
    json!({"code": code, "body": body})
}

/// Serves the moved store and checks every answer against the old release's.
fn reads_back_as_before(data: &Path, expected: &Value) {
    // No new header while it is read: the old release's headers are all there is.
    let node = serve_flags(
        data,
        &[
            "--chain-id",
            "municipality/fixture",
            "--min-batch-interval",
            "3600",
            "--max-batch-interval",
            "3600",
        ],
    );
    assert!(!data.join("poh.redb").exists() && data.join("store").is_dir());
    let http = Http::new();
    let txs = expected["txs"].as_object().unwrap();
    assert_eq!(txs.len(), 240);
    for (id, before) in txs {
        assert_eq!(
            &answer(&http, &node.base, &format!("/v1/tx/{id}")),
            before,
            "{id}"
        );
    }
    let headers = "/v1/headers?from=0&limit=1000";
    assert_eq!(answer(&http, &node.base, headers), expected["headers"]);
    // The node has ticked on since: each page it answered then is where it was.
    let mut from = 0;
    for page in expected["entries"].as_array().unwrap() {
        let n = page["body"]["entries"].as_array().unwrap().len();
        let now = answer(
            &http,
            &node.base,
            &format!("/v1/poh/entries?from={from}&limit={n}"),
        );
        assert_eq!(&now, page, "entries from {from}");
        from += n;
    }
    assert!(from > 100, "{from} entries");

    let chain = data.join("node.chain");
    let chain = chain.to_str().unwrap();
    let export = poh(&["export", "--url", &node.base, "--out", chain]);
    assert!(export.status.success(), "{}", text(&export.stderr));
    let key = data.join("node.key.pub");
    let verify = poh(&["verify", "--chain", chain, "--trust", key.to_str().unwrap()]);
    assert!(verify.status.success(), "{}", text(&verify.stderr));
    stop(node);
}

#[test]
fn an_old_release_data_dir_is_moved_on_first_start_and_reads_back_identically() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, expected) = unpack(tmp.path());
    reads_back_as_before(&data, &expected);
}

#[test]
fn poh_migrate_moves_it_ahead_of_the_start_once() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, expected) = unpack(tmp.path());
    let dir = data.to_str().unwrap();
    let moved = poh(&["migrate", "--data-dir", dir]);
    assert!(moved.status.success(), "{}", text(&moved.stderr));
    let said = text(&moved.stdout);
    assert!(
        said.contains("moved 120 transactions and 120 expired ones"),
        "{said}"
    );
    assert!(text(&moved.stderr).contains("100%"), "no progress line");
    let again = poh(&["migrate", "--data-dir", dir]);
    assert!(text(&again.stdout).contains("nothing to move"));
    reads_back_as_before(&data, &expected);
}
