//! The parent's side of the federation link (`poh.federation.v1.Federation/Link`): accepts
//! the headers of the configured children (SPEC §6) and records each as an item in this
//! chain's PoH through the one ingest pipeline.
//!
//! A child opens a link with `Hello`; the parent answers with the height it expects next
//! (`Welcome`), which is how a child that was cut off resumes. Each header is then checked —
//! its signature by the child's configured key, its height and `prev_header_hash` against the
//! last accepted one, its timestamp against the last one and this node's clock, its entries
//! against `poh_end_hash`, `poh_hashes`, `items_root` and the tick periods of the child's
//! configured `hashes_per_tick` — and answered. A header above the next height means heights
//! are missing: the parent asks for them again (`Fetch`).
//!
//! What a link may cost is bounded before it is spent. Until `Hello` names a child, its
//! first message may be a few KiB; after it, messages are counted against the link's own
//! budget as they arrive and the decoded header while it is checked, so links never take the
//! room of client writes. Each child has one live link: a newer one replaces it. A refused
//! header ends the link, and one refused only after its entries were hashed also keeps the
//! child out for a while, so no caller can make the node hash for it in a loop. When the node
//! stops, every link ends at once.

use std::{
    collections::HashMap,
    net::IpAddr,
    pin::Pin,
    sync::{Arc, Mutex as SyncMutex},
    time::{Duration, Instant},
};

use futures_util::Stream;
use poh_core::{ChainHead, Entry, Hash, Header, HeaderVerifier, Level};
use poh_proto::{
    bounded::MAX_LINK_MESSAGE_BYTES,
    federation::{
        self as fed, ChildMessage, ParentMessage, child_message, federation_server, parent_message,
    },
};
use tokio::sync::{Mutex, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status, Streaming};

use self::checks::{check_timestamp, check_work, decoded_bytes};
pub(crate) use self::parts::LinkParts;
use super::prove::ProveError;
use crate::{
    metrics::ChildResult,
    shared::{ClientKey, Reservation, read_store, unix_now},
    wire::protobuf::{link_to_pb, sealed_from_pb},
};

/// The path of the `Link` call, which the read budget treats apart.
pub const LINK_PATH: &str = "/poh.federation.v1.Federation/Link";
/// Most hashes one child header may claim: verifying it costs that many SHA-256 steps.
pub const MAX_CHILD_HASHES: u64 = 1 << 32;
/// How long a new link may take to say `Hello`.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a child stays out after a header refused once its entries were hashed; doubled
/// for each such refusal in a row, up to [`MAX_PENALTY`].
const FIRST_PENALTY: Duration = Duration::from_secs(2);
const MAX_PENALTY: Duration = Duration::from_secs(60);

mod checks;
mod parts;

/// One configured child.
struct Child {
    chain_id: String,
    public_key: Vec<u8>,
    hashes_per_tick: u64,
    /// Held while one of its headers is checked and recorded.
    accepting: Mutex<()>,
    /// The live link (its number and how to end it); a newer one replaces it.
    live: SyncMutex<Option<(u64, CancellationToken)>>,
    /// Until when the child is kept out, and for how long next time.
    penalty: SyncMutex<Penalty>,
}

#[derive(Default)]
struct Penalty {
    until: Option<Instant>,
    next: Option<Duration>,
}

impl Child {
    /// Makes link `number` the live one; the one it replaces is ended.
    fn go_live(&self, number: u64, stop: CancellationToken) {
        let mut live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((_, previous)) = live.replace((number, stop)) {
            tracing::info!(child = %self.chain_id, "a new link of this child replaces the open one");
            previous.cancel();
        }
    }

    fn gone(&self, number: u64) {
        let mut live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        if live.as_ref().is_some_and(|(n, _)| *n == number) {
            *live = None;
        }
    }

