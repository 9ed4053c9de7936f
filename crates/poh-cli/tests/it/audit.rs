//! `poh audit` (SPEC §9) against a real two-level federation: clean when every acknowledged
//! transaction is stored, sealed and recorded up to the top; one line per finding and a
//! non-zero exit for a transaction no node holds, a digest that differs, and a top chain
//! whose key is not trusted.

use poh_core::Tx;
use serde_json::json;

use crate::common::{Http, keygen, node_flags, poh, serve_flags, stop, text};

/// The digest of the transaction the tests submit as `tx_id`.
fn digest(tx_id: &str) -> String {
    Tx {
        tx_id: tx_id.into(),
        holder_id: "h".into(),
        timestamp: 1.5,
        payload: tx_id.as_bytes().to_vec(),
        ..Tx::default()
    }
    .digest()
    .to_hex()
}

fn expect_line(tx_id: &str, digest: &str) -> String {
    json!({ "tx_id": tx_id, "digest": digest }).to_string() + "\n"
}

#[test]
fn audit_is_clean_on_a_sealed_federation_and_names_each_finding() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let [asia_key, tokyo_key] = ["asia", "tokyo"].map(|n| keygen(d, n));
    let tokyo_child = format!("municipality/tokyo={tokyo_key}.pub");
    let mut flags = node_flags("continental/asia", "continental", &asia_key);
    flags.extend(["--child", &tokyo_child]);
    let asia = serve_flags(&d.join("asia"), &flags);
    let mut flags = node_flags("municipality/tokyo", "municipality", &tokyo_key);
    flags.extend(["--parent", &asia.grpc]);
    let tokyo = serve_flags(&d.join("tokyo"), &flags);

    let http = Http::new();
    let mut expect = String::new();
    for i in 0..30 {
        let id = format!("audit-{i}");
        http.submit(&tokyo.base, &id);
        expect.push_str(&expect_line(&id, &digest(&id)));
    }
    let expect_file = d.join("expect.jsonl");
    std::fs::write(&expect_file, &expect).unwrap();
    let audit = |extra: &[&str]| {
        let mut args = vec!["audit", "--node", &tokyo.base, "--node", &asia.base];
        args.extend(extra);
        poh(&args)
    };
    let expect_arg = expect_file.to_str().unwrap();
    // Sealing lags the writes by a batch interval per level: the first audit waits for it.
    let out = audit(&["--expect", expect_arg, "--wait-secs", "30"]);
    let report = text(&out.stdout);
    assert!(out.status.success(), "{report}{}", text(&out.stderr));
    assert!(
        report.contains("audited 2 node(s) up to the continental level")
            && report.contains("30 expected transaction(s) (30 served proofs verified): clean")
            && report.contains("note: no --trust key given"),
        "{report}"
    );
    // Anchored by the top chain's key: clean; by another key: a finding.
    let asia_pub = format!("{asia_key}.pub");
    let tokyo_pub = format!("{tokyo_key}.pub");
    let out = audit(&["--trust", &asia_pub]);
    assert!(out.status.success(), "{}", text(&out.stdout));
    let out = audit(&["--trust", &tokyo_pub]);
    assert!(!out.status.success());
    assert!(
        text(&out.stdout).contains("continental/asia (continental")
            && text(&out.stdout).contains("is not a --trust key"),
        "{}",
        text(&out.stdout)
    );

    // A transaction no node holds, and one acknowledged with another digest.
    let mut bad = expect.clone();
    bad.push_str(&expect_line("never-sent", &digest("never-sent")));
    bad.push_str(&expect_line("audit-3", &digest("audit-4")));
    std::fs::write(&expect_file, &bad).unwrap();
    let out = audit(&["--expect", expect_arg]);
    let report = text(&out.stdout);
    assert!(!out.status.success(), "{report}");
    let findings: Vec<&str> = report
        .lines()
        .filter(|l| !l.starts_with("note:") && !l.starts_with("audited"))
        .collect();
    assert_eq!(findings.len(), 2, "{report}");
    assert!(
        report.contains("never-sent (digest")
            && report.contains("was acknowledged but no node holds it"),
        "{report}"
    );
    assert!(
        report.contains(&format!(
            "audit-3 is stored with digest {}, not the acknowledged {}",
            digest("audit-3"),
            digest("audit-4")
        )),
        "{report}"
    );
    assert!(report.contains("2 finding(s)"), "{report}");

    // The municipality alone is its own top level: clean without the bad lines, not with.
    let out = poh(&["audit", "--node", &tokyo.base, "--expect", expect_arg]);
    assert!(!out.status.success());
    let out = poh(&["audit", "--node", &tokyo.base]);
    let report = text(&out.stdout);
    assert!(
        out.status.success() && report.contains("up to the municipality level"),
        "{report}"
    );
    // A bad --expect line is an error naming it.
    std::fs::write(&expect_file, "{\"tx_id\":\"x\"}\n").unwrap();
    let out = poh(&["audit", "--node", &tokyo.base, "--expect", expect_arg]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("line 1"),
        "{}",
        text(&out.stderr)
    );

    stop(tokyo);
    stop(asia);
}
