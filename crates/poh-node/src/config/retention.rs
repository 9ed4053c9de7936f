//! What happens after data is stored: catch-up and repair from peers, expiry (TTL), and
//! erasure-coded fragments of sealed batches.

use std::{fmt, path::PathBuf, str::FromStr, time::Duration};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A length of time written the human way: `90s`, `15m`, `12h`, `7d`, `1d 12h`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Span(pub Duration);

impl FromStr for Span {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        humantime::parse_duration(s.trim())
            .map(Span)
            .map_err(|e| format!("{s:?} is not a duration ({e}); write e.g. 90s, 15m, 12h or 7d"))
    }
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", humantime::format_duration(self.0))
    }
}

impl Serialize for Span {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Span {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// Catch-up (`Sync`) and repair (`Repair`) from the gRPC peers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RepairConfig {
    /// Catch up from the peers at start, then every this often (which also covers a peer
    /// that comes back); `0s` turns catch-up off.
    pub sync_interval: Span,
    /// Look for missing parents this often; `0s` turns repair off.
    pub repair_interval: Span,
    /// Records asked of a peer per `Sync` call (at most 10,000).
    pub sync_page: u32,
    /// Missing parents asked for per round (at most 10,000).
    pub repair_batch: usize,
}

impl Default for RepairConfig {
    fn default() -> Self {
        Self {
            sync_interval: Span(Duration::from_secs(30)),
            repair_interval: Span(Duration::from_secs(1)),
            sync_page: 1_000,
            repair_batch: 1_000,
        }
    }
}

/// Expiry of old sealed transactions from the hot store.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TtlConfig {
    /// How long a transaction stays after it was received; `None`: for ever.
    pub after: Option<Span>,
    /// How often the sweep runs.
    pub sweep_interval: Span,
    /// Records removed per store transaction, so a sweep never holds the writer long.
    pub sweep_batch: usize,
    /// Removed bytes since the last compaction after which the store is compacted at the
    /// node's next start, before it serves (`gc_events_total{type="major"}`): a compaction
    /// holds the whole store while it runs. Until then later commits reuse the freed pages.
    pub compact_after_bytes: u64,
}

impl Default for TtlConfig {
    fn default() -> Self {
        Self {
            after: None,
            sweep_interval: Span(Duration::from_secs(60)),
            sweep_batch: 10_000,
            compact_after_bytes: 256 << 20,
        }
    }
}

/// Erasure-coded fragments of every sealed batch, written to object storage.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FragmentsConfig {
    /// Data fragments per batch (k): any k of the k + m rebuild it.
    pub data: usize,
    /// Parity fragments per batch (m): how many may be lost.
    pub parity: usize,
    /// Where fragments go: local directories (`/var/lib/poh/fragments`, `file:///…`) and
    /// S3-compatible buckets (`s3://bucket/prefix`). Fragment `i` goes to location
    /// `i mod len`, so k + m locations lose at most one fragment each. Empty: no fragments.
    pub locations: Vec<String>,
    /// How `s3://` locations are reached; unset fields come from the usual `AWS_*`
    /// environment variables.
    pub s3: S3Config,
}

impl Default for FragmentsConfig {
    fn default() -> Self {
        Self {
            data: 4,
            parity: 2,
            locations: Vec::new(),
            s3: S3Config::default(),
        }
    }
}

/// An S3-compatible service.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct S3Config {
    /// The endpoint URL (for MinIO, Ceph, moto…); `None`: AWS itself.
    pub endpoint: Option<String>,
    /// The region (`AWS_REGION` / `AWS_DEFAULT_REGION` otherwise; `us-east-1` as a last
    /// resort).
    pub region: Option<String>,
    /// The access key id (`AWS_ACCESS_KEY_ID` otherwise).
    pub access_key_id: Option<String>,
    /// A file whose first line is the secret access key (`AWS_SECRET_ACCESS_KEY`
    /// otherwise): secrets stay out of the config file.
    pub secret_access_key_file: Option<PathBuf>,
    /// Allow a plain `http://` endpoint (a local test server).
    pub allow_http: bool,
}
