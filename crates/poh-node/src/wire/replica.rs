//! The replica's copy (`poh.replica.v1`, SPEC §10) to and from the node's types: a stored
//! transaction as the primary recorded it, a signed header, a recorded child header.
//! Decoding checks shapes only; whether the copy is true is the replica's to verify.

use poh_core::{Hash, Header, Tx};
use poh_proto::replica as rpb;
use poh_store::{ChildHeader, TxRecord};
use serde::Serialize;
use utoipa::ToSchema;

use super::protobuf::{tx_from_pb, tx_to_pb};

/// A transaction as the primary sent it, before the replica checks it against its entry.
#[derive(Clone, Debug, PartialEq)]
pub struct CopiedRecord {
    /// The transaction.
    pub tx: Tx,
    /// Its place in the primary's stream of items.
    pub poh_seq: u64,
    /// When the primary received it.
    pub received_at: f64,
    /// The DAG parents the primary linked it to.
    pub dag_parents: Vec<String>,
    /// Its digest, when the primary's TTL expired its record and `tx` holds only its id.
    pub expired: Option<Hash>,
}

/// A child header as the primary sent it, before the replica checks it against its entry.
#[derive(Clone, Debug, PartialEq)]
pub struct CopiedChild {
    /// The header, signed by its chain.
    pub header: Header,
    /// Where the child's tick period stood after it.
    pub hashes_in_tick: u64,
    /// The primary's `poh_seq` of the header's hash.
    pub recorded_at_seq: u64,
}

/// `GET /v1/replica`: where this node stands against its primary.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReplicaOut {
    /// The primary's address, as followed; `null` on a primary.
    pub primary: Option<String>,
    /// Items this node holds durably: the `poh_seq` of the next one.
    pub seq: u64,
    /// PoH entries this node holds durably.
    pub entries: u64,
    /// Items the primary holds durably, as it last said (this node's own on a primary).
    pub primary_seq: u64,
    /// Entries the primary holds durably, as it last said (this node's own on a primary).
    pub primary_entries: u64,
    /// How long this replica has been behind what the primary last said it holds; 0 when
    /// it holds all of it, and on a primary.
    pub lag_seconds: f64,
    /// Why this replica stopped copying (what did not verify, or where its chain and the
    /// primary's diverge); `null` while it copies, and on a primary.
    pub stopped: Option<String>,
}

/// A stored transaction as the primary sends it; one whose record `expired`, as its id and
/// digest (and the DAG parents its stub keeps).
pub fn record_to_pb(record: TxRecord, expired: bool) -> rpb::Record {
    let (tx, expired_digest) = match expired {
        false => (record.tx, Vec::new()),
        true => (
            Tx {
                tx_id: record.tx.tx_id,
                ..Tx::default()
            },
            record.digest.0.to_vec(),
        ),
    };
    rpb::Record {
        tx: Some(tx_to_pb(tx)),
        poh_seq: record.poh_seq,
        received_at: record.received_at,
        dag_parents: record.dag_parents,
        expired_digest,
    }
}

/// A copied transaction, or why the message is not one.
pub fn record_from_pb(record: rpb::Record) -> Result<CopiedRecord, String> {
    let tx = record
        .tx
        .ok_or_else(|| format!("the record at seq {} has no transaction", record.poh_seq))?;
    let expired = match record.expired_digest.is_empty() {
        true => None,
        false => Some(Hash::from_slice(&record.expired_digest).ok_or_else(|| {
            format!(
                "the expired record at seq {} has a digest of {} bytes",
                record.poh_seq,
                record.expired_digest.len()
            )
        })?),
    };
    Ok(CopiedRecord {
        tx: tx_from_pb(tx),
        poh_seq: record.poh_seq,
        received_at: record.received_at,
        dag_parents: record.dag_parents,
        expired,
    })
}

/// A header with its signature.
pub fn signed_to_pb(header: &Header) -> rpb::Signed {
    rpb::Signed {
        header: header.bytes(),
        signature: header.signature.clone(),
    }
}

/// A signed header, or why the bytes are not one (the signature is checked later).
pub fn signed_from_pb(signed: rpb::Signed) -> Result<Header, String> {
    let mut header = Header::from_bytes(&signed.header).map_err(|e| e.to_string())?;
    header.signature = signed.signature;
    Ok(header)
}

/// A recorded child header as the primary sends it.
pub fn child_to_pb(child: &ChildHeader) -> rpb::ChildRecord {
    rpb::ChildRecord {
        header: Some(signed_to_pb(&child.header)),
        hashes_in_tick: child.hashes_in_tick,
        recorded_at_seq: child.recorded_at_seq,
    }
}

/// A copied child header, or why the message is not one.
pub fn child_from_pb(child: rpb::ChildRecord) -> Result<CopiedChild, String> {
    let signed = child.header.ok_or_else(|| {
        format!(
            "the child header at seq {} has no header",
            child.recorded_at_seq
        )
    })?;
    Ok(CopiedChild {
        header: signed_from_pb(signed)?,
        hashes_in_tick: child.hashes_in_tick,
        recorded_at_seq: child.recorded_at_seq,
    })
}

#[cfg(test)]
mod tests {
    use poh_core::Hash;
    use poh_store::TxStatus;

    use super::*;

    #[test]
    fn a_record_survives_the_copy_exactly() {
        let tx = Tx {
            tx_id: "t".into(),
            holder_id: "h".into(),
            timestamp: -0.0,
            payload: vec![1, 2],
            parent_ids: vec!["p".into()],
            public_key: Vec::new(),
            signature: Vec::new(),
        };
        let record = TxRecord {
            digest: tx.digest(),
            tx: tx.clone(),
            poh_seq: 7,
            poh_hash: Hash::default(),
            entry_index: 3,
            received_at: 12.5,
            dag_parents: vec!["p".into()],
            status: TxStatus::Ordered,
            header_id: None,
        };
        let copied = record_from_pb(record_to_pb(record.clone(), false)).unwrap();
        assert_eq!(copied.tx.digest(), tx.digest());
        assert_eq!(copied.expired, None);
        let stub = record_from_pb(record_to_pb(record, true)).unwrap();
        assert_eq!(stub.expired, Some(tx.digest()));
        assert_eq!((stub.tx.tx_id.as_str(), stub.tx.payload.len()), ("t", 0));
        assert_eq!(stub.dag_parents, ["p"]);
        let short = rpb::Record {
            tx: Some(Default::default()),
            expired_digest: vec![1; 31],
            ..rpb::Record::default()
        };
        assert!(record_from_pb(short).is_err());
        assert!(copied.tx.timestamp.is_sign_negative());
        assert_eq!((copied.poh_seq, copied.received_at), (7, 12.5));
        assert!(record_from_pb(rpb::Record::default()).is_err());
        assert!(child_from_pb(rpb::ChildRecord::default()).is_err());
    }
}
