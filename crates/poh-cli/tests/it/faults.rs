//! Faults across real hosts (`hosts.rs`: a network namespace per node) under continuous load
//! (`load.rs`): a partitioned municipality, a partitioned peer, a nemesis killing and pausing
//! nodes at random, a full disk, and SIGTERM at every level. Each ends with `audit_clean`:
//! everything acknowledged is stored with its digest and proven up to the top chain, and every
//! child header is recorded exactly once by its parent.

use std::{
    collections::BTreeMap,
    path::Path,
    sync::Arc,
    time::{Duration, Instant},
};

use poh_proto::v1::{self as pb, poh_service_client::PohServiceClient};
use serde_json::json;

use crate::{
    common::{Http, Tmpfs, keygen, node_flags, random, stored_digest, wait_within},
    hosts::{Hosts, audit_clean},
    load::{History, Load},
};

/// The federation's hosts: earth (global) ← asia (continental) ← tokyo and osaka.
const EARTH: usize = 0;
const ASIA: usize = 1;
const TOKYO: usize = 2;
const OSAKA: usize = 3;
const MUNICIPALITIES: [usize; 2] = [TOKYO, OSAKA];

/// Small transactions from two threads, 20 ms apart each.
const STEADY: (usize, usize, Duration) = (2, 100, Duration::from_millis(20));
/// How long a partition lasts.
const CUT: Duration = Duration::from_secs(15);

/// The four-host federation, every node running; tokyo's data on `tokyo_data` when given.
fn federation(tokyo_data: Option<&Path>) -> Option<Hosts> {
    let mut hosts = Hosts::new(&["earth", "asia", "tokyo", "osaka"])?;
    let d = hosts.dir().to_path_buf();
    let [earth, asia, tokyo, osaka] = ["earth", "asia", "tokyo", "osaka"].map(|n| keygen(&d, n));
    let child = |chain: &str, key: &str| format!("{chain}={key}.pub");
    let asia_child = child("continental/asia", &asia);
    let mut flags = node_flags("global/earth", "global", &earth);
    flags.extend(["--child", &asia_child]);
    hosts.start(EARTH, None, &flags);

    let (earth_grpc, asia_grpc) = (hosts.grpc(EARTH), hosts.grpc(ASIA));
    let children = [
        child("municipality/tokyo", &tokyo),
        child("municipality/osaka", &osaka),
    ];
    let mut flags = node_flags("continental/asia", "continental", &asia);
    flags.extend(["--parent", &earth_grpc]);
    flags.extend(["--child", &children[0], "--child", &children[1]]);
    hosts.start(ASIA, None, &flags);

    for (i, name, key) in [(TOKYO, "tokyo", &tokyo), (OSAKA, "osaka", &osaka)] {
        let chain = format!("municipality/{name}");
        let mut flags = node_flags(&chain, "municipality", key);
        flags.extend(["--parent", &asia_grpc]);
        let data = tokyo_data.filter(|_| i == TOKYO).map(|d| d.join("data"));
        hosts.start(i, data, &flags);
    }
    Some(hosts)
}

/// The municipalities' HTTP base URLs.
fn municipalities(hosts: &Hosts) -> Vec<String> {
    MUNICIPALITIES.map(|i| hosts.base(i)).to_vec()
}

/// Waits until `node` has acknowledged `more` transactions more than now.
fn acked_again(history: &History, node: &str, more: usize) {
    let by = |h: &History| h.acked().iter().filter(|a| a.node == node).count();
    let target = by(history) + more;
    wait_within(
        Duration::from_secs(45),
        &format!("{node} acknowledges again"),
        || (by(history) >= target).then_some(()),
    );
}

/// Stops the load, writes the expect file and audits every node.
fn finish(hosts: &Hosts, load: Load, history: &History, started: Instant) {
    load.stop();
    eprintln!("{}", history.summary());
    let expect = hosts.dir().join("expect.jsonl");
    history.write_expect(&expect);
    audit_clean(
        &hosts.bases(),
        &expect,
        &[hosts.dir().join("earth.key.pub")],
    );
    eprintln!("done after {:.1} s", started.elapsed().as_secs_f64());
}

