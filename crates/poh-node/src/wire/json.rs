//! The JSON shapes of SPEC §4 and their conversions: a transaction as `POST /v1/tx` and UDP
//! datagrams carry it, and every HTTP answer body. Hashes are lowercase hex, bytes standard
//! base64 with padding; a timestamp is kept bit-exact (serde_json's `float_roundtrip`).

use base64::{Engine as _, engine::general_purpose::STANDARD as B64};
use poh_core::{Entry, Tx};
use poh_store::{TxRecord, TxStatus};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::shared::{Accepted, Refusal, TxResult};

/// A transaction as JSON (SPEC §4).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TxIn {
    /// 1–128 bytes of `[A-Za-z0-9._:-]`.
    pub tx_id: String,
    /// 0–128 bytes of UTF-8 without control characters.
    pub holder_id: String,
    /// Unix seconds, finite and ≥ 0.
    pub timestamp: f64,
    /// The payload, standard base64 with padding.
    pub payload_b64: String,
    /// Explicit DAG parents.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_ids: Option<Vec<String>>,
    /// An ML-DSA-87 public key (2592 bytes), base64.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_key_b64: Option<String>,
    /// An ML-DSA-87 signature (4627 bytes) over the signing bytes, base64.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature_b64: Option<String>,
}

/// A transaction's JSON form (SPEC §4), as `POST /v1/tx` and UDP take it.
pub fn tx_to_json(tx: &Tx) -> Vec<u8> {
    let optional = |bytes: &[u8]| (!bytes.is_empty()).then(|| B64.encode(bytes));
    let json = TxIn {
        tx_id: tx.tx_id.clone(),
        holder_id: tx.holder_id.clone(),
        timestamp: tx.timestamp,
        payload_b64: B64.encode(&tx.payload),
        parent_ids: (!tx.parent_ids.is_empty()).then(|| tx.parent_ids.clone()),
        public_key_b64: optional(&tx.public_key),
        signature_b64: optional(&tx.signature),
    };
    // Strings, a finite-or-not float and byte strings: serde_json only fails on a non-finite
    // float, which it writes as null and the receiver then refuses as invalid.
    serde_json::to_vec(&json).unwrap_or_default()
}

/// A transaction from its JSON form, or why not.
pub fn tx_from_json(bytes: &[u8]) -> Result<Tx, String> {
    serde_json::from_slice::<TxIn>(bytes)
        .map_err(|e| e.to_string())?
        .into_tx()
}

impl TxIn {
    /// The transaction, or which field is not valid base64.
    pub fn into_tx(self) -> Result<Tx, String> {
        let decode = |field: &str, text: Option<String>| -> Result<Vec<u8>, String> {
            match text {
                None => Ok(Vec::new()),
                Some(t) => B64
                    .decode(t)
                    .map_err(|_| format!("field `{field}` is not standard base64 with padding")),
            }
        };
        Ok(Tx {
            payload: decode("payload_b64", Some(self.payload_b64))?,
            public_key: decode("public_key_b64", self.public_key_b64)?,
            signature: decode("signature_b64", self.signature_b64)?,
            tx_id: self.tx_id,
            holder_id: self.holder_id,
            timestamp: self.timestamp,
            parent_ids: self.parent_ids.unwrap_or_default(),
        })
    }
}

/// The answer for one stored or duplicate transaction.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TxOk {
    /// `stored` or `duplicate`.
    pub status: &'static str,
    /// The transaction's id.
    pub tx_id: String,
    /// Its index in the node's stream of recorded mixins.
    pub poh_seq: u64,
    /// Hex of the PoH entry hash that recorded it.
    pub poh_hash: String,
}

/// Every error body.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// A stable code: `invalid`, `bad_signature`, `conflict`, `too_large`, `not_found`,
    /// `expired`, `unsupported_media_type`, `overloaded`, `unavailable`, `internal`.
    pub error: &'static str,
    /// What went wrong and what to do.
    pub message: String,
    /// With `expired`: the header that sealed the transaction, whose fragments hold it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub header_id: Option<String>,
    /// With `read_only`: the primary that takes the writes a replica refuses.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub primary: Option<String>,
}

/// One element of a `POST /v1/tx/batch` answer: the body `POST /v1/tx` would have given.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum BatchItem {
    /// Stored or duplicate.
    Ok(TxOk),
    /// Refused.
    Err(ErrorBody),
}

/// The status and body for one transaction's result.
pub fn tx_result(tx_id: String, result: &TxResult) -> (http::StatusCode, BatchItem) {
    match result {
        Ok(a) => {
            let (status, code, poh_seq, poh_hash) = match a {
                Accepted::Stored { poh_seq, poh_hash } => {
                    (http::StatusCode::CREATED, "stored", poh_seq, poh_hash)
                }
                Accepted::Duplicate { poh_seq, poh_hash } => {
                    (http::StatusCode::OK, "duplicate", poh_seq, poh_hash)
                }
            };
            let body = TxOk {
                status: code,
                tx_id,
                poh_seq: *poh_seq,
                poh_hash: poh_hash.to_hex(),
            };
            (status, BatchItem::Ok(body))
        }
        Err(e) => {
            let refusal = Refusal::of(e);
            let body = ErrorBody {
                error: refusal.error,
                message: e.to_string(),
                header_id: None,
                primary: None,
            };
            (refusal.status, BatchItem::Err(body))
        }
    }
}

