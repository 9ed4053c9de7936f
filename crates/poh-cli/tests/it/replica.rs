//! Replicas (SPEC §10) against real `poh serve` processes: a replica that has copied its
//! primary's chain answers every read with the primary's very bytes, and refuses every write
//! on every transport, naming the primary.

use std::{path::Path, time::Duration};

use futures_util::StreamExt as _;
use poh_proto::v1::{
    self as pb, dag_service_client::DagServiceClient, poh_service_client::PohServiceClient,
};
use prost::Message as _;
use serde_json::{Value, json};

use crate::common::{Http, Served, quic_pin, serve_flags, stop, text, wait_for, wait_within};

/// Transactions written to the primary.
const TXS: u64 = 10_000;

/// A primary that seals a header every second at most, and a replica following it.
fn pair(dir: &Path) -> (Served, Served) {
    let primary = serve_flags(
        &dir.join("primary"),
        &["--min-batch-interval", "0.2", "--max-batch-interval", "1"],
    );
    let replica = serve_flags(&dir.join("replica"), &["--follow", &primary.grpc]);
    (primary, replica)
}

fn id(i: u64) -> String {
    format!("t{i}")
}

/// Transaction `i`: sixteen holders; every 97th names a parent never sent, so it stays
/// PENDING; every 7th names two earlier ones of its own group of writes (groups start at
/// multiples of 200), so the DAG has links of its own besides those to the tips.
fn tx(i: u64) -> pb::Tx {
    let parent_ids = if i % 97 == 5 {
        vec![format!("missing-{i}")]
    } else if i % 7 == 3 && i % 200 >= 13 {
        vec![id(i - 1), id(i - 13)]
    } else {
        Vec::new()
    };
    pb::Tx {
        tx_id: id(i),
        holder_id: format!("h{}", i % 16),
        timestamp: 1_700_000_000.0 + i as f64 / 7.0,
        payload: format!("p{i}:{}", "x".repeat((i % 50) as usize)).into_bytes(),
        parent_ids,
        ..pb::Tx::default()
    }
}

fn json_of(tx: &pb::Tx) -> Value {
    use base64::{Engine as _, engine::general_purpose::STANDARD as B64};
    json!({"tx_id": tx.tx_id, "holder_id": tx.holder_id, "timestamp": tx.timestamp,
           "payload_b64": B64.encode(&tx.payload), "parent_ids": tx.parent_ids})
}

async fn grpc(addr: &str) -> PohServiceClient<tonic::transport::Channel> {
    PohServiceClient::connect(format!("http://{addr}"))
        .await
        .unwrap()
        .max_decoding_message_size(64 << 20)
}

async fn dag(addr: &str) -> DagServiceClient<tonic::transport::Channel> {
    DagServiceClient::connect(format!("http://{addr}"))
        .await
        .unwrap()
}

/// Writes transactions `ids` over one transport of the primary, checking each is stored.
async fn write(primary: (String, String), how: &'static str, ids: Vec<u64>) {
    let (base, addr) = primary;
    let client = reqwest::Client::new();
    match how {
        "stream" => {
            let mut acks = grpc(&addr)
                .await
                .broadcast_stream(futures_util::stream::iter(ids.into_iter().map(tx)))
                .await
                .unwrap()
                .into_inner();
            while let Some(ack) = acks.message().await.unwrap() {
                assert_eq!(ack.code, pb::AckCode::Stored as i32, "{ack:?}");
            }
        }
        "batch" => {
            let batch: Vec<Value> = ids.into_iter().map(|i| json_of(&tx(i))).collect();
            let r = client
                .post(format!("{base}/v1/tx/batch"))
                .json(&batch)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
            for result in r.json::<Vec<Value>>().await.unwrap() {
                assert_eq!(result["status"], "stored", "{result}");
            }
        }
        "post" => {
            for i in ids {
                let r = client
                    .post(format!("{base}/v1/tx"))
                    .json(&json_of(&tx(i)))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
            }
        }
        "unary" => {
            let mut client = grpc(&addr).await;
            for i in ids {
                let ack = client.broadcast(tx(i)).await.unwrap().into_inner();
                assert_eq!(ack.code, pb::AckCode::Stored as i32, "{ack:?}");
            }
        }
        "dag" => {
            let mut client = dag(&addr).await;
            for i in ids {
                let t = tx(i);
                let request = pb::TxRequest {
                    tx_id: t.tx_id,
                    payload: String::from_utf8(t.payload).unwrap(),
                    parent_ids: t.parent_ids,
                    holder_id: t.holder_id,
                    timestamp: t.timestamp,
                    ..pb::TxRequest::default()
                };
                let answer = client.submit_transaction(request).await.unwrap();
                assert_eq!(answer.get_ref().status, "accepted", "{answer:?}");
            }
        }
        _ => unreachable!(),
    }
}

