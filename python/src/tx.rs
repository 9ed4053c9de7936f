//! Transactions and keys: [`Tx`] with its canonical signing bytes and digest, and ML-DSA-87
//! [`SigningKey`]s in the key files `poh keygen` writes.

use std::path::PathBuf;

use poh_core::{Limits, signing};
use pyo3::prelude::*;

use crate::error::{Error, Result};

/// A transaction (SPEC §2), as a node stores it.
///
/// Every field is a keyword argument; `timestamp` defaults to now (Unix seconds). Attributes
/// can be read and assigned; list and bytes attributes are copies, so assign a new value
/// rather than changing one in place.
#[pyclass(module = "poh", eq, from_py_object)]
#[derive(Clone, Debug, PartialEq)]
pub struct Tx(pub poh_core::Tx);

#[pymethods]
impl Tx {
    #[new]
    #[pyo3(signature = (*, tx_id, holder_id = String::new(), timestamp = None, payload = Vec::new(),
                        parent_ids = Vec::new(), public_key = Vec::new(), signature = Vec::new()))]
    fn new(
        tx_id: String,
        holder_id: String,
        timestamp: Option<f64>,
        payload: Vec<u8>,
        parent_ids: Vec<String>,
        public_key: Vec<u8>,
        signature: Vec<u8>,
    ) -> Self {
        Self(poh_core::Tx {
            tx_id,
            holder_id,
            timestamp: timestamp.unwrap_or_else(unix_now),
            payload,
            parent_ids,
            public_key,
            signature,
        })
    }

    // Each attribute is a copy in or out.
    /// The id: 1–128 bytes of `[A-Za-z0-9._:-]`.
    #[getter]
    fn tx_id(&self) -> String {
        self.0.tx_id.clone()
    }
    #[setter]
    fn set_tx_id(&mut self, value: String) {
        self.0.tx_id = value;
    }
    /// Who holds it: 0–128 bytes of UTF-8 without control characters.
    #[getter]
    fn holder_id(&self) -> String {
        self.0.holder_id.clone()
    }
    #[setter]
    fn set_holder_id(&mut self, value: String) {
        self.0.holder_id = value;
    }
    /// Unix seconds, finite and ≥ 0, kept bit-exact.
    #[getter]
    fn timestamp(&self) -> f64 {
        self.0.timestamp
    }
    #[setter]
    fn set_timestamp(&mut self, value: f64) {
        self.0.timestamp = value;
    }
    /// The application's bytes.
    #[getter]
    fn payload(&self) -> Vec<u8> {
        self.0.payload.clone()
    }
    #[setter]
    fn set_payload(&mut self, value: Vec<u8>) {
        self.0.payload = value;
    }
    /// Explicit DAG parents (at most 64 distinct ids).
    #[getter]
    fn parent_ids(&self) -> Vec<String> {
        self.0.parent_ids.clone()
    }
    #[setter]
    fn set_parent_ids(&mut self, value: Vec<String>) {
        self.0.parent_ids = value;
    }
    /// Empty, or the signer's ML-DSA-87 public key (2592 bytes).
    #[getter]
    fn public_key(&self) -> Vec<u8> {
        self.0.public_key.clone()
    }
    #[setter]
    fn set_public_key(&mut self, value: Vec<u8>) {
        self.0.public_key = value;
    }
    /// Empty, or an ML-DSA-87 signature (4627 bytes) over the signing bytes.
    #[getter]
    fn signature(&self) -> Vec<u8> {
        self.0.signature.clone()
    }
    #[setter]
    fn set_signature(&mut self, value: Vec<u8>) {
        self.0.signature = value;
    }

    /// The canonical signing bytes (SPEC §2): what is signed, and hashed into the digest.
    fn signing_bytes(&self) -> Vec<u8> {
        self.0.signing_bytes()
    }

    /// SHA-256 of the signing bytes (32 bytes): what PoH records and Merkle trees hash.
    fn digest(&self) -> Vec<u8> {
        self.0.digest().0.to_vec()
    }

    /// Signs with `key`: sets `public_key` and `signature`.
    fn sign(&mut self, key: &SigningKey) -> Result<()> {
        Ok(self.0.sign(&key.0)?)
    }

    /// Checks the transaction as a node admits it: every rule of SPEC §2 (raises
    /// `InvalidTxError`), then a present signature (raises `SignatureError`). With
    /// `require_signatures`, an unsigned transaction is invalid.
    #[pyo3(signature = (*, max_payload_bytes = Limits::default().max_payload_bytes, require_signatures = false))]
    fn validate(&self, max_payload_bytes: usize, require_signatures: bool) -> Result<()> {
        let limits = Limits {
            max_payload_bytes,
            require_signatures,
        };
        self.0
            .validate(&limits)
            .map_err(|e| Error::InvalidTx(poh_core::Error::from(e).to_string()))?;
        Ok(self.0.verify_signature()?)
    }

    /// The JSON a node takes on `POST /v1/tx` and UDP (SPEC §4).
    fn to_json(&self) -> String {
        String::from_utf8_lossy(&poh_node::tx_to_json(&self.0)).into_owned()
    }

    /// A transaction from its JSON (`str`, `bytes` or the parsed `dict`), as `POST /v1/tx`
    /// takes it; raises `InvalidTxError` naming what is wrong.
    #[staticmethod]
    fn from_json(json: &Bound<'_, PyAny>) -> PyResult<Self> {
        let tx = poh_node::tx_from_json(&crate::chain::json_bytes(json)?)
            .map_err(|e| Error::InvalidTx(format!("not a JSON transaction: {e}")))?;
        Ok(Self(tx))
    }

    fn __repr__(&self) -> String {
        let tx = &self.0;
        format!(
            "Tx(tx_id={:?}, holder_id={:?}, timestamp={:?}, payload=<{} bytes>, parent_ids={:?}, signed={})",
            tx.tx_id,
            tx.holder_id,
            tx.timestamp,
            tx.payload.len(),
            tx.parent_ids,
            if tx.signature.is_empty() {
                "False"
            } else {
                "True"
            }
        )
    }
}

fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// An ML-DSA-87 signing key (FIPS 204, level 5), kept as its 32-byte seed like the key files
/// of `poh keygen`. The seed is never shown.
#[pyclass(module = "poh", frozen)]
pub struct SigningKey(pub poh_core::SigningKey);

#[pymethods]
impl SigningKey {
    /// A new key from the operating system's random source.
    #[staticmethod]
    fn generate() -> Result<Self> {
        Ok(Self(poh_core::SigningKey::generate()?))
    }

    /// Reads a key file as `poh keygen` writes it (the seed in hex).
    #[staticmethod]
    fn from_file(path: PathBuf) -> Result<Self> {
        let bytes = std::fs::read(&path).map_err(|e| Error::Io {
            errno: e.raw_os_error(),
            message: format!("cannot read the key {}: {e}", path.display()),
        })?;
        poh_core::SigningKey::from_key_file(&bytes)
            .map(Self)
            .map_err(|e| Error::Signature(format!("{}: {e}", path.display())))
    }

    /// The raw public key (2592 bytes).
    #[getter]
    fn public_key(&self) -> Vec<u8> {
        self.0.public_key().to_vec()
    }

    /// SHA-256 of the public key, in hex: how logs and `poh keygen` name a key.
    #[getter]
    fn fingerprint(&self) -> String {
        poh_core::sha256(self.0.public_key()).to_hex()
    }

    /// An ML-DSA-87 signature (pure mode, empty context; 4627 bytes) over `message`.
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>> {
        Ok(self.0.sign(message)?)
    }

    /// Writes the key as `poh keygen --out PATH` does: the seed to `path` (mode 0600) and the
    /// public key in hex to `path.pub`. An existing file is an error unless `force`. Returns
    /// the public key's path.
    #[pyo3(signature = (path, *, force = false))]
    fn write(&self, path: PathBuf, force: bool) -> Result<PathBuf> {
        poh_node::federation::key::write_key_files(&self.0, &path, force).map_err(|e| Error::Io {
            errno: None,
            message: e.to_string(),
        })
    }

    fn __repr__(&self) -> String {
        format!("SigningKey(fingerprint={:?})", self.fingerprint())
    }
}

/// A new ML-DSA-87 key; with `out`, also written as `poh keygen --out OUT` writes it (the
/// seed, mode 0600, and `OUT.pub`).
#[pyfunction]
#[pyo3(signature = (out = None, *, force = false))]
pub fn keygen(out: Option<PathBuf>, force: bool) -> Result<SigningKey> {
    let key = SigningKey::generate()?;
    if let Some(path) = out {
        key.write(path, force)?;
    }
    Ok(key)
}

/// Whether `signature` is a valid ML-DSA-87 signature (pure mode, empty context) by
/// `public_key` over `message`. A key or signature of the wrong length does not verify.
#[pyfunction]
pub fn verify(public_key: &[u8], message: &[u8], signature: &[u8]) -> bool {
    signing::verify(public_key, message, signature).is_ok()
}
