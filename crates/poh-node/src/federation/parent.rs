//! The parent's side of the federation link (`poh.federation.v1.Federation/Link`): accepts
//! the headers of the configured children (SPEC §6) and records each as an item in this
//! chain's PoH through the one ingest pipeline.
//!
//! A child opens a link with `Hello`; the parent answers with the height it expects next
//! (`Welcome`), which is how a child that was cut off resumes. Each header is then checked —
//! its signature by the child's configured key, its height and `prev_header_hash` against the
//! last accepted one, its entries against `poh_end_hash`, `poh_hashes`, `items_root` and the
//! tick periods — and answered. A header above the next height means heights are missing:
//! the parent asks for them again (`Fetch`). One child's headers are accepted one at a time,
//! so two links of the same child cannot record a height twice.

use std::{collections::HashMap, pin::Pin, sync::Arc, time::Instant};

use futures_util::Stream;
use poh_core::{
    ChainHead, Entry, Hash, Header, HeaderVerifier, Level, recorder::MAX_HASHES_PER_TICK,
};
use poh_proto::federation::{
    self as fed, ChildMessage, ParentMessage, child_message, federation_server, parent_message,
};
use tokio::sync::{Mutex, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use super::{Federation, prove};
use crate::{
    ingress::Services,
    metrics::ChildResult,
    wire::protobuf::{link_to_pb, sealed_from_pb},
};

/// Most entries one child header may carry (a child seals at most this many per header).
pub const MAX_CHILD_ENTRIES: usize = 1 << 16;
/// Most hashes one child header may claim: verifying it costs that many SHA-256 steps.
pub const MAX_CHILD_HASHES: u64 = 1 << 32;
/// How long a new link may take to say `Hello`.
const HELLO_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
/// The largest link message: a header with its entries at their caps fits.
pub const MAX_MESSAGE_BYTES: usize = 16 << 20;

/// One configured child.
struct Child {
    chain_id: String,
    public_key: Vec<u8>,
    /// Held while one of its headers is checked and recorded.
    accepting: Mutex<()>,
}

/// The `Federation` service of a node that has children.
pub(crate) struct Parent {
    services: Services,
    level: Level,
    children: HashMap<String, Arc<Child>>,
}

impl Parent {
    /// The service for `federation`'s children (`None` when it has none).
    pub(crate) fn new(services: &Services, federation: &Federation) -> Option<Self> {
        let level = federation.level.below()?;
        let children = federation
            .children
            .iter()
            .map(|c| {
                let child = Child {
                    chain_id: c.chain_id.clone(),
                    public_key: c.public_key.clone(),
                    accepting: Mutex::new(()),
                };
                (c.chain_id.clone(), Arc::new(child))
            })
            .collect::<HashMap<_, _>>();
        (!children.is_empty()).then(|| Self {
            services: services.clone(),
            level,
            children,
        })
    }

    /// The tonic service, taking messages up to [`MAX_MESSAGE_BYTES`].
    pub(crate) fn into_server(self) -> federation_server::FederationServer<Self> {
        federation_server::FederationServer::new(self)
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES)
    }
}

type LinkStream = Pin<Box<dyn Stream<Item = Result<ParentMessage, Status>> + Send>>;

#[tonic::async_trait]
impl federation_server::Federation for Parent {
    type LinkStream = LinkStream;

    async fn link(
        &self,
        request: Request<Streaming<ChildMessage>>,
    ) -> Result<Response<LinkStream>, Status> {
        let mut inbound = request.into_inner();
        // A link that never says Hello must not hold its stream for ever.
        let first = tokio::time::timeout(HELLO_TIMEOUT, inbound.message())
            .await
            .map_err(|_| Status::deadline_exceeded("no Hello within 10 s"))?;
        let hello = match first? {
            Some(ChildMessage {
                kind: Some(child_message::Kind::Hello(hello)),
            }) => hello,
            _ => return Err(Status::invalid_argument("a link opens with Hello")),
        };
        let child = self.children.get(&hello.chain_id).cloned().ok_or_else(|| {
            Status::permission_denied(format!(
                "{:?} is not a child of this node; add it with --child CHAIN_ID=PUBKEY_FILE",
                hello.chain_id
            ))
        })?;
        if !(2..=MAX_HASHES_PER_TICK).contains(&hello.hashes_per_tick) {
            return Err(Status::invalid_argument("hashes_per_tick out of range"));
        }
        let verifier = HeaderVerifier {
            chain_id: child.chain_id.clone(),
            level: self.level,
            public_key: child.public_key.clone(),
            hashes_per_tick: hello.hashes_per_tick,
        };
        let next = head(&self.services, &child.chain_id).await?.height;
        let (out, answers) = mpsc::channel(16);
        let _ = out
            .send(Ok(message(parent_message::Kind::Welcome(fed::Welcome {
                next_height: next,
            }))))
            .await;
        tracing::info!(child = %child.chain_id, next_height = next, "child linked");
        let link = Link {
            services: self.services.clone(),
            child,
            verifier,
        };
        tokio::spawn(link.serve(inbound, out));
        Ok(Response::new(Box::pin(ReceiverStream::new(answers))))
    }

