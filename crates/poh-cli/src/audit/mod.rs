//! `poh audit --node URL… [--expect FILE]`: a running federation checked from outside, from
//! its nodes' HTTP APIs alone.
//!
//! - Every node's chain is exported and re-verified from genesis ([`chains`]); no item (a
//!   transaction's digest, a child header's hash) appears twice in one chain.
//! - Between a node and its parent among the nodes given: the parent lists the child's own
//!   key; every header the parent recorded for the child is the child's own header at that
//!   height; every child header up to the last one recorded was recorded (exactly once, since
//!   no item repeats); later ones are only reported as not recorded yet.
//! - Every transaction in `--expect` (JSON lines `{"tx_id","digest"}`, what clients were
//!   acknowledged) is stored by some node with that digest, or expired there with its digest
//!   in the header the node names; its digest is the item at its `poh_seq`; and the header
//!   holding it is recorded by the parent, whose header is recorded by its parent, up to the
//!   highest level given ([`expect`]). A sample of proofs served by the nodes is verified too.
//!
//! One line per finding on stdout and a non-zero exit on any. `--wait` repeats the whole
//! audit until it is clean or the time is up (sealing lags writes by a batch interval per
//! level), and reports the last one.

mod chains;
mod expect;

use std::{
    path::PathBuf,
    time::{Duration, Instant},
};

use anyhow::bail;
use poh_core::Level;

use self::{chains::Chain, expect::Expected};
use crate::{
    client::{NodeHttp, TlsArgs, runtime},
    trust::fingerprint,
};

/// `poh audit`.
#[derive(clap::Args, Debug)]
pub struct AuditArgs {
    /// A node's HTTP address (repeatable): every node of the federation to check.
    #[arg(long = "node", value_name = "URL", required = true)]
    nodes: Vec<String>,
    /// JSON lines `{"tx_id","digest"}` (digest in hex): transactions that must be stored and
    /// proven up to the highest level given.
    #[arg(long, value_name = "FILE")]
    expect: Option<PathBuf>,
    /// Served proofs to fetch and verify, spread over the expected transactions.
    #[arg(long, default_value_t = 32)]
    proofs: usize,
    /// Repeat the audit for up to this many seconds until it is clean.
    #[arg(long, default_value_t = 0)]
    wait_secs: u64,
    /// Seconds each request may take (an export streams the whole chain).
    #[arg(long, default_value_t = 600)]
    timeout_secs: u64,
    /// A public-key file of a chain you trust (repeatable): the top chain must be one.
    /// Without it, the audit says that the chains it checked are not anchored.
    #[arg(long = "trust", value_name = "PUBKEY_FILE")]
    trust: Vec<PathBuf>,
    #[command(flatten)]
    tls: TlsArgs,
}

