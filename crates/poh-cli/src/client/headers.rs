//! `poh headers`: a node's sealed headers, from `GET /v1/headers`, each checked against its
//! `header_id` before it is shown.

use std::time::Duration;

use anyhow::Context as _;
use poh_node::wire::headers::{HeaderJson, HeadersOut};

use super::{NodeHttp, TlsArgs, runtime};

/// Headers per request (the node's limit).
const PAGE: u64 = 1_000;

/// `poh headers`.
#[derive(clap::Args, Debug)]
pub struct HeadersArgs {
    /// The node's HTTP address.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,
    /// The first height to list.
    #[arg(long, default_value_t = 0)]
    from: u64,
    /// Most headers to list.
    #[arg(long, default_value_t = 100)]
    limit: u64,
    /// One JSON array (the headers as the node serves them) instead of lines.
    #[arg(long)]
    json: bool,
    /// Milliseconds to wait for each answer.
    #[arg(long, default_value_t = 5000)]
    timeout_ms: u64,
    #[command(flatten)]
    tls: TlsArgs,
}

pub fn headers(args: &HeadersArgs) -> anyhow::Result<()> {
    let node = NodeHttp::new(
        &args.url,
        &args.tls,
        Duration::from_millis(args.timeout_ms.max(1)),
    )?;
    let base = node.base();
    let headers = runtime()?.block_on(async {
        let mut out: Vec<HeaderJson> = Vec::new();
        let mut from = args.from;
        while (out.len() as u64) < args.limit {
            let limit = (args.limit - out.len() as u64).min(PAGE);
            let page: HeadersOut = node
                .get(&format!("/v1/headers?from={from}&limit={limit}"))
                .await?
                .json()
                .await
                .with_context(|| format!("{base} did not answer with headers"))?;
            let Some(last) = page.headers.last() else {
                break;
            };
            from = last.height + 1;
            out.extend(page.headers);
        }
        anyhow::Ok(out)
    })?;
    for h in &headers {
        h.to_header().map_err(|e| {
            anyhow::anyhow!("{base} served a bad header at height {}: {e}", h.height)
        })?;
    }
    if args.json {
        println!("{}", serde_json::to_string(&headers)?);
        return Ok(());
    }
    for h in &headers {
        println!(
            "{:>8}  {}  entries {}..{}  items {:>6}  hashes {:>12}  at {:.3}",
            h.height, h.header_id, h.poh_start, h.poh_end, h.item_count, h.poh_hashes, h.timestamp
        );
    }
    if headers.is_empty() {
        println!("no headers from height {}", args.from);
    }
    Ok(())
}