    async fn prove(
        &self,
        request: Request<fed::ProveRequest>,
    ) -> Result<Response<fed::ProveResponse>, Status> {
        let hash = Hash::from_slice(&request.into_inner().header_hash)
            .ok_or_else(|| Status::invalid_argument("header_hash must be 32 bytes"))?;
        let own = self
            .services
            .read(move |store| {
                let Some(child) = store.child_header_by_hash(&hash)? else {
                    return Ok(None);
                };
                prove::own_link(store, child.entry_index, child.recorded_at_seq)
            })
            .await
            .map_err(|e| internal(&e))?;
        let mut links = Vec::new();
        if let Some(own) = own {
            let header_hash = own.header.hash();
            links.push(own);
            if let Some(up) = &self.services.upward {
                links.extend(up.links_above(header_hash).await);
            }
        }
        Ok(Response::new(fed::ProveResponse {
            links: links.iter().map(link_to_pb).collect(),
        }))
    }
}

/// What `chain_id`'s next accepted header must continue.
async fn head(services: &Services, chain_id: &str) -> Result<ChainHead, Status> {
    let id = chain_id.to_string();
    let head = services
        .read(move |store| store.child_head(&id))
        .await
        .map_err(|e| internal(&e))?;
    Ok(head.unwrap_or_else(|| ChainHead::genesis(chain_id)))
}

fn internal(e: &dyn std::fmt::Display) -> Status {
    tracing::error!(error = %e, "federation link failed");
    Status::internal("internal error")
}

fn message(kind: parent_message::Kind) -> ParentMessage {
    ParentMessage { kind: Some(kind) }
}

/// One child's open link.
struct Link {
    services: Services,
    child: Arc<Child>,
    verifier: HeaderVerifier,
}

impl Link {
    async fn serve(
        self,
        mut inbound: Streaming<ChildMessage>,
        out: mpsc::Sender<Result<ParentMessage, Status>>,
    ) {
        loop {
            let sealed = match inbound.message().await {
                Ok(Some(ChildMessage {
                    kind: Some(child_message::Kind::Header(sealed)),
                })) => sealed,
                Ok(None) => return,
                Ok(Some(_)) => {
                    let _ = out
                        .send(Err(Status::invalid_argument("only headers follow Hello")))
                        .await;
                    return;
                }
                Err(status) => {
                    tracing::debug!(child = %self.child.chain_id, %status, "child link closed");
                    return;
                }
            };
            let answer = match self.accept(sealed).await {
                Ok(kind) => Ok(message(kind)),
                Err(status) => Err(status),
            };
            let failed = answer.is_err();
            if out.send(answer).await.is_err() || failed {
                return;
            }
        }
    }

