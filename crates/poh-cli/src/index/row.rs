//! A row of `poh_transactions` as the node's `TxRecord` gives it, and the binary `COPY`
//! encoding of a batch of them.
//!
//! The encoding is written by hand rather than through `BinaryCopyInWriter`: a whole batch
//! becomes one buffer sent in one piece, instead of an await and a boxed value per field,
//! which is most of the indexer's own CPU at tens of thousands of rows a second.

use bytes::{BufMut as _, BytesMut};
use poh_proto::v1 as pb;

/// The TxStatus name a sealed row has…
pub(super) const SEALED: &str = "SEALED";
/// …unless it waits for a parent: the node says so first.
pub(super) const PENDING: &str = "PENDING";

/// The columns of `poh_transactions`, in the order [`encode`] writes them.
pub(super) const COLUMNS: &str = "chain_id, tx_id, holder_id, timestamp, payload, parent_ids, \
     public_key, signature, poh_seq, poh_hash, status, header_id, received_at";

/// Fields per row.
const FIELDS: i16 = 13;

/// The type oid of `text`, which a binary array names for its elements.
const TEXT_OID: i32 = 25;

/// One transaction as the indexer writes it.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct Row {
    pub tx_id: String,
    pub holder_id: String,
    pub timestamp: f64,
    pub payload: Vec<u8>,
    pub parent_ids: Vec<String>,
    pub public_key: Vec<u8>,
    pub signature: Vec<u8>,
    pub poh_seq: u64,
    pub poh_hash: Vec<u8>,
    /// The TxStatus name.
    pub status: &'static str,
    pub header_id: Option<String>,
    pub received_at: f64,
}

/// Why a record from the node cannot be a row.
#[derive(Debug, thiserror::Error)]
pub(super) enum BadRecord {
    #[error("the record at seq {0} carries no transaction")]
    NoTx(u64),
    #[error("seq {0} does not fit a bigint")]
    Seq(u64),
}

impl Row {
    /// The row of `record`, as the node gave it.
    pub(super) fn from_record(record: pb::TxRecord) -> Result<Self, BadRecord> {
        let seq = record.poh_seq;
        if i64::try_from(seq).is_err() {
            return Err(BadRecord::Seq(seq));
        }
        let tx = record.tx.ok_or(BadRecord::NoTx(seq))?;
        let status = pb::TxStatus::try_from(record.status)
            .unwrap_or(pb::TxStatus::Unspecified)
            .as_str_name();
        Ok(Self {
            tx_id: tx.tx_id,
            holder_id: tx.holder_id,
            timestamp: tx.timestamp,
            payload: tx.payload,
            parent_ids: tx.parent_ids,
            public_key: tx.public_key,
            signature: tx.signature,
            poh_seq: seq,
            poh_hash: record.poh_hash,
            status,
            header_id: (!record.header_id.is_empty()).then_some(record.header_id),
            received_at: record.received_at,
        })
    }

    /// Whether the row already says which header sealed it.
    pub(super) fn is_sealed(&self) -> bool {
        self.header_id.is_some()
    }

    /// Notes that `header_id` sealed the row, unless the node already named its header. A
    /// row still waiting for a parent stays `PENDING` with its header, as the node answers
    /// it; it becomes `SEALED` when the parent comes.
    pub(super) fn seal(&mut self, header_id: &str) {
        if self.header_id.is_none() {
            self.header_id = Some(header_id.to_string());
            if self.status != PENDING {
                self.status = SEALED;
            }
        }
    }

    /// Bytes the row takes, about, in a batch.
    pub(super) fn size(&self) -> usize {
        128 + self.tx_id.len()
            + self.holder_id.len()
            + self.payload.len()
            + self.public_key.len()
            + self.signature.len()
            + self.parent_ids.iter().map(|p| p.len() + 8).sum::<usize>()
    }
}

/// `rows` of chain `chain_id` in PostgreSQL's binary `COPY` format, [`COLUMNS`] in order:
/// the signature and header, then per row its field count and each field as a length and
/// its bytes (-1 for NULL), then the trailer.
pub(super) fn encode(chain_id: &str, rows: &[Row]) -> BytesMut {
    let mut out = BytesMut::with_capacity(64 + rows.iter().map(Row::size).sum::<usize>());
    out.put_slice(b"PGCOPY\n\xff\r\n\0");
    out.put_i32(0); // flags
    out.put_i32(0); // header extension length
    for row in rows {
        out.put_i16(FIELDS);
        bytes(&mut out, chain_id.as_bytes());
        bytes(&mut out, row.tx_id.as_bytes());
        bytes(&mut out, row.holder_id.as_bytes());
        float(&mut out, row.timestamp);
        bytes(&mut out, &row.payload);
        text_array(&mut out, &row.parent_ids);
        optional(&mut out, &row.public_key);
        optional(&mut out, &row.signature);
        out.put_i32(8);
        // `from_record` refused seqs beyond i64::MAX, so this is the same number.
        out.put_i64(row.poh_seq as i64);
        bytes(&mut out, &row.poh_hash);
        bytes(&mut out, row.status.as_bytes());
        match &row.header_id {
            Some(id) => bytes(&mut out, id.as_bytes()),
            None => out.put_i32(-1),
        }
        float(&mut out, row.received_at);
    }
    out.put_i16(-1);
    out
}

