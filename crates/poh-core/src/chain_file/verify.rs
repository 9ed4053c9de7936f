//! Checks a chain file whole and names the first thing that is wrong, by its line.
//!
//! Headers are gathered until about [`BATCH_ENTRIES`] entries wait; then every entry of the
//! batch is re-hashed at once on all cores ([`verify_parallel`]), and the headers are checked
//! in order against them: signature, height, link, range, tick periods, `poh_hashes`,
//! `poh_end_hash`, `items_root`, `item_count`. Each child header must be signed by its
//! chain's listed key, follow the previous one of its chain, and be the item at the
//! `recorded_at_seq` it is listed with. Memory stays bounded by the batch.
//!
//! The keys the file lists are only what it claims: a file that checks is self-consistent,
//! and anyone can write one under a key of their own. It is anchored ([`ChainAnchor`]) only
//! when its chain's key is one the verifier already trusts.

use std::{collections::HashMap, io::BufRead};

use super::{ChainReader, ChainStart, Record};
use crate::{
    Entry, Hash, Header, HeaderVerifier,
    chain::Backend,
    seal::{ChainHead, TickPeriods, check_summary},
    verify::verify_parallel,
};

/// Entries verified together.
pub const BATCH_ENTRIES: usize = 1 << 16;
/// Most entries one header may cover in a file (a node seals at most 65,536).
const MAX_HEADER_ENTRIES: u64 = 1 << 20;

/// What a verified file held.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// Headers checked.
    pub headers: u64,
    /// PoH entries checked.
    pub entries: u64,
    /// Hash operations re-done.
    pub hashes: u64,
    /// Items (transaction digests and child header hashes) covered.
    pub items: u64,
    /// Child headers checked.
    pub child_headers: u64,
    /// Whether a trusted key vouches for what was checked.
    pub anchor: ChainAnchor,
}

/// Whether a key the verifier trusts vouches for a file that checks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ChainAnchor {
    /// The chain's headers are signed by a trusted key. It vouches for them and for the
    /// child headers they record, which the chain accepted only under the keys it is
    /// configured with for its children.
    Trusted,
    /// Everything checks, but the chain's key is not a trusted one (or the file holds no
    /// header for a key to vouch for).
    #[default]
    Unanchored,
}

/// The first thing wrong with a chain file.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {what}: {why}")]
pub struct ChainError {
    /// 1-based line of the bad item.
    pub line: u64,
    /// The item: `header 12`, `PoH entry 3456`, `child header municipality/tokyo 7`, …
    pub what: String,
    /// What is wrong with it.
    pub why: String,
}

fn fail<T>(
    line: u64,
    what: impl Into<String>,
    why: impl std::fmt::Display,
) -> Result<T, ChainError> {
    Err(ChainError {
        line,
        what: what.into(),
        why: why.to_string(),
    })
}

/// A header of the batch, with where its entries and child headers are.
struct Pending {
    line: u64,
    header: Header,
    first_entry: usize,
    children: Vec<(u64, Header, u64)>,
}

/// A child chain as the file goes: its key, and what its next header must be — the height,
/// the hash it links to, and the seq it must be recorded after — once known (from the
/// start: a file from the parent's genesis has every child from its height 0).
struct ChildChain {
    key: Vec<u8>,
    next: Option<(u64, Hash, Option<u64>)>,
}

