//! gRPC (SPEC §4): `poh.v1.PohService` and `poh.v1.DAGService`, plus `grpc.health.v1` and
//! server reflection, as one router for the common [`listener`](super::listener).
//!
//! Per-transaction outcomes travel in `Ack`/`TxResponse` with status OK; gRPC status codes are
//! only for whole-call problems. [`observe`] adds metrics, logs, deadlines and error masking
//! around every call.

mod budget;
mod observe;

use std::{pin::Pin, sync::Arc, time::Duration};

use futures_util::{FutureExt as _, Stream, StreamExt as _};
use poh_core::{Tx, validate::check_tx_id};
use poh_proto::v1::{
    self as pb,
    dag_service_server::{DagService, DagServiceServer},
    poh_service_server::{PohService, PohServiceServer},
};
use prost::Message as _;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use super::{
    Services,
    auth::AuthError,
    gate::{self, Refusals},
    limits::Overload,
    listener::ConnLimits,
    queries,
    subscribe::{Page, Start, TxCursor, read_span},
};
use crate::{
    config::GrpcConfig,
    federation::parent::Parent,
    pipeline::{Admission, tx_bytes},
    replica::serve::Primary,
    shared::{SubmitError, Transport, TxResult},
    wire::{
        expired::expired_status,
        protobuf::{ack, record_pb, status_response, tx_from_pb, tx_from_request, tx_response},
    },
};

pub(crate) use observe::ObserveLayer;

/// Most transactions taken from a stream into one pipeline submission.
const STREAM_CHUNK: usize = 1024;
/// Most bytes of transactions taken from a stream into one pipeline submission.
const STREAM_CHUNK_BYTES: usize = 1 << 20;
/// Submissions of one stream awaiting their answers; beyond it the stream stops reading.
const STREAM_IN_FLIGHT: usize = 32;
/// Most records one `Sync` call returns, and most ids one `Repair` call asks for.
pub(crate) const MAX_RECORDS: usize = 10_000;
/// Records read from the store at a time for a `Sync` stream…
const PAGE_RECORDS: usize = 256;
/// …and at most this many bytes of them; also the most bytes of records one `Repair` answer
/// holds (the default message limit is 2 MiB).
pub(crate) const PAGE_BYTES: usize = 1 << 20;

/// Every method served, by path, with its `method` label. Any other path is counted as
/// `other`, so a client cannot grow the label set; ours exist before the first call.
pub(crate) const METHODS: [(&str, &str); 15] = [
    ("/poh.v1.PohService/Broadcast", "Broadcast"),
    ("/poh.v1.PohService/BroadcastStream", "BroadcastStream"),
    ("/poh.v1.PohService/GetTx", "GetTx"),
    ("/poh.v1.PohService/Repair", "Repair"),
    ("/poh.v1.PohService/Sync", "Sync"),
    ("/poh.v1.PohService/Subscribe", "Subscribe"),
    ("/poh.v1.PohService/List", "List"),
    ("/poh.v1.DAGService/SubmitTransaction", "SubmitTransaction"),
    (
        "/poh.v1.DAGService/QueryTransactionStatus",
        "QueryTransactionStatus",
    ),
    ("/poh.federation.v1.Federation/Link", "Link"),
    ("/poh.federation.v1.Federation/Prove", "Prove"),
    ("/poh.replica.v1.Replica/Follow", "Follow"),
    ("/grpc.health.v1.Health/Check", "Check"),
    ("/grpc.health.v1.Health/Watch", "Watch"),
    (
        "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
        "ServerReflectionInfo",
    ),
];

/// The `method` label of a call to `path`.
pub(crate) fn method_label(path: &str) -> &'static str {
    METHODS
        .iter()
        .find(|(served, _)| *served == path)
        .map_or("other", |(_, label)| label)
}