fn length(n: usize) -> i32 {
    // Every field is bounded far below 2 GiB by the node's limits (1 MiB payloads).
    i32::try_from(n).unwrap_or(i32::MAX)
}

fn bytes(out: &mut BytesMut, value: &[u8]) {
    out.put_i32(length(value.len()));
    out.put_slice(value);
}

/// An empty key or signature is NULL: the transaction was not signed.
fn optional(out: &mut BytesMut, value: &[u8]) {
    if value.is_empty() {
        out.put_i32(-1);
    } else {
        bytes(out, value);
    }
}

fn float(out: &mut BytesMut, value: f64) {
    out.put_i32(8);
    out.put_f64(value);
}

/// A one-dimensional `text[]` without NULLs (no dimensions at all when empty, as PostgreSQL
/// writes `'{}'`).
fn text_array(out: &mut BytesMut, items: &[String]) {
    let body: usize = items.iter().map(|s| 4 + s.len()).sum();
    let dims = if items.is_empty() { 0 } else { 1 };
    out.put_i32(length(12 + 8 * dims + body));
    out.put_i32(length(dims));
    out.put_i32(0); // no NULL elements
    out.put_i32(TEXT_OID);
    if dims == 1 {
        out.put_i32(length(items.len()));
        out.put_i32(1); // lower bound
    }
    for item in items {
        bytes(out, item.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row() -> Row {
        Row {
            tx_id: "t1".into(),
            holder_id: "h".into(),
            timestamp: 1.5,
            payload: b"p".to_vec(),
            parent_ids: vec!["a".into(), "bc".into()],
            public_key: Vec::new(),
            signature: Vec::new(),
            poh_seq: 7,
            poh_hash: vec![9; 32],
            status: "ORDERED",
            header_id: None,
            received_at: 2.5,
        }
    }

    #[test]
    fn a_batch_is_signature_rows_and_trailer() {
        let out = encode("c", &[row()]);
        assert!(out.starts_with(b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0"));
        assert!(out.ends_with(&[0xff, 0xff]));
        assert_eq!(&out[19..21], &FIELDS.to_be_bytes());
        // chain_id "c", then tx_id "t1".
        assert_eq!(&out[21..26], &[0, 0, 0, 1, b'c']);
        assert_eq!(&out[26..32], &[0, 0, 0, 2, b't', b'1']);
    }

    #[test]
    fn arrays_have_one_dimension_or_none() {
        let mut out = BytesMut::new();
        text_array(&mut out, &["a".into(), "bc".into()]);
        let expect: Vec<u8> = [
            &31i32.to_be_bytes()[..],
            &1i32.to_be_bytes(),
            &0i32.to_be_bytes(),
            &25i32.to_be_bytes(),
            &2i32.to_be_bytes(),
            &1i32.to_be_bytes(),
            &1i32.to_be_bytes(),
            b"a",
            &2i32.to_be_bytes(),
            b"bc",
        ]
        .concat();
        assert_eq!(&out[..], &expect[..]);
        let mut empty = BytesMut::new();
        text_array(&mut empty, &[]);
        assert_eq!(empty.len(), 16);
        assert_eq!(&empty[..8], &[0, 0, 0, 12, 0, 0, 0, 0]);
    }

    #[test]
    fn a_row_keeps_the_header_the_node_named() {
        let mut sealed = Row {
            status: SEALED,
            header_id: Some("h1".into()),
            ..row()
        };
        sealed.seal("h2");
        assert_eq!(sealed.header_id.as_deref(), Some("h1"));
        let mut open = row();
        open.seal("h2");
        assert_eq!(
            (open.status, open.header_id.as_deref()),
            (SEALED, Some("h2"))
        );
        let mut waiting = Row {
            status: PENDING,
            ..row()
        };
        waiting.seal("h3");
        assert_eq!(
            (waiting.status, waiting.header_id.as_deref()),
            (PENDING, Some("h3"))
        );
    }
}