pub fn audit(args: &AuditArgs) -> anyhow::Result<()> {
    let trusted: Vec<Vec<u8>> = args
        .trust
        .iter()
        .map(|path| {
            poh_node::federation::key::read_public_key(path)
                .map_err(|e| anyhow::anyhow!("--trust {}: {e}", path.display()))
        })
        .collect::<anyhow::Result<_>>()?;
    let expected = match &args.expect {
        Some(path) => expect::read(path)?,
        None => Vec::new(),
    };
    let timeout = Duration::from_secs(args.timeout_secs.max(1));
    let nodes = args
        .nodes
        .iter()
        .map(|url| NodeHttp::new(url, &args.tls, timeout))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let deadline = Instant::now() + Duration::from_secs(args.wait_secs);
    let rt = runtime()?;
    loop {
        let report = rt.block_on(audit_once(&nodes, &expected, &trusted, args.proofs))?;
        if report.findings.is_empty() || Instant::now() >= deadline {
            for line in &report.notes {
                println!("note: {line}");
            }
            for line in &report.findings {
                println!("{line}");
            }
            println!("{}", report.summary);
            if !report.findings.is_empty() {
                bail!("the audit found {} problem(s)", report.findings.len());
            }
            return Ok(());
        }
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// One audit's outcome.
struct Report {
    findings: Vec<String>,
    notes: Vec<String>,
    summary: String,
}

async fn audit_once(
    nodes: &[NodeHttp],
    expected: &[Expected],
    trusted: &[Vec<u8>],
    proofs: usize,
) -> anyhow::Result<Report> {
    let mut findings = Vec::new();
    let mut notes = Vec::new();
    let mut chains = Vec::with_capacity(nodes.len());
    for node in nodes {
        chains.push(Chain::fetch(node, trusted).await?);
    }
    let top = chains
        .iter()
        .map(Chain::level)
        .max()
        .unwrap_or(Level::Municipality);
    for chain in &chains {
        if let Some(why) = &chain.broken {
            findings.push(format!("{}: does not verify: {why}", chain.name()));
        }
        for (item, first, again) in &chain.twice {
            findings.push(format!(
                "{}: item {item} recorded twice, at seq {} (header {}) and seq {} (header {})",
                chain.name(),
                first.seq,
                first.height,
                again.seq,
                again.height
            ));
        }
    }
    let parents = parents(&chains, &mut findings);
    for (child, parent) in parents.iter().enumerate() {
        if let Some(parent) = parent {
            check_recorded(&chains[child], &chains[*parent], &mut findings, &mut notes);
        } else if chains[child].level() < top {
            findings.push(format!(
                "{}: no node given records this chain, so nothing it holds can reach the {top} \
                 level",
                chains[child].name()
            ));
        }
    }
    let tops: Vec<&Chain> = chains.iter().filter(|c| c.level() == top).collect();
    if trusted.is_empty() {
        notes.push(format!(
            "no --trust key given: the chains are consistent with each other, but nothing \
             anchors the top ({})",
            tops.iter()
                .map(|c| format!("{} key {}", c.start.chain_id, key_print(&c.key())))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    } else {
        for chain in &tops {
            let key = hex::decode(chain.key()).unwrap_or_default();
            if !trusted.contains(&key) {
                findings.push(format!(
                    "{}: its key {} is not a --trust key",
                    chain.name(),
                    fingerprint(&key)
                ));
            }
        }
    }
    let up = expect::reaching_top(&chains, &parents, top);
    let checked = expect::check(
        nodes,
        &chains,
        &up,
        expected,
        trusted,
        proofs,
        &mut findings,
    )
    .await?;
    let headers: usize = chains.iter().map(|c| c.headers.len()).sum();
    let summary = format!(
        "audited {} node(s) up to the {top} level: {headers} headers, {} expected \
         transaction(s) ({checked} served proofs verified): {}",
        chains.len(),
        expected.len(),
        match findings.len() {
            0 => "clean".to_string(),
            n => format!("{n} finding(s)"),
        }
    );
    Ok(Report {
        findings,
        notes,
        summary,
    })
}

/// A hex key as messages show it.
fn key_print(hex_key: &str) -> String {
    fingerprint(&hex::decode(hex_key).unwrap_or_default())
}

/// For each chain, the chain among those given that records it: one a level up that lists
/// its chain id. The parent must list the child's own key.
fn parents(chains: &[Chain], findings: &mut Vec<String>) -> Vec<Option<usize>> {
    chains
        .iter()
        .map(|child| {
            let parent = chains.iter().position(|p| {
                p.level().below() == Some(child.level())
                    && p.child_key(&child.start.chain_id).is_some()
            })?;
            let listed = chains[parent].child_key(&child.start.chain_id)?;
            if listed != child.key() {
                findings.push(format!(
                    "{}: its parent {} lists key {} for it, but it signs with {}",
                    child.name(),
                    chains[parent].name(),
                    key_print(listed),
                    key_print(&child.key())
                ));
            }
            Some(parent)
        })
        .collect()
}

/// Every header `parent` recorded for `child` is `child`'s own, and every child header up to
/// the last recorded one was recorded.
fn check_recorded(
    child: &Chain,
    parent: &Chain,
    findings: &mut Vec<String>,
    notes: &mut Vec<String>,
) {
    let recorded = parent
        .children
        .get(&child.start.chain_id)
        .map_or(&[][..], Vec::as_slice);
    let mut seen = vec![false; child.headers.len()];
    for (header, at) in recorded {
        match child.headers.get(header.height as usize) {
            Some(own) if own.hash() == header.hash() => seen[header.height as usize] = true,
            Some(own) => findings.push(format!(
                "{}: recorded at seq {at} a header {} of height {} that is not the child's own \
                 ({}): the chains forked",
                parent.name(),
                header.id(),
                header.height,
                own.id()
            )),
            None => findings.push(format!(
                "{}: recorded at seq {at} a header {} of height {} that {} does not have",
                parent.name(),
                header.id(),
                header.height,
                child.name()
            )),
        }
    }
    let last = recorded.iter().map(|(h, _)| h.height).max();
    let upto = last.map_or(0, |h| h as usize + 1);
    for (height, seen) in seen.iter().enumerate().take(upto) {
        if !seen {
            findings.push(format!(
                "{}: header {height} was never recorded by {}, though later ones were",
                child.name(),
                parent.name()
            ));
        }
    }
    if child.headers.len() > upto {
        notes.push(format!(
            "{}: headers {upto}–{} not recorded by {} yet",
            child.name(),
            child.headers.len() - 1,
            parent.name()
        ));
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use poh_core::{Hash, Header, Level, chain_file::ChainStart};

    use super::{
        chains::{Chain, Place},
        check_recorded, expect,
    };

    fn header(chain_id: &str, level: Level, height: u64, salt: u64) -> Header {
        Header {
            chain_id: chain_id.into(),
            level,
            height,
            prev_header_hash: Hash::default(),
            poh_start: height,
            poh_end: height + 1,
            poh_end_hash: poh_core::sha256(&salt.to_be_bytes()),
            poh_hashes: 1,
            items_root: Hash::default(),
            item_count: 0,
            timestamp: 1.0,
            public_key: vec![1],
            signature: vec![2],
        }
    }

    fn chain(chain_id: &str, level: Level, heights: u64) -> Chain {
        Chain {
            url: format!("http://{chain_id}"),
            start: ChainStart {
                format: poh_core::chain_file::FORMAT.into(),
                chain_id: chain_id.into(),
                level,
                hashes_per_tick: 2,
                public_key: "01".into(),
                height: 0,
                prev_header_hash: Hash::default(),
                poh_start: 0,
                start_hash: Hash::default(),
                hashes_in_tick: None,
                seq: 0,
                children: Vec::new(),
            },
            headers: (0..heights)
                .map(|h| header(chain_id, level, h, 0))
                .collect(),
            items: HashMap::new(),
            twice: Vec::new(),
            children: HashMap::new(),
            broken: None,
        }
    }

    /// `parent` records `child`'s headers `heights` (in its header of the same index), and a
    /// forged one at `forged`.
    fn record(parent: &mut Chain, child: &Chain, heights: &[u64], forged: Option<u64>) {
        let mut recorded = Vec::new();
        for (seq, &h) in heights.iter().enumerate() {
            let own = child.headers[h as usize].clone();
            parent.items.insert(
                own.hash(),
                Place {
                    seq: seq as u64,
                    height: seq as u64,
                },
            );
            recorded.push((own, seq as u64));
        }
        if let Some(h) = forged {
            let level = child.level();
            recorded.push((header(&child.start.chain_id, level, h, 7), 99));
        }
        parent
            .children
            .insert(child.start.chain_id.clone(), recorded);
    }

    #[test]
    fn a_gap_and_a_fork_in_what_a_parent_recorded_are_findings_and_the_tail_a_note() {
        let child = chain("m", Level::Municipality, 6);
        let mut parent = chain("c", Level::Continental, 4);
        record(&mut parent, &child, &[0, 1, 3], Some(2));
        let (mut findings, mut notes) = (Vec::new(), Vec::new());
        check_recorded(&child, &parent, &mut findings, &mut notes);
        assert_eq!(findings.len(), 2, "{findings:?}");
        assert!(findings[0].contains("height 2 that is not the child's own"));
        assert!(findings[1].contains("header 2 was never recorded"));
        assert_eq!(notes.len(), 1);
        assert!(notes[0].contains("headers 4–5 not recorded"), "{notes:?}");

        // Everything recorded: nothing to say.
        let mut parent = chain("c", Level::Continental, 6);
        record(&mut parent, &child, &[0, 1, 2, 3, 4, 5], None);
        let (mut findings, mut notes) = (Vec::new(), Vec::new());
        check_recorded(&child, &parent, &mut findings, &mut notes);
        assert!(
            findings.is_empty() && notes.is_empty(),
            "{findings:?} {notes:?}"
        );
    }

    #[test]
    fn a_header_climbs_only_when_each_level_above_recorded_it_in_a_header_that_climbs() {
        let muni = chain("m", Level::Municipality, 3);
        let mut cont = chain("c", Level::Continental, 3);
        let mut global = chain("g", Level::Global, 2);
        // The continental recorded the municipality's headers 0 and 1 in its headers 0 and
        // 1; the global recorded only the continental's header 0.
        record(&mut cont, &muni, &[0, 1], None);
        record(&mut global, &cont, &[0], None);
        let chains = [muni, cont, global];
        let up = expect::reaching_top(&chains, &[Some(1), Some(2), None], Level::Global);
        assert_eq!(up[2], [true, true]);
        assert_eq!(up[1], [true, false, false]);
        assert_eq!(up[0], [true, false, false]);
    }
}