    /// How long the child is still kept out, if at all.
    fn kept_out(&self) -> Option<Duration> {
        let penalty = self.penalty.lock().unwrap_or_else(|p| p.into_inner());
        penalty
            .until
            .and_then(|until| until.checked_duration_since(Instant::now()))
    }

    /// A header was refused after its entries were hashed: keep the child out a while longer
    /// each time, until one is accepted.
    fn punish(&self) -> Duration {
        let mut penalty = self.penalty.lock().unwrap_or_else(|p| p.into_inner());
        let wait = penalty.next.unwrap_or(FIRST_PENALTY);
        penalty.until = Some(Instant::now() + wait);
        penalty.next = Some((wait * 2).min(MAX_PENALTY));
        wait
    }

    fn forgive(&self) {
        *self.penalty.lock().unwrap_or_else(|p| p.into_inner()) = Penalty::default();
    }
}

/// The `Federation` service of a node that has children.
pub(crate) struct Parent {
    parts: LinkParts,
    level: Level,
    children: HashMap<String, Arc<Child>>,
    /// Numbers links, so a link that ends knows whether it is still the live one.
    links: std::sync::atomic::AtomicU64,
}

impl Parent {
    /// The service for the federation's children (`None` when it has none).
    pub(crate) fn new(parts: LinkParts) -> Option<Self> {
        let level = parts.federation.level.below()?;
        let children = parts
            .federation
            .children
            .iter()
            .map(|c| {
                let child = Child {
                    chain_id: c.chain_id.clone(),
                    public_key: c.public_key.clone(),
                    hashes_per_tick: c.hashes_per_tick,
                    accepting: Mutex::new(()),
                    live: SyncMutex::new(None),
                    penalty: SyncMutex::new(Penalty::default()),
                };
                (c.chain_id.clone(), Arc::new(child))
            })
            .collect::<HashMap<_, _>>();
        (!children.is_empty()).then(|| Self {
            parts,
            level,
            children,
            links: std::sync::atomic::AtomicU64::new(0),
        })
    }

    /// The tonic service, taking messages up to [`MAX_LINK_MESSAGE_BYTES`].
    pub(crate) fn into_server(self) -> federation_server::FederationServer<Self> {
        federation_server::FederationServer::new(self)
            .max_decoding_message_size(MAX_LINK_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_LINK_MESSAGE_BYTES)
    }

    /// The child a `Hello` names, if it may link now.
    fn admit(&self, hello: &fed::Hello) -> Result<Arc<Child>, Status> {
        let child = self.children.get(&hello.chain_id).cloned().ok_or_else(|| {
            Status::permission_denied(format!(
                "{:?} is not a child of this node; add it with --child CHAIN_ID=PUBKEY_FILE",
                hello.chain_id
            ))
        })?;
        if let Some(wait) = child.kept_out() {
            return Err(Status::unavailable(format!(
                "a header of this chain was refused after its entries were checked; retry in \
                 {:.1} s",
                wait.as_secs_f64()
            )));
        }
        // The rate is this node's setting for the child; a child that counts otherwise would
        // have every header refused, so it is told at once.
        if hello.hashes_per_tick != 0 && hello.hashes_per_tick != child.hashes_per_tick {
            return Err(Status::failed_precondition(format!(
                "this parent checks {} at hashes_per_tick {} (its --child setting), not {}",
                child.chain_id, child.hashes_per_tick, hello.hashes_per_tick
            )));
        }
        Ok(child)
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
        let client = request.extensions().get::<ClientKey>().copied();
        let peer: Option<IpAddr> = request
            .extensions()
            .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
            .map(|c| c.0.ip());
        let mut inbound = request.into_inner();
        let shutdown = self.parts.shutdown.clone();
        // A link that never says Hello must not hold its stream for ever.
        let first = tokio::select! {
            () = shutdown.cancelled() => return Err(Status::unavailable("the node is stopping")),
            first = tokio::time::timeout(HELLO_TIMEOUT, inbound.message()) => first,
        };
        let first = first.map_err(|_| Status::deadline_exceeded("no Hello within 10 s"))?;
        let hello = match first? {
            Some(ChildMessage {
                kind: Some(child_message::Kind::Hello(hello)),
            }) => hello,
            _ => return Err(Status::invalid_argument("a link opens with Hello")),
        };
        let child = self.admit(&hello)?;
        let verifier = HeaderVerifier {
            chain_id: child.chain_id.clone(),
            level: self.level,
            public_key: child.public_key.clone(),
            hashes_per_tick: child.hashes_per_tick,
        };
        let next = head(&self.parts, &child.chain_id).await?.0.height;
        let (out, answers) = mpsc::channel(16);
        let _ = out
            .send(Ok(message(parent_message::Kind::Welcome(fed::Welcome {
                next_height: next,
            }))))
            .await;
        let number = self
            .links
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let stop = shutdown.child_token();
        child.go_live(number, stop.clone());
        tracing::info!(child = %child.chain_id, next_height = next, client = ?peer, "child linked");
        let link = Link {
            parts: self.parts.clone(),
            child,
            verifier,
            client,
        };
        tokio::spawn(link.serve(number, inbound, out, stop));
        Ok(Response::new(Box::pin(ReceiverStream::new(answers))))
    }

