//! gRPC: every AckCode from the input that causes it, whole-call status codes, streams, the
//! DAG service and the standard health service.

use poh_core::SigningKey;
use poh_proto::v1::{self as pb, AckCode};
use tonic::Code;

use crate::common::{pb, signed, start, start_with, tx};

#[tokio::test]
async fn every_ack_code_comes_from_the_input_that_causes_it() {
    let node = start_with(|c| c.ingest.max_payload_bytes = 1024).await;
    let mut client = node.grpc().await;
    let mut send = async |t: &poh_core::Tx| client.broadcast(pb(t)).await.unwrap().into_inner();

    let stored = send(&tx("a")).await;
    assert_eq!((stored.success, stored.code()), (true, AckCode::Stored));
    assert_eq!(stored.poh_hash.len(), 32);

    let dup = send(&tx("a")).await;
    assert_eq!((dup.success, dup.code()), (true, AckCode::Duplicate));
    assert_eq!(
        (dup.poh_seq, &dup.poh_hash),
        (stored.poh_seq, &stored.poh_hash)
    );

    let mut other = tx("a");
    other.payload = b"different".to_vec();
    let conflict = send(&other).await;
    assert_eq!(
        (conflict.success, conflict.code()),
        (false, AckCode::Conflict)
    );
    assert!(
        conflict.message.contains("different contents"),
        "{}",
        conflict.message
    );

    let invalid = send(&tx("not valid!")).await;
    assert_eq!((invalid.success, invalid.code()), (false, AckCode::Invalid));
    assert!(invalid.message.contains("tx_id"), "{}", invalid.message);
    assert!(invalid.poh_hash.is_empty());

    let mut big = tx("big");
    big.payload = vec![0; 1025];
    let too_large = send(&big).await;
    assert_eq!(
        (too_large.success, too_large.code()),
        (false, AckCode::TooLarge)
    );

    let key = SigningKey::generate().unwrap();
    let ok = send(&signed("signed", &key)).await;
    assert_eq!(ok.code(), AckCode::Stored);
    let mut forged = signed("forged", &key);
    forged.holder_id = "mallory".into();
    let bad = send(&forged).await;
    assert_eq!((bad.success, bad.code()), (false, AckCode::BadSignature));

    // Nothing refused was stored: only "a" and "signed" are.
    let mut c = node.grpc().await;
    for id in ["big", "forged"] {
        let err = c
            .get_tx(pb::GetTxRequest { tx_id: id.into() })
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::NotFound, "{id}");
    }
    let a = c
        .get_tx(pb::GetTxRequest { tx_id: "a".into() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        a.tx.unwrap().payload,
        tx("a").payload,
        "the conflict left it untouched"
    );
    node.stop().await;
}

#[tokio::test]
async fn fifty_concurrent_identical_submissions_are_stored_once() {
    let node = start().await;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..50 {
        let mut client = node.grpc().await;
        tasks.spawn(async move {
            client
                .broadcast(pb(&tx("same")))
                .await
                .unwrap()
                .into_inner()
        });
    }
    let acks: Vec<pb::Ack> = tasks.join_all().await;
    assert_eq!(acks.len(), 50);
    assert!(acks.iter().all(|a| a.success));
    let stored = acks.iter().filter(|a| a.code() == AckCode::Stored).count();
    assert_eq!(stored, 1, "exactly one submission stores it");
    assert!(
        acks.iter()
            .all(|a| a.poh_seq == acks[0].poh_seq && a.poh_hash == acks[0].poh_hash)
    );
    assert_eq!(
        node.node.pipeline().poh().state.mixins,
        1,
        "PoH-recorded once"
    );
    node.stop().await;
}

