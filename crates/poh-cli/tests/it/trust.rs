//! A proof or a chain file is only as good as a key the verifier already trusts (SPEC §6,
//! "Verification"): anyone can make a key and sign headers under any chain id, so `poh
//! verify --proof`, `poh verify --chain` and `poh prove` accept a file only when a `--trust`
//! key signs it, or when `--untrusted` says that a self-consistent file is enough.

use std::path::Path;

use base64::{Engine as _, engine::general_purpose::STANDARD as B64};
use serde_json::json;

use crate::common::{Http, poh, serve_flags, stop, text, wait_for};

/// `poh ARGS` must fail; its stderr.
fn refused(args: &[&str]) -> String {
    let out = poh(args);
    assert!(
        !out.status.success(),
        "poh {args:?} succeeded: {}",
        text(&out.stdout)
    );
    text(&out.stderr)
}

/// `poh ARGS` must succeed; its stdout.
fn accepted(args: &[&str]) -> String {
    let out = poh(args);
    assert!(out.status.success(), "poh {args:?}: {}", text(&out.stderr));
    text(&out.stdout)
}

/// The checks shared by `verify --proof` and `verify --chain`: `base` is the command and its
/// file, `own` the signing node's `.pub`, `fresh` an unrelated key's.
fn only_a_trusted_key_anchors(base: &[&str], own: &str, fresh: &str, chain_id: &str) {
    fn with<'a>(base: &[&'a str], extra: &[&'a str]) -> Vec<&'a str> {
        [base, extra].concat()
    }

    let error = refused(base);
    assert!(
        error.contains("self-consistent but unanchored") && error.contains("--trust"),
        "{error}"
    );
    assert!(error.contains(chain_id), "names the chain it saw: {error}");

    let ok = accepted(&with(base, &["--trust", own]));
    assert!(ok.starts_with("ok: ") && ok.contains("anchored by"), "{ok}");
    assert!(ok.contains(chain_id), "{ok}");

    let error = refused(&with(base, &["--trust", fresh]));
    assert!(error.contains("self-consistent but unanchored"), "{error}");
    // A key that signs nothing here does not stop one that does.
    accepted(&with(base, &["--trust", fresh, "--trust", own]));

    let note = accepted(&with(base, &["--untrusted"]));
    assert!(note.contains("unanchored"), "{note}");
    assert!(!note.starts_with("ok: "), "{note}");

    let missing = Path::new(own).with_file_name("missing.pub");
    let error = refused(&with(base, &["--trust", missing.to_str().unwrap()]));
    assert!(error.contains("missing.pub"), "{error}");
    refused(&with(base, &["--trust", own, "--untrusted"]));
}

#[test]
fn a_proof_and_a_chain_verify_only_under_a_key_the_verifier_trusts() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let node = serve_flags(
        &d.join("node"),
        &[
            "--chain-id",
            "municipality/trust",
            "--min-batch-interval",
            "0.05",
            "--max-batch-interval",
            "0.3",
            "--no-udp",
            "--no-quic",
        ],
    );
    // Without --node-key the node made its key, and the .pub beside it, in its data dir.
    let own = d.join("node").join("node.key.pub");
    let own = own.to_str().unwrap();
    let fresh = d.join("fresh.key");
    accepted(&["keygen", "--out", fresh.to_str().unwrap()]);
    let fresh = format!("{}.pub", fresh.display());

    let http = Http::new();
    let tx = json!({
        "tx_id": "trust-1",
        "holder_id": "h",
        "timestamp": 1.5,
        "payload_b64": B64.encode("trust-1"),
    });
    let posted = http.post(&format!("{}/v1/tx", node.base), &tx);
    assert_eq!(posted, Some(201));
    wait_for("trust-1 SEALED", || {
        let body = http.get_ok(&format!("{}/v1/tx/trust-1", node.base));
        (body["status"] == "SEALED").then_some(())
    });

    // The proof exactly as the node serves it, so verify is tried before prove is.
    let proof = d.join("trust-1.proof");
    let served = http.get_ok(&format!("{}/v1/tx/trust-1/proof", node.base));
    std::fs::write(&proof, served.to_string()).unwrap();
    let proof = proof.to_str().unwrap();
    only_a_trusted_key_anchors(
        &["verify", "--proof", proof],
        own,
        &fresh,
        "municipality/trust",
    );

    // `poh prove` checks what it fetched the same way, and writes nothing it did not accept.
    let written = d.join("proved.proof");
    let out = written.to_str().unwrap();
    let prove = ["prove", "trust-1", "--url", &node.base, "--out", out];
    let error = refused(&prove);
    assert!(error.contains("unanchored"), "{error}");
    assert!(!written.exists(), "an unanchored proof was written");
    refused(&[&prove[..], &["--trust", &fresh]].concat());
    assert!(!written.exists(), "an unanchored proof was written");
    let ok = accepted(&[&prove[..], &["--trust", own]].concat());
    assert!(ok.contains("anchored by"), "{ok}");
    accepted(&["verify", "--proof", out, "--trust", own]);
    std::fs::remove_file(&written).unwrap();
    let note = accepted(&[&prove[..], &["--untrusted"]].concat());
    assert!(note.contains("unanchored") && written.exists(), "{note}");

    let chain = d.join("node.chain");
    let chain = chain.to_str().unwrap();
    accepted(&["export", "--url", &node.base, "--out", chain]);
    only_a_trusted_key_anchors(
        &["verify", "--chain", chain],
        own,
        &fresh,
        "municipality/trust",
    );
    stop(node);
}
