//! `poh list` against a real `poh serve`: a holder's transactions by seq, a page at a time
//! or all of them, as lines or JSON.

use serde_json::Value;

use crate::common::{Http, poh, serve, text, transaction};

#[test]
fn poh_list_prints_a_holders_transactions_page_by_page() {
    let dir = tempfile::tempdir().unwrap();
    let node = serve(dir.path());
    let http = Http::new();
    // Five of `lister`'s, interleaved with someone else's.
    let txs: Vec<Value> = (0..10)
        .map(|i| {
            let holder = if i % 2 == 0 { "lister" } else { "other" };
            transaction(&format!("l-{i}"), holder, i).0
        })
        .collect();
    assert_eq!(
        http.post(&format!("{}/v1/tx/batch", node.base), &Value::from(txs)),
        Some(200)
    );
    let list = |extra: &[&str]| {
        let mut args = vec!["list", "--holder", "lister", "--endpoint", &node.grpc];
        args.extend_from_slice(extra);
        let out = poh(&args);
        assert!(out.status.success(), "{}", text(&out.stderr));
        text(&out.stdout)
    };
    let all: Vec<Value> = list(&["--limit", "2", "--all", "--json"])
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let ids: Vec<&str> = all.iter().filter_map(|v| v["tx_id"].as_str()).collect();
    assert_eq!(ids, ["l-0", "l-2", "l-4", "l-6", "l-8"]);
    // Each as `GET /v1/tx/{id}` has it.
    let stored = http.get_ok(&format!("{}/v1/tx/l-4", node.base));
    for key in ["holder_id", "payload_b64", "poh_seq", "poh_hash", "status"] {
        assert_eq!(all[2][key], stored[key], "{key}");
    }
    assert_eq!(all.last().unwrap(), &serde_json::json!({"next_seq": null}));

    let first = list(&["--limit", "2"]);
    let lines: Vec<&str> = first.lines().collect();
    assert_eq!(lines.len(), 3, "{first}");
    assert!(lines[0].contains(" l-0 ORDERED "), "{first}");
    let seq_of_l4 = stored["poh_seq"].as_u64().unwrap();
    assert_eq!(
        lines[2],
        format!("more: poh list --holder \"lister\" --from-seq {seq_of_l4}")
    );
    let rest = list(&["--from-seq", &seq_of_l4.to_string(), "--json"]);
    assert_eq!(rest.lines().count(), 4, "l-4, l-6, l-8 and the end: {rest}");

    let out = poh(&[
        "list",
        "--holder",
        "lister",
        "--limit",
        "1001",
        "--endpoint",
        &node.grpc,
    ]);
    assert!(!out.status.success());
}
