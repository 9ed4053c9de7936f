//! Where fragments go. A location string is a local directory (`/var/lib/poh/fragments`,
//! `relative/dir`, `file:///abs/dir`) or an S3-compatible bucket (`s3://bucket/prefix`);
//! either becomes an [`ObjectStore`] and a prefix, so the writer and restore treat them alike.
//! Fragment `index` of a header is the object `<prefix>/<header_id>/<index>`.
//!
//! **Durability.** The writer moves its marker, after which the TTL may delete the records,
//! as soon as every put of a height has returned; so a put must not return before its
//! fragment survives a power loss.
//! - A local directory syncs each fragment file before it is renamed into place, then the
//!   directory that holds it (and any directory created for it, up to one that existed);
//!   the location's own directories are synced when it is opened.
//! - S3, and S3-compatible stores with read-after-write consistency, give that by contract:
//!   an object is stored durably once its `PUT` was answered `200`, and the writer moves the
//!   marker only after every `PUT` of the height was answered so.

use std::{fmt, sync::Arc, time::Duration};

use object_store::{
    ObjectStore, RetryConfig, aws::AmazonS3Builder, local::LocalFileSystem, path::Path,
};

use super::FragmentError;
use crate::config::{FragmentsConfig, LocationSpec, S3Config};

/// An opened location.
#[derive(Clone)]
pub struct Location {
    /// The location as configured (for messages).
    pub name: String,
    store: Arc<dyn ObjectStore>,
    prefix: Path,
}

impl fmt::Debug for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Location")
            .field("name", &self.name)
            .finish()
    }
}

impl Location {
    /// Opens a location: creates a local directory when missing; builds an S3 client from
    /// the `AWS_*` environment with `s3`'s settings on top (no request is made yet).
    pub fn open(location: &str, s3: &S3Config) -> Result<Self, FragmentError> {
        let bad = |reason: String| FragmentError::Location {
            location: location.to_owned(),
            reason,
        };
        let (store, prefix): (Arc<dyn ObjectStore>, Path) = match LocationSpec::parse(location)? {
            LocationSpec::Local(dir) => {
                create_dir_durably(&dir)
                    .map_err(|e| bad(format!("cannot create the directory: {e}")))?;
                let fs = LocalFileSystem::new_with_prefix(&dir)
                    .map_err(|e| bad(e.to_string()))?
                    .with_fsync(true);
                (Arc::new(fs), Path::default())
            }
            LocationSpec::S3 { bucket, prefix } => {
                let s3 = s3_builder(s3, &bucket)?
                    .build()
                    .map_err(|e| bad(e.to_string()))?;
                let prefix = Path::parse(&prefix).map_err(|e| bad(e.to_string()))?;
                (Arc::new(s3), prefix)
            }
        };
        Ok(Self {
            name: location.to_owned(),
            store,
            prefix,
        })
    }

    /// Fragment `index` of `header_id`: `<prefix>/<header_id>/<index>`.
    pub fn object(&self, header_id: &str, index: usize) -> Path {
        self.prefix.clone().join(header_id).join(index.to_string())
    }

    /// The object store.
    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }
}

/// Every configured location, in order.
pub fn open_all(config: &FragmentsConfig) -> Result<Vec<Location>, FragmentError> {
    config
        .locations
        .iter()
        .map(|l| Location::open(l, &config.s3))
        .collect()
}

/// The location of fragment `index`: `index mod len`. `None` when there are none.
pub fn for_index(locations: &[Location], index: usize) -> Option<&Location> {
    locations.get(index.checked_rem(locations.len())?)
}

/// `create_dir_all`, then a sync of every directory it created and of the one above them
/// that already existed (its entries changed too), so the location is still there after a
/// power loss; the directories under it are synced by each put.
fn create_dir_durably(dir: &std::path::Path) -> std::io::Result<()> {
    let here = std::path::Path::new(".");
    // A relative path's last ancestor is "", the working directory.
    let ancestors = || {
        dir.ancestors()
            .map(|d| if d.as_os_str().is_empty() { here } else { d })
    };
    let existing = ancestors().find(|d| d.exists()).unwrap_or(here);
    std::fs::create_dir_all(dir)?;
    if cfg!(unix) {
        for d in ancestors() {
            std::fs::File::open(d)?.sync_all()?;
            if d == existing {
                break;
            }
        }
    }
    Ok(())
}

fn s3_builder(s3: &S3Config, bucket: &str) -> Result<AmazonS3Builder, FragmentError> {
    let mut b = AmazonS3Builder::from_env()
        .with_bucket_name(bucket)
        // The writer retries on its own, for ever; restore should report an unreachable
        // location in seconds rather than the client's default three minutes.
        .with_retry(RetryConfig {
            max_retries: 2,
            retry_timeout: Duration::from_secs(20),
            ..RetryConfig::default()
        });
    if let Some(endpoint) = &s3.endpoint {
        b = b.with_endpoint(endpoint);
    }
    if let Some(region) = &s3.region {
        b = b.with_region(region);
    }
    if let Some(id) = &s3.access_key_id {
        b = b.with_access_key_id(id);
    }
    if let Some(path) = &s3.secret_access_key_file {
        let text = std::fs::read_to_string(path).map_err(|source| FragmentError::File {
            path: path.clone(),
            source,
        })?;
        b = b.with_secret_access_key(text.lines().next().unwrap_or("").trim());
    }
    if s3.allow_http {
        b = b.with_allow_http(true);
    }
    Ok(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The writer moves its marker once a put returns, so a local put must be on disk by
    /// then: the store of a local location syncs each file and its directory.
    #[test]
    fn a_local_location_syncs_what_it_writes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("new/fragments");
        let opened = Location::open(path.to_str().unwrap(), &S3Config::default()).unwrap();
        let store = format!("{:?}", opened.store());
        assert!(store.contains("fsync: true"), "{store}");
    }
}
