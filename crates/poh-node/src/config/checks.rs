//! The checks a configuration must pass before anything starts.

use super::{LocationSpec, NodeConfig, check_coding};
use crate::NodeError;

impl NodeConfig {
    /// The configuration's own checks, which [`NodeConfig::validate`] runs with
    /// `parent_credentials` in its place among them: that one is the network's, which alone
    /// knows how the parent is dialled.
    pub(crate) fn check(
        &self,
        parent_credentials: fn(&Self) -> Result<(), NodeError>,
    ) -> Result<(), NodeError> {
        if !valid_chain_id(&self.chain_id) {
            return Err(NodeError::Config(format!(
                "chain_id {:?}: use 1–128 characters of A-Z a-z 0-9 . _ : - /",
                self.chain_id
            )));
        }
        self.poh.validate()?;
        let ingest = &self.ingest;
        // One commit's items are one PoH entry, which one header must be able to cover.
        let most = poh_proto::bounded::MAX_HEADER_ITEMS / 2;
        if ingest.max_batch == 0 || ingest.max_batch > most {
            return Err(NodeError::Config(format!(
                "ingest.max_batch must be between 1 and {most}"
            )));
        }
        if ingest.queue_bytes < (1 << 20) {
            return Err(NodeError::Config(
                "ingest.queue_bytes must be at least 1 MiB".into(),
            ));
        }
        if ingest.max_payload_bytes > (64 << 20) {
            return Err(NodeError::Config(
                "ingest.max_payload_bytes must be at most 64 MiB".into(),
            ));
        }
        if self.grpc.is_none() && self.http.is_none() && self.udp.is_none() && self.quic.is_none() {
            return Err(NodeError::Config("no listener is enabled".into()));
        }
        if let Some(udp) = &self.udp
            && udp.max_batch == 0
        {
            return Err(NodeError::Config("udp.max_batch must be at least 1".into()));
        }
        if let Some(quic) = &self.quic {
            if quic.cert.is_some() != quic.key.is_some() {
                return Err(NodeError::Config(
                    "quic.cert and quic.key go together: give both or neither".into(),
                ));
            }
            if quic.max_connections == 0 || quic.max_streams_per_connection == 0 {
                return Err(NodeError::Config(
                    "quic.max_connections and quic.max_streams_per_connection must be at least 1"
                        .into(),
                ));
            }
        }
        self.check_write_paths()?;
        self.check_federation()?;
        parent_credentials(self)?;
        self.check_client_key()?;
        self.check_buffered()?;
        self.check_retention()?;
        // Fragments: a coding reed-solomon-simd supports, and locations that parse (they are
        // opened, and local directories created, only when the node starts).
        check_coding(self.fragments.data, self.fragments.parity).map_err(NodeError::Config)?;
        for location in &self.fragments.locations {
            LocationSpec::parse(location).map_err(|e| NodeError::Config(e.to_string()))?;
        }
        if self.peers.attempts == 0 || self.peers.timeout_ms == 0 {
            return Err(NodeError::Config(
                "peers.attempts and peers.timeout_ms must be at least 1".into(),
            ));
        }
        Ok(())
    }
}

impl NodeConfig {
    /// Catch-up, repair and TTL settings that can work.
    fn check_retention(&self) -> Result<(), NodeError> {
        let repair = &self.repair;
        if !(1..=10_000).contains(&repair.sync_page) || !(1..=10_000).contains(&repair.repair_batch)
        {
            return Err(NodeError::Config(
                "repair.sync_page and repair.repair_batch must be 1–10000".into(),
            ));
        }
        if let Some(after) = self.ttl.after {
            if after.0.is_zero() {
                return Err(NodeError::Config(
                    "ttl.after must be longer than 0s (leave it out to keep everything)".into(),
                ));
            }
            if self.ttl.sweep_interval.0.is_zero() || self.ttl.sweep_batch == 0 {
                return Err(NodeError::Config(
                    "ttl.sweep_interval and ttl.sweep_batch must be more than 0".into(),
                ));
            }
        }
        Ok(())
    }

    /// With client authentication on, no listener may take a write without credentials
    /// (SPEC §8): UDP only when the operator accepts unauthenticated datagrams explicitly,
    /// QUIC only with mutual TLS (its clients send no token).
    fn check_write_paths(&self) -> Result<(), NodeError> {
        if self.auth.is_none() {
            return Ok(());
        }
        if self.udp.as_ref().is_some_and(|u| !u.allow_unauthenticated) {
            return Err(NodeError::Config(
                "authentication is on, but UDP datagrams carry no credentials: turn UDP off \
                 (--no-udp, or udp = false), or accept unauthenticated UDP writes \
                 (--udp-allow-unauthenticated, or udp.allow_unauthenticated = true)"
                    .into(),
            ));
        }
        let client_ca = self.tls.as_ref().is_some_and(|t| t.ca.is_some());
        if self.quic.is_some() && !client_ca {
            return Err(NodeError::Config(
                "authentication is on, but QUIC clients send no token: give a client CA for \
                 mutual TLS (--tls-ca, or tls.ca), or turn QUIC off (--no-quic, or quic = false)"
                    .into(),
            ));
        }
        Ok(())
    }
}