/// The two answers must be the same bytes; on a difference, says where.
fn same(what: &str, primary: &[u8], replica: &[u8]) {
    if primary == replica {
        return;
    }
    let at = primary
        .iter()
        .zip(replica)
        .position(|(a, b)| a != b)
        .unwrap_or(primary.len().min(replica.len()));
    // Text answers are shown as text, protobuf ones in hex.
    let around = |b: &[u8]| {
        let part = &b[at.saturating_sub(120).min(b.len())..(at + 120).min(b.len())];
        match std::str::from_utf8(b) {
            Ok(_) => text(part),
            Err(_) => hex::encode(part),
        }
    };
    panic!(
        "{what}: the replica's answer ({} bytes) differs from the primary's ({} bytes) at byte \
         {at}:\n  primary: …{}…\n  replica: …{}…",
        replica.len(),
        primary.len(),
        around(primary),
        around(replica)
    );
}

/// Both lists, element by element.
fn same_all(what: &str, primary: &[Vec<u8>], replica: &[Vec<u8>]) {
    assert_eq!(primary.len(), replica.len(), "{what}: how many");
    for (k, (p, r)) in primary.iter().zip(replica).enumerate() {
        same(&format!("{what} #{k}"), p, r);
    }
}

/// The same message, or the same refusal (code and message), from both.
fn same_grpc<T: prost::Message>(
    what: &str,
    primary: Result<tonic::Response<T>, tonic::Status>,
    replica: Result<tonic::Response<T>, tonic::Status>,
) {
    let bytes = |answer: Result<tonic::Response<T>, tonic::Status>| match answer {
        Ok(message) => message.into_inner().encode_to_vec(),
        Err(status) => format!("{:?}: {}", status.code(), status.message()).into_bytes(),
    };
    same(what, &bytes(primary), &bytes(replica));
}

/// `GET path` on the primary then the replica: status and body must be the same bytes.
async fn get_same(client: &reqwest::Client, bases: &(String, String), path: &str) -> Vec<u8> {
    let get = async |base: &str| {
        let r = client.get(format!("{base}{path}")).send().await.unwrap();
        let status = r.status().as_u16();
        let mut body = status.to_string().into_bytes();
        body.push(b' ');
        body.extend_from_slice(&r.bytes().await.unwrap());
        body
    };
    let (primary, replica) = (get(&bases.0).await, get(&bases.1).await);
    same(&format!("GET {path}"), &primary, &replica);
    primary
}

/// Every record `Sync` streams from seq 0, page after page, encoded.
async fn sync_all(addr: &str) -> Vec<Vec<u8>> {
    let mut client = grpc(addr).await;
    let (mut all, mut from) = (Vec::new(), 0);
    loop {
        let request = pb::SyncRequest {
            from_seq: from,
            limit: 10_000,
        };
        let mut stream = client.sync(request).await.unwrap().into_inner();
        let before = all.len();
        while let Some(record) = stream.message().await.unwrap() {
            from = record.poh_seq + 1;
            all.push(record.encode_to_vec());
        }
        if all.len() == before {
            return all;
        }
    }
}