#[tokio::test]
async fn broadcast_stream_answers_every_transaction_in_order() {
    let node = start().await;
    let mut client = node.grpc().await;
    // Valid, duplicate and invalid transactions interleaved.
    let txs: Vec<pb::Tx> = (0..3000)
        .map(|i| match i % 10 {
            7 => pb(&tx("bad id")),
            9 => pb(&tx(&format!("s{}", i - 1))),
            _ => pb(&tx(&format!("s{i}"))),
        })
        .collect();
    let expected: Vec<AckCode> = (0..3000)
        .map(|i| match i % 10 {
            7 => AckCode::Invalid,
            9 => AckCode::Duplicate,
            _ => AckCode::Stored,
        })
        .collect();
    let mut acks = client
        .broadcast_stream(futures_util::stream::iter(txs))
        .await
        .unwrap()
        .into_inner();
    let mut codes = Vec::new();
    let mut seqs = Vec::new();
    while let Some(ack) = acks.message().await.unwrap() {
        if ack.code() == AckCode::Stored {
            seqs.push(ack.poh_seq);
        }
        codes.push(ack.code());
    }
    assert_eq!(codes, expected);
    let mut sorted = seqs.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(
        sorted.len(),
        seqs.len(),
        "every stored transaction has its own poh_seq"
    );
    assert_eq!(seqs, sorted, "the stream's order is the storage order");
    node.stop().await;
}

