//! `poh restore` against a real `poh serve`: the node writes fragments to local directories;
//! once it is stopped, any k of them rebuild a sealed batch (`--out`), and with m + 1 lost
//! the command fails with one line on stderr.

use std::{
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use base64::{Engine as _, engine::general_purpose::STANDARD as B64};
use serde_json::json;

use crate::common::{Http, poh, serve_flags, stop, text, wait_for, wait_within};

/// A config file in `tmp` with `[fragments]` in `n` local directories (k = n - 2, m = 2)
/// after `extra`; the file and the directories.
fn fragments_config(tmp: &Path, n: usize, extra: &str) -> (PathBuf, Vec<PathBuf>) {
    let dirs: Vec<PathBuf> = (0..n).map(|i| tmp.join(format!("frag{i}"))).collect();
    let config = tmp.join("poh.toml");
    let list: Vec<String> = dirs
        .iter()
        .map(|d| format!("{:?}", d.display().to_string()))
        .collect();
    std::fs::write(
        &config,
        format!(
            "{extra}[fragments]\ndata = {}\nparity = 2\nlocations = [{}]\n",
            n - 2,
            list.join(", ")
        ),
    )
    .unwrap();
    (config, dirs)
}

#[test]
fn restore_rebuilds_a_batch_from_any_k_fragments_and_says_when_too_few_remain() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let (config, dirs) = fragments_config(tmp.path(), 6, "");
    let config_arg = config.to_str().unwrap();
    let node = serve_flags(
        &data,
        &[
            "--config",
            config_arg,
            "--min-batch-interval",
            "0.05",
            "--max-batch-interval",
            "0.2",
        ],
    );
    let http = Http::new();
    for i in 0..10 {
        let id = format!("cli-frag-{i}");
        let body = json!({"tx_id": id, "holder_id": "h", "timestamp": 1.5,
                          "payload_b64": B64.encode(&id)});
        assert_eq!(http.post(&format!("{}/v1/tx", node.base), &body), Some(201));
    }
    let header_id = wait_for("cli-frag-9 SEALED", || {
        let v = http.get_ok(&format!("{}/v1/tx/cli-frag-9", node.base));
        (v["status"] == "SEALED").then(|| v["header_id"].as_str().unwrap().to_string())
    });
    let file = |i: usize| dirs[i].join(&header_id).join(i.to_string());
    wait_for("the header's fragments written", || {
        (0..6).all(|i| file(i).exists()).then_some(())
    });
    stop(node);

    let restore = |out: &Path| {
        poh(&[
            "restore",
            &header_id,
            "--config",
            config_arg,
            "--data-dir",
            data.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ])
    };
    // All six, then without a data and a parity fragment: the same bytes.
    let all = tmp.path().join("all.batch");
    let out = restore(&all);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("from 6 fragments"),
        "{}",
        text(&out.stdout)
    );
    for i in [0, 4] {
        std::fs::remove_file(file(i)).unwrap();
    }
    let some = tmp.path().join("some.batch");
    let out = restore(&some);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("from 4 fragments"),
        "{}",
        text(&out.stdout)
    );
    assert_eq!(std::fs::read(&all).unwrap(), std::fs::read(&some).unwrap());
    assert!(std::fs::read(&all).unwrap().starts_with(b"poh.batch.v1"));

    // m + 1 lost: a non-zero exit and the one line.
    let kept = tmp.path().join("fragment-5");
    std::fs::rename(file(5), &kept).unwrap();
    let out = restore(&tmp.path().join("none.batch"));
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert_eq!(
        stderr.trim_end(),
        format!(
            "error: header {header_id}: only 3 of the 4 fragments needed are readable \
             (missing: 0, 4, 5; corrupt: none); restore needs any 4 of 6"
        ),
    );
    assert!(!tmp.path().join("none.batch").exists());

    // Back to k: without --out, into the store (nothing had expired, so nothing comes back).
    std::fs::rename(&kept, file(5)).unwrap();
    let out = poh(&[
        "restore",
        &header_id,
        "--config",
        config_arg,
        "--data-dir",
        data.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout).trim_end(),
        format!("restored 0 transactions of header {header_id} from 4 fragments")
    );
}

/// `poh restore` into a stopped node's store, then `poh serve` again with the same TTL: the
/// sweep that runs at once on start keeps the restored transactions, as they were (the same
/// `received_at`), and expires them again only once a TTL has passed since the restore.
#[test]
fn restored_transactions_outlive_the_restart_for_one_ttl() {
    const TTL: Duration = Duration::from_secs(5);
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let ttl = format!(
        "[ttl]\nafter = \"{}s\"\nsweep_interval = \"100ms\"\n",
        TTL.as_secs()
    );
    let (config, _dirs) = fragments_config(tmp.path(), 3, &ttl);
    let flags = [
        "--config",
        config.to_str().unwrap(),
        "--min-batch-interval",
        "0.05",
        "--max-batch-interval",
        "0.2",
    ];
    let node = serve_flags(&data, &flags);
    let http = Http::new();
    for i in 0..5 {
        let id = format!("kept-{i}");
        let body = json!({"tx_id": id, "holder_id": "h", "timestamp": 1.5,
                          "payload_b64": B64.encode(&id)});
        assert_eq!(http.post(&format!("{}/v1/tx", node.base), &body), Some(201));
    }
    let url = format!("{}/v1/tx/kept-4", node.base);
    let sealed = wait_for("kept-4 SEALED", || {
        let v = http.get_ok(&url);
        (v["status"] == "SEALED").then_some(v)
    });
    let header_id = sealed["header_id"].as_str().unwrap().to_string();
    let patience = TTL + Duration::from_secs(30);
    wait_within(patience, "kept-4 expired", || {
        (http.get(&url).0 == 410).then_some(())
    });
    stop(node);

    let restoring = Instant::now();
    let out = poh(&[
        "restore",
        &header_id,
        "--config",
        config.to_str().unwrap(),
        "--data-dir",
        data.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.starts_with("restored ") && !stdout.starts_with("restored 0 "),
        "{stdout}"
    );

    let node = serve_flags(&data, &flags);
    let url = format!("{}/v1/tx/kept-4", node.base);
    // The first sweep runs as the node starts; its end is counted.
    let (status, body) = wait_for("the first TTL sweep after the restart", || {
        let answer = http.get(&url);
        if answer.0 == 410 {
            return Some(answer);
        }
        let swept = http.metric(&node.base, "poh_ttl_sweeps_total")?;
        (swept >= 1.0).then(|| http.get(&url))
    });
    assert_eq!(
        status, 200,
        "the restored transaction expired again as the node started: {body}"
    );
    assert_eq!(body, sealed, "restored as it was, received_at included");

    wait_within(patience, "kept-4 expired again", || {
        (http.get(&url).0 == 410).then_some(())
    });
    assert!(
        restoring.elapsed() >= TTL,
        "expired again {:?} after the restore",
        restoring.elapsed()
    );
    stop(node);
}
