//! The PoH log file: how a stretch of a chain is written down for anyone to re-verify.
//!
//! JSON lines, UTF-8. The first line is the header, every other line one entry in the same
//! shape as `GET /v1/poh/entries` (SPEC §4); blank lines are ignored:
//!
//! ```text
//! {"format":"poh-log/1","chain_id":"local","hashes_per_tick":12500,"start_index":0,"start_hash":"<hex>"}
//! {"num_hashes":12500,"hash":"<hex>","mixins":[]}
//! {"num_hashes":42,"hash":"<hex>","mixins":["<hex>","<hex>"]}
//! ```
//!
//! `start_hash` is the hash before entry `start_index` (the genesis when it is 0, which is
//! then checked against `chain_id`). Entries are read in bounded chunks, so a log of any
//! length verifies in bounded memory.

use std::io::{BufRead, Read};

use serde::{Deserialize, Serialize};

use crate::{Error, Hash, poh::Entry, poh::genesis, recorder::MAX_HASHES_PER_TICK};

/// The `format` value of this version.
pub const FORMAT: &str = "poh-log/1";
/// Longest line accepted (about 250,000 mixins in one entry).
pub const MAX_LINE_BYTES: u64 = 16 << 20;

/// The first line of a log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogHeader {
    /// Always [`FORMAT`].
    pub format: String,
    /// The chain, when known; with `start_index` 0 the start hash must be its genesis.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chain_id: Option<String>,
    /// The chain's `hashes_per_tick`: the most hashes any entry may have.
    pub hashes_per_tick: u64,
    /// Index in the chain of the first entry in the file.
    #[serde(default)]
    pub start_index: u64,
    /// The hash before that entry.
    pub start_hash: Hash,
}

impl LogHeader {
    /// A header for a log that starts at the genesis of `chain_id`.
    pub fn from_genesis(chain_id: &str, hashes_per_tick: u64) -> Self {
        Self {
            format: FORMAT.into(),
            chain_id: Some(chain_id.into()),
            hashes_per_tick,
            start_index: 0,
            start_hash: genesis(chain_id),
        }
    }

    /// The header as one line, newline included.
    pub fn to_line(&self) -> String {
        json_line(self)
    }
}

/// An entry as one log line, newline included.
pub fn entry_line(entry: &Entry) -> String {
    json_line(entry)
}

fn json_line<T: Serialize>(value: &T) -> String {
    // Serializing plain structs of strings and integers cannot fail.
    let mut line = serde_json::to_string(value).unwrap_or_default();
    line.push('\n');
    line
}

/// Reads a log: the header on [`LogReader::open`], then entries in chunks.
pub struct LogReader<R> {
    lines: LineReader<R>,
}

/// Non-blank lines of at most [`MAX_LINE_BYTES`], counted (for errors) and measured (for
/// progress); shared by the PoH log and the chain file.
pub(crate) struct LineReader<R> {
    input: R,
    line: u64,
    bytes: u64,
    buf: Vec<u8>,
}

impl<R: BufRead> LineReader<R> {
    pub(crate) fn new(input: R) -> Self {
        Self {
            input,
            line: 0,
            bytes: 0,
            buf: Vec::new(),
        }
    }

    /// Line number of the last line read (1-based).
    pub(crate) fn line(&self) -> u64 {
        self.line
    }

    /// Bytes consumed so far.
    pub(crate) fn bytes_read(&self) -> u64 {
        self.bytes
    }

    /// The next non-blank line without its newline, or `None` at the end; an error names
    /// its line.
    pub(crate) fn next_line(&mut self) -> Result<Option<&[u8]>, (u64, String)> {
        loop {
            self.buf.clear();
            let n = (&mut self.input)
                .take(MAX_LINE_BYTES + 1)
                .read_until(b'\n', &mut self.buf)
                .map_err(|e| (self.line + 1, format!("cannot read: {e}")))?;
            if n == 0 {
                return Ok(None);
            }
            self.line += 1;
            self.bytes += n as u64;
            if n as u64 > MAX_LINE_BYTES {
                return Err((
                    self.line,
                    format!("line longer than {MAX_LINE_BYTES} bytes"),
                ));
            }
            if !self.buf.trim_ascii().is_empty() {
                return Ok(Some(self.buf.trim_ascii()));
            }
        }
    }
}