impl NodeConfig {
    /// A prefix length an IPv6 address has: 0 would make every IPv6 client one.
    fn check_client_key(&self) -> Result<(), NodeError> {
        let prefix = self.limits.ipv6_prefix_len;
        if (1..=128).contains(&prefix) {
            return Ok(());
        }
        Err(NodeError::Config(format!(
            "limits.ipv6_prefix_len is {prefix}: it must be 1–128, the leading bits of an IPv6 \
             address that name one client (64: one budget per /64)"
        )))
    }

    /// One client's share of the read budget must hold the largest request it may send, or
    /// that request could never be read.
    fn check_buffered(&self) -> Result<(), NodeError> {
        let share = self.limits.buffered_bytes_per_client;
        if share < (1 << 20) || share > self.limits.buffered_bytes {
            return Err(NodeError::Config(
                "limits.buffered_bytes_per_client must be at least 1 MiB and at most \
                 limits.buffered_bytes"
                    .into(),
            ));
        }
        let largest = [
            self.http
                .as_ref()
                .map(|h| ("http.max_batch_body_bytes", h.max_batch_body_bytes)),
            self.http
                .as_ref()
                .map(|h| ("http.max_body_bytes", h.max_body_bytes)),
            self.grpc
                .as_ref()
                .map(|g| ("grpc.max_message_bytes", g.max_message_bytes)),
            self.quic
                .as_ref()
                .map(|q| ("quic.max_frame_bytes", q.max_frame_bytes)),
        ];
        match largest
            .into_iter()
            .flatten()
            .find(|(_, bytes)| *bytes > share)
        {
            Some((key, bytes)) => Err(NodeError::Config(format!(
                "{key} ({bytes}) is larger than limits.buffered_bytes_per_client ({share}): such \
                 a request could never be read; lower it or raise the share"
            ))),
            None => Ok(()),
        }
    }
}

use poh_core::recorder::{MAX_HASHES_PER_TICK, MIN_HASHES_PER_TICK};

impl NodeConfig {
    /// Intervals that can be kept, and children that fit this node's level.
    fn check_federation(&self) -> Result<(), NodeError> {
        let f = &self.federation;
        let (min, max) = (f.min_batch_interval, f.max_batch_interval);
        if !(min.is_finite() && max.is_finite() && min >= 0.01 && max >= min && max <= 3600.0) {
            return Err(NodeError::Config(format!(
                "batch intervals {min} and {max}: need 0.01 ≤ min_batch_interval ≤ \
                 max_batch_interval ≤ 3600 seconds"
            )));
        }
        if f.target_items == 0 {
            return Err(NodeError::Config(
                "federation.target_items must be at least 1".into(),
            ));
        }
        if !f.children.is_empty() && f.level.below().is_none() {
            return Err(NodeError::Config(
                "a municipality has no children: set --level continental or global, or \
                 remove the --child settings"
                    .into(),
            ));
        }
        let mut seen = std::collections::HashSet::new();
        for child in &f.children {
            if !valid_chain_id(&child.chain_id) || !seen.insert(&child.chain_id) {
                return Err(NodeError::Config(format!(
                    "child chain_id {:?}: each child needs its own valid chain_id",
                    child.chain_id
                )));
            }
            if let Some(hpt) = child.hashes_per_tick
                && !(MIN_HASHES_PER_TICK..=MAX_HASHES_PER_TICK).contains(&hpt)
            {
                return Err(NodeError::Config(format!(
                    "child {}: hashes_per_tick {hpt} is outside {MIN_HASHES_PER_TICK}..={MAX_HASHES_PER_TICK}",
                    child.chain_id
                )));
            }
        }
        if !(f.max_child_clock_skew.is_finite() && f.max_child_clock_skew >= 0.0) {
            return Err(NodeError::Config(
                "federation.max_child_clock_skew must be a number of seconds, 0 or more".into(),
            ));
        }
        if f.link_buffered_bytes < crate::config::LINK_SHARE_BYTES {
            return Err(NodeError::Config(format!(
                "federation.link_buffered_bytes must be at least {} (one child's share: three \
                 link messages)",
                crate::config::LINK_SHARE_BYTES
            )));
        }
        if f.parent.is_some() && f.level == poh_core::Level::Global {
            return Err(NodeError::Config(
                "a global chain has no parent: remove --parent".into(),
            ));
        }
        Ok(())
    }
}

/// 1–128 characters of `A-Z a-z 0-9 . _ : - /`.
pub(crate) fn valid_chain_id(id: &str) -> bool {
    poh_core::validate::check_tx_id(&id.replace('/', ".")).is_ok()
}
