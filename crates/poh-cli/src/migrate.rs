//! `poh migrate`: moves a stopped node's store from an earlier release's file
//! (`<data_dir>/poh.redb`) into the log engine's directory, as `poh serve` does on its first
//! start, so an operator can do it ahead of time and watch it.

use std::path::PathBuf;

use poh_node::retention::migrate;

/// `poh migrate` arguments.
#[derive(clap::Args, Debug)]
pub struct MigrateArgs {
    /// The node's TOML config file: its data directory.
    #[arg(long, env = "POH_CONFIG")]
    config: Option<PathBuf>,
    /// The node's data directory (overrides the config's).
    #[arg(long, env = "POH_DATA_DIR")]
    data_dir: Option<PathBuf>,
}

/// Runs `poh migrate`.
pub fn run(args: &MigrateArgs) -> anyhow::Result<()> {
    crate::init_logging("info");
    let mut config = crate::serve::load_config(args.config.as_deref())?;
    if let Some(dir) = &args.data_dir {
        config.data_dir = dir.clone();
    }
    match migrate::migrate_if_needed(&config)? {
        Some(moved) => println!(
            "moved {} transactions and {} expired ones into {}",
            moved.transactions,
            moved.expired,
            config.db_path().display()
        ),
        None => println!(
            "nothing to move: {} is the store ({})",
            config.db_path().display(),
            if config.db_path().exists() {
                "in place"
            } else {
                "not made yet"
            }
        ),
    }
    Ok(())
}
