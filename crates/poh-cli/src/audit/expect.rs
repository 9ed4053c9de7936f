//! The acknowledged transactions (`--expect`): each stored with its digest somewhere, at its
//! `poh_seq` in that node's chain, and sealed in a header that climbs to the top level.

use std::{io::BufRead as _, path::Path};

use anyhow::Context as _;
use futures_util::{StreamExt as _, stream};
use poh_core::{Hash, Level};
use poh_node::wire::{headers::ProofJson, json::TxIn};
use reqwest::StatusCode;
use serde::Deserialize;

use super::chains::Chain;
use crate::client::NodeHttp;

/// Requests in flight at once.
const CONCURRENCY: usize = 16;

/// One line of `--expect`.
#[derive(Deserialize)]
pub(super) struct Expected {
    tx_id: String,
    digest: Hash,
}

/// Reads `--expect`: JSON lines `{"tx_id","digest"}`; blank lines are skipped.
pub(super) fn read(path: &Path) -> anyhow::Result<Vec<Expected>> {
    let file =
        std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut out = Vec::new();
    for (n, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line.with_context(|| format!("cannot read {}", path.display()))?;
        if line.trim().is_empty() {
            continue;
        }
        let expected: Expected = serde_json::from_str(&line).with_context(|| {
            format!(
                "{} line {}: expected {{\"tx_id\", \"digest\" (hex)}}",
                path.display(),
                n + 1
            )
        })?;
        out.push(expected);
    }
    Ok(out)
}

/// For each chain, for each of its headers: whether it climbs to the `top` level, recorded by
/// the parent in a header that climbs too (the top level's own headers do).
pub(super) fn reaching_top(
    chains: &[Chain],
    parents: &[Option<usize>],
    top: Level,
) -> Vec<Vec<bool>> {
    let mut up: Vec<Vec<bool>> = chains
        .iter()
        .map(|c| vec![c.level() == top; c.headers.len()])
        .collect();
    // Parents first: a level's answers need the level above's.
    let mut order: Vec<usize> = (0..chains.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(chains[i].level()));
    for i in order {
        let Some(p) = parents[i] else { continue };
        for (height, header) in chains[i].headers.iter().enumerate() {
            let climbs = chains[p]
                .items
                .get(&header.hash())
                .is_some_and(|place| up[p].get(place.height as usize) == Some(&true));
            up[i][height] = climbs;
        }
    }
    up
}

/// What a node answered for `GET /v1/tx/{id}`.
enum Held {
    /// Stored: the digest of the transaction it returned, and its `poh_seq`.
    Stored(Hash, u64),
    /// Expired by its TTL, sealed by this header.
    Expired(String),
    Absent,
}

#[derive(Deserialize)]
struct StoredJson {
    #[serde(flatten)]
    tx: TxIn,
    poh_seq: u64,
}

#[derive(Deserialize)]
struct ExpiredJson {
    header_id: String,
}

async fn held(node: &NodeHttp, tx_id: &str) -> anyhow::Result<Held> {
    let base = node.base();
    let response = node.send(&format!("/v1/tx/{tx_id}")).await?;
    let status = response.status();
    let body = response
        .bytes()
        .await
        .with_context(|| format!("{base} broke off its answer for {tx_id}"))?;
    Ok(match status {
        StatusCode::OK => {
            let json: StoredJson = serde_json::from_slice(&body)
                .with_context(|| format!("{base} answered {tx_id} with no transaction"))?;
            let tx = json
                .tx
                .into_tx()
                .map_err(|e| anyhow::anyhow!("{base} answered {tx_id} with a bad one: {e}"))?;
            Held::Stored(tx.digest(), json.poh_seq)
        }
        StatusCode::GONE => {
            let json: ExpiredJson = serde_json::from_slice(&body)
                .with_context(|| format!("{base} answered 410 for {tx_id} without a header"))?;
            Held::Expired(json.header_id)
        }
        StatusCode::NOT_FOUND => Held::Absent,
        other => anyhow::bail!(
            "{base} answered {other} for {tx_id}: {}",
            String::from_utf8_lossy(&body)
        ),
    })
}

