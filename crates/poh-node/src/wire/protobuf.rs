//! `poh.v1` protobuf messages (SPEC §4) to and from the node's types: the transaction both
//! ways, the `Ack` of one result, and the read answers (`TxRecord`, `StatusResponse`).
//! gRPC and QUIC carry the same messages, so both servers and both clients use these. Also
//! the federation link's sealed header (`poh.federation.v1`).

use poh_core::{Entry, Hash, Header, Tx, proof::ProofLink};
use poh_proto::{federation as fed, v1 as pb};
use poh_store::{TxRecord, TxStatus};

use crate::shared::{Accepted, Refusal, SubmitError, TxResult};

/// The core transaction a `poh.v1.Tx` carries (unchecked: validation comes after).
pub fn tx_from_pb(tx: pb::Tx) -> Tx {
    Tx {
        tx_id: tx.tx_id,
        holder_id: tx.holder_id,
        timestamp: tx.timestamp,
        payload: tx.payload,
        parent_ids: tx.parent_ids,
        public_key: tx.public_key,
        signature: tx.signature,
    }
}

/// The `poh.v1.Tx` wire form of a transaction.
pub fn tx_to_pb(tx: Tx) -> pb::Tx {
    pb::Tx {
        tx_id: tx.tx_id,
        holder_id: tx.holder_id,
        timestamp: tx.timestamp,
        payload: tx.payload,
        parent_ids: tx.parent_ids,
        public_key: tx.public_key,
        signature: tx.signature,
    }
}

/// The transaction of a `DAGService.SubmitTransaction` request (its payload is text).
pub fn tx_from_request(r: pb::TxRequest) -> Tx {
    Tx {
        tx_id: r.tx_id,
        holder_id: r.holder_id,
        timestamp: r.timestamp,
        payload: r.payload.into_bytes(),
        parent_ids: r.parent_ids,
        public_key: r.public_key,
        signature: r.signature,
    }
}

/// The `Ack` for one transaction's result.
pub fn ack(result: &TxResult) -> pb::Ack {
    match result {
        Ok(accepted) => {
            let (code, poh_seq, poh_hash) = match accepted {
                Accepted::Stored { poh_seq, poh_hash } => (pb::AckCode::Stored, poh_seq, poh_hash),
                Accepted::Duplicate { poh_seq, poh_hash } => {
                    (pb::AckCode::Duplicate, poh_seq, poh_hash)
                }
            };
            pb::Ack {
                success: true,
                message: String::new(),
                code: code as i32,
                poh_seq: *poh_seq,
                poh_hash: poh_hash.0.to_vec(),
            }
        }
        Err(e) => pb::Ack {
            success: false,
            message: e.to_string(),
            code: Refusal::of(e).ack as i32,
            poh_seq: 0,
            poh_hash: Vec::new(),
        },
    }
}

/// The `Ack` of a transaction refused with its whole submission (QUIC answers one per
/// transaction; gRPC refuses the call instead).
pub fn refused_ack(e: SubmitError) -> pb::Ack {
    pb::Ack {
        success: false,
        message: format!("{}: {e}", e.code()),
        code: pb::AckCode::Internal as i32,
        poh_seq: 0,
        poh_hash: Vec::new(),
    }
}

/// The `TxResponse` of `DAGService.SubmitTransaction` for one result.
pub fn tx_response(result: &TxResult) -> pb::TxResponse {
    let (status, message, poh_seq) = match result {
        Ok(Accepted::Stored { poh_seq, .. }) => ("accepted", String::new(), *poh_seq),
        Ok(Accepted::Duplicate { poh_seq, .. }) => ("duplicate", String::new(), *poh_seq),
        Err(e) => ("rejected", e.to_string(), 0),
    };
    pb::TxResponse {
        status: status.into(),
        message,
        poh_seq,
    }
}

/// A stored status as the protobuf enum.
pub fn status_pb(status: TxStatus) -> pb::TxStatus {
    match status {
        TxStatus::Pending => pb::TxStatus::Pending,
        TxStatus::Ordered => pb::TxStatus::Ordered,
        TxStatus::Sealed => pb::TxStatus::Sealed,
    }
}

/// A stored transaction as `GetTx`, `Repair` and `Sync` answer it.
pub fn record_pb(record: TxRecord) -> pb::TxRecord {
    pb::TxRecord {
        status: status_pb(record.status) as i32,
        poh_seq: record.poh_seq,
        poh_hash: record.poh_hash.0.to_vec(),
        header_id: record.header_id.unwrap_or_default(),
        received_at: record.received_at,
        tx: Some(tx_to_pb(record.tx)),
    }
}

