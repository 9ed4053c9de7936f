//! The node's signing key: the file the operator gave, or one the node makes in its data
//! directory on first start (mode 0600, with the public key beside it in `node.key.pub`).

use std::{
    io::Write as _,
    path::{Path, PathBuf},
};

use poh_core::{SigningKey, signing::PUBLIC_KEY_LEN};

use crate::NodeError;

/// The key file the node makes when none is given.
pub const DEFAULT_KEY_FILE: &str = "node.key";

fn key_error(path: &Path, reason: impl std::fmt::Display) -> NodeError {
    NodeError::Config(format!("node key {}: {reason}", path.display()))
}

/// Reads `configured`, or `<data_dir>/node.key`, made when missing.
pub(crate) fn load_or_create(
    configured: Option<&Path>,
    data_dir: &Path,
) -> Result<SigningKey, NodeError> {
    if let Some(path) = configured {
        return read_key_file(path);
    }
    let path = data_dir.join(DEFAULT_KEY_FILE);
    if path.exists() {
        return read_key_file(&path);
    }
    let key = SigningKey::generate()?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| key_error(&path, e))?;
    }
    let public = write_key_files(&key, &path, false)?;
    tracing::info!(
        key = %path.display(),
        public_key = %public.display(),
        "made a new node key"
    );
    Ok(key)
}

/// Reads a key file as `poh keygen` writes it.
pub(crate) fn read_key_file(path: &Path) -> Result<SigningKey, NodeError> {
    let bytes = std::fs::read(path).map_err(|e| key_error(path, e))?;
    SigningKey::from_key_file(&bytes).map_err(|e| key_error(path, e))
}

/// Writes `key` as `poh keygen` does: the seed to `path` (mode 0600) and the public key in
/// hex to `path.pub` (0644), each synced. An existing file is an error unless `force`.
/// Returns the public key's path.
pub fn write_key_files(key: &SigningKey, path: &Path, force: bool) -> Result<PathBuf, NodeError> {
    let write = |path: &Path, text: &[u8], mode: u32| {
        let mut options = std::fs::OpenOptions::new();
        options.write(true);
        if force {
            options.create(true).truncate(true);
        } else {
            options.create_new(true);
        }
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, mode);
        #[cfg(not(unix))]
        let _ = mode;
        let mut file = options.open(path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                NodeError::Config(format!(
                    "{} exists; pass --force to replace it",
                    path.display()
                ))
            } else {
                key_error(path, e)
            }
        })?;
        file.write_all(text)
            .and_then(|()| file.sync_all())
            .map_err(|e| key_error(path, e))
    };
    write(path, key.to_key_file().as_bytes(), 0o600)?;
    let public = public_key_path(path);
    let text = format!("{}\n", hex::encode(key.public_key()));
    write(&public, text.as_bytes(), 0o644)?;
    Ok(public)
}

/// `FILE.pub`, where `poh keygen` and the node put a key's public half.
pub fn public_key_path(key: &Path) -> PathBuf {
    let mut path = key.as_os_str().to_owned();
    path.push(".pub");
    PathBuf::from(path)
}

/// Reads a public-key file: the key in hex (2592 bytes), surrounding white space ignored.
pub fn read_public_key(path: &Path) -> Result<Vec<u8>, NodeError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| NodeError::Config(format!("public key {}: {e}", path.display())))?;
    hex::decode(text.trim())
        .ok()
        .filter(|k| k.len() == PUBLIC_KEY_LEN)
        .ok_or_else(|| {
            NodeError::Config(format!(
                "public key {}: expected {} hex characters (an ML-DSA-87 public key, as \
                 `poh keygen` writes to FILE.pub)",
                path.display(),
                2 * PUBLIC_KEY_LEN
            ))
        })
}

/// How the key is shown in logs and answers: SHA-256 of the public key, in hex.
pub fn fingerprint(public_key: &[u8]) -> String {
    poh_core::sha256(public_key).to_hex()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_default_key_is_made_once_and_kept_private() {
        let dir = tempfile::tempdir().unwrap();
        let first = load_or_create(None, dir.path()).unwrap();
        let again = load_or_create(None, dir.path()).unwrap();
        assert_eq!(first.public_key(), again.public_key());
        let path = dir.path().join(DEFAULT_KEY_FILE);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let public = read_public_key(&public_key_path(&path)).unwrap();
        assert_eq!(public, first.public_key());
    }

    #[test]
    fn a_given_key_must_exist_and_parse() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.key");
        assert!(load_or_create(Some(&missing), dir.path()).is_err());
        assert!(!dir.path().join(DEFAULT_KEY_FILE).exists());
        std::fs::write(&missing, "not hex").unwrap();
        let e = load_or_create(Some(&missing), dir.path()).unwrap_err();
        assert!(e.to_string().contains("nope.key"), "{e}");
        let short = dir.path().join("short.pub");
        std::fs::write(&short, "abcd\n").unwrap();
        assert!(read_public_key(&short).is_err());
    }
}