    async fn prove(
        &self,
        request: Request<fed::ProveRequest>,
    ) -> Result<Response<fed::ProveResponse>, Status> {
        let hash = Hash::from_slice(&request.into_inner().header_hash)
            .ok_or_else(|| Status::invalid_argument("header_hash must be 32 bytes"))?;
        let child = read_store(&self.parts.store, move |store| {
            store.child_header_by_hash(&hash)
        })
        .await
        .map_err(|e| internal(&e))?;
        let links = match child {
            Some(child) => self
                .parts
                .prover
                .prove(child.entry_index, child.recorded_at_seq)
                .await
                .map_err(|e| match e {
                    ProveError::Busy => Status::resource_exhausted(e.to_string()),
                    e => internal(&e),
                })?
                .unwrap_or_default(),
            None => Vec::new(),
        };
        Ok(Response::new(fed::ProveResponse {
            links: links.iter().map(link_to_pb).collect(),
        }))
    }
}

/// What `chain_id`'s next accepted header must continue, and the timestamp of the last one.
async fn head(parts: &LinkParts, chain_id: &str) -> Result<(ChainHead, Option<f64>), Status> {
    let id = chain_id.to_string();
    let (head, last) = read_store(&parts.store, move |store| {
        let Some(head) = store.child_head(&id)? else {
            return Ok((None, None));
        };
        let last = store.child_header_by_hash(&head.prev_header_hash)?;
        Ok((Some(head), last.map(|c| c.header.timestamp)))
    })
    .await
    .map_err(|e| internal(&e))?;
    Ok((head.unwrap_or_else(|| ChainHead::genesis(chain_id)), last))
}

fn internal(e: &dyn std::fmt::Display) -> Status {
    tracing::error!(error = %e, "federation link failed");
    Status::internal("internal error")
}

fn message(kind: parent_message::Kind) -> ParentMessage {
    ParentMessage { kind: Some(kind) }
}

/// What becomes of a link after an answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Then {
    /// It goes on.
    Continue,
    /// It ends: the header was refused.
    Close,
    /// It ends, and the child stays out a while: the header was refused after its entries
    /// were hashed.
    KeepOut,
}

/// How a link ended.
enum Ended {
    /// It was replaced, or the node is stopping.
    Stopped,
    /// The child closed it, or it was ended with this status.
    With(Option<Status>),
}

/// One child's open link.
struct Link {
    parts: LinkParts,
    child: Arc<Child>,
    verifier: HeaderVerifier,
    client: Option<ClientKey>,
}

