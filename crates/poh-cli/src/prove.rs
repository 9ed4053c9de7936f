//! `poh prove TX_ID` (a transaction's inclusion proof from `GET /v1/tx/{id}/proof`, checked
//! before it is written) and `poh verify --proof FILE` (checked offline, naming the link that
//! fails). Both accept a proof only when a `--trust` key signs one of its links, or
//! `--untrusted` says a self-consistent one is enough.

use std::{path::Path, path::PathBuf, time::Duration};

use anyhow::Context as _;
use poh_core::proof::{Anchor, ProofLink};
use poh_node::wire::headers::ProofJson;

use crate::{
    client::{NodeHttp, TlsArgs, runtime},
    trust::{TrustArgs, fingerprint, signer},
};

/// `poh prove`.
#[derive(clap::Args, Debug)]
pub struct ProveArgs {
    /// The transaction's id.
    tx_id: String,
    /// Where to write the proof (JSON); without it, the proof goes to standard output.
    #[arg(long, short)]
    out: Option<PathBuf>,
    /// The HTTP address of the node that stored the transaction.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,
    /// Replace an existing file.
    #[arg(long)]
    force: bool,
    /// Milliseconds to wait for the answer (the node asks the levels above).
    #[arg(long, default_value_t = 10_000)]
    timeout_ms: u64,
    #[command(flatten)]
    tls: TlsArgs,
    #[command(flatten)]
    trust: TrustArgs,
}

pub fn prove(args: &ProveArgs) -> anyhow::Result<()> {
    let trusted = args.trust.keys()?;
    let node = NodeHttp::new(
        &args.url,
        &args.tls,
        Duration::from_millis(args.timeout_ms.max(1)),
    )?;
    let base = node.base();
    let text = runtime()?.block_on(async {
        let response = node.get(&format!("/v1/tx/{}/proof", args.tx_id)).await?;
        response
            .text()
            .await
            .with_context(|| format!("{base} broke off the proof"))
    })?;
    let proof: ProofJson = serde_json::from_str(&text)
        .with_context(|| format!("{base} did not answer with a proof"))?;
    let (links, anchor) = proof
        .verify(&trusted)
        .map_err(|e| anyhow::anyhow!("{base} served a proof that does not verify: {e}"))?;
    let subject = format!("the proof {base} served");
    let verdict = verdict(
        &proof.tx_id,
        &subject,
        &links,
        &anchor,
        &args.trust,
        &trusted,
    )?;
    let pretty = serde_json::to_string_pretty(&proof)?;
    match &args.out {
        Some(path) => {
            use std::io::Write as _;
            let mut file = crate::create_file(path, args.force, 0o644)?;
            file.write_all(pretty.as_bytes())
                .and_then(|()| file.write_all(b"\n"))
                .with_context(|| format!("cannot write {}", path.display()))?;
            print_links(&verdict, &links);
            println!("wrote {}", path.display());
        }
        None => {
            // The proof alone on stdout, for a pipe; an unanchored one is still said so.
            if matches!(anchor, Anchor::Unanchored) {
                eprintln!("{verdict}");
            }
            println!("{pretty}");
        }
    }
    Ok(())
}

/// `poh verify --proof FILE`.
pub fn verify(path: &Path, trust: &TrustArgs) -> anyhow::Result<()> {
    let trusted = trust.keys()?;
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let proof: ProofJson = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a proof from `poh prove`", path.display()))?;
    let (links, anchor) = proof
        .verify(&trusted)
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    let subject = path.display().to_string();
    let verdict = verdict(&proof.tx_id, &subject, &links, &anchor, trust, &trusted)?;
    print_links(&verdict, &links);
    Ok(())
}

/// The first line of a verified proof's report: `ok: …` naming the anchoring chain, or for
/// an unanchored proof the error, or with `--untrusted` the line that says it is unanchored.
fn verdict(
    tx_id: &str,
    subject: &str,
    links: &[ProofLink],
    anchor: &Anchor,
    trust: &TrustArgs,
    trusted: &[Vec<u8>],
) -> anyhow::Result<String> {
    let top = links.last().map_or("?".to_string(), |l| {
        format!("{} ({})", l.header.chain_id, l.header.level)
    });
    match anchor {
        Anchor::Trusted { link, chain_id } => {
            let mut line = format!(
                "ok: {tx_id} is ordered up to {top}, anchored by the trusted key of {chain_id} \
                 (link {link})"
            );
            // A trusted key vouches for the links below its own, not for those above.
            if link + 1 < links.len() {
                line.push_str("; the links above it verify, but no trusted key vouches for them");
            }
            Ok(line)
        }
        Anchor::Unanchored => {
            let signers: Vec<String> = links
                .iter()
                .map(|l| signer(&l.header.chain_id, &l.header.public_key))
                .collect();
            trust.unanchored(subject, &signers.join(", "), trusted)
        }
    }
}

fn print_links(verdict: &str, links: &[ProofLink]) {
    println!("{verdict}");
    for (k, l) in links.iter().enumerate() {
        println!(
            "  link {k}: item {} of {} in {} header {} ({}), key {}",
            l.index,
            l.header.item_count,
            l.header.chain_id,
            l.header.height,
            l.header.id(),
            fingerprint(&l.header.public_key),
        );
    }
}