#[tokio::test]
async fn get_tx_sync_and_repair() {
    let node = start().await;
    let mut client = node.grpc().await;
    for i in 0..30 {
        client.broadcast(pb(&tx(&format!("t{i}")))).await.unwrap();
    }
    let record = client
        .get_tx(pb::GetTxRequest { tx_id: "t3".into() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(record.tx.as_ref().unwrap().tx_id, "t3");
    assert_eq!(record.status(), pb::TxStatus::Ordered);
    assert_eq!(record.poh_seq, 3);
    assert!(record.received_at > 1.6e9);
    assert!(record.header_id.is_empty());

    let err = client
        .get_tx(pb::GetTxRequest {
            tx_id: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    let err = client
        .get_tx(pb::GetTxRequest {
            tx_id: "nope".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);

    let mut stream = client
        .sync(pb::SyncRequest {
            from_seq: 5,
            limit: 10,
        })
        .await
        .unwrap()
        .into_inner();
    let mut seqs = Vec::new();
    while let Some(r) = stream.message().await.unwrap() {
        seqs.push(r.poh_seq);
    }
    assert_eq!(seqs, (5..15).collect::<Vec<_>>());
    let err = client
        .sync(pb::SyncRequest {
            from_seq: 0,
            limit: 10_001,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);

    let repaired = client
        .repair(pb::RepairRequest {
            tx_ids: vec!["t1".into(), "unknown".into(), "t29".into()],
        })
        .await
        .unwrap()
        .into_inner();
    let ids: Vec<_> = repaired
        .records
        .iter()
        .map(|r| r.tx.as_ref().unwrap().tx_id.as_str())
        .collect();
    assert_eq!(ids, ["t1", "t29"]);
    node.stop().await;
}

#[tokio::test]
async fn dag_service_tracks_pending_until_the_parent_arrives() {
    let node = start().await;
    let mut dag = node.dag().await;
    let request = |id: &str, parents: &[&str]| pb::TxRequest {
        tx_id: id.into(),
        payload: format!("text of {id}"),
        parent_ids: parents.iter().map(|p| p.to_string()).collect(),
        holder_id: "bob".into(),
        timestamp: 1.5,
        ..Default::default()
    };
    let status = async |dag: &mut pb::dag_service_client::DagServiceClient<_>, id: &str| {
        dag.query_transaction_status(pb::StatusRequest { tx_id: id.into() })
            .await
            .unwrap()
            .into_inner()
    };

    let child = dag
        .submit_transaction(request("child", &["parent"]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(child.status, "accepted");
    let s = status(&mut dag, "child").await;
    assert_eq!(s.status(), pb::TxStatus::Pending);
    assert_eq!(s.parent_ids, ["parent"]);
    assert_eq!(s.poh_hash.len(), 32);
    assert_eq!(
        status(&mut dag, "parent").await.status(),
        pb::TxStatus::Unknown
    );

    let parent = dag
        .submit_transaction(request("parent", &[]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(parent.status, "accepted");
    assert_eq!(
        status(&mut dag, "child").await.status(),
        pb::TxStatus::Ordered
    );
    // A parentless transaction is ORDERED at once and linked to current tips, but never to
    // its own child (the only tip here): that would be a cycle.
    let s = status(&mut dag, "parent").await;
    assert_eq!(s.status(), pb::TxStatus::Ordered);
    assert!(s.parent_ids.is_empty(), "{:?}", s.parent_ids);

    let again = dag
        .submit_transaction(request("parent", &[]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (again.status.as_str(), again.poh_seq),
        ("duplicate", parent.poh_seq)
    );
    let rejected = dag
        .submit_transaction(request("bad id", &[]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(rejected.status, "rejected");
    assert!(rejected.message.contains("tx_id"));
    let err = dag
        .query_transaction_status(pb::StatusRequest {
            tx_id: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    node.stop().await;
}

#[tokio::test]
async fn overload_is_resource_exhausted_and_the_node_recovers() {
    // A 1 MiB queue: a batch of 2,000 ~1 KiB transactions fills it while it commits.
    let node = start_with(|c| c.ingest.queue_bytes = 1 << 20).await;
    let mut saw_exhausted = false;
    for round in 0..20 {
        let mut filler = node.grpc().await;
        let batch: Vec<pb::Tx> = (0..2000)
            .map(|i| {
                let mut t = tx(&format!("fill{round}-{i}"));
                t.payload = vec![7; 1000];
                pb(&t)
            })
            .collect();
        let fill = tokio::spawn(async move {
            let mut acks = filler
                .broadcast_stream(futures_util::stream::iter(batch))
                .await
                .unwrap()
                .into_inner();
            while acks.message().await.unwrap().is_some() {}
        });
        let mut client = node.grpc().await;
        for i in 0..200 {
            match client
                .broadcast(pb(&tx(&format!("probe{round}-{i}"))))
                .await
            {
                Err(status) if status.code() == Code::ResourceExhausted => {
                    assert!(
                        status.message().contains("back off"),
                        "{}",
                        status.message()
                    );
                    saw_exhausted = true;
                    break;
                }
                Err(status) => panic!("unexpected {status:?}"),
                Ok(_) => {}
            }
        }
        fill.await.unwrap();
        if saw_exhausted {
            break;
        }
    }
    assert!(
        saw_exhausted,
        "a full queue refuses with RESOURCE_EXHAUSTED"
    );
    let ack = node
        .grpc()
        .await
        .broadcast(pb(&tx("after")))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        ack.code(),
        AckCode::Stored,
        "served again once the queue drains"
    );
    node.stop().await;
}

#[tokio::test]
async fn the_standard_health_service_reports_serving() {
    use tonic_health::pb::{
        HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
    };
    let node = start().await;
    let channel = tonic::transport::Endpoint::from_shared(format!(
        "http://{}",
        node.node.grpc_addr().unwrap()
    ))
    .unwrap()
    .connect()
    .await
    .unwrap();
    let mut health = HealthClient::new(channel);
    for service in ["", "poh.v1.PohService", "poh.v1.DAGService"] {
        let status = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap()
            .into_inner()
            .status();
        assert_eq!(status, ServingStatus::Serving, "{service:?}");
    }
    node.stop().await;
}

#[tokio::test]
async fn a_request_that_is_not_a_tx_is_invalid_argument_without_internal_detail() {
    let node = start().await;
    let channel = tonic::transport::Endpoint::from_shared(format!(
        "http://{}",
        node.node.grpc_addr().unwrap()
    ))
    .unwrap()
    .connect()
    .await
    .unwrap();
    let mut raw = tonic::client::Grpc::new(channel);
    raw.ready().await.unwrap();
    // A TxRequest's field 3 is a string; in a Tx it is a double: not a Tx at all.
    let not_a_tx = pb::TxRequest {
        parent_ids: vec!["p".into()],
        ..Default::default()
    };
    let codec = tonic_prost::ProstCodec::<pb::TxRequest, pb::Ack>::default();
    let path = http::uri::PathAndQuery::from_static("/poh.v1.PohService/Broadcast");
    let err = raw
        .unary(tonic::Request::new(not_a_tx), path, codec)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert_eq!(err.message(), "the request is not a valid protobuf message");
    node.stop().await;
}
