//! Federation (SPEC §6) across real `poh serve` processes: municipalities push their sealed
//! headers to a continental node, which pushes its own to a global one; every level records
//! the headers of the level below as items of its PoH, and a child killed between sealing and
//! pushing resumes where its parent stands.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    process::Command,
    time::Instant,
};

use base64::{Engine as _, engine::general_purpose::STANDARD as B64};
use serde_json::{Value, json};

use crate::common::{
    Http, Served, keygen, node_flags, poh, serve_with, signal, stop, text, wait_for,
};

impl Http {
    /// Submits a transaction, which must be stored (201).
    pub(crate) fn submit(&self, base: &str, tx_id: &str) {
        let tx = json!({
            "tx_id": tx_id,
            "holder_id": "h",
            "timestamp": 1.5,
            "payload_b64": B64.encode(tx_id),
        });
        let (status, body) = self.runtime.block_on(async {
            let r = self
                .client
                .post(format!("{base}/v1/tx"))
                .json(&tx)
                .send()
                .await
                .unwrap_or_else(|e| panic!("POST {base}/v1/tx: {e}"));
            let status = r.status().as_u16();
            (status, r.json::<Value>().await.unwrap_or(Value::Null))
        });
        assert_eq!(status, 201, "{tx_id}: {body}");
    }
}

/// The nodes' logs, printed (their ends) when the test fails, before their directory goes.
struct Logs(Vec<PathBuf>);

impl Drop for Logs {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            return;
        }
        for log in &self.0 {
            let all = std::fs::read_to_string(log).unwrap_or_default();
            let lines: Vec<&str> = all.lines().collect();
            let tail = &lines[lines.len().saturating_sub(40)..];
            eprintln!("==== {} (last {} lines)", log.display(), tail.len());
            for line in tail {
                eprintln!("{line}");
            }
        }
    }
}

/// `poh serve FLAGS` whose log (with the federation's debug lines) is also appended to `log`.
fn serve_logged(data_dir: &Path, log: &Path, flags: &[&str]) -> Served {
    let mut command = Command::new("bash");
    command
        .arg("-c")
        .arg(format!(
            "export RUST_LOG=info,poh_node::federation=debug; \
             exec \"$0\" \"$@\" 2> >(tee -a '{}' >&2)",
            log.display()
        ))
        .arg(env!("CARGO_BIN_EXE_poh"));
    serve_with(command, data_dir, flags)
}

/// Polls until `tx_id` is SEALED on the node at `base`; its `header_id`.
fn sealed(http: &Http, base: &str, tx_id: &str) -> String {
    wait_for(&format!("{tx_id} SEALED on {base}"), || {
        let (status, body) = http.get(&format!("{base}/v1/tx/{tx_id}"));
        assert_eq!(status, 200, "{tx_id}: {body}");
        (body["status"] == "SEALED").then(|| {
            body["header_id"]
                .as_str()
                .unwrap_or_else(|| panic!("SEALED without a header_id: {body}"))
                .to_string()
        })
    })
}

/// Polls until the parent at `parent` serves `header` (a child's own JSON of it) as an
/// accepted child header; its `recorded_at_seq`. The parent's copy must be the same header.
fn recorded_by(http: &Http, parent: &str, header: &Value) -> u64 {
    let id = header["header_id"].as_str().unwrap();
    let served = wait_for(&format!("{parent} serves child header {id}"), || {
        let (status, body) = http.get(&format!("{parent}/v1/headers/{id}"));
        match status {
            200 => Some(body),
            404 => None,
            other => panic!("GET {parent}/v1/headers/{id}: {other} {body}"),
        }
    });
    let seq = served["recorded_at_seq"]
        .as_u64()
        .unwrap_or_else(|| panic!("a child header without recorded_at_seq: {served}"));
    let mut without = served.clone();
    without.as_object_mut().unwrap().remove("recorded_at_seq");
    assert_eq!(
        &without, header,
        "the parent serves another header under {id}"
    );
    seq
}

/// The child's own JSON of header `id`.
fn own_header(http: &Http, base: &str, id: &str) -> Value {
    let header = http.get_ok(&format!("{base}/v1/headers/{id}"));
    assert!(header.get("recorded_at_seq").is_none(), "{header}");
    assert_eq!(header["header_id"], id);
    header
}