/// Checks everything after the first line, and whether the chain's key is one of the
/// `trusted` public keys; `progress` gets the bytes read so far.
pub fn verify_chain<R: BufRead>(
    start: &ChainStart,
    mut reader: ChainReader<R>,
    backend: Backend,
    trusted: &[Vec<u8>],
    progress: &(dyn Fn(u64) + Sync),
) -> Result<Report, ChainError> {
    let key = hex::decode(&start.public_key).or_else(|_| fail(1, "public_key", "not hex"))?;
    let verifier = HeaderVerifier {
        chain_id: start.chain_id.clone(),
        level: start.level,
        public_key: key,
        hashes_per_tick: start.hashes_per_tick,
    };
    let mut children = HashMap::new();
    for c in &start.children {
        let key = hex::decode(&c.public_key)
            .or_else(|_| fail(1, format!("child {}", c.chain_id), "public_key is not hex"))?;
        let next = (start.height == 0).then_some((0, Hash::default(), None));
        children.insert(c.chain_id.clone(), ChildChain { key, next });
    }
    let mut check = Checker {
        verifier,
        backend,
        head: start.head(),
        ticks_known: start.hashes_in_tick.is_some(),
        children,
        report: Report::default(),
        batch: Vec::new(),
        entries: Vec::new(),
        entry_lines: Vec::new(),
    };
    while let Some((line, record)) = reader.next_record().map_err(|e| ChainError {
        line: e.line,
        what: "line".into(),
        why: e.reason,
    })? {
        match record {
            Record::Header(header) => {
                if check.entries.len() >= BATCH_ENTRIES {
                    check.flush()?;
                    progress(reader.bytes_read());
                }
                let count = header.poh_end.saturating_sub(header.poh_start);
                if count == 0 || count > MAX_HEADER_ENTRIES {
                    return fail(
                        line,
                        format!("header {}", header.height),
                        format!("covers {count} entries; a header covers 1–{MAX_HEADER_ENTRIES}"),
                    );
                }
                let first_entry = check.entries.len();
                check.batch.push(Pending {
                    line,
                    header,
                    first_entry,
                    children: Vec::new(),
                });
                for k in 0..count {
                    match reader.next_record().map_err(|e| ChainError {
                        line: e.line,
                        what: "line".into(),
                        why: e.reason,
                    })? {
                        Some((l, Record::Entry(e))) => {
                            check.entries.push(e);
                            check.entry_lines.push(l);
                        }
                        other => {
                            let at = other.map_or(line, |(l, _)| l);
                            let height = check.batch.last().map_or(0, |p| p.header.height);
                            return fail(
                                at,
                                format!("header {height}"),
                                format!("expected its PoH entry {k} of {count} here"),
                            );
                        }
                    }
                }
            }
            Record::Child(header, seq) => match check.batch.last_mut() {
                Some(p) => p.children.push((line, header, seq)),
                None => return fail(line, "child header", "listed before any header"),
            },
            Record::Entry(_) => return fail(line, "PoH entry", "outside any header's entries"),
        }
    }
    check.flush()?;
    progress(reader.bytes_read());
    if check.report.headers > 0 && trusted.contains(&check.verifier.public_key) {
        check.report.anchor = ChainAnchor::Trusted;
    }
    Ok(check.report)
}

struct Checker {
    verifier: HeaderVerifier,
    backend: Backend,
    head: ChainHead,
    /// Whether the tick period at the head is known (else it is found from the first tick).
    ticks_known: bool,
    children: HashMap<String, ChildChain>,
    report: Report,
    batch: Vec<Pending>,
    entries: Vec<Entry>,
    entry_lines: Vec<u64>,
}