/// Checks every expected transaction against every node, and verifies `proofs` of the proofs
/// the nodes serve; how many served proofs were verified.
pub(super) async fn check(
    nodes: &[NodeHttp],
    chains: &[Chain],
    up: &[Vec<bool>],
    expected: &[Expected],
    trusted: &[Vec<u8>],
    proofs: usize,
    findings: &mut Vec<String>,
) -> anyhow::Result<usize> {
    let answers: Vec<anyhow::Result<Vec<Held>>> = stream::iter(expected)
        .map(|e| async move {
            let mut answers = Vec::with_capacity(nodes.len());
            for node in nodes {
                answers.push(held(node, &e.tx_id).await?);
            }
            Ok(answers)
        })
        .buffered(CONCURRENCY)
        .collect()
        .await;
    let every = (expected.len() / proofs.max(1)).max(1);
    let mut verified = 0;
    for (k, (e, answers)) in expected.iter().zip(answers).enumerate() {
        let answers = answers?;
        let Some(stored_on) = check_one(e, chains, up, &answers, findings) else {
            continue;
        };
        if proofs > 0 && k % every == 0 && verified < proofs {
            check_proof(&nodes[stored_on], e, chains, trusted, findings).await?;
            verified += 1;
        }
    }
    Ok(verified)
}

/// One expected transaction against the nodes' answers; the node whose stored copy climbs
/// to the top, for a served proof.
fn check_one(
    e: &Expected,
    chains: &[Chain],
    up: &[Vec<bool>],
    answers: &[Held],
    findings: &mut Vec<String>,
) -> Option<usize> {
    let id = &e.tx_id;
    let mut found = false;
    let mut other_digest = false;
    let mut climbs = None;
    for (i, answer) in answers.iter().enumerate() {
        let chain = &chains[i];
        let place = chain.items.get(&e.digest);
        match answer {
            Held::Absent => continue,
            Held::Stored(digest, _) if *digest != e.digest => {
                findings.push(format!(
                    "{}: {id} is stored with digest {digest}, not the acknowledged {}",
                    chain.name(),
                    e.digest
                ));
                other_digest = true;
                continue;
            }
            Held::Stored(_, seq) => match place {
                Some(p) if p.seq == *seq => {}
                Some(p) => findings.push(format!(
                    "{}: {id} says poh_seq {seq}, but its digest is the item at seq {}",
                    chain.name(),
                    p.seq
                )),
                // Not sealed yet: the export holds sealed entries only.
                None => {
                    findings.push(format!("{}: {id} is stored but not sealed", chain.name()));
                    found = true;
                    continue;
                }
            },
            Held::Expired(header_id) => {
                let sealed_by = place.and_then(|p| chain.headers.get(p.height as usize));
                if sealed_by.map(|h| h.id()).as_ref() != Some(header_id) {
                    findings.push(format!(
                        "{}: {id} expired, sealed by {header_id} it says, but that header does \
                         not hold its digest",
                        chain.name()
                    ));
                    found = true;
                    continue;
                }
            }
        }
        found = true;
        if let Some(p) = place
            && up[i].get(p.height as usize) == Some(&true)
        {
            climbs.get_or_insert(i);
        }
    }
    // A copy under another digest was said above, node by node.
    if !found && !other_digest {
        findings.push(format!(
            "{id} (digest {}) was acknowledged but no node holds it",
            e.digest
        ));
    } else if found && climbs.is_none() {
        findings.push(format!(
            "{id}: no node's copy is sealed in a header recorded up to the top level"
        ));
    }
    climbs
}

/// The proof `node` serves for `e`: it verifies, and its top link is a header of a chain at
/// the top level among those audited, signed with that chain's key.
async fn check_proof(
    node: &NodeHttp,
    e: &Expected,
    chains: &[Chain],
    trusted: &[Vec<u8>],
    findings: &mut Vec<String>,
) -> anyhow::Result<()> {
    let base = node.base();
    let proof: ProofJson = node
        .get(&format!("/v1/tx/{}/proof", e.tx_id))
        .await?
        .json()
        .await
        .with_context(|| format!("{base} did not answer with a proof for {}", e.tx_id))?;
    let links = match proof.verify(trusted) {
        Ok((links, _)) => links,
        Err(why) => {
            findings.push(format!(
                "{base}: the proof of {} does not verify: {why}",
                e.tx_id
            ));
            return Ok(());
        }
    };
    let top = chains.iter().map(Chain::level).max();
    let reached = links.last().is_some_and(|l| {
        let hash = l.header.hash();
        chains.iter().any(|c| {
            Some(c.level()) == top
                && c.headers.get(l.header.height as usize).map(|h| h.hash()) == Some(hash)
        })
    });
    if proof.item != e.digest.to_hex() || !reached {
        findings.push(format!(
            "{base}: the proof of {} does not reach a top-level header of the chains audited",
            e.tx_id
        ));
    }
    Ok(())
}