#[test]
fn a_three_level_federation_seals_every_transaction_up_to_the_global_chain() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let logs = Logs(
        ["earth", "asia", "tokyo", "osaka"]
            .map(|n| d.join(format!("{n}.log")))
            .to_vec(),
    );
    let [earth_key, asia_key, tokyo_key, osaka_key] =
        ["earth", "asia", "tokyo", "osaka"].map(|n| keygen(d, n));
    let pubkey = |key: &str| format!("{key}.pub");
    let http = Http::new();

    let asia_child = format!("continental/asia={}", pubkey(&asia_key));
    let mut flags = node_flags("global/earth", "global", &earth_key);
    flags.extend(["--child", &asia_child]);
    let earth = serve_logged(&d.join("earth"), &logs.0[0], &flags);

    let tokyo_child = format!("municipality/tokyo={}", pubkey(&tokyo_key));
    let osaka_child = format!("municipality/osaka={}", pubkey(&osaka_key));
    let mut flags = node_flags("continental/asia", "continental", &asia_key);
    flags.extend([
        "--parent",
        &earth.grpc,
        "--child",
        &tokyo_child,
        "--child",
        &osaka_child,
    ]);
    let asia = serve_logged(&d.join("asia"), &logs.0[1], &flags);

    let mut munis = Vec::new();
    for (i, (name, key)) in [("tokyo", &tokyo_key), ("osaka", &osaka_key)]
        .into_iter()
        .enumerate()
    {
        let chain = format!("municipality/{name}");
        let mut flags = node_flags(&chain, "municipality", key);
        flags.extend(["--parent", &asia.grpc]);
        let node = serve_logged(&d.join(name), &logs.0[2 + i], &flags);
        munis.push((chain, node));
    }

    // ~20 transactions to each municipality, interleaved, and every one SEALED there.
    let started = Instant::now();
    for i in 0..20 {
        for (chain, node) in &munis {
            http.submit(&node.base, &format!("{}-tx-{i}", chain.replace('/', ".")));
        }
    }
    let mut last_headers = Vec::new();
    for (chain, node) in &munis {
        let mut header_id = String::new();
        for i in 0..20 {
            let tx_id = format!("{}-tx-{i}", chain.replace('/', "."));
            header_id = sealed(&http, &node.base, &tx_id);
        }
        let header = own_header(&http, &node.base, &header_id);
        assert_eq!(header["chain_id"], chain.as_str());
        assert_eq!(header["level"], "municipality");
        assert!(header["item_count"].as_u64().unwrap() >= 1, "{header}");
        last_headers.push(header);
    }
    eprintln!("all 40 SEALED after {:?}", started.elapsed());

    // Each municipality's last sealing header reaches the continental node, recorded in its
    // PoH at recorded_at_seq.
    let seqs: Vec<u64> = last_headers
        .iter()
        .map(|h| recorded_by(&http, &asia.base, h))
        .collect();
    eprintln!(
        "both recorded by the continental after {:?}",
        started.elapsed()
    );
    let asia_poh = http.poh(&asia.base, "continental/asia");
    for (header, &seq) in last_headers.iter().zip(&seqs) {
        assert_eq!(
            asia_poh.items.get(seq as usize).map(String::as_str),
            header["header_id"].as_str(),
            "the continental's item at recorded_at_seq {seq} is not {}'s header",
            header["chain_id"]
        );
        let count = asia_poh
            .items
            .iter()
            .filter(|i| *i == &header["header_id"])
            .count();
        assert_eq!(count, 1, "{header} recorded {count} times");
    }

    // The federation view lists both children, with what it accepted.
    let federation = http.get_ok(&format!("{}/v1/federation", asia.base));
    assert_eq!(federation["chain_id"], "continental/asia");
    assert_eq!(federation["level"], "continental");
    assert_eq!(federation["parent"].as_str(), Some(earth.grpc.as_str()));
    let children = federation["children"].as_array().unwrap();
    assert_eq!(children.len(), 2, "{federation}");
    for header in &last_headers {
        let child = children
            .iter()
            .find(|c| c["chain_id"] == header["chain_id"])
            .unwrap_or_else(|| panic!("{} not listed: {federation}", header["chain_id"]));
        let height = child["height"]
            .as_u64()
            .unwrap_or_else(|| panic!("a null height: {federation}"));
        assert!(height >= header["height"].as_u64().unwrap(), "{federation}");
        assert_eq!(child["public_key_b64"], header["public_key_b64"]);
    }

    // The continental header over the entries that recorded them reaches the global node.
    for &seq in &seqs {
        let entry = asia_poh.entry_of[seq as usize];
        let covering = wait_for(&format!("a continental header over entry {entry}"), || {
            http.headers(&asia.base).into_iter().find(|h| {
                h["poh_start"].as_u64().unwrap() <= entry && entry < h["poh_end"].as_u64().unwrap()
            })
        });
        assert!(covering["item_count"].as_u64().unwrap() >= 1, "{covering}");
        let global_seq = recorded_by(&http, &earth.base, &covering);
        let earth_poh = http.poh(&earth.base, "global/earth");
        assert_eq!(
            earth_poh.items.get(global_seq as usize).map(String::as_str),
            covering["header_id"].as_str(),
            "the global's item at recorded_at_seq {global_seq}"
        );
        let count = earth_poh
            .items
            .iter()
            .filter(|i| *i == &covering["header_id"])
            .count();
        assert_eq!(count, 1, "{covering} recorded {count} times");
    }
    let earth_federation = http.get_ok(&format!("{}/v1/federation", earth.base));
    assert_eq!(earth_federation["level"], "global");
    assert!(earth_federation["parent"].is_null(), "{earth_federation}");
    assert!(
        http.accepted_height(&earth.base, "continental/asia")
            .is_some(),
        "{earth_federation}"
    );
    eprintln!("up to the global after {:?}", started.elapsed());

    // The global chain exports and verifies whole, its recorded continental headers too.
    let file = d.join("earth.chain");
    let out = poh(&[
        "export",
        "--url",
        &earth.base,
        "--out",
        file.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "export: {}", text(&out.stderr));
    let [earth_pub, asia_pub, tokyo_pub] = [&earth_key, &asia_key, &tokyo_key].map(|k| pubkey(k));
    let chain_under =
        |key: &str| poh(&["verify", "--chain", file.to_str().unwrap(), "--trust", key]);
    let out = chain_under(&earth_pub);
    assert!(
        out.status.success(),
        "verify --chain: {}",
        text(&out.stderr)
    );
    let report = text(&out.stdout);
    assert!(
        report.contains("global/earth")
            && report.contains("anchored by")
            && !report.contains(" 0 child headers"),
        "{report}"
    );
    // The continental key vouches for asia's headers, not for the global chain's own.
    assert!(!chain_under(&asia_pub).status.success());

    // A tampered copy is refused, naming the changed line: here one entry's num_hashes.
    let original = std::fs::read_to_string(&file).unwrap();
    let mut lines: Vec<String> = original.lines().map(str::to_string).collect();
    let at = lines
        .iter()
        .position(|l| l.starts_with("{\"num_hashes\":500,"))
        .unwrap();
    lines[at] = lines[at].replacen("\"num_hashes\":500,", "\"num_hashes\":499,", 1);
    std::fs::write(&file, lines.join("\n") + "\n").unwrap();
    let out = chain_under(&earth_pub);
    assert!(!out.status.success());
    let error = text(&out.stderr);
    assert!(error.contains(&format!("line {}:", at + 1)), "{error}");

    // A municipality transaction's proof reaches the global chain, and verifies offline
    // under the global key, or the continental one for the links it signed and below.
    let proof = d.join("tokyo.proof");
    wait_for(
        "a proof of a tokyo transaction up to the global chain",
        || {
            let _ = std::fs::remove_file(&proof);
            let out = poh(&[
                "prove",
                "municipality.tokyo-tx-19",
                "--url",
                &munis[0].1.base,
                "--out",
                proof.to_str().unwrap(),
                "--trust",
                &tokyo_pub,
                "--trust",
                &earth_pub,
            ]);
            assert!(out.status.success(), "prove: {}", text(&out.stderr));
            text(&out.stdout)
                .contains(
                    "up to global/earth (global), anchored by the trusted key of global/earth",
                )
                .then_some(())
        },
    );
    let proof_file = proof.to_str().unwrap();
    let out = poh(&["verify", "--proof", proof_file, "--trust", &earth_pub]);
    assert!(
        out.status.success(),
        "verify --proof: {}",
        text(&out.stderr)
    );
    assert!(
        text(&out.stdout).contains("link 2"),
        "{}",
        text(&out.stdout)
    );
    let out = poh(&["verify", "--proof", proof_file, "--trust", &asia_pub]);
    let report = text(&out.stdout);
    assert!(
        out.status.success() && report.contains("of continental/asia (link 1)"),
        "{report}"
    );
    assert!(!poh(&["verify", "--proof", proof_file]).status.success());
    let mut tampered: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&proof).unwrap()).unwrap();
    tampered["links"][1]["index"] = (tampered["links"][1]["index"].as_u64().unwrap() ^ 1).into();
    std::fs::write(&proof, tampered.to_string()).unwrap();
    let out = poh(&["verify", "--proof", proof_file, "--trust", &earth_pub]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("link 1"),
        "{}",
        text(&out.stderr)
    );

    for (_, node) in munis {
        stop(node);
    }
    stop(asia);
    stop(earth);
}