impl Link {
    async fn serve(
        self,
        number: u64,
        mut inbound: Streaming<ChildMessage>,
        out: mpsc::Sender<Result<ParentMessage, Status>>,
        stop: CancellationToken,
    ) {
        let ended = self.each_header(&mut inbound, &out, &stop).await;
        self.child.gone(number);
        let status = match ended {
            Ended::With(status) => status,
            // Stopping: the answer stream just ends, so the child sees a clean close.
            Ended::Stopped if self.parts.shutdown.is_cancelled() => None,
            Ended::Stopped => Some(Status::aborted(
                "a newer link of this chain replaced this one",
            )),
        };
        if let Some(status) = status {
            let _ = out.send(Err(status)).await;
        }
    }

    /// Answers headers until the link ends. Only the wait for the next message is cut short
    /// by `stop`: a header being recorded is finished first, so a replacing link (which
    /// waits for it) never sees the same height as still open.
    async fn each_header(
        &self,
        inbound: &mut Streaming<ChildMessage>,
        out: &mpsc::Sender<Result<ParentMessage, Status>>,
        stop: &CancellationToken,
    ) -> Ended {
        loop {
            let next = tokio::select! {
                () = stop.cancelled() => return Ended::Stopped,
                next = inbound.message() => next,
            };
            let sealed = match next {
                Ok(Some(ChildMessage {
                    kind: Some(child_message::Kind::Header(sealed)),
                })) => sealed,
                Ok(None) => return Ended::With(None),
                Ok(Some(_)) => {
                    return Ended::With(Some(Status::invalid_argument(
                        "only headers follow Hello",
                    )));
                }
                // A message refused by the codec, or a broken stream: the child is told why,
                // if it still listens.
                Err(status) => {
                    tracing::debug!(child = %self.child.chain_id, %status, "child link closed");
                    return Ended::With(Some(status));
                }
            };
            // The decoded header is held while it is checked: counted like its bytes were.
            let mut held = self.parts.budget.reserve(self.client);
            if let Err(e) = held.resize(decoded_bytes(&sealed)) {
                return Ended::With(Some(Status::resource_exhausted(e.to_string())));
            }
            let (answer, then) = match self.accept(sealed, held).await {
                Ok(answer) => answer,
                Err(status) => return Ended::With(Some(status)),
            };
            if out.send(Ok(message(answer))).await.is_err() {
                return Ended::With(None);
            }
            match then {
                Then::Continue => {}
                Then::Close => return Ended::With(None),
                Then::KeepOut => {
                    let wait = self.child.punish();
                    tracing::warn!(child = %self.child.chain_id, keep_out = ?wait, "child kept out after a refused header");
                    return Ended::With(None);
                }
            }
        }
    }