#[test]
fn a_municipality_cut_off_for_15_s_catches_up_and_loses_nothing() {
    let started = Instant::now();
    let Some(hosts) = federation(None) else {
        return;
    };
    let http = Http::new();
    let (asia, tokyo) = (hosts.base(ASIA), hosts.base(TOKYO));
    let history = Arc::new(History::default());
    let load = Load::start("cut", &municipalities(&hosts), STEADY, &history);
    history.wait_more(50, "before the cut");

    hosts.partition(TOKYO);
    let cut = Instant::now();
    // And osaka's link drops 5 % of its packets meanwhile.
    let lossy = hosts.loss(OSAKA, 5);
    // Anything tokyo pushed before the cut has landed within a second.
    std::thread::sleep(Duration::from_secs(1));
    let before = http.accepted_height(&asia, "municipality/tokyo");
    let osaka_before = http.accepted_height(&asia, "municipality/osaka");
    history.wait_more(100, "osaka during the cut");
    std::thread::sleep(CUT.saturating_sub(cut.elapsed()));
    assert_eq!(
        http.accepted_height(&asia, "municipality/tokyo"),
        before,
        "asia accepted headers of tokyo while it was cut off"
    );
    assert!(
        http.accepted_height(&asia, "municipality/osaka") > osaka_before,
        "asia stopped accepting osaka's headers while tokyo was cut off"
    );
    assert!(
        history.refused(&tokyo, "no answer") > 0,
        "tokyo answered while cut off: {}",
        history.summary()
    );
    hosts.heal(TOKYO);
    hosts.loss(OSAKA, 0);
    eprintln!(
        "tokyo cut off for {:?} (osaka lossy: {lossy})",
        cut.elapsed()
    );

    acked_again(&history, &tokyo, 50);
    finish(&hosts, load, &history, started);
}

/// What the node at `grpc` holds (gRPC `Sync` from seq 0): id → digest (hex).
fn holdings(http: &Http, grpc: &str) -> BTreeMap<String, String> {
    http.runtime.block_on(async {
        let mut client = PohServiceClient::connect(format!("http://{grpc}"))
            .await
            .unwrap();
        let mut held = BTreeMap::new();
        let mut from_seq = 0;
        for _ in 0..1_000 {
            let request = pb::SyncRequest {
                from_seq,
                limit: 10_000,
            };
            let mut records = client.sync(request).await.unwrap().into_inner();
            let mut more = false;
            while let Some(record) = records.message().await.unwrap() {
                (from_seq, more) = (record.poh_seq + 1, true);
                let tx = poh_node::tx_from_pb(record.tx.unwrap());
                held.insert(tx.tx_id.clone(), tx.digest().to_hex());
            }
            if !more {
                return held;
            }
        }
        panic!("{grpc}: more than 1,000 pages");
    })
}