/// `GET /v1/tx?holder_id=`: a page of a holder's transactions.
#[derive(Debug, Serialize, ToSchema)]
pub struct ListOut {
    /// The holder's transactions, each as `GET /v1/tx/{tx_id}` answers it, in `poh_seq`
    /// order.
    pub transactions: Vec<TxOut>,
    /// The `from_seq` to ask from next; `null` when there is no more.
    pub next_seq: Option<u64>,
}

/// `GET /v1/tx/{tx_id}/children`: the stored transactions that name it as a parent.
#[derive(Debug, Serialize, ToSchema)]
pub struct ChildrenOut {
    /// The transaction asked about.
    pub tx_id: String,
    /// The ids of the stored transactions that name it in `parent_ids`, in `poh_seq` order
    /// (at most 10,000: the oldest).
    pub children: Vec<String>,
}

/// `GET /v1/tx/{tx_id}`: the transaction and what the node knows of it.
#[derive(Debug, Serialize, ToSchema)]
pub struct TxOut {
    /// The transaction's id.
    pub tx_id: String,
    /// Its holder.
    pub holder_id: String,
    /// Unix seconds, exactly as sent.
    pub timestamp: f64,
    /// Base64 of the payload.
    pub payload_b64: String,
    /// Its explicit parents.
    pub parent_ids: Vec<String>,
    /// Base64 of its public key (empty when unsigned).
    pub public_key_b64: String,
    /// Base64 of its signature (empty when unsigned).
    pub signature_b64: String,
    /// `PENDING`, `ORDERED` or `SEALED`.
    pub status: &'static str,
    /// Its index in the node's stream of recorded mixins.
    pub poh_seq: u64,
    /// Hex of the PoH entry hash that recorded it.
    pub poh_hash: String,
    /// The header that sealed it; `null` until sealed.
    pub header_id: Option<String>,
    /// When the node received it (Unix seconds).
    pub received_at: f64,
    /// DAG links: its parents, or the tips it was linked to when it named none.
    pub dag_parents: Vec<String>,
}

impl From<TxRecord> for TxOut {
    fn from(r: TxRecord) -> Self {
        Self {
            payload_b64: B64.encode(&r.tx.payload),
            public_key_b64: B64.encode(&r.tx.public_key),
            signature_b64: B64.encode(&r.tx.signature),
            tx_id: r.tx.tx_id,
            holder_id: r.tx.holder_id,
            timestamp: r.tx.timestamp,
            parent_ids: r.tx.parent_ids,
            status: match r.status {
                TxStatus::Pending => "PENDING",
                TxStatus::Ordered => "ORDERED",
                TxStatus::Sealed => "SEALED",
            },
            poh_seq: r.poh_seq,
            poh_hash: r.poh_hash.to_hex(),
            header_id: r.header_id,
            received_at: r.received_at,
            dag_parents: r.dag_parents,
        }
    }
}

/// `GET /v1/poh`.
#[derive(Debug, Serialize, ToSchema)]
pub struct PohOut {
    /// The chain's id.
    pub chain_id: String,
    /// Mixins recorded so far.
    pub seq: u64,
    /// Entries so far.
    pub entries: u64,
    /// Hex of the last entry's hash.
    pub hash: String,
    /// Hashes per second over the last few seconds.
    pub hashes_per_second: f64,
}

/// One PoH entry.
#[derive(Debug, Serialize, ToSchema)]
pub struct EntryOut {
    /// Hash operations in the entry.
    pub num_hashes: u64,
    /// Hex of the hash after them.
    pub hash: String,
    /// Hex of each recorded digest, in order.
    pub mixins: Vec<String>,
}

impl From<Entry> for EntryOut {
    fn from(e: Entry) -> Self {
        Self {
            num_hashes: e.num_hashes,
            hash: e.hash.to_hex(),
            mixins: e.mixins.iter().map(|m| m.to_hex()).collect(),
        }
    }
}

/// `GET /v1/poh/entries`.
#[derive(Debug, Serialize, ToSchema)]
pub struct EntriesOut {
    /// Hex of the hash before the first entry (the genesis hash for `from=0`).
    pub start_hash: String,
    /// The entries.
    pub entries: Vec<EntryOut>,
}

/// `GET /v1/peers` (SPEC §5): addresses per protocol.
#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
pub struct PeersOut {
    /// `host:port` gRPC peers.
    #[serde(default)]
    pub grpc: Vec<String>,
    /// `http://` or `https://` URLs.
    #[serde(default)]
    pub http: Vec<String>,
    /// `host:port` UDP peers.
    #[serde(default)]
    pub udp: Vec<String>,
    /// `host:port` QUIC peers.
    #[serde(default)]
    pub quic: Vec<String>,
}
