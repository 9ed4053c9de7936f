//! What sealing, federation and fragments record.

use std::{collections::HashMap, sync::Arc};

use metrics::{Counter, Gauge, Recorder as _, Unit};

use super::Registry;
use crate::shared::unix_now;

/// Why a child header was or was not recorded: the `result` label of
/// `poh_child_headers_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChildResult {
    /// Verified and recorded in this node's PoH.
    Accepted,
    /// Already recorded; nothing changed.
    Duplicate,
    /// Refused (the reason is logged).
    Rejected,
}

/// `poh_block_count`, `poh_child_headers_total{result}`,
/// `poh_child_last_header_timestamp_seconds{child}`, `poh_max_batch_interval_seconds` and
/// `poh_link_buffered_bytes`.
#[derive(Clone)]
pub struct FederationMetrics {
    /// Headers this node sealed.
    pub block_count: Counter,
    child_headers: [Counter; 3],
    /// The longest time between two of this node's headers.
    pub max_batch_interval: Gauge,
    /// When each configured child's last header was accepted (Unix seconds).
    children: Arc<HashMap<String, Gauge>>,
    /// Bytes the federation link holds now (`federation.link_buffered_bytes`).
    pub link_buffered_bytes: Gauge,
    /// Proofs answered from a kept Merkle tree (`result="kept"`) or one built for them
    /// (`result="built"`).
    pub proof_trees: [Counter; 2],
}

impl FederationMetrics {
    pub(super) fn new(registry: &Registry) -> Self {
        let r = &registry.recorder;
        r.describe_gauge(
            "poh_max_batch_interval_seconds".into(),
            Some(Unit::Seconds),
            "The longest time between two headers (federation.max_batch_interval).".into(),
        );
        r.describe_gauge(
            "poh_child_last_header_timestamp_seconds".into(),
            Some(Unit::Seconds),
            "When each configured child chain's last header was accepted (Unix time; the \
             start time until its first)."
                .into(),
        );
        r.describe_gauge(
            "poh_link_buffered_bytes".into(),
            Some(Unit::Bytes),
            "Bytes the federation link holds: children's messages as they arrive and their \
             headers while checked (federation.link_buffered_bytes)."
                .into(),
        );
        r.describe_counter(
            "poh_proof_trees_total".into(),
            None,
            "Inclusion proofs by where their header's Merkle tree came from: kept from an \
             earlier proof, or built by reading the header's entries."
                .into(),
        );
        let proof_trees = ["kept", "built"].map(|result| {
            let c = registry.counter("poh_proof_trees_total", &[("result", result)]);
            c.increment(0);
            c
        });
        let link_buffered_bytes = registry.gauge("poh_link_buffered_bytes", &[]);
        link_buffered_bytes.set(0.0);
        let block_count = registry.counter("poh_block_count", &[]);
        block_count.increment(0);
        let child_headers = ["accepted", "duplicate", "rejected"].map(|result| {
            let c = registry.counter("poh_child_headers_total", &[("result", result)]);
            c.increment(0);
            c
        });
        let max_batch_interval = registry.gauge("poh_max_batch_interval_seconds", &[]);
        max_batch_interval.set(0.0);
        Self {
            block_count,
            child_headers,
            max_batch_interval,
            children: Arc::default(),
            link_buffered_bytes,
            proof_trees,
        }
    }

    /// One `poh_child_last_header_timestamp_seconds` series per child, starting at now: a
    /// child gets the same grace after the parent starts as after its last header.
    pub(super) fn watch_children<'a>(
        &mut self,
        registry: &Registry,
        children: impl IntoIterator<Item = &'a str>,
    ) {
        let now = unix_now();
        let gauges = children.into_iter().map(|child| {
            let g = registry.gauge(
                "poh_child_last_header_timestamp_seconds",
                &[("child", child)],
            );
            g.set(now);
            (child.to_string(), g)
        });
        self.children = Arc::new(gauges.collect());
    }

    /// Counts one child header; an accepted one is the child's latest sign of life.
    pub fn child_header(&self, child: &str, result: ChildResult) {
        self.child_headers[result as usize].increment(1);
        if result == ChildResult::Accepted
            && let Some(gauge) = self.children.get(child)
        {
            gauge.set(unix_now());
        }
    }
}

/// `poh_fragments_written_total`, `poh_fragment_write_failures_total`,
/// `poh_fragment_batches_incomplete_total` and `poh_fragments_height`.
#[derive(Clone)]
pub struct FragmentMetrics {
    /// Fragments written to a location.
    pub written: Counter,
    /// Fragment writes that failed (each is retried).
    pub write_failures: Counter,
    /// Sealed batches found to lack some of their header's items: not written, and the
    /// writer stays at that height.
    pub incomplete: Counter,
    /// The next height whose fragments are to be written: every height below has all of them.
    pub height: Gauge,
}

impl FragmentMetrics {
    pub(super) fn new(registry: &Registry) -> Self {
        let r = &registry.recorder;
        r.describe_counter(
            "poh_fragments_written_total".into(),
            None,
            "Erasure-coded fragments of sealed batches written to their locations.".into(),
        );
        r.describe_counter(
            "poh_fragment_write_failures_total".into(),
            None,
            "Fragment writes that failed (each is retried until it succeeds).".into(),
        );
        r.describe_counter(
            "poh_fragment_batches_incomplete_total".into(),
            None,
            "Sealed batches lacking some of their header's items (records expired or lost): \
             not written, and the writer stays at that height."
                .into(),
        );
        r.describe_gauge(
            "poh_fragments_height".into(),
            None,
            "The next height whose fragments are to be written; every height below has all of them."
                .into(),
        );
        let written = registry.counter("poh_fragments_written_total", &[]);
        written.increment(0);
        let write_failures = registry.counter("poh_fragment_write_failures_total", &[]);
        write_failures.increment(0);
        let incomplete = registry.counter("poh_fragment_batches_incomplete_total", &[]);
        incomplete.increment(0);
        let height = registry.gauge("poh_fragments_height", &[]);
        height.set(0.0);
        Self {
            written,
            write_failures,
            incomplete,
            height,
        }
    }
}
