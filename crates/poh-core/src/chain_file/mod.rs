//! The chain file: a self-contained stretch of a federation chain, as `poh export` writes it
//! and `poh verify --chain` checks it ([`verify`]).
//!
//! JSON lines, UTF-8. The first line is the [`ChainStart`]: the chain, its key, its
//! `hashes_per_tick`, its children's keys, and where the file starts. Then, for each header
//! in height order: the header, its PoH entries (as in a PoH log), and the child headers its
//! entries recorded, each with the `poh_seq` of its item:
//!
//! ```text
//! {"format":"poh-chain/1","chain_id":"global/earth","level":"global",...}
//! {"header":"<hex of the header bytes and signature>"}
//! {"num_hashes":500,"hash":"<hex>","mixins":[]}
//! {"num_hashes":12,"hash":"<hex>","mixins":["<hex>"]}
//! {"child":"<hex of a child's header bytes and signature>","recorded_at_seq":17}
//! ```

pub mod verify;

use std::io::BufRead;

use serde::{Deserialize, Serialize};

use crate::{Entry, Hash, Header, Level, poh_log::LineReader, seal::ChainHead};

/// The `format` value of this version.
pub const FORMAT: &str = "poh-chain/1";

/// A child chain's key, as the file lists it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChildKey {
    /// The child's `chain_id`.
    pub chain_id: String,
    /// Its ML-DSA-87 public key, hex.
    pub public_key: String,
}

/// The first line.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainStart {
    /// Always [`FORMAT`].
    pub format: String,
    /// The chain.
    pub chain_id: String,
    /// Its level.
    pub level: Level,
    /// Its `hashes_per_tick`.
    pub hashes_per_tick: u64,
    /// The key its headers are signed with, hex.
    pub public_key: String,
    /// The first header's height.
    pub height: u64,
    /// The hash it links to (zeros at height 0).
    pub prev_header_hash: Hash,
    /// Its `poh_start`.
    pub poh_start: u64,
    /// The hash before entry `poh_start` (the genesis at 0).
    pub start_hash: Hash,
    /// Hash operations done in the tick period at `poh_start`; unknown (the first period is
    /// then not checked) when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hashes_in_tick: Option<u64>,
    /// Items recorded before entry `poh_start`.
    pub seq: u64,
    /// The children whose headers the chain records.
    #[serde(default)]
    pub children: Vec<ChildKey>,
}

impl ChainStart {
    /// The head the first header continues.
    pub fn head(&self) -> ChainHead {
        ChainHead {
            height: self.height,
            prev_header_hash: self.prev_header_hash,
            poh_start: self.poh_start,
            start_hash: self.start_hash,
            hashes_in_tick: self.hashes_in_tick.unwrap_or(0),
            seq: self.seq,
        }
    }
}

/// One line after the first.
#[derive(Clone, Debug, PartialEq)]
pub enum Record {
    /// One of the chain's headers.
    Header(Header),
    /// A PoH entry.
    Entry(Entry),
    /// A child header, and the `poh_seq` of the item that recorded it.
    Child(Header, u64),
}

/// Every field any line may have: one parse decides which line it is.
#[derive(Default, Serialize, Deserialize)]
struct Line {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    header: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    child: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    recorded_at_seq: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    num_hashes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    hash: Option<Hash>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    mixins: Option<Vec<Hash>>,
}

impl Record {
    /// The record as one line, newline included.
    pub fn to_line(&self) -> String {
        let line = match self {
            Self::Header(h) => Line {
                header: Some(hex::encode(h.to_signed_bytes())),
                ..Line::default()
            },
            Self::Child(h, seq) => Line {
                child: Some(hex::encode(h.to_signed_bytes())),
                recorded_at_seq: Some(*seq),
                ..Line::default()
            },
            Self::Entry(e) => return crate::poh_log::entry_line(e),
        };
        let mut text = serde_json::to_string(&line).unwrap_or_default();
        text.push('\n');
        text
    }

    fn parse(text: &[u8]) -> Result<Self, String> {
        let line: Line = serde_json::from_slice(text).map_err(|e| e.to_string())?;
        let header = |hex_text: &str| {
            let bytes = hex::decode(hex_text).map_err(|_| "not hex".to_string())?;
            Header::from_signed_bytes(&bytes).map_err(|e| e.to_string())
        };
        match line {
            Line {
                header: Some(h),
                child: None,
                ..
            } => Ok(Self::Header(header(&h)?)),
            Line {
                child: Some(c),
                recorded_at_seq: Some(seq),
                header: None,
                ..
            } => Ok(Self::Child(header(&c)?, seq)),
            Line {
                num_hashes: Some(num_hashes),
                hash: Some(hash),
                mixins: Some(mixins),
                header: None,
                child: None,
                ..
            } => Ok(Self::Entry(Entry {
                num_hashes,
                hash,
                mixins,
            })),
            _ => Err("neither a header, an entry nor a child header".into()),
        }
    }
}

/// Why a chain file cannot be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {reason}")]
pub struct ReadError {
    /// 1-based line number.
    pub line: u64,
    /// What is wrong with it.
    pub reason: String,
}

/// Reads a chain file: the start on [`ChainReader::open`], then one record at a time.
pub struct ChainReader<R> {
    lines: LineReader<R>,
}

impl<R: BufRead> ChainReader<R> {
    /// Reads and checks the first line.
    pub fn open(input: R) -> Result<(ChainStart, Self), ReadError> {
        let mut lines = LineReader::new(input);
        let error = |line, reason| ReadError { line, reason };
        let text = lines
            .next_line()
            .map_err(|(line, reason)| error(line, reason))?
            .ok_or_else(|| error(0, "the file is empty".into()))?;
        let start: ChainStart = serde_json::from_slice(text)
            .map_err(|e| error(1, format!("not a chain file's first line: {e}")))?;
        if start.format != FORMAT {
            return Err(error(
                1,
                format!("format {:?} is not {FORMAT:?}", start.format),
            ));
        }
        Ok((start, Self { lines }))
    }

    /// The next record and its line number, or `None` at the end.
    pub fn next_record(&mut self) -> Result<Option<(u64, Record)>, ReadError> {
        let text = self
            .lines
            .next_line()
            .map_err(|(line, reason)| ReadError { line, reason })?;
        let Some(text) = text else {
            return Ok(None);
        };
        let record = Record::parse(text).map_err(|reason| ReadError {
            line: self.lines.line(),
            reason,
        })?;
        Ok(Some((self.lines.line(), record)))
    }

    /// Bytes consumed so far (for progress).
    pub fn bytes_read(&self) -> u64 {
        self.lines.bytes_read()
    }
}

#[cfg(test)]
mod tests;
