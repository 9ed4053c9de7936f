//! What the node reports about itself: its PoH clock against its configured rate, and the
//! disk its data directory is on. Both are read when `/metrics` is rendered, so a scrape sees
//! the value of that moment.

use std::path::Path;

use metrics::{Counter, Gauge, Recorder as _, Unit};

use super::Registry;

/// `poh_hashes_total` and `poh_target_hashes_per_second`.
#[derive(Clone)]
pub struct PohMetrics {
    /// Hashes in the chain so far (restarts resume from the stored chain's total).
    pub hashes: Counter,
    /// `hashes_per_tick × ticks_per_second` when paced; 0 when the generator is unpaced.
    pub target: Gauge,
}

impl PohMetrics {
    pub(super) fn new(registry: &Registry) -> Self {
        let r = &registry.recorder;
        r.describe_counter(
            "poh_hashes_total".into(),
            None,
            "SHA-256 hashes in this node's PoH chain (rate: the clock's speed).".into(),
        );
        r.describe_gauge(
            "poh_target_hashes_per_second".into(),
            None,
            "The configured PoH rate, hashes_per_tick × ticks_per_second (0 when unpaced).".into(),
        );
        let hashes = registry.counter("poh_hashes_total", &[]);
        hashes.increment(0);
        let target = registry.gauge("poh_target_hashes_per_second", &[]);
        target.set(0.0);
        Self { hashes, target }
    }
}

/// `poh_disk_free_bytes`, `poh_disk_size_bytes` and `poh_store_bytes`.
#[derive(Clone)]
pub struct DiskMetrics {
    free: Gauge,
    size: Gauge,
    store: Gauge,
}

impl DiskMetrics {
    pub(super) fn new(registry: &Registry) -> Self {
        let r = &registry.recorder;
        r.describe_gauge(
            "poh_disk_free_bytes".into(),
            Some(Unit::Bytes),
            "Bytes available to the node on the file system of its data directory.".into(),
        );
        r.describe_gauge(
            "poh_disk_size_bytes".into(),
            Some(Unit::Bytes),
            "Size of the file system of the node's data directory.".into(),
        );
        r.describe_gauge(
            "poh_store_bytes".into(),
            Some(Unit::Bytes),
            "Bytes of the node's store: every file of its directory.".into(),
        );
        let [free, size, store] = [
            "poh_disk_free_bytes",
            "poh_disk_size_bytes",
            "poh_store_bytes",
        ]
        .map(|name| {
            let g = registry.gauge(name, &[]);
            g.set(0.0);
            g
        });
        Self { free, size, store }
    }

    /// Reads the file system of `data_dir` and the size of the store in `db`. A failed read leaves the last
    /// values: a scrape must not fail because a disk is slow to answer.
    pub fn sample(&self, data_dir: &Path, db: &Path) {
        if let Ok(fs) = rustix::fs::statvfs(data_dir) {
            let block = fs.f_frsize as f64;
            self.free.set(fs.f_bavail as f64 * block);
            self.size.set(fs.f_blocks as f64 * block);
        }
        if let Ok(bytes) = poh_store::LogStore::disk_bytes(db) {
            self.store.set(bytes as f64);
        }
    }
}