#[test]
fn three_relaying_peers_one_cut_off_for_15_s_end_up_holding_the_same() {
    let started = Instant::now();
    let Some(mut hosts) = Hosts::new(&["p0", "p1", "p2"]) else {
        return;
    };
    for i in 0..3 {
        let others: Vec<String> = (0..3).filter(|&j| j != i).map(|j| hosts.grpc(j)).collect();
        let file = hosts.dir().join(format!("peers-{i}.json"));
        let peers = json!({"grpc": others, "http": [], "udp": [], "quic": []});
        std::fs::write(&file, peers.to_string()).unwrap();
        let chain = format!("municipality/p{i}");
        let file = file.to_str().unwrap().to_string();
        let key = keygen(hosts.dir(), &format!("p{i}"));
        let mut flags = node_flags(&chain, "municipality", &key);
        flags.extend(["--peers-file", &file, "--relay", "--sync-interval", "2s"]);
        hosts.start(i, None, &flags);
    }
    let http = Http::new();
    let bases = hosts.bases();
    let history = Arc::new(History::default());
    let load = Load::start("peers", &bases, STEADY, &history);
    history.wait_more(50, "before the cut");

    hosts.partition(2);
    let cut = Instant::now();
    history.wait_more(100, "p0 and p1 during the cut");
    std::thread::sleep(CUT.saturating_sub(cut.elapsed()));
    hosts.heal(2);
    eprintln!("p2 cut off for {:?}", cut.elapsed());
    assert!(
        history.refused(&bases[2], "no answer") > 0,
        "{}",
        history.summary()
    );

    acked_again(&history, &bases[2], 50);
    load.stop();
    let healed = Instant::now();
    let acked = history.acked();
    let held = wait_within(Duration::from_secs(45), "the peers hold the same", || {
        let held: Vec<_> = (0..3).map(|i| holdings(&http, &hosts.grpc(i))).collect();
        (held[0] == held[1] && held[1] == held[2]).then_some(held.into_iter().next())
    })
    .unwrap();
    for a in &acked {
        assert_eq!(held.get(&a.tx_id), Some(&a.digest.to_hex()), "{}", a.tx_id);
    }
    let synced = "poh_repair_records_total{source=\"sync\",result=\"stored\"}";
    eprintln!(
        "all three hold the same {} transactions {:?} after the load; p2 took {:?} by catch-up",
        held.len(),
        healed.elapsed(),
        http.metric(&bases[2], synced)
    );
    let expect = hosts.dir().join("expect.jsonl");
    history.write_expect(&expect);
    let keys: Vec<_> = (0..3)
        .map(|i| hosts.dir().join(format!("p{i}.key.pub")))
        .collect();
    audit_clean(&bases, &expect, &keys);
    eprintln!("done after {:.1} s", started.elapsed().as_secs_f64());
}

#[test]
fn a_nemesis_killing_and_pausing_nodes_at_random_loses_nothing() {
    let started = Instant::now();
    let Some(mut hosts) = federation(None) else {
        return;
    };
    let seed = match std::env::var("POH_NEMESIS_SEED") {
        Ok(seed) => seed.parse().expect("POH_NEMESIS_SEED is a number"),
        Err(_) => {
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
            u64::from(now.unwrap().subsec_nanos()) ^ u64::from(std::process::id())
        }
    };
    eprintln!("nemesis seed {seed} (POH_NEMESIS_SEED={seed} replays its choices)");
    let history = Arc::new(History::default());
    let load = Load::start("nemesis", &municipalities(&hosts), STEADY, &history);
    history.wait_more(30, "before the nemesis");

    // One node at a time is killed or paused, for 0.5–2.5 s, then 1–2 s with none, until
    // 45 s after the start.
    let until = started + Duration::from_secs(45);
    for step in 0..100u64 {
        let r = random(seed ^ step.wrapping_mul(0x9E37));
        let victim = (r % 4) as usize;
        let hold = Duration::from_millis(500 + (r >> 8) % 2_000);
        let calm = Duration::from_millis(1_000 + (r >> 32) % 1_000);
        if Instant::now() + hold + calm > until {
            break;
        }
        let kill = (r >> 24).is_multiple_of(2);
        let name = hosts.name(victim).to_string();
        eprintln!(
            "nemesis {step}: {} {name} for {hold:?}",
            if kill { "kill -9" } else { "SIGSTOP" }
        );
        if kill {
            hosts.kill(victim);
            std::thread::sleep(hold);
            hosts.restart(victim);
        } else {
            hosts.pause(victim);
            std::thread::sleep(hold);
            hosts.resume(victim);
        }
        std::thread::sleep(calm);
    }
    for i in MUNICIPALITIES {
        acked_again(&history, &hosts.base(i), 20);
    }
    finish(&hosts, load, &history, started);
}

