//! `poh export` (a node's chain as a chain file, from `GET /v1/export`) and
//! `poh verify --chain` (the whole file checked on every core; format and checks in
//! `poh_core::chain_file`), which accepts a file only when a `--trust` key is the chain's
//! own, or `--untrusted` says a self-consistent one is enough.

use std::{
    fs::File,
    io::{BufReader, BufWriter, Write as _},
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use crate::{
    client::{NodeHttp, TlsArgs},
    trust::{TrustArgs, fingerprint, signer},
};
use anyhow::{Context as _, bail};
use indicatif::{ProgressBar, ProgressStyle};
use poh_core::{
    chain::Backend,
    chain_file::{
        ChainReader, ChainStart,
        verify::{ChainAnchor, verify_chain},
    },
};

/// `poh export`.
#[derive(clap::Args, Debug)]
pub struct ExportArgs {
    /// Where to write the chain file.
    #[arg(long, short)]
    out: PathBuf,
    /// The first header's height.
    #[arg(long, default_value_t = 0)]
    from_height: u64,
    /// The node's HTTP address.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,
    /// Replace an existing file.
    #[arg(long)]
    force: bool,
    /// Seconds the whole download may take.
    #[arg(long, default_value_t = 3600)]
    timeout_secs: u64,
    #[command(flatten)]
    tls: TlsArgs,
}

#[derive(clap::Args, Debug)]
pub struct PromoteArgs {
    /// The replica's HTTP address.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,
    /// Seconds the promotion may take.
    #[arg(long, default_value_t = 30)]
    timeout_secs: u64,
    #[command(flatten)]
    tls: TlsArgs,
}

/// `POST /v1/replica/promote`, then one line: where the new primary's chain stands.
pub fn promote(args: &PromoteArgs) -> anyhow::Result<()> {
    let node = NodeHttp::new(
        &args.url,
        &args.tls,
        Duration::from_secs(args.timeout_secs.max(1)),
    )?;
    let stands: serde_json::Value = crate::client::runtime()?.block_on(async {
        let response = node.post("/v1/replica/promote").await?;
        anyhow::Ok(response.json().await?)
    })?;
    println!(
        "{} is the primary of its chain now: {} entries, seq {}",
        node.base(),
        stands["entries"],
        stands["seq"]
    );
    Ok(())
}

pub fn export(args: &ExportArgs) -> anyhow::Result<()> {
    let node = NodeHttp::new(
        &args.url,
        &args.tls,
        Duration::from_secs(args.timeout_secs.max(1)),
    )?;
    let base = node.base();
    let file = crate::create_file(&args.out, args.force, 0o644)?;
    let mut out = BufWriter::new(file);
    let written = crate::client::runtime()?.block_on(async {
        let mut response = node
            .get(&format!("/v1/export?from_height={}", args.from_height))
            .await?;
        let mut written = 0u64;
        while let Some(chunk) = response
            .chunk()
            .await
            .with_context(|| format!("{base} broke off the export"))?
        {
            out.write_all(&chunk)
                .with_context(|| format!("cannot write {}", args.out.display()))?;
            written += chunk.len() as u64;
        }
        anyhow::Ok(written)
    });
    let written = match written {
        Ok(n) => n,
        Err(e) => {
            // No half-written chain file is left behind to be mistaken for an export.
            drop(out);
            let _ = std::fs::remove_file(&args.out);
            return Err(e);
        }
    };
    out.into_inner()
        .map_err(|e| e.into_error())
        .and_then(|f| f.sync_all())
        .with_context(|| format!("cannot write {}", args.out.display()))?;
    println!(
        "wrote {} ({written} bytes) from {base}; check it with `poh verify --chain {} --trust \
         KEY.pub`, KEY.pub being the chain's public key as you hold it",
        args.out.display(),
        args.out.display()
    );
    Ok(())
}

/// `poh verify --chain FILE`: exits non-zero naming the first bad item, or when no trusted
/// key anchors the file.
pub fn verify(path: &Path, threads: Option<usize>, trust: &TrustArgs) -> anyhow::Result<()> {
    let trusted = trust.keys()?;
    let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let size = file.metadata().map(|m| m.len()).unwrap_or(0);
    let (start, reader) = ChainReader::open(BufReader::with_capacity(1 << 20, file))
        .with_context(|| format!("{} is not a chain file", path.display()))?;
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads.unwrap_or(0))
        .build()
        .context("cannot start worker threads")?;
    let bar = ProgressBar::new(size).with_style(
        ProgressStyle::with_template(
            "{spinner} verifying [{bar:40}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let started = Instant::now();
    let backend = Backend::fastest();
    let result = pool.install(|| {
        verify_chain(&start, reader, backend, &trusted, &|bytes| {
            bar.set_position(bytes)
        })
    });
    let report = match result {
        Ok(report) => report,
        Err(e) => {
            bar.abandon();
            bail!("{}: {e}", path.display());
        }
    };
    bar.finish_and_clear();
    let secs = started.elapsed().as_secs_f64();
    let verdict = match report.anchor {
        ChainAnchor::Trusted => format!(
            "ok: chain {} ({}), anchored by its trusted key {},",
            start.chain_id,
            start.level,
            fingerprint(&key_of(&start.public_key)),
        ),
        ChainAnchor::Unanchored => {
            let note = trust.unanchored(&path.display().to_string(), &signers(&start), &trusted)?;
            format!(
                "{note}\nchecked: chain {} ({})",
                start.chain_id, start.level
            )
        }
    };
    println!(
        "{verdict} from height {}: {} headers, {} entries, {} hashes ({:.1} M hashes/s on {} threads), {} items, {} child headers",
        start.height,
        report.headers,
        report.entries,
        report.hashes,
        report.hashes as f64 / secs.max(1e-9) / 1e6,
        pool.current_num_threads(),
        report.items,
        report.child_headers,
    );
    Ok(())
}

/// A key from the file's first line; it decoded while the file verified.
fn key_of(hex_text: &str) -> Vec<u8> {
    hex::decode(hex_text).unwrap_or_default()
}

/// The chain and key a file carries, and its children's, for an unanchored file's message.
fn signers(start: &ChainStart) -> String {
    let mut text = signer(&start.chain_id, &key_of(&start.public_key));
    if !start.children.is_empty() {
        let children: Vec<String> = start
            .children
            .iter()
            .map(|c| signer(&c.chain_id, &key_of(&c.public_key)))
            .collect();
        text.push_str(&format!(" (recording {})", children.join(", ")));
    }
    text
}
