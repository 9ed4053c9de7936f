//! Records the TTL expired, as a subscriber or `Sync` client is told of them (SPEC §4): the
//! seqs `from_seq..=to_seq` (both inclusive) and the headers that sealed them.
//!
//! - gRPC: the stream ends with `OUT_OF_RANGE`, message
//!   `expired seqs 10..=19 sealed by headers <hex>,<hex>; resume from_seq=20 or restore them`,
//!   and the same in trailers a client reads without parsing text: `poh-expired-from`,
//!   `poh-expired-to`, `poh-expired-headers` (comma-separated) and `poh-expired-count` (how
//!   many transactions; fewer than the seqs when child headers' items lie between them);
//! - SSE: `event: expired`, `id:` the `to_seq` (so `Last-Event-ID` resumes after it), and
//!   [`ExpiredJson`] as data; the stream goes on with the next seq.

use poh_store::ExpiredRun;
use serde::{Deserialize, Serialize};
use tonic::metadata::{MetadataMap, MetadataValue};
use utoipa::ToSchema;

const FROM: &str = "poh-expired-from";
const TO: &str = "poh-expired-to";
const HEADERS: &str = "poh-expired-headers";
const COUNT: &str = "poh-expired-count";

/// Expired seqs as `event: expired` carries them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ExpiredJson {
    /// The first expired `poh_seq`.
    pub from_seq: u64,
    /// The last expired `poh_seq` (inclusive); the stream goes on after it.
    pub to_seq: u64,
    /// The `header_id`s of the headers that sealed them, in seq order.
    pub header_ids: Vec<String>,
}

impl From<&ExpiredRun> for ExpiredJson {
    fn from(run: &ExpiredRun) -> Self {
        Self {
            from_seq: run.from_seq,
            to_seq: run.to_seq,
            header_ids: run.header_ids.clone(),
        }
    }
}

/// Expired seqs as a client reads them from a gRPC status.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Expired {
    /// The first expired `poh_seq`.
    pub from_seq: u64,
    /// The last expired `poh_seq` (inclusive): resume from the one after it.
    pub to_seq: u64,
    /// How many transactions expired there (the seqs of child headers' items lie between
    /// them and are not counted); the whole range when the node did not say.
    pub count: u64,
    /// The `header_id`s of the headers that sealed them, in seq order.
    pub header_ids: Vec<String>,
}

impl Expired {
    /// The expired run a status names, or `None` when it is not one (any other code, or a
    /// message that does not name a range).
    pub fn from_status(status: &tonic::Status) -> Option<Self> {
        if status.code() != tonic::Code::OutOfRange {
            return None;
        }
        let meta = status.metadata();
        let text = |key: &str| meta.get(key).and_then(|v| v.to_str().ok());
        let number = |key: &str| text(key).and_then(|v| v.parse::<u64>().ok());
        let (from_seq, to_seq, header_ids) = match (number(FROM), number(TO)) {
            (Some(from), Some(to)) => (from, to, split_ids(text(HEADERS).unwrap_or_default())),
            _ => parse_message(status.message())?,
        };
        if to_seq < from_seq {
            return None;
        }
        // Never more transactions than seqs, whatever a peer claims.
        let seqs = (to_seq - from_seq).saturating_add(1);
        Some(Self {
            from_seq,
            to_seq,
            count: number(COUNT).map_or(seqs, |count| count.min(seqs)),
            header_ids,
        })
    }

    /// The seq to resume from.
    pub fn next_seq(&self) -> u64 {
        self.to_seq.saturating_add(1)
    }
}

/// The `OUT_OF_RANGE` that ends a `Subscribe` or `Sync` stream at `run`.
pub fn expired_status(run: &ExpiredRun) -> tonic::Status {
    let headers = run.header_ids.join(",");
    let message = format!(
        "expired seqs {}..={} sealed by headers {headers}; resume from_seq={} or restore them",
        run.from_seq,
        run.to_seq,
        run.to_seq.saturating_add(1)
    );
    let mut meta = MetadataMap::new();
    meta.insert(FROM, MetadataValue::from(run.from_seq));
    meta.insert(TO, MetadataValue::from(run.to_seq));
    meta.insert(COUNT, MetadataValue::from(run.count));
    // Header ids are hex: always a valid header value.
    if let Ok(value) = headers.parse() {
        meta.insert(HEADERS, value);
    }
    tonic::Status::with_metadata(tonic::Code::OutOfRange, message, meta)
}

fn split_ids(text: &str) -> Vec<String> {
    text.split(',')
        .filter(|id| !id.is_empty())
        .map(str::to_string)
        .collect()
}

/// `expired seqs A..=B sealed by headers X,Y; …`
fn parse_message(message: &str) -> Option<(u64, u64, Vec<String>)> {
    let rest = message.strip_prefix("expired seqs ")?;
    let (range, rest) = rest.split_once(' ')?;
    let (from, to) = range.split_once("..=")?;
    let ids = rest.strip_prefix("sealed by headers ")?.split(';').next()?;
    Some((from.parse().ok()?, to.parse().ok()?, split_ids(ids.trim())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run() -> ExpiredRun {
        ExpiredRun {
            from_seq: 10,
            to_seq: 19,
            count: 9,
            header_ids: vec!["ab".repeat(32), "cd".repeat(32)],
        }
    }

    #[test]
    fn a_status_names_the_run_in_its_message_and_trailers() {
        let status = expired_status(&run());
        assert_eq!(status.code(), tonic::Code::OutOfRange);
        assert_eq!(
            status.message(),
            format!(
                "expired seqs 10..=19 sealed by headers {},{}; resume from_seq=20 or restore them",
                "ab".repeat(32),
                "cd".repeat(32)
            )
        );
        let read = Expired::from_status(&status).unwrap();
        assert_eq!(read.count, 9);
        assert_eq!(read.next_seq(), 20);
        assert_eq!(read.header_ids, run().header_ids);
    }

    #[test]
    fn the_message_alone_is_enough_and_other_statuses_are_not_runs() {
        let full = expired_status(&run());
        let bare = tonic::Status::out_of_range(full.message());
        let read = Expired::from_status(&bare).unwrap();
        assert_eq!((read.from_seq, read.to_seq, read.count), (10, 19, 10));
        assert_eq!(read.header_ids, run().header_ids);
        assert_eq!(
            Expired::from_status(&tonic::Status::out_of_range("x")),
            None
        );
        let other = tonic::Status::not_found(full.message());
        assert_eq!(Expired::from_status(&other), None);
    }
}