#[test]
fn a_full_municipality_serves_reads_its_parent_seals_on_and_it_resumes_when_the_disk_grows() {
    let started = Instant::now();
    // Declared first, so the nodes are gone before it is unmounted.
    let Some(disk) = Tmpfs::mount(24) else {
        return;
    };
    let Some(hosts) = federation(Some(disk.path())) else {
        return;
    };
    let http = Http::new();
    let (asia, tokyo) = (hosts.base(ASIA), hosts.base(TOKYO));
    let history = Arc::new(History::default());
    let load = Load::start("disk", &municipalities(&hosts), STEADY, &history);
    history.wait_more(30, "before the disk fills");
    // A transaction of tokyo's sealed up to the top before: its proof is served while full.
    let first = history
        .acked()
        .into_iter()
        .find(|a| a.node == tokyo)
        .unwrap();
    let proof = format!("{tokyo}/v1/tx/{}/proof", first.tx_id);
    let up_to_earth = |http: &Http| {
        let (status, proof) = http.get(&proof);
        (status == 200 && proof["links"].as_array().map(Vec::len) == Some(3)).then_some(())
    };
    wait_within(Duration::from_secs(30), "a proof up to earth", || {
        up_to_earth(&http)
    });

    // 64 KiB transactions into tokyo until it refuses one.
    let fill = Load::start(
        "fill",
        std::slice::from_ref(&tokyo),
        (1, 64 << 10, Duration::ZERO),
        &history,
    );
    wait_within(Duration::from_secs(60), "tokyo's disk full (507)", || {
        (history.refused(&tokyo, "507") > 0).then_some(())
    });
    fill.stop();
    let full = Instant::now();

    // Full: tokyo refuses the load and serves reads; asia seals on, and takes osaka's.
    let refused = history.refused(&tokyo, "507");
    let asia_height = http.last_height(&asia).unwrap();
    let osaka_height = http.accepted_height(&asia, "municipality/osaka");
    wait_within(Duration::from_secs(20), "asia seals on", || {
        let asia_now = http.last_height(&asia).unwrap();
        let osaka_now = http.accepted_height(&asia, "municipality/osaka");
        (asia_now >= asia_height + 5 && osaka_now > osaka_height).then_some(())
    });
    let acked = history.acked();
    let stored = acked.iter().rfind(|a| a.node == tokyo).unwrap();
    let read = http.get_ok(&format!("{tokyo}/v1/tx/{}", stored.tx_id));
    assert_eq!(stored_digest(&read), stored.digest, "{read}");
    assert_eq!(read["poh_seq"], stored.poh_seq, "{read}");
    assert_eq!(read["poh_hash"], stored.poh_hash.as_str(), "{read}");
    http.get_ok(&format!("{tokyo}/v1/poh"));
    up_to_earth(&http).expect("tokyo serves proofs while full");
    assert!(
        history.refused(&tokyo, "507") > refused,
        "tokyo stopped refusing the load while full: {}",
        history.summary()
    );

    disk.resize(256);
    eprintln!("tokyo full for {:?}", full.elapsed());
    acked_again(&history, &tokyo, 50);
    finish(&hosts, load, &history, started);
}

#[test]
fn sigterm_under_load_stops_each_level_cleanly_within_2_s() {
    let started = Instant::now();
    let Some(mut hosts) = federation(None) else {
        return;
    };
    let history = Arc::new(History::default());
    // Heavier: four threads, 5 ms apart each.
    let busy = (4, 100, Duration::from_millis(5));
    let load = Load::start("term", &municipalities(&hosts), busy, &history);
    history.wait_more(30, "before the first SIGTERM");
    for i in [TOKYO, ASIA, EARTH, OSAKA] {
        let (clean, took) = hosts.terminate(i);
        eprintln!("{} stopped in {took:?} (exit 0: {clean})", hosts.name(i));
        assert!(clean, "{} did not exit 0 on SIGTERM", hosts.name(i));
        assert!(
            took < Duration::from_secs(2),
            "{} took {took:?} to stop",
            hosts.name(i)
        );
        hosts.restart(i);
        match MUNICIPALITIES.contains(&i) {
            true => acked_again(&history, &hosts.base(i), 20),
            false => history.wait_more(20, &format!("{} restarted", hosts.name(i))),
        }
    }
    finish(&hosts, load, &history, started);
}
