//! What happens after data is stored: catch-up and repair from peers, expiry (TTL), and
//! erasure-coded fragments of sealed batches. What a fragments setting may be (a coding that
//! can be used, a location that parses) is here too, so the checks of the configuration need
//! nothing of the retention above it.

use std::{fmt, path::PathBuf, str::FromStr, time::Duration};

use object_store::path::Path;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::FragmentError;

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

/// The largest `k + m`: fragment `i` goes to location `i mod len`, and more than 256
/// fragments per batch only multiplies small objects (reed-solomon-simd itself allows up to
/// 65,536 shards).
const MAX_FRAGMENTS: usize = 256;

/// Whether `data` + `parity` is a coding the fragments can use; the reason when not.
pub fn check_coding(data: usize, parity: usize) -> Result<(), String> {
    if data == 0 || parity == 0 {
        return Err(format!(
            "fragments.data and fragments.parity must be at least 1 (got {data} and {parity})"
        ));
    }
    if data + parity > MAX_FRAGMENTS
        || !reed_solomon_simd::ReedSolomonEncoder::supports(data, parity)
    {
        return Err(format!(
            "fragments.data + fragments.parity must be at most {MAX_FRAGMENTS} (got {data} + \
             {parity})"
        ));
    }
    Ok(())
}

/// A location string, parsed but not opened (what the configuration checks).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LocationSpec {
    /// A local directory (created when opened).
    Local(PathBuf),
    /// An S3-compatible bucket and the prefix inside it (may be empty).
    S3 {
        /// The bucket.
        bucket: String,
        /// The key prefix, without leading or trailing `/`.
        prefix: String,
    },
}

impl LocationSpec {
    /// Parses a location string.
    pub fn parse(location: &str) -> Result<Self, FragmentError> {
        let bad = |reason: &str| FragmentError::Location {
            location: location.to_owned(),
            reason: reason.to_owned(),
        };
        if let Some(rest) = location.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(bad("no bucket name"));
            }
            let prefix = prefix.trim_matches('/').to_owned();
            Path::parse(&prefix).map_err(|_| bad("the prefix is not a valid object path"))?;
            return Ok(Self::S3 {
                bucket: bucket.to_owned(),
                prefix,
            });
        }
        if let Some(path) = location.strip_prefix("file://") {
            if !path.starts_with('/') {
                return Err(bad(
                    "a file:// location needs an absolute path (file:///dir)",
                ));
            }
            return Ok(Self::Local(PathBuf::from(path)));
        }
        if location.contains("://") {
            return Err(bad("unknown scheme"));
        }
        if location.trim().is_empty() {
            return Err(bad("empty"));
        }
        Ok(Self::Local(PathBuf::from(location)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_parse() {
        assert_eq!(
            LocationSpec::parse("s3://b/p/q/").unwrap(),
            LocationSpec::S3 {
                bucket: "b".into(),
                prefix: "p/q".into()
            }
        );
        assert_eq!(
            LocationSpec::parse("s3://b").unwrap(),
            LocationSpec::S3 {
                bucket: "b".into(),
                prefix: String::new()
            }
        );
        assert_eq!(
            LocationSpec::parse("file:///x/y").unwrap(),
            LocationSpec::Local("/x/y".into())
        );
        assert_eq!(
            LocationSpec::parse("rel/dir").unwrap(),
            LocationSpec::Local("rel/dir".into())
        );
        for bad in [
            "s3://",
            "s3:///p",
            "gs://b",
            "file://rel",
            "",
            "s3://b/a//c",
        ] {
            assert!(LocationSpec::parse(bad).is_err(), "{bad}");
        }
    }
}