/// `QueryTransactionStatus`'s answer: what the node knows of `tx_id`, if anything.
pub fn status_response(tx_id: String, record: Option<TxRecord>) -> pb::StatusResponse {
    let Some(r) = record else {
        return pb::StatusResponse {
            tx_id,
            status: pb::TxStatus::Unknown as i32,
            message: "this node has never seen this transaction".into(),
            ..Default::default()
        };
    };
    pb::StatusResponse {
        tx_id,
        status: status_pb(r.status) as i32,
        message: match r.status {
            TxStatus::Pending => "waiting for a parent this node has not seen".into(),
            _ => String::new(),
        },
        poh_seq: r.poh_seq,
        poh_hash: r.poh_hash.0.to_vec(),
        parent_ids: r.dag_parents,
        header_id: r.header_id.unwrap_or_default(),
    }
}

/// A sealed header and the entries it covers, as the federation link sends them.
pub fn sealed_to_pb(header: &Header, entries: &[Entry]) -> fed::SealedHeader {
    fed::SealedHeader {
        header: header.bytes(),
        signature: header.signature.clone(),
        entries: entries_to_pb(entries),
    }
}

/// The header and entries of a federation message, or why they are not.
pub fn sealed_from_pb(sealed: fed::SealedHeader) -> Result<(Header, Vec<Entry>), String> {
    let mut header = Header::from_bytes(&sealed.header).map_err(|e| e.to_string())?;
    header.signature = sealed.signature;
    Ok((header, entries_from_pb(sealed.entries)?))
}

/// PoH entries as the federation link and the replica's copy carry them.
pub fn entries_to_pb(entries: &[Entry]) -> Vec<fed::Entry> {
    entries
        .iter()
        .map(|e| fed::Entry {
            num_hashes: e.num_hashes,
            hash: e.hash.0.to_vec(),
            mixins: e.mixins.iter().map(|m| m.0.to_vec()).collect(),
        })
        .collect()
}

/// The entries of a federation or replica message, or why they are not entries.
pub fn entries_from_pb(entries: Vec<fed::Entry>) -> Result<Vec<Entry>, String> {
    entries
        .into_iter()
        .enumerate()
        .map(|(i, e)| {
            let hash = |bytes: &[u8]| {
                Hash::from_slice(bytes).ok_or_else(|| format!("entry {i}: a hash is not 32 bytes"))
            };
            Ok(Entry {
                num_hashes: e.num_hashes,
                hash: hash(&e.hash)?,
                mixins: e.mixins.iter().map(|m| hash(m)).collect::<Result<_, _>>()?,
            })
        })
        .collect()
}

/// A proof link as the federation's `Prove` sends it.
pub fn link_to_pb(link: &ProofLink) -> fed::ProofLink {
    fed::ProofLink {
        item: link.item.0.to_vec(),
        index: link.index,
        audit_path: link.audit_path.iter().map(|h| h.0.to_vec()).collect(),
        header: link.header.bytes(),
        signature: link.header.signature.clone(),
    }
}

/// A proof link from `Prove`, or why it is not one.
pub fn link_from_pb(link: fed::ProofLink) -> Result<ProofLink, String> {
    let hash = |b: &[u8]| Hash::from_slice(b).ok_or_else(|| "a hash is not 32 bytes".to_string());
    let mut header = Header::from_bytes(&link.header).map_err(|e| e.to_string())?;
    header.signature = link.signature;
    Ok(ProofLink {
        item: hash(&link.item)?,
        index: link.index,
        audit_path: link
            .audit_path
            .iter()
            .map(|h| hash(h))
            .collect::<Result<_, _>>()?,
        header,
    })
}

/// A gRPC status code's canonical name (`NOT_FOUND`), as metrics label it and clients
/// report it.
pub fn code_name(code: tonic::Code) -> &'static str {
    match code {
        tonic::Code::Ok => "OK",
        tonic::Code::Cancelled => "CANCELLED",
        tonic::Code::Unknown => "UNKNOWN",
        tonic::Code::InvalidArgument => "INVALID_ARGUMENT",
        tonic::Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        tonic::Code::NotFound => "NOT_FOUND",
        tonic::Code::AlreadyExists => "ALREADY_EXISTS",
        tonic::Code::PermissionDenied => "PERMISSION_DENIED",
        tonic::Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        tonic::Code::FailedPrecondition => "FAILED_PRECONDITION",
        tonic::Code::Aborted => "ABORTED",
        tonic::Code::OutOfRange => "OUT_OF_RANGE",
        tonic::Code::Unimplemented => "UNIMPLEMENTED",
        tonic::Code::Internal => "INTERNAL",
        tonic::Code::Unavailable => "UNAVAILABLE",
        tonic::Code::DataLoss => "DATA_LOSS",
        tonic::Code::Unauthenticated => "UNAUTHENTICATED",
    }
}