    /// Checks and records one header; the answer to send, and what becomes of the link.
    async fn accept(
        &self,
        sealed: fed::SealedHeader,
        held: Reservation,
    ) -> Result<(parent_message::Kind, Then), Status> {
        let metrics = &self.parts.metrics.federation;
        let _one_at_a_time = self.child.accepting.lock().await;
        let (head, last_timestamp) = head(&self.parts, &self.child.chain_id).await?;
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
            let fetch = parent_message::Kind::Fetch(fed::Fetch {
                from_height: head.height,
            });
            return Ok((fetch, Then::Continue));
        }
        let checked = self
            .verify(&head, last_timestamp, header, entries, held)
            .await?;
        let (header, after) = match checked {
            Checked::Good(good) => *good,
            Checked::Refused { height, why, then } => {
                let (answer, _) = self.reject(Some(height), &head, why);
                return Ok((answer, then));
            }
        };
        let height = header.height;
        let (seq, poh_hash) = self
            .parts
            .pipeline
            .record_child(header, after.hashes_in_tick)
            .await
            .map_err(|e| Status::unavailable(e.to_string()))?;
        self.child.forgive();
        metrics.child_header(&self.child.chain_id, ChildResult::Accepted);
        tracing::debug!(child = %self.child.chain_id, height, recorded_at_seq = seq, "child header accepted");
        let ack = parent_message::Kind::Ack(fed::HeaderAck {
            height,
            result: fed::HeaderResult::Accepted as i32,
            message: String::new(),
            recorded_at_seq: seq,
            poh_hash: poh_hash.0.to_vec(),
            next_height: height + 1,
        });
        Ok((ack, Then::Continue))
    }

    /// The full check, on the blocking pool, cheapest first: the signature and link, the
    /// timestamp, the entries' claimed work against the child's tick rate, and only then the
    /// hashing of every covered entry (its time is `poh_verify_latency_seconds`).
    async fn verify(
        &self,
        head: &ChainHead,
        last_timestamp: Option<f64>,
        header: Header,
        entries: Vec<Entry>,
        held: Reservation,
    ) -> Result<Checked, Status> {
        let (verifier, head) = (self.verifier.clone(), head.clone());
        let skew = self.parts.federation.max_child_clock_skew;
        let latency = self.parts.metrics.ingest.verify_latency.clone();
        tokio::task::spawn_blocking(move || {
            let _held = held;
            let refuse = |why: String, then| Checked::Refused {
                height: header.height,
                why,
                then,
            };
            if let Err(e) = verifier.check_header(&head, &header) {
                return refuse(e.to_string(), Then::Close);
            }
            if let Err(why) = check_timestamp(header.timestamp, last_timestamp, unix_now(), skew) {
                return refuse(why, Then::Close);
            }
            if let Err(why) = check_work(&header, &entries, verifier.hashes_per_tick) {
                return refuse(why, Then::Close);
            }
            let started = Instant::now();
            let result = verifier.verify(&head, &header, &entries);
            latency.record(started.elapsed().as_secs_f64());
            match result {
                Ok(after) => Checked::Good(Box::new((header, after))),
                Err(e) => refuse(e.to_string(), Then::KeepOut),
            }
        })
        .await
        .map_err(|e| internal(&e))
    }

    /// A header at a height already accepted: a duplicate when it is the same header.
    async fn repeated(
        &self,
        header: Header,
        head: &ChainHead,
    ) -> Result<(parent_message::Kind, Then), Status> {
        let hash = header.hash();
        let found = read_store(&self.parts.store, move |store| {
            store.child_header_by_hash(&hash)
        })
        .await
        .map_err(|e| internal(&e))?;
        match found {
            Some(stored) if stored.header.chain_id == self.child.chain_id => {
                self.parts
                    .metrics
                    .federation
                    .child_header(&self.child.chain_id, ChildResult::Duplicate);
                let ack = parent_message::Kind::Ack(fed::HeaderAck {
                    height: header.height,
                    result: fed::HeaderResult::Duplicate as i32,
                    message: String::new(),
                    recorded_at_seq: stored.recorded_at_seq,
                    poh_hash: stored.poh_hash.0.to_vec(),
                    next_height: head.height,
                });
                Ok((ack, Then::Continue))
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

    /// A refusal, which ends the link.
    fn reject(
        &self,
        height: Option<u64>,
        head: &ChainHead,
        why: String,
    ) -> (parent_message::Kind, Then) {
        self.parts
            .metrics
            .federation
            .child_header(&self.child.chain_id, ChildResult::Rejected);
        tracing::warn!(child = %self.child.chain_id, ?height, reason = %why, "child header rejected");
        let ack = parent_message::Kind::Ack(fed::HeaderAck {
            height: height.unwrap_or(head.height),
            result: fed::HeaderResult::Rejected as i32,
            message: why,
            recorded_at_seq: 0,
            poh_hash: Vec::new(),
            next_height: head.height,
        });
        (ack, Then::Close)
    }
}

/// How a header fared in [`Link::verify`].
enum Checked {
    Good(Box<(Header, ChainHead)>),
    Refused {
        height: u64,
        why: String,
        then: Then,
    },
}
