//! `poh prove TX_ID` (a transaction's inclusion proof from `GET /v1/tx/{id}/proof`, checked
//! before it is written) and `poh verify --proof FILE` (checked offline, naming the link that
//! fails).

use std::{path::Path, path::PathBuf, time::Duration};

use anyhow::Context as _;
use poh_core::proof::ProofLink;
use poh_node::wire::headers::ProofJson;

use crate::client::{NodeHttp, TlsArgs, runtime};

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
}

pub fn prove(args: &ProveArgs) -> anyhow::Result<()> {
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
    let links = proof
        .verify()
        .map_err(|e| anyhow::anyhow!("{base} served a proof that does not verify: {e}"))?;
    let pretty = serde_json::to_string_pretty(&proof)?;
    match &args.out {
        Some(path) => {
            use std::io::Write as _;
            let mut file = crate::create_file(path, args.force, 0o644)?;
            file.write_all(pretty.as_bytes())
                .and_then(|()| file.write_all(b"\n"))
                .with_context(|| format!("cannot write {}", path.display()))?;
            print_links(&proof.tx_id, &links);
            println!("wrote {}", path.display());
        }
        None => println!("{pretty}"),
    }
    Ok(())
}

/// `poh verify --proof FILE`.
pub fn verify(path: &Path) -> anyhow::Result<()> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let proof: ProofJson = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a proof from `poh prove`", path.display()))?;
    let links = proof
        .verify()
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    print_links(&proof.tx_id, &links);
    Ok(())
}

fn print_links(tx_id: &str, links: &[ProofLink]) {
    let top = links.last().map_or("?".to_string(), |l| {
        format!("{} ({})", l.header.chain_id, l.header.level)
    });
    println!("ok: {tx_id} is ordered up to {top}");
    for (k, l) in links.iter().enumerate() {
        println!(
            "  link {k}: item {} of {} in {} header {} ({}), key {}",
            l.index,
            l.header.item_count,
            l.header.chain_id,
            l.header.height,
            l.header.id(),
            &poh_core::sha256(&l.header.public_key).to_hex()[..16],
        );
    }
}
