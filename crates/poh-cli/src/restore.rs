//! `poh restore HEADER_ID`: rebuilds a sealed batch from any `k` of its erasure-coded
//! fragments, checks it against the header in a stopped node's store, and puts its expired
//! transaction records back (or, with `--out`, writes the rebuilt batch bytes to a file).

use std::{path::PathBuf, sync::Arc};

use anyhow::Context as _;
use poh_node::{
    config::check_coding,
    retention::fragments::{self, location},
};
use poh_store::Store;

/// `poh restore` arguments.
#[derive(clap::Args, Debug)]
pub struct RestoreArgs {
    /// The header whose batch to rebuild: its header_id (64 hex digits, see `poh headers`).
    header_id: String,
    /// The node's TOML config file: its data directory and [fragments] section.
    #[arg(long, env = "POH_CONFIG")]
    config: Option<PathBuf>,
    /// The node's data directory (overrides the config's).
    #[arg(long, env = "POH_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// A fragments location (a directory, file:///dir or s3://bucket/prefix), in the order
    /// the node was configured with; repeatable, replaces the config's locations.
    #[arg(long = "location")]
    locations: Vec<String>,
    /// Data fragments per batch (k) [default: the config's, else 4].
    #[arg(short = 'k', long = "data")]
    data: Option<usize>,
    /// Parity fragments per batch (m) [default: the config's, else 2].
    #[arg(short = 'm', long = "parity")]
    parity: Option<usize>,
    /// Write the rebuilt batch bytes to this file instead of restoring into the store.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Replace --out if it exists.
    #[arg(long)]
    force: bool,
}

/// Runs `poh restore`.
pub fn restore(args: &RestoreArgs) -> anyhow::Result<()> {
    // Warnings name each corrupt fragment or unreachable location; the outcome is one line.
    crate::init_logging("warn");
    let mut config = crate::serve::load_config(args.config.as_deref())?;
    if let Some(dir) = &args.data_dir {
        config.data_dir = dir.clone();
    }
    let fragments_config = &mut config.fragments;
    if !args.locations.is_empty() {
        fragments_config.locations = args.locations.clone();
    }
    if let Some(k) = args.data {
        fragments_config.data = k;
    }
    if let Some(m) = args.parity {
        fragments_config.parity = m;
    }
    anyhow::ensure!(
        !fragments_config.locations.is_empty(),
        "no fragments locations: give --location (repeatable) or a --config with \
         [fragments] locations"
    );
    let (k, m) = (fragments_config.data, fragments_config.parity);
    check_coding(k, m).map_err(anyhow::Error::msg)?;
    let locations = location::open_all(fragments_config)?;
    let db = config.db_path();
    anyhow::ensure!(
        db.exists(),
        "no store at {}; give the node's --data-dir or --config",
        db.display()
    );
    let store: Arc<dyn Store> = config.open_store()?;

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        match &args.out {
            Some(out) => {
                let rebuilt = fragments::rebuild(&locations, k, m, store, &args.header_id).await?;
                let mut file = crate::create_file(out, args.force, 0o644)?;
                std::io::Write::write_all(&mut file, &rebuilt.bytes)
                    .with_context(|| format!("cannot write {}", out.display()))?;
                println!(
                    "wrote the batch of header {} ({} transactions, {} bytes) from {} fragments \
                     to {}",
                    rebuilt.batch.header.id(),
                    rebuilt.batch.txs.len(),
                    rebuilt.bytes.len(),
                    rebuilt.fragments,
                    out.display()
                );
            }
            None => {
                let report = fragments::restore(&locations, k, m, store, &args.header_id).await?;
                println!(
                    "restored {} transactions of header {} from {} fragments",
                    report.restored, report.header_id, report.fragments
                );
            }
        }
        Ok(())
    })
}
