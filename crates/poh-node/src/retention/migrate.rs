//! Moving the store an earlier release kept (one redb file, `<data_dir>/poh.redb`) into the
//! log engine's directory (`<data_dir>/store`), on the first start that finds it, or by
//! `poh migrate`. The store does the work in a directory beside its target and renames it
//! into place, so a migration that stops half-way leaves the old file as the store and
//! starts over next time; a disk without room for it refuses before anything is written.

use std::path::PathBuf;

use poh_store::{LogStore, Migrated};

use crate::{NodeConfig, NodeError};

/// The file an earlier release kept the store in, when the configuration expects the store
/// in its default place, it does not exist yet, and that file does.
pub fn pending(config: &NodeConfig) -> Option<PathBuf> {
    let old = config.data_dir.join("poh.redb");
    (config.db_file.is_none() && !config.db_path().exists() && old.is_file()).then_some(old)
}

/// Migrates [`pending`]'s file, if any, logging progress every tenth; removes the old file
/// once its store is in place. `None` when there was nothing to move.
pub fn migrate_if_needed(config: &NodeConfig) -> Result<Option<Migrated>, NodeError> {
    let Some(old) = pending(config) else {
        return Ok(None);
    };
    let to = config.db_path();
    tracing::info!(from = %old.display(), to = %to.display(), "moving the store into the log engine");
    let options = config.store_options();
    let mut told = 0;
    let migrated = LogStore::migrate_from_redb(&old, &to, options, &mut |done, total| {
        let tenth = (done * 10).checked_div(total).unwrap_or(10);
        if tenth > told {
            told = tenth;
            tracing::info!(done, total, "moving the store: {}%", tenth * 10);
        }
    })?;
    std::fs::remove_file(&old).map_err(|source| NodeError::DataDir {
        path: old.clone(),
        source,
    })?;
    tracing::info!(
        transactions = migrated.transactions,
        expired = migrated.expired,
        "the store is in the log engine; the old file is removed"
    );
    Ok(Some(migrated))
}