#[test]
fn a_child_killed_between_sealing_and_pushing_resumes_and_the_parent_has_every_height_once() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let logs = Logs(vec![
        d.join("asia-1.log"),
        d.join("tokyo-1.log"),
        d.join("asia-2.log"),
        d.join("tokyo-2.log"),
    ]);
    let asia_key = keygen(d, "asia");
    let tokyo_key = keygen(d, "tokyo");
    let child_flag = format!("municipality/tokyo={tokyo_key}.pub");
    let http = Http::new();
    let (p_data, c_data) = (d.join("asia"), d.join("tokyo"));
    let parent_flags = || {
        let mut flags = node_flags("continental/asia", "continental", &asia_key);
        flags.extend(["--child", child_flag.as_str()]);
        flags
    };
    let child = |parent: &str, log: &Path| {
        let parent = parent.to_string();
        let mut flags = node_flags("municipality/tokyo", "municipality", &tokyo_key);
        flags.extend(["--parent", parent.as_str()]);
        serve_logged(&c_data, log, &flags)
    };
    let tokyo_chain = "municipality/tokyo";

    // (a) The link works: the parent accepts the child's headers.
    let started = Instant::now();
    let mut p = serve_logged(&p_data, &logs.0[0], &parent_flags());
    let mut c = child(&p.grpc, &logs.0[1]);
    let mut tx_ids: Vec<String> = Vec::new();
    for i in 0..5 {
        let id = format!("before-{i}");
        http.submit(&c.base, &id);
        tx_ids.push(id);
    }
    wait_for("the parent accepts child height 1", || {
        http.accepted_height(&p.base, tokyo_chain)
            .filter(|&h| h >= 1)
    });

    // (b) The parent dies; the child seals on, headers it cannot push.
    signal(&p.child, "KILL");
    p.child.wait().unwrap();
    // The parent accepted at most what the child had sealed by now.
    let at_parent_kill = http.last_height(&c.base).expect("the child sealed headers");
    for i in 0..5 {
        let id = format!("during-{i}");
        http.submit(&c.base, &id);
        tx_ids.push(id);
    }
    for id in &tx_ids {
        sealed(&http, &c.base, id);
    }
    wait_for("the child seals 3 headers the parent has not seen", || {
        http.last_height(&c.base)
            .filter(|&h| h >= at_parent_kill + 3)
    });

    // (c) The child dies too, with those headers sealed and never pushed.
    let before_kill = http.headers(&c.base);
    signal(&c.child, "KILL");
    c.child.wait().unwrap();
    let target = before_kill.len() as u64 - 1;
    eprintln!(
        "parent killed at child height {at_parent_kill}, child killed at height ≥ {target}, \
         after {:?}",
        started.elapsed()
    );

    // (d) Both come back on their data; the child links to the parent's new address.
    drop(p);
    drop(c);
    let p = serve_logged(&p_data, &logs.0[2], &parent_flags());
    let c = child(&p.grpc, &logs.0[3]);

    // (e) The parent catches up past where the child was killed.
    wait_for(&format!("the parent accepts child height {target}"), || {
        http.accepted_height(&p.base, tokyo_chain)
            .filter(|&h| h >= target)
    });
    eprintln!("caught up after {:?}", started.elapsed());

    // The child's chain continued: the headers from before the kill are unchanged.
    let after = http.headers(&c.base);
    assert!(after.len() >= before_kill.len());
    for (old, new) in before_kill.iter().zip(&after) {
        assert_eq!(
            old, new,
            "header {} changed across the restart",
            old["height"]
        );
    }
    // Every height once, at its recorded_at_seq, in the parent's PoH.
    let poh = http.poh(&p.base, "continental/asia");
    let mut count: HashMap<&str, usize> = HashMap::new();
    for item in &poh.items {
        *count.entry(item.as_str()).or_default() += 1;
    }
    for header in &after[..=target as usize] {
        let id = header["header_id"].as_str().unwrap();
        let seq = recorded_by(&http, &p.base, header);
        assert_eq!(
            poh.items.get(seq as usize).map(String::as_str),
            Some(id),
            "the parent's item at recorded_at_seq {seq} is not child height {}",
            header["height"]
        );
        assert_eq!(
            count.get(id).copied().unwrap_or(0),
            1,
            "child height {} ({id}) is not recorded exactly once",
            header["height"]
        );
    }
    // And every transaction of the child is still SEALED, by a header the parent has.
    for id in &tx_ids {
        let header_id = sealed(&http, &c.base, id);
        assert!(count.contains_key(header_id.as_str()), "{id}: {header_id}");
    }
    eprintln!("checked after {:?}", started.elapsed());

    stop(c);
    stop(p);
}
