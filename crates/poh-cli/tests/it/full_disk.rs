//! A full disk stops no node. On a real tmpfs mount (so these tests need root, which CI has;
//! elsewhere they say why they skip), `poh serve` is filled until a write is refused; then every
//! transport must refuse writes in its own way while reads, subscriptions and the chain are
//! still served, and once the mount grows the node must take writes again by itself, with
//! nothing acknowledged lost and the whole chain verifying after a restart.

use std::time::Duration;

use serde_json::Value;

use crate::{
    common::{Tmpfs, quic_pin, scrape, serve_flags, signal, wait_within},
    serve::{check_restarted, post_until_refused, tx},
};

/// The value of the sample of `name` (with exactly these `labels`) in a scrape.
fn sample(metrics: &str, name_and_labels: &str) -> Option<f64> {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(name_and_labels)?.trim().parse().ok())
}

#[test]
fn a_full_disk_refuses_writes_serves_reads_and_takes_writes_again_when_it_grows() {
    full_disk("", "kept in reserve");
}

/// Without a reserve, the engine itself meets the full disk (ENOSPC in the middle of a
/// commit): the store reopens from its last commit and the node goes on the same way.
#[test]
fn a_full_disk_met_inside_a_commit_is_waited_out_the_same_way() {
    full_disk("db_reserve_mb = 0\n", "No space left on device");
}

/// Fills a node started with `config`; the log must say the disk is full, naming `cause`.
fn full_disk(config: &str, cause: &str) {
    let Some(disk) = Tmpfs::mount(24) else {
        return;
    };
    let conf = tempfile::tempdir().unwrap();
    let conf_file = conf.path().join("poh.toml");
    std::fs::write(&conf_file, config).unwrap();
    let data = disk.path().join("data");
    let mut node = serve_flags(&data, &["--config", conf_file.to_str().unwrap()]);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let base = node.base.clone();

    // Fill it: 64 KiB transactions until one is refused.
    let (mut acked, refusal) = runtime.block_on(post_until_refused(&base, 2000));
    assert_eq!(refusal.0, 507, "{refusal:?}");
    assert_eq!(refusal.1["error"], "storage_full", "{refusal:?}");
    assert!(
        acked.len() > 10,
        "only {} stored before the disk filled",
        acked.len()
    );
    assert!(node.child.try_wait().unwrap().is_none(), "the node stopped");
    // The log line and the answer leave together; the line is read on another thread.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !node.logged(cause) {
        if std::time::Instant::now() > deadline {
            let log = node.log.lock().unwrap();
            let full: Vec<_> = log.iter().filter(|l| l.contains("full")).collect();
            panic!("the log does not name the cause ({cause}): {full:#?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }

    runtime.block_on(async {
        // Every read is served.
        let first = acked.keys().next().unwrap().clone();
        let got = client
            .get(format!("{base}/v1/tx/{first}"))
            .send()
            .await
            .unwrap();
        assert_eq!(got.status(), 200);
        let poh = client.get(format!("{base}/v1/poh")).send().await.unwrap();
        assert_eq!(poh.status(), 200);
        let mut events = client
            .get(format!("{base}/v1/events?from_seq=0"))
            .send()
            .await
            .unwrap();
        assert_eq!(events.status(), 200);
        let chunk = events.chunk().await.unwrap().unwrap();
        assert!(
            String::from_utf8_lossy(&chunk).contains("event: tx"),
            "a subscriber is served what is stored"
        );
        drop(events);

        // Every transport refuses writes its own way, and says why.
        let still = client
            .post(format!("{base}/v1/tx"))
            .json(&tx("refused-http"))
            .send()
            .await
            .unwrap();
        assert_eq!(still.status(), 507);
        let mut grpc = poh_proto::v1::poh_service_client::PohServiceClient::connect(format!(
            "http://{}",
            node.grpc
        ))
        .await
        .unwrap();
        let refused = grpc
            .broadcast(poh_proto::v1::Tx {
                tx_id: "refused-grpc".into(),
                holder_id: "h".into(),
                timestamp: 1.5,
                payload: b"x".to_vec(),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(
            refused.code(),
            tonic::Code::ResourceExhausted,
            "{refused:?}"
        );
        let pin = quic_pin(&data);
        let quic = poh_node::network::client::QuicClient::new(
            &poh_node::tls::ServerTrust::Pinned(pin.clone()),
            None,
        )
        .unwrap();
        let acks = quic
            .send(
                &node.quic,
                Some(&pin),
                &[poh_proto::v1::Tx {
                    tx_id: "refused-quic".into(),
                    holder_id: "h".into(),
                    timestamp: 1.5,
                    payload: b"x".to_vec(),
                    ..Default::default()
                }],
            )
            .await
            .unwrap();
        assert!(!acks[0].success, "{acks:?}");
        assert!(acks[0].message.starts_with("storage_full"), "{acks:?}");
        let udp = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let datagram = serde_json::to_vec(&tx("refused-udp")).unwrap();
        udp.send_to(&datagram, &node.udp).await.unwrap();
    });
    wait_within(Duration::from_secs(20), "the UDP refusal counted", || {
        let metrics = runtime.block_on(scrape(&base));
        (sample(
            &metrics,
            "poh_tx_rejected_total{transport=\"udp\",reason=\"storage_full\"}",
        ) >= Some(1.0))
        .then_some(())
    });
    let metrics = runtime.block_on(scrape(&base));
    assert_eq!(sample(&metrics, "poh_storage_full"), Some(1.0));

    // Room again: writes resume with no restart.
    disk.resize(128);
    let resumed = wait_within(Duration::from_secs(30), "a write taken again", || {
        runtime.block_on(async {
            let r = client
                .post(format!("{base}/v1/tx"))
                .json(&tx("after"))
                .send()
                .await
                .ok()?;
            (r.status() == 201).then_some(r.json::<Value>().await.unwrap())
        })
    });
    acked.insert("after".into(), resumed);
    for i in 0..20 {
        let id = format!("later-{i}");
        let answer = runtime.block_on(async {
            let r = client
                .post(format!("{base}/v1/tx"))
                .json(&tx(&id))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 201);
            r.json::<Value>().await.unwrap()
        });
        acked.insert(id, answer);
    }
    let metrics = runtime.block_on(scrape(&base));
    assert_eq!(sample(&metrics, "poh_storage_full"), Some(0.0));

    // Nothing acknowledged was lost and the chain verifies, across a restart too.
    runtime.block_on(check_restarted(&base, &acked));
    signal(&node.child, "TERM");
    assert!(node.child.wait().unwrap().success());
    let node = serve_flags(&data, &["--config", conf_file.to_str().unwrap()]);
    runtime.block_on(check_restarted(&node.base, &acked));
}