impl Checker {
    fn flush(&mut self) -> Result<(), ChainError> {
        let hpt = self.verifier.hashes_per_tick;
        let poh = verify_parallel(
            self.backend,
            &self.head.start_hash,
            &self.entries,
            hpt,
            &|_| {},
        )
        .err();
        if !self.ticks_known {
            self.head.hashes_in_tick =
                first_period_offset(&self.entries, hpt).ok_or_else(|| ChainError {
                    line: self.entry_lines.first().copied().unwrap_or(1),
                    what: "PoH entries".into(),
                    why: "no tick to find the tick period the file starts in".into(),
                })?;
            self.ticks_known = true;
        }
        let batch = std::mem::take(&mut self.batch);
        for (i, p) in batch.iter().enumerate() {
            let end = batch
                .get(i + 1)
                .map_or(self.entries.len(), |n| n.first_entry);
            let what = format!("header {}", p.header.height);
            self.verifier
                .check_header(&self.head, &p.header)
                .or_else(|e| fail(p.line, what.clone(), e))?;
            let before = self.head.clone();
            // An entry that does not verify: the tick periods before it may still be the
            // first thing wrong, so they are checked up to it.
            if let Some(e) = poh.as_ref().filter(|e| e.index < end) {
                let mut ticks = TickPeriods::new(hpt, before.hashes_in_tick);
                for (k, entry) in self.entries[p.first_entry..e.index].iter().enumerate() {
                    if let Err(failure) = ticks.push(entry) {
                        let index = before.poh_start + k as u64;
                        return fail(
                            self.entry_lines[p.first_entry + k],
                            format!("PoH entry {index}"),
                            failure,
                        );
                    }
                }
                let index = before.poh_start + (e.index - p.first_entry) as u64;
                return fail(
                    self.entry_lines[e.index],
                    format!("PoH entry {index}"),
                    &e.failure,
                );
            }
            let covered = &self.entries[p.first_entry..end];
            self.head = check_summary(&before, &p.header, covered, hpt).or_else(|e| match e {
                crate::HeaderError::Entry { index, failure } => {
                    let at = (index - before.poh_start) as usize;
                    fail(
                        self.entry_lines[p.first_entry + at],
                        format!("PoH entry {index}"),
                        failure,
                    )
                }
                other => fail(p.line, what.clone(), other),
            })?;
            let items: Vec<Hash> = covered
                .iter()
                .flat_map(|e| e.mixins.iter().copied())
                .collect();
            self.report.entries += covered.len() as u64;
            for (line, child, seq) in &p.children {
                self.check_child(*line, child, *seq, &before, &items)?;
            }
            self.report.headers += 1;
            self.report.hashes += p.header.poh_hashes;
            self.report.items += p.header.item_count;
        }
        self.entries.clear();
        self.entry_lines.clear();
        Ok(())
    }

    fn check_child(
        &mut self,
        line: u64,
        child: &Header,
        seq: u64,
        before: &ChainHead,
        items: &[Hash],
    ) -> Result<(), ChainError> {
        let what = format!("child header {} {}", child.chain_id, child.height);
        let Some(chain) = self.children.get_mut(&child.chain_id) else {
            return fail(line, what, "its chain is not among the file's children");
        };
        if Some(child.level) != self.verifier.level.below() {
            return fail(
                line,
                what,
                format!("level {} is not the level below", child.level),
            );
        }
        if child.public_key != chain.key {
            return fail(line, what, "public_key is not the key listed for its chain");
        }
        if child.verify_signature().is_err() {
            return fail(
                line,
                what,
                "signature does not verify over the header bytes",
            );
        }
        if let Some((height, prev, after_seq)) = chain.next {
            if child.height != height || child.prev_header_hash != prev {
                let why = format!(
                    "does not follow its chain: expected height {height} linking to {prev}"
                );
                return fail(line, what, why);
            }
            if let Some(last) = after_seq.filter(|last| seq <= *last) {
                return fail(
                    line,
                    what,
                    format!("recorded at seq {seq}, not after its previous header (seq {last})"),
                );
            }
        }
        let index = seq
            .checked_sub(before.seq)
            .filter(|i| (*i as usize) < items.len());
        let Some(index) = index else {
            return fail(
                line,
                what,
                format!(
                    "recorded_at_seq {seq} is outside the items {}..{} of its header",
                    before.seq,
                    before.seq + items.len() as u64
                ),
            );
        };
        let hash = child.hash();
        if items[index as usize] != hash {
            return fail(
                line,
                what,
                format!(
                    "the item at seq {seq} is {}, not this header's hash {hash}",
                    items[index as usize]
                ),
            );
        }
        chain.next = Some((child.height + 1, hash, Some(seq)));
        self.report.child_headers += 1;
        Ok(())
    }
}

/// Hash operations already done in the tick period the first entry falls in, found from the
/// first tick (`None` when there is none, or the hashes before it exceed a period).
fn first_period_offset(entries: &[Entry], hashes_per_tick: u64) -> Option<u64> {
    let mut sum = 0u64;
    for e in entries {
        sum = sum.checked_add(e.num_hashes)?;
        if e.is_tick() {
            return hashes_per_tick.checked_sub(sum);
        }
    }
    None
}