/// The gRPC router: our two services, health and reflection.
pub(crate) async fn router(services: Services, config: &GrpcConfig) -> axum::Router {
    let api = Arc::new(Api {
        services: services.clone(),
    });
    let max = config.max_message_bytes;
    let poh = PohServiceServer::from_arc(api.clone())
        .max_decoding_message_size(max)
        .max_encoding_message_size(max);
    let dag = DagServiceServer::from_arc(api)
        .max_decoding_message_size(max)
        .max_encoding_message_size(max);
    let (health_reporter, health) = tonic_health::server::health_reporter();
    health_reporter.set_serving::<PohServiceServer<Api>>().await;
    health_reporter.set_serving::<DagServiceServer<Api>>().await;
    let mut routes = tonic::service::Routes::new(poh)
        .add_service(dag)
        .add_service(health);
    // Reflection is optional comfort for grpcurl; a descriptor it cannot read only loses that.
    match tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(poh_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()
    {
        Ok(reflection) => routes = routes.add_service(reflection),
        Err(e) => tracing::warn!(error = %e, "gRPC reflection is off"),
    }
    if let Some(parent) = Parent::new(services.link_parts()) {
        routes = routes.add_service(parent.into_server());
    }
    routes = routes.add_service(Primary::new(services.copy_parts()).into_server());
    for (_, method) in METHODS.iter().take(12) {
        services.metrics.preregister_grpc(method);
    }
    // Each call's body counts against a read budget while its messages arrive: the link
    // between chains against its own, every other call against the node's.
    let budgets = (services.buffered.clone(), services.link_buffered.clone());
    let router = routes
        .into_axum_router()
        .layer(axum::middleware::from_fn_with_state(
            budgets,
            budget::budget_body,
        ));
    let router = gate::guard(router, &services, GrpcRefusals);
    router.layer(ObserveLayer::new(services.metrics.clone()))
}

/// How gRPC says no: `RESOURCE_EXHAUSTED`, `UNAUTHENTICATED`, `PERMISSION_DENIED`; the health
/// service is the health path.
#[derive(Clone)]
struct GrpcRefusals;

impl Refusals for GrpcRefusals {
    fn overloaded(&self, why: Overload) -> axum::response::Response {
        Status::resource_exhausted(why.message()).into_http()
    }

    fn unauthenticated(&self, why: AuthError, _path: &str) -> axum::response::Response {
        match why {
            AuthError::Missing => Status::unauthenticated(why.to_string()),
            AuthError::Denied => Status::permission_denied(why.to_string()),
        }
        .into_http()
    }

    fn is_health(&self, path: &str) -> bool {
        path.starts_with("/grpc.health.v1.")
    }
}

/// Connection settings of the gRPC listener.
pub(crate) fn conn_limits(config: &GrpcConfig) -> ConnLimits {
    ConnLimits {
        name: "grpc",
        max_connections: config.max_connections,
        http2_only: true,
        max_concurrent_streams: config.max_concurrent_streams,
        keepalive: (config.keepalive_interval_secs > 0).then(|| {
            (
                Duration::from_secs(config.keepalive_interval_secs),
                Duration::from_secs(config.keepalive_timeout_secs.max(1)),
            )
        }),
        header_read_timeout: Duration::from_secs(30),
        idle_timeout: Duration::from_secs(config.idle_timeout_secs.max(1)),
        alpn: &[b"h2"],
    }
}

/// Both services over the node's shared parts.
pub(crate) struct Api {
    services: Services,
}

type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

fn submit_status(e: SubmitError) -> Status {
    match e {
        SubmitError::Overloaded | SubmitError::StorageFull => {
            Status::resource_exhausted(e.to_string())
        }
        SubmitError::ShuttingDown => Status::unavailable(e.to_string()),
        SubmitError::ReadOnly { .. } => Status::failed_precondition(e.to_string()),
    }
}

fn internal(e: impl std::fmt::Display) -> Status {
    tracing::error!(error = %e, "gRPC call failed");
    Status::internal("internal error")
}

fn check_id(tx_id: &str) -> Result<(), Status> {
    check_tx_id(tx_id).map_err(|rule| Status::invalid_argument(format!("tx_id {rule}")))
}

impl Api {
    async fn submit_one(&self, tx: Tx) -> Result<TxResult, Status> {
        let mut results = self
            .services
            .pipeline
            .submit(Transport::Grpc, vec![tx])
            .await
            .map_err(submit_status)?;
        results
            .pop()
            .ok_or_else(|| internal("the pipeline returned no answer"))
    }
}

#[tonic::async_trait]
impl PohService for Api {
    async fn broadcast(&self, request: Request<pb::Tx>) -> Result<Response<pb::Ack>, Status> {
        let result = self.submit_one(tx_from_pb(request.into_inner())).await?;
        Ok(Response::new(ack(&result)))
    }

    type BroadcastStreamStream = BoxStream<pb::Ack>;

    async fn broadcast_stream(
        &self,
        request: Request<Streaming<pb::Tx>>,
    ) -> Result<Response<Self::BroadcastStreamStream>, Status> {
        let mut incoming = request.into_inner();
        let pipeline = self.services.pipeline.clone();
        let metrics = self.services.metrics.clone();
        let (pending_tx, mut pending_rx) = mpsc::channel(STREAM_IN_FLIGHT);
        let (out_tx, out_rx) = mpsc::channel::<Result<pb::Ack, Status>>(STREAM_CHUNK);

        // Reader: takes whatever has arrived (up to a chunk) as one submission, in order.
        tokio::spawn(async move {
            loop {
                let first = match incoming.message().await {
                    Ok(Some(tx)) => tx,
                    Ok(None) => break,
                    Err(status) => {
                        metrics
                            .ingest
                            .rejected(Transport::Grpc, crate::shared::RejectReason::Malformed);
                        let _ = pending_tx.send(Err(status)).await;
                        break;
                    }
                };
                let mut chunk = vec![tx_from_pb(first)];
                let mut chunk_bytes = tx_bytes(&chunk[0]);
                let mut failed = None;
                while chunk.len() < STREAM_CHUNK && chunk_bytes < STREAM_CHUNK_BYTES {
                    match incoming.message().now_or_never() {
                        Some(Ok(Some(tx))) => {
                            let tx = tx_from_pb(tx);
                            chunk_bytes += tx_bytes(&tx);
                            chunk.push(tx);
                        }
                        Some(Err(status)) => {
                            failed = Some(status);
                            break;
                        }
                        Some(Ok(None)) | None => break,
                    }
                }
                let queued = pipeline
                    .enqueue(Transport::Grpc, chunk, Admission::Wait)
                    .await
                    .map_err(submit_status);
                let stop = queued.is_err();
                if pending_tx.send(queued).await.is_err() || stop {
                    break;
                }
                if let Some(status) = failed {
                    let _ = pending_tx.send(Err(status)).await;
                    break;
                }
            }
        });
        // Writer: answers each submission in the order it was queued.
        tokio::spawn(async move {
            while let Some(queued) = pending_rx.recv().await {
                match queued {
                    Ok(pending) => {
                        let results = match pending.wait().await {
                            Ok(results) => results,
                            Err(e) => {
                                let _ = out_tx.send(Err(submit_status(e))).await;
                                return;
                            }
                        };
                        for result in results {
                            if out_tx.send(Ok(ack(&result))).await.is_err() {
                                return;
                            }
                        }
                    }
                    Err(status) => {
                        let _ = out_tx.send(Err(status)).await;
                        return;
                    }
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(out_rx))))
    }

    async fn get_tx(
        &self,
        request: Request<pb::GetTxRequest>,
    ) -> Result<Response<pb::TxRecord>, Status> {
        let tx_id = request.into_inner().tx_id;
        check_id(&tx_id)?;
        let found = self
            .services
            .read(move |store| match store.tx(&tx_id)? {
                Some(record) => Ok(Ok(record)),
                None => Ok(Err(store.expired(&tx_id)?)),
            })
            .await
            .map_err(internal)?;
        match found {
            Ok(record) => Ok(Response::new(record_pb(record))),
            Err(Some(header_id)) => Err(Status::not_found(format!(
                "expired: the transaction's record left this node's store (TTL); header_id \
                 {header_id} sealed it"
            ))),
            Err(None) => Err(Status::not_found("no transaction with this tx_id")),
        }
    }

    async fn repair(
        &self,
        request: Request<pb::RepairRequest>,
    ) -> Result<Response<pb::RepairResponse>, Status> {
        let ids = request.into_inner().tx_ids;
        if ids.len() > MAX_RECORDS {
            return Err(Status::invalid_argument(format!(
                "at most {MAX_RECORDS} tx_ids per repair request"
            )));
        }
        for id in &ids {
            check_id(id)?;
        }
        // In the order asked, up to PAGE_BYTES (always at least one record): the caller asks
        // again for the ids after the last one answered, so any number of ids fits the
        // message limit.
        let records = self
            .services
            .read(move |store| {
                let mut out = Vec::new();
                let mut bytes = 0;
                for id in &ids {
                    let Some(record) = store.tx(id)? else {
                        continue;
                    };
                    let record = record_pb(record);
                    bytes += record.encoded_len();
                    if bytes > PAGE_BYTES && !out.is_empty() {
                        break;
                    }
                    out.push(record);
                }
                Ok(out)
            })
            .await
            .map_err(internal)?;
        Ok(Response::new(pb::RepairResponse { records }))
    }

    type SyncStream = BoxStream<pb::TxRecord>;

    async fn sync(
        &self,
        request: Request<pb::SyncRequest>,
    ) -> Result<Response<Self::SyncStream>, Status> {
        let pb::SyncRequest { from_seq, limit } = request.into_inner();
        let limit = match limit {
            0 => 1000,
            n if n as usize > MAX_RECORDS => {
                return Err(Status::invalid_argument(format!(
                    "limit is at most {MAX_RECORDS} (0 means 1000)"
                )));
            }
            n => n as usize,
        };
        // Read page by page as the client takes them: a call holds at most two pages.
        let (pages, taken) = mpsc::channel::<Result<Vec<pb::TxRecord>, Status>>(1);
        let services = self.services.clone();
        tokio::spawn(async move {
            let (mut next, mut left) = (from_seq, limit);
            while left > 0 {
                let want = left.min(PAGE_RECORDS);
                let read = services
                    .read(move |store| read_span(store, next, u64::MAX, want, PAGE_BYTES))
                    .await;
                let page = match read {
                    Ok(None) => return,
                    Ok(Some(Page::Txs(records))) => records,
                    // The caller restores them or resumes after them, knowingly.
                    Ok(Some(Page::Expired(run))) => {
                        let _ = pages.send(Err(expired_status(&run))).await;
                        return;
                    }
                    Err(e) => {
                        let _ = pages.send(Err(internal(e))).await;
                        return;
                    }
                };
                left -= page.len();
                next = page.last().map_or(next, |r| r.poh_seq + 1);
                let page = page.into_iter().map(record_pb).collect();
                if pages.send(Ok(page)).await.is_err() {
                    return;
                }
            }
        });
        let stream = ReceiverStream::new(taken).flat_map(|page| {
            let records: Vec<Result<pb::TxRecord, Status>> = match page {
                Ok(records) => records.into_iter().map(Ok).collect(),
                Err(status) => vec![Err(status)],
            };
            futures_util::stream::iter(records)
        });
        Ok(Response::new(Box::pin(stream)))
    }

    type SubscribeStream = BoxStream<pb::TxRecord>;

    async fn subscribe(
        &self,
        request: Request<pb::SubscribeRequest>,
    ) -> Result<Response<Self::SubscribeStream>, Status> {
        let client = request
            .extensions()
            .get::<crate::shared::ClientKey>()
            .copied();
        let from_seq = request.into_inner().from_seq;
        let held = self
            .services
            .subscriptions
            .open(client)
            .map_err(|full| Status::resource_exhausted(full.to_string()))?;
        let cursor = TxCursor::new(&self.services, Start::At(from_seq));
        // The subscription is counted for as long as the stream lives.
        let pages = futures_util::stream::try_unfold((cursor, held), |(mut cursor, held)| async {
            let page = cursor.next_page().await?;
            Ok::<_, crate::NodeError>(page.map(|page| (page, (cursor, held))))
        });
        // Expired records end the stream: the caller restores them or resumes after them.
        let records = pages.flat_map(|page| {
            let items: Vec<Result<pb::TxRecord, Status>> = match page {
                Ok(Page::Txs(records)) => records.into_iter().map(|r| Ok(record_pb(r))).collect(),
                Ok(Page::Expired(run)) => vec![Err(expired_status(&run))],
                Err(e) => vec![Err(internal(e))],
            };
            futures_util::stream::iter(items)
        });
        Ok(Response::new(Box::pin(records)))
    }

    async fn list(
        &self,
        request: Request<pb::ListRequest>,
    ) -> Result<Response<pb::ListResponse>, Status> {
        let pb::ListRequest {
            holder_id,
            from_seq,
            limit,
        } = request.into_inner();
        queries::check_holder(&holder_id).map_err(Status::invalid_argument)?;
        let limit = queries::check_limit(limit as usize).map_err(Status::invalid_argument)?;
        let page = (self.services.list(holder_id, from_seq, limit).await).map_err(internal)?;
        Ok(Response::new(pb::ListResponse {
            records: page.records.into_iter().map(record_pb).collect(),
            next_seq: page.next_seq.unwrap_or(0),
            more: page.next_seq.is_some(),
        }))
    }
}

#[tonic::async_trait]
impl DagService for Api {
    async fn submit_transaction(
        &self,
        request: Request<pb::TxRequest>,
    ) -> Result<Response<pb::TxResponse>, Status> {
        let tx = tx_from_request(request.into_inner());
        let response = tx_response(&self.submit_one(tx).await?);
        Ok(Response::new(response))
    }

    async fn query_transaction_status(
        &self,
        request: Request<pb::StatusRequest>,
    ) -> Result<Response<pb::StatusResponse>, Status> {
        let tx_id = request.into_inner().tx_id;
        check_id(&tx_id)?;
        let id = tx_id.clone();
        let (record, expired) = self
            .services
            .read(move |store| match store.tx(&id)? {
                Some(record) => Ok((Some(record), None)),
                None => match store.expired(&id)? {
                    Some(header_id) => Ok((None, Some((store.lookup(&[&id])?, header_id)))),
                    None => Ok((None, None)),
                },
            })
            .await
            .map_err(internal)?;
        // An expired transaction is still sealed: its record left the hot store, its place
        // in the chain did not.
        if let Some((known, header_id)) = expired
            && let Some(Some(known)) = known.into_iter().next()
        {
            return Ok(Response::new(pb::StatusResponse {
                tx_id,
                status: pb::TxStatus::Sealed as i32,
                message: "expired from this node's store (TTL); its header holds it".into(),
                poh_seq: known.seq,
                poh_hash: known.poh_hash.0.to_vec(),
                parent_ids: Vec::new(),
                header_id,
            }));
        }
        Ok(Response::new(status_response(tx_id, record)))
    }
}