/// What `Subscribe` from seq 0 streams up to seq `last`: the seqs, and the records encoded.
async fn subscribed(addr: &str, last: u64) -> (Vec<u64>, Vec<Vec<u8>>) {
    let request = pb::SubscribeRequest { from_seq: 0 };
    let mut stream = grpc(addr).await.subscribe(request).await.unwrap();
    let (mut seqs, mut records) = (Vec::new(), Vec::new());
    while seqs.last() != Some(&last) {
        let record = tokio::time::timeout(Duration::from_secs(30), stream.get_mut().message())
            .await
            .expect("the subscription went quiet")
            .unwrap()
            .expect("the subscription ended");
        seqs.push(record.poh_seq);
        records.push(record.encode_to_vec());
    }
    (seqs, records)
}

/// The first `n` `event: tx` events of `GET /v1/events?from_seq=0`, as sent. Header events
/// are left out: they are sent live, as each node stores each header, so where they fall
/// between transactions differs from one stream to the next.
async fn events(base: &str, n: usize) -> Vec<Vec<u8>> {
    let client = reqwest::Client::new();
    let mut r = client
        .get(format!("{base}/v1/events?from_seq=0"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let (mut buf, mut found) = (Vec::<u8>::new(), Vec::new());
    while found.len() < n {
        let chunk = tokio::time::timeout(Duration::from_secs(30), r.chunk())
            .await
            .expect("the event stream went quiet")
            .unwrap()
            .expect("the event stream ended");
        buf.extend_from_slice(&chunk);
        while let Some(end) = buf.windows(2).position(|w| w == b"\n\n") {
            let event: Vec<u8> = buf.drain(..end + 2).collect();
            if event.split(|b| *b == b'\n').any(|l| l == b"event: tx") {
                found.push(event);
            }
        }
    }
    found.truncate(n);
    found
}

/// The export's lines through its first `headers` headers (each header line is followed by
/// its entries and child headers).
fn through_headers(export: &[u8], headers: usize) -> &[u8] {
    let (mut seen, mut end) = (0, 0);
    for line in export.split_inclusive(|b| *b == b'\n') {
        if line.starts_with(b"{\"header\"") {
            if seen == headers {
                break;
            }
            seen += 1;
        }
        end += line.len();
    }
    assert_eq!(seen, headers, "the export holds {seen} headers");
    &export[..end]
}

/// 10,000 transactions of every wire, with DAG links and PENDING ones, written to a primary:
/// once its replica has copied them and the header sealing them, every read the replica
/// serves is the primary's answer, byte for byte, below a bound both hold (the primary goes
/// on ticking and sealing empty headers meanwhile).
#[test]
fn a_replica_answers_every_read_as_its_primary_does() {
    let dir = tempfile::tempdir().unwrap();
    let (primary, replica) = pair(dir.path());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .unwrap();
    let started = std::time::Instant::now();
    let nodes = (primary.base.clone(), primary.grpc.clone());
    // (transport, first, end, clients): groups start at multiples of 200 (see `tx`). Single
    // writes come from several clients at once, so a parent may come after its child, which
    // waits PENDING for it meanwhile.
    let groups: [(_, u64, u64, usize); 10] = [
        ("stream", 0, 2000, 1),
        ("stream", 2000, 4000, 1),
        ("batch", 4000, 5000, 1),
        ("batch", 5000, 6000, 1),
        ("batch", 6000, 7000, 1),
        ("batch", 7000, 8000, 1),
        ("post", 8000, 8400, 8),
        ("unary", 8400, 8800, 8),
        ("dag", 8800, 9000, 4),
        ("stream", 9000, 10_000, 1),
    ];
    runtime.block_on(async {
        let mut writers = tokio::task::JoinSet::new();
        for (how, from, to, clients) in groups {
            for k in 0..clients {
                let ids = (from + k as u64..to).step_by(clients).collect();
                writers.spawn(write(nodes.clone(), how, ids));
            }
        }
        while let Some(done) = writers.join_next().await {
            done.unwrap();
        }
    });
    eprintln!("{TXS} written in {:?}", started.elapsed());

    let http = Http::new();
    let written = http.get_ok(&format!("{}/v1/replica", primary.base))["entries"]
        .as_u64()
        .unwrap();
    let sealed = wait_for("the primary to seal a header over every write", || {
        let height = http.last_height(&primary.base)?;
        let page = http.get_ok(&format!(
            "{}/v1/headers?from={height}&limit=1",
            primary.base
        ));
        (page["headers"][0]["poh_end"].as_u64()? >= written).then_some(height)
    });
    wait_within(
        Duration::from_secs(120),
        "the replica to copy it all",
        || {
            let at = http.get_ok(&format!("{}/v1/replica", replica.base));
            let page = http.get_ok(&format!(
                "{}/v1/headers?from={sealed}&limit=1",
                replica.base
            ));
            let copied = at["entries"].as_u64()? >= written && page["headers"][0].is_object();
            copied.then_some(())
        },
    );
    eprintln!("copied by {:?}", started.elapsed());

    // The bounds: what the replica holds now, which the primary holds too.
    let poh = http.get_ok(&format!("{}/v1/poh", replica.base));
    let entries = poh["entries"].as_u64().unwrap();
    let headers = http.headers(&replica.base).len();
    let header_list = http.headers(&primary.base);
    assert!(headers > sealed as usize);
    let primary_poh = http.get_ok(&format!("{}/v1/poh", primary.base));
    assert_eq!(poh["chain_id"], primary_poh["chain_id"]);

    let bases = (primary.base.clone(), replica.base.clone());
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let ids: Vec<String> = (0..TXS).map(id).collect();
    let sample: Vec<&String> = ids.iter().step_by(37).collect();
    let pending: Vec<&String> = ids.iter().skip(5).step_by(97).collect();
    runtime.block_on(async {
        // The chain: entries page by page, each checked against the replica's /v1/poh.
        let (mut mixins, mut last_hash) = (0, String::new());
        for from in (0..entries).step_by(1000) {
            let limit = 1000.min(entries - from);
            let path = format!("/v1/poh/entries?from={from}&limit={limit}");
            let page = get_same(&client, &bases, &path).await;
            let page: Value = serde_json::from_slice(&page[4..]).unwrap();
            for entry in page["entries"].as_array().unwrap() {
                mixins += entry["mixins"].as_array().unwrap().len() as u64;
                last_hash = entry["hash"].as_str().unwrap().to_string();
            }
        }
        assert_eq!(poh["seq"], mixins, "/v1/poh seq: {poh}");
        assert_eq!(poh["hash"], last_hash.as_str(), "/v1/poh hash: {poh}");
        assert!(mixins >= TXS);

        // Headers: in pages, one by one, and the export through them.
        for from in (0..headers).step_by(100) {
            let limit = 100.min(headers - from);
            get_same(
                &client,
                &bases,
                &format!("/v1/headers?from={from}&limit={limit}"),
            )
            .await;
        }
        for header in &header_list[..headers] {
            let header_id = header["header_id"].as_str().unwrap();
            get_same(&client, &bases, &format!("/v1/headers/{header_id}")).await;
        }
        let export = async |base: &str| {
            let r = client
                .get(format!("{base}/v1/export"))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
            r.bytes().await.unwrap()
        };
        let (p, r) = (export(&primary.base).await, export(&replica.base).await);
        same(
            "GET /v1/export",
            through_headers(&p, headers),
            through_headers(&r, headers),
        );

        // Every transaction, and a sample's children and proofs.
        let answers: Vec<Vec<u8>> = futures_util::stream::iter(&ids)
            .map(|id| {
                let (client, bases, path) = (&client, &bases, format!("/v1/tx/{id}"));
                async move { get_same(client, bases, &path).await }
            })
            .buffered(16)
            .collect()
            .await;
        let mut statuses = std::collections::BTreeMap::<String, usize>::new();
        let mut linked = 0;
        for answer in &answers {
            assert!(answer.starts_with(b"200 "), "{}", text(answer));
            let tx: Value = serde_json::from_slice(&answer[4..]).unwrap();
            *statuses.entry(tx["status"].to_string()).or_default() += 1;
            linked += usize::from(!tx["dag_parents"].as_array().unwrap().is_empty());
        }
        eprintln!("statuses {statuses:?}, {linked} with DAG parents");
        assert_eq!(statuses.get("\"PENDING\""), Some(&pending.len()));
        assert!(linked > TXS as usize / 2, "{linked} linked");
        for path in ["/v1/tx/never-stored", "/v1/tx/never-stored/proof"] {
            assert!(get_same(&client, &bases, path).await.starts_with(b"404 "));
        }
        let mut with_children = 0;
        for id in sample.iter().chain(&pending) {
            get_same(&client, &bases, &format!("/v1/tx/{id}/proof")).await;
            let children = get_same(&client, &bases, &format!("/v1/tx/{id}/children")).await;
            assert!(children.starts_with(b"200 "), "children of {id}");
            with_children += usize::from(!children.ends_with(b"\"children\":[]}"));
        }
        assert!(with_children > 0, "some sampled transaction has children");

        // gRPC reads, and holders' lists on both wires.
        let (mut p, mut r) = (grpc(&primary.grpc).await, grpc(&replica.grpc).await);
        let (mut pd, mut rd) = (dag(&primary.grpc).await, dag(&replica.grpc).await);
        let unknown = "never-stored".to_string();
        for id in sample.iter().chain(&pending).copied().chain([&unknown]) {
            let request = pb::GetTxRequest { tx_id: id.clone() };
            let (a, b) = (p.get_tx(request.clone()).await, r.get_tx(request).await);
            if id == &unknown {
                assert_eq!(a.as_ref().unwrap_err().code(), tonic::Code::NotFound);
            }
            same_grpc(&format!("GetTx {id}"), a, b);
            let request = pb::StatusRequest { tx_id: id.clone() };
            let (a, b) = (
                pd.query_transaction_status(request.clone()).await,
                rd.query_transaction_status(request).await,
            );
            same_grpc(&format!("QueryTransactionStatus {id}"), a, b);
        }
        for holder in ["h0", "h5", "h15"] {
            let path = format!("/v1/tx?holder_id={holder}&limit=1000");
            let answer = get_same(&client, &bases, &path).await;
            assert!(answer.starts_with(b"200 {\"transactions\":[{"), "{path}");
            let request = pb::ListRequest {
                holder_id: holder.into(),
                from_seq: 0,
                limit: 1000,
            };
            let (a, b) = (p.list(request.clone()).await, r.list(request).await);
            assert!(a.as_ref().is_ok_and(|l| !l.get_ref().records.is_empty()));
            same_grpc(&format!("List {holder}"), a, b);
        }

        // The streams: Sync over the whole chain, Subscribe and the SSE events.
        let (a, b) = (sync_all(&primary.grpc).await, sync_all(&replica.grpc).await);
        assert_eq!(a.len() as u64, mixins);
        same_all("Sync from 0", &a, &b);
        let (a, b) = (
            subscribed(&primary.grpc, mixins - 1).await,
            subscribed(&replica.grpc, mixins - 1).await,
        );
        assert!(a.0.iter().copied().eq(0..mixins), "every seq, in order");
        assert_eq!(a.0, b.0, "Subscribe: the seqs");
        same_all("Subscribe from 0", &a.1, &b.1);
        let n = mixins as usize;
        let (a, b) = (
            events(&primary.base, n).await,
            events(&replica.base, n).await,
        );
        same_all("GET /v1/events", &a, &b);
    });
    let at = http.get_ok(&format!("{}/v1/replica", replica.base));
    assert_eq!(at["primary"], primary.grpc.as_str(), "{at}");
    eprintln!("compared by {:?}", started.elapsed());
    stop(replica);
    stop(primary);
}

/// A write sent to a replica over each transport is refused there, naming the primary (or
/// counted, for UDP, which has no answer), and stored nowhere; the replica still holds what
/// it copied.
#[test]
fn a_replica_refuses_writes_on_every_transport_and_names_its_primary() {
    let dir = tempfile::tempdir().unwrap();
    let (primary, replica) = pair(dir.path());
    let http = Http::new();
    let named = primary.grpc.as_str();
    // One copied transaction: "nothing stored" below is a replica that does store copies.
    let copied = json_of(&tx(0));
    assert_eq!(
        http.post(&format!("{}/v1/tx", primary.base), &copied),
        Some(201)
    );
    wait_for("the replica to copy t0", || {
        (http.get(&format!("{}/v1/tx/t0", replica.base)).0 == 200).then_some(())
    });

    let refused = |what: &str| pb::Tx {
        tx_id: format!("refused-{what}"),
        ..tx(1)
    };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let client = reqwest::Client::new();
        for (path, body) in [
            ("/v1/tx", json_of(&refused("http"))),
            ("/v1/tx/batch", json!([json_of(&refused("batch"))])),
        ] {
            let r = client
                .post(format!("{}{path}", replica.base))
                .json(&body)
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            let answer: Value = r.json().await.unwrap();
            assert_eq!(status, 421, "POST {path}: {answer}");
            assert_eq!(answer["error"], "read_only", "POST {path}: {answer}");
            assert_eq!(answer["primary"], named, "POST {path}: {answer}");
        }

        let mut poh = grpc(&replica.grpc).await;
        let names_primary = |what: &str, status: tonic::Status| {
            assert_eq!(
                status.code(),
                tonic::Code::FailedPrecondition,
                "{what}: {status:?}"
            );
            assert!(status.message().contains(named), "{what}: {status:?}");
        };
        let status = poh.broadcast(refused("grpc")).await.unwrap_err();
        names_primary("Broadcast", status);
        let stream = futures_util::stream::iter([refused("stream")]);
        let status = match poh.broadcast_stream(stream).await {
            Err(status) => status,
            Ok(acks) => acks.into_inner().message().await.unwrap_err(),
        };
        names_primary("BroadcastStream", status);
        let mut dag = dag(&replica.grpc).await;
        let request = pb::TxRequest {
            tx_id: "refused-dag".into(),
            payload: "x".into(),
            holder_id: "h".into(),
            timestamp: 1.5,
            ..pb::TxRequest::default()
        };
        let status = dag.submit_transaction(request).await.unwrap_err();
        names_primary("SubmitTransaction", status);

        let pin = quic_pin(&dir.path().join("replica"));
        let trust = poh_node::tls::ServerTrust::Pinned(pin.clone());
        let quic = poh_node::network::client::QuicClient::new(&trust, None).unwrap();
        let acks = quic
            .send(&replica.quic, Some(&pin), &[refused("quic")])
            .await
            .unwrap();
        assert_eq!(acks.len(), 1, "{acks:?}");
        assert!(!acks[0].success, "{acks:?}");
        assert!(acks[0].message.starts_with("read_only"), "{acks:?}");
        assert!(acks[0].message.contains(named), "{acks:?}");

        let udp = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let datagram = serde_json::to_vec(&json_of(&refused("udp"))).unwrap();
        udp.send_to(&datagram, &replica.udp).await.unwrap();
    });
    let series = "poh_tx_rejected_total{transport=\"udp\",reason=\"read_only\"}";
    wait_for("the refused datagram counted", || {
        (http.metric(&replica.base, series)? >= 1.0).then_some(())
    });

    for what in ["http", "batch", "grpc", "stream", "dag", "quic", "udp"] {
        for node in [&replica, &primary] {
            let url = format!("{}/v1/tx/refused-{what}", node.base);
            assert_eq!(http.get(&url).0, 404, "{url} stored");
        }
    }
    let at = http.get_ok(&format!("{}/v1/replica", replica.base));
    assert_eq!(at["primary"], named, "{at}");
    assert_eq!(
        (&at["seq"], &at["primary_seq"]),
        (&json!(1), &json!(1)),
        "{at}"
    );
    let at = http.get_ok(&format!("{}/v1/replica", primary.base));
    assert_eq!(at["primary"], Value::Null, "{at}");
    assert_eq!(at["seq"], 1, "{at}");
    stop(replica);
    stop(primary);
}
