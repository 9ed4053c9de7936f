//! Hostile ends of a replica's copy (`poh.replica.v1`): a primary that proxies a real
//! primary's `Follow` stream, byte for byte, except for one byte of one message, so a replica
//! pointed at it copies a true chain up to a lie it must catch; and a replica that asks for
//! the whole chain and never reads it.

use std::{
    pin::Pin,
    sync::{Arc, Mutex},
};

use poh_proto::{
    bounded::MAX_LINK_MESSAGE_BYTES,
    replica::{
        Batch, Hello, ReplicaMessage,
        replica_client::ReplicaClient,
        replica_message,
        replica_server::{Replica, ReplicaServer},
    },
};
use tokio::sync::mpsc;
use tokio_stream::{
    Stream, StreamExt,
    wrappers::{ReceiverStream, TcpListenerStream},
};
use tonic::{Request, Response, Status, Streaming, transport::Server};

/// Which byte is changed.
#[derive(Clone, Copy, Debug)]
pub enum Flip {
    /// One byte of the payload of one transaction record.
    RecordPayload,
    /// One byte of the signature of one of the primary's headers.
    HeaderSignature,
}

/// What the proxy changed, in the batch it changed.
#[derive(Clone, Debug)]
pub struct Tampered {
    /// The batch's `first_entry`.
    pub first_entry: u64,
    /// The entries the batch carried.
    pub entries: u64,
    pub what: What,
}

#[derive(Clone, Debug)]
pub enum What {
    Record { seq: u64, tx_id: String },
    Header { height: u64 },
}

#[derive(Default)]
struct Seen {
    /// Batches that carried what is to be changed, so far.
    carrying: usize,
    tampered: Option<Tampered>,
}

/// The proxy, on a runtime of its own for as long as it is held.
pub struct Hostile {
    /// Its gRPC address, for `--follow`.
    pub addr: String,
    seen: Arc<Mutex<Seen>>,
    _runtime: tokio::runtime::Runtime,
}

impl Hostile {
    /// A proxy of the primary at `primary` (its gRPC address) that changes `flip` in the
    /// `nth` batch (from 1) carrying records, or headers.
    pub fn start(primary: &str, flip: Flip, nth: usize) -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let seen = Arc::new(Mutex::new(Seen::default()));
        let proxy = Proxy {
            primary: primary.to_string(),
            flip,
            nth,
            seen: seen.clone(),
        };
        // The same codec and caps as the node's own service (the generated server uses the
        // bounded codec).
        let service = ReplicaServer::new(proxy).max_encoding_message_size(MAX_LINK_MESSAGE_BYTES);
        runtime.spawn(
            Server::builder()
                .add_service(service)
                .serve_with_incoming(TcpListenerStream::new(listener)),
        );
        Self {
            addr,
            seen,
            _runtime: runtime,
        }
    }

    /// What it changed, once it has.
    pub fn tampered(&self) -> Option<Tampered> {
        self.seen.lock().unwrap().tampered.clone()
    }
}

struct Proxy {
    primary: String,
    flip: Flip,
    nth: usize,
    seen: Arc<Mutex<Seen>>,
}

type Batches = Pin<Box<dyn Stream<Item = Result<Batch, Status>> + Send>>;

#[tonic::async_trait]
impl Replica for Proxy {
    type FollowStream = Batches;

    async fn follow(
        &self,
        request: Request<Streaming<ReplicaMessage>>,
    ) -> Result<Response<Batches>, Status> {
        // The replica's Hello and acknowledgements go to the primary as they come.
        let upstream = request.into_inner().map_while(Result::ok);
        let mut client = ReplicaClient::connect(format!("http://{}", self.primary))
            .await
            .map_err(|e| Status::unavailable(e.to_string()))?
            .max_decoding_message_size(MAX_LINK_MESSAGE_BYTES);
        let batches = client.follow(upstream).await?.into_inner();
        let (flip, nth, seen) = (self.flip, self.nth, self.seen.clone());
        let changed = batches.map(move |batch| {
            batch.map(|mut batch| {
                tamper(&mut batch, flip, nth, &seen);
                batch
            })
        });
        Ok(Response::new(Box::pin(changed)))
    }
}

/// Changes one byte of `batch` if it is the `nth` to carry what `flip` changes.
fn tamper(batch: &mut Batch, flip: Flip, nth: usize, seen: &Mutex<Seen>) {
    let mut seen = seen.lock().unwrap();
    let carries = match flip {
        Flip::RecordPayload => !batch.records.is_empty(),
        Flip::HeaderSignature => !batch.headers.is_empty(),
    };
    if seen.tampered.is_some() || !carries {
        return;
    }
    seen.carrying += 1;
    if seen.carrying < nth {
        return;
    }
    let what = match flip {
        Flip::RecordPayload => {
            let middle = batch.records.len() / 2;
            let record = &mut batch.records[middle];
            let tx = record.tx.as_mut().unwrap();
            tx.payload[0] ^= 0x01;
            What::Record {
                seq: record.poh_seq,
                tx_id: tx.tx_id.clone(),
            }
        }
        Flip::HeaderSignature => {
            let signed = &mut batch.headers[0];
            signed.signature[100] ^= 0x01;
            What::Header {
                height: height_of(&signed.header),
            }
        }
    };
    seen.tampered = Some(Tampered {
        first_entry: batch.first_entry,
        entries: batch.entries.len() as u64,
        what,
    });
}

/// The height in a header's bytes (SPEC §6): after the 13-byte tag, the chain id with its
/// length, and the level byte.
fn height_of(header: &[u8]) -> u64 {
    let len = u32::from_be_bytes(header[13..17].try_into().unwrap()) as usize;
    let at = 17 + len + 1;
    u64::from_be_bytes(header[at..at + 8].try_into().unwrap())
}

/// A replica that said Hello from genesis and reads nothing of what it is sent; its stream
/// stays open while this is held.
pub struct Stalled {
    _batches: Streaming<Batch>,
    _hello: mpsc::Sender<ReplicaMessage>,
}

impl Stalled {
    /// Opens the stream to the primary at `primary` (its gRPC address) on `runtime`.
    pub fn start(
        runtime: &tokio::runtime::Runtime,
        primary: &str,
        chain_id: &str,
        hashes_per_tick: u64,
    ) -> Self {
        let (hello, said) = mpsc::channel(1);
        let from_genesis = Hello {
            chain_id: chain_id.into(),
            hashes_per_tick,
            last_hash: poh_core::genesis(chain_id).0.to_vec(),
            ..Hello::default()
        };
        let kind = Some(replica_message::Kind::Hello(from_genesis));
        hello.try_send(ReplicaMessage { kind }).unwrap();
        let batches = runtime.block_on(async {
            let mut client = ReplicaClient::connect(format!("http://{primary}"))
                .await
                .unwrap();
            client.follow(ReceiverStream::new(said)).await.unwrap()
        });
        Self {
            _batches: batches.into_inner(),
            _hello: hello,
        }
    }
}