impl<R: BufRead> LogReader<R> {
    /// Reads and checks the header.
    pub fn open(input: R) -> Result<(LogHeader, Self), Error> {
        let mut reader = Self {
            lines: LineReader::new(input),
        };
        let Some(text) = reader.next_line()? else {
            return Err(reader.error("the file is empty; expected a header line".into()));
        };
        let header: LogHeader = serde_json::from_slice(text)
            .map_err(|e| reader.error(format!("not a PoH log header: {e}")))?;
        if header.format != FORMAT {
            return Err(reader.error(format!(
                "format {:?} is not {FORMAT:?}; this poh cannot read it",
                header.format
            )));
        }
        if !(1..=MAX_HASHES_PER_TICK).contains(&header.hashes_per_tick) {
            return Err(reader.error(format!(
                "hashes_per_tick must be 1..={MAX_HASHES_PER_TICK}, got {}",
                header.hashes_per_tick
            )));
        }
        if let (0, Some(chain)) = (header.start_index, &header.chain_id)
            && genesis(chain) != header.start_hash
        {
            return Err(reader.error(format!(
                "start_hash is not the genesis of chain {chain:?} ({})",
                genesis(chain)
            )));
        }
        Ok((header, reader))
    }

    /// Appends up to `max` entries to `out`; returns how many (0 at the end of the file).
    pub fn read_chunk(&mut self, max: usize, out: &mut Vec<Entry>) -> Result<usize, Error> {
        let before = out.len();
        while out.len() - before < max {
            let Some(text) = self.next_line()? else { break };
            let entry: Entry = serde_json::from_slice(text)
                .map_err(|e| self.error(format!("not a PoH entry: {e}")))?;
            out.push(entry);
        }
        Ok(out.len() - before)
    }

    /// Bytes consumed so far (for progress).
    pub fn bytes_read(&self) -> u64 {
        self.lines.bytes_read()
    }

    /// Line number of the last line read (1-based).
    pub fn line(&self) -> u64 {
        self.lines.line()
    }

    fn error(&self, reason: String) -> Error {
        Error::Log {
            line: self.lines.line(),
            reason,
        }
    }

    fn next_line(&mut self) -> Result<Option<&[u8]>, Error> {
        self.lines
            .next_line()
            .map_err(|(line, reason)| Error::Log { line, reason })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sha256;

    fn log(lines: &[String]) -> Vec<u8> {
        lines.concat().into_bytes()
    }

    #[test]
    fn round_trip_in_chunks() {
        let header = LogHeader::from_genesis("c", 100);
        let e1 = Entry::compute(&header.start_hash, 100, vec![]);
        let e2 = Entry::compute(&e1.hash, 3, vec![sha256(b"m")]);
        let bytes = log(&[
            header.to_line(),
            entry_line(&e1),
            "\n".into(),
            entry_line(&e2),
        ]);
        let (h, mut reader) = LogReader::open(bytes.as_slice()).unwrap();
        assert_eq!(h, header);
        let mut out = Vec::new();
        assert_eq!(reader.read_chunk(1, &mut out).unwrap(), 1);
        assert_eq!(reader.read_chunk(10, &mut out).unwrap(), 1);
        assert_eq!(reader.read_chunk(10, &mut out).unwrap(), 0);
        assert_eq!(out, vec![e1, e2]);
        assert_eq!(reader.bytes_read(), bytes.len() as u64);
    }

    #[test]
    fn bad_logs_name_the_line() {
        let header = LogHeader::from_genesis("c", 100);
        let line_of = |bytes: Vec<u8>| -> u64 {
            let err = match LogReader::open(bytes.as_slice()) {
                Err(e) => e,
                Ok((_, mut r)) => r.read_chunk(100, &mut Vec::new()).unwrap_err(),
            };
            match err {
                Error::Log { line, .. } => line,
                other => panic!("{other}"),
            }
        };
        assert_eq!(line_of(vec![]), 0);
        assert_eq!(line_of(b"{}\n".to_vec()), 1);
        let mut wrong_genesis = header.clone();
        wrong_genesis.chain_id = Some("other".into());
        assert_eq!(line_of(log(&[wrong_genesis.to_line()])), 1);
        let mut other_format = header.clone();
        other_format.format = "poh-log/9".into();
        assert_eq!(line_of(log(&[other_format.to_line()])), 1);
        let mut zero_rate = header.clone();
        zero_rate.hashes_per_tick = 0;
        assert_eq!(line_of(log(&[zero_rate.to_line()])), 1);
        let good = entry_line(&Entry::compute(&header.start_hash, 1, vec![]));
        assert_eq!(
            line_of(log(&[
                header.to_line(),
                good,
                "\n".into(),
                "{\"num_hashes\":1}\n".into()
            ])),
            4
        );
    }
}