    /// Checks and records one header; the answer to send.
    async fn accept(&self, sealed: fed::SealedHeader) -> Result<parent_message::Kind, Status> {
        let metrics = &self.services.metrics.federation;
        let _one_at_a_time = self.child.accepting.lock().await;
        let head = head(&self.services, &self.child.chain_id).await?;
        let (header, entries) = match sealed_from_pb(sealed) {
            Ok(decoded) => decoded,
            Err(why) => return Ok(self.reject(None, &head, format!("undecodable: {why}"))),
        };
        if header.height < head.height {
            return self.repeated(header, &head).await;
        }
        if header.height > head.height {
            // Heights are missing: ask for them again, from the first one.
            metrics.child_header(&self.child.chain_id, ChildResult::Rejected);
            tracing::info!(
                child = %self.child.chain_id,
                got = header.height,
                expected = head.height,
                "child header skips heights; fetching the missing ones"
            );
            return Ok(parent_message::Kind::Fetch(fed::Fetch {
                from_height: head.height,
            }));
        }
        // Bounded before any hashing: the entries' own counts, not only the header's claim.
        let hashes = entries
            .iter()
            .fold(0u64, |sum, e| sum.saturating_add(e.num_hashes));
        if entries.len() > MAX_CHILD_ENTRIES
            || header.poh_hashes > MAX_CHILD_HASHES
            || hashes > MAX_CHILD_HASHES
        {
            let why = "covers more entries or hashes than a header may".to_string();
            return Ok(self.reject(Some(header.height), &head, why));
        }
        let verified = self.verify(&head, &header, entries).await?;
        let after = match verified {
            Ok(after) => after,
            Err(why) => return Ok(self.reject(Some(header.height), &head, why)),
        };
        let height = header.height;
        let (seq, poh_hash) = self
            .services
            .pipeline
            .record_child(header, after.hashes_in_tick)
            .await
            .map_err(|e| Status::unavailable(e.to_string()))?;
        metrics.child_header(&self.child.chain_id, ChildResult::Accepted);
        tracing::debug!(child = %self.child.chain_id, height, recorded_at_seq = seq, "child header accepted");
        Ok(parent_message::Kind::Ack(fed::HeaderAck {
            height,
            result: fed::HeaderResult::Accepted as i32,
            message: String::new(),
            recorded_at_seq: seq,
            poh_hash: poh_hash.0.to_vec(),
            next_height: height + 1,
        }))
    }

    /// The full check, on the blocking pool (it hashes every covered entry); its time is
    /// `poh_verify_latency_seconds`.
    async fn verify(
        &self,
        head: &ChainHead,
        header: &Header,
        entries: Vec<Entry>,
    ) -> Result<Result<ChainHead, String>, Status> {
        let (verifier, head, header) = (self.verifier.clone(), head.clone(), header.clone());
        let latency = self.services.metrics.ingest.verify_latency.clone();
        tokio::task::spawn_blocking(move || {
            let started = Instant::now();
            let result = verifier.verify(&head, &header, &entries);
            latency.record(started.elapsed().as_secs_f64());
            result.map_err(|e| e.to_string())
        })
        .await
        .map_err(|e| internal(&e))
    }

    /// A header at a height already accepted: a duplicate when it is the same header.
    async fn repeated(
        &self,
        header: Header,
        head: &ChainHead,
    ) -> Result<parent_message::Kind, Status> {
        let hash = header.hash();
        let found = self
            .services
            .read(move |store| store.child_header_by_hash(&hash))
            .await
            .map_err(|e| internal(&e))?;
        match found {
            Some(stored) if stored.header.chain_id == self.child.chain_id => {
                self.services
                    .metrics
                    .federation
                    .child_header(&self.child.chain_id, ChildResult::Duplicate);
                Ok(parent_message::Kind::Ack(fed::HeaderAck {
                    height: header.height,
                    result: fed::HeaderResult::Duplicate as i32,
                    message: String::new(),
                    recorded_at_seq: stored.recorded_at_seq,
                    poh_hash: stored.poh_hash.0.to_vec(),
                    next_height: head.height,
                }))
            }
            _ => {
                let why = format!(
                    "height {} is already accepted with another header",
                    header.height
                );
                Ok(self.reject(Some(header.height), head, why))
            }
        }
    }

    fn reject(&self, height: Option<u64>, head: &ChainHead, why: String) -> parent_message::Kind {
        self.services
            .metrics
            .federation
            .child_header(&self.child.chain_id, ChildResult::Rejected);
        tracing::warn!(child = %self.child.chain_id, ?height, reason = %why, "child header rejected");
        parent_message::Kind::Ack(fed::HeaderAck {
            height: height.unwrap_or(head.height),
            result: fed::HeaderResult::Rejected as i32,
            message: why,
            recorded_at_seq: 0,
            poh_hash: Vec::new(),
            next_height: head.height,
        })
    }
}
