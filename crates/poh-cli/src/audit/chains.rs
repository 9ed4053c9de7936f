//! What `poh audit` reads of each node's chain: its export, verified from genesis, and the
//! facts the cross-chain checks need (headers, where each item sits, recorded child headers).

use std::{
    collections::HashMap,
    io::{BufReader, Seek as _, Write as _},
};

use anyhow::Context as _;
use poh_core::{
    Hash, Header, Level,
    chain::Backend,
    chain_file::{ChainReader, ChainStart, Record, verify::verify_chain},
};

use crate::client::NodeHttp;

/// Where an item sits in a chain.
#[derive(Clone, Copy, Debug)]
pub(super) struct Place {
    /// Its `poh_seq`.
    pub seq: u64,
    /// The height of the header whose items hold it.
    pub height: u64,
}

/// One node's chain, as its export showed it.
pub(super) struct Chain {
    /// The node's HTTP address.
    pub url: String,
    pub start: ChainStart,
    /// Its headers in height order, from 0.
    pub headers: Vec<Header>,
    /// Every item the headers cover, and where (the first place, for an item seen twice).
    pub items: HashMap<Hash, Place>,
    /// Items recorded more than once: the item and its two places.
    pub twice: Vec<(Hash, Place, Place)>,
    /// The child headers it recorded, by child chain, in the order recorded.
    pub children: HashMap<String, Vec<(Header, u64)>>,
    /// What was wrong with the file, when it did not verify.
    pub broken: Option<String>,
}

impl Chain {
    /// Downloads `GET /v1/export` from `node` into a temporary file, verifies it whole (every
    /// entry re-hashed, every header and child header checked), and reads it again for the
    /// facts the audit compares across chains.
    pub(super) async fn fetch(node: &NodeHttp, trusted: &[Vec<u8>]) -> anyhow::Result<Self> {
        let base = node.base().to_string();
        let mut file = tempfile::tempfile().context("cannot make a temporary file")?;
        let mut response = node.get("/v1/export?from_height=0").await?;
        while let Some(chunk) = response
            .chunk()
            .await
            .with_context(|| format!("{base} broke off its export"))?
        {
            file.write_all(&chunk)
                .context("cannot write a temporary file")?;
        }
        file.rewind().context("cannot read a temporary file")?;
        let (start, reader) = ChainReader::open(BufReader::with_capacity(1 << 20, &file))
            .with_context(|| format!("{base} exported something that is not a chain file"))?;
        let broken = verify_chain(&start, reader, Backend::fastest(), trusted, &|_| {})
            .err()
            .map(|e| e.to_string());
        file.rewind().context("cannot read a temporary file")?;
        let (_, mut reader) = ChainReader::open(BufReader::with_capacity(1 << 20, &file))
            .with_context(|| format!("{base}'s export"))?;
        let mut chain = Self {
            url: base.clone(),
            headers: Vec::new(),
            items: HashMap::new(),
            twice: Vec::new(),
            children: HashMap::new(),
            broken,
            start,
        };
        let mut seq = chain.start.seq;
        while let Some((_, record)) = reader
            .next_record()
            .map_err(|e| anyhow::anyhow!("{base}'s export, line {}: {}", e.line, e.reason))?
        {
            match record {
                Record::Header(header) => chain.headers.push(header),
                Record::Entry(entry) => {
                    let height = chain.headers.last().map_or(0, |h| h.height);
                    for item in entry.mixins {
                        let place = Place { seq, height };
                        if let Some(first) = chain.items.get(&item) {
                            chain.twice.push((item, *first, place));
                        } else {
                            chain.items.insert(item, place);
                        }
                        seq += 1;
                    }
                }
                Record::Child(header, at) => chain
                    .children
                    .entry(header.chain_id.clone())
                    .or_default()
                    .push((header, at)),
            }
        }
        Ok(chain)
    }

    /// The chain's name in findings.
    pub(super) fn name(&self) -> String {
        format!(
            "{} ({}, {})",
            self.start.chain_id, self.start.level, self.url
        )
    }

    pub(super) fn level(&self) -> Level {
        self.start.level
    }

    /// The chain's own key, as its export gives it.
    pub(super) fn key(&self) -> String {
        self.start.public_key.clone()
    }

    /// The key this chain lists for child chain `chain_id`, when it records that child.
    pub(super) fn child_key(&self, chain_id: &str) -> Option<&str> {
        self.start
            .children
            .iter()
            .find(|c| c.chain_id == chain_id)
            .map(|c| c.public_key.as_str())
    }
}
