//! Checking what a node serves, with the node's own verifiers: PoH [`Entry`]s on every core
//! ([`verify_entries`]), sealed [`Header`]s one by one ([`HeaderVerifier`]), and inclusion
//! proofs up the federation ([`verify_proof`]).

use poh_core::{
    ChainHead, Hash, Level, chain::Backend, proof::Anchor, signing::PUBLIC_KEY_LEN,
    verify::verify_parallel,
};
use poh_node::wire::headers::{HeaderJson, ProofJson};
use pyo3::prelude::*;

use crate::{
    error::{Error, Result},
    tx::Tx,
};

/// JSON text from `str`, `bytes` or any object `json.dumps` takes (a `dict` from an HTTP
/// client's `.json()`, say).
pub fn json_bytes(obj: &Bound<'_, PyAny>) -> PyResult<Vec<u8>> {
    if let Ok(text) = obj.extract::<String>() {
        return Ok(text.into_bytes());
    }
    if let Ok(bytes) = obj.extract::<Vec<u8>>() {
        return Ok(bytes);
    }
    let text: String = obj
        .py()
        .import("json")?
        .call_method1("dumps", (obj,))?
        .extract()?;
    Ok(text.into_bytes())
}

fn hash_arg(field: &str, bytes: &[u8]) -> Result<Hash> {
    Hash::from_slice(bytes)
        .ok_or_else(|| Error::Config(format!("{field} must be 32 bytes, not {}", bytes.len())))
}

/// A key that is not a raw public key (the hex text of a `.pub` file, say) would match no
/// header and fail every check without saying why; it is refused, saying why.
fn check_key_len(what: &str, key: &[u8]) -> Result<()> {
    if key.len() == PUBLIC_KEY_LEN {
        return Ok(());
    }
    Err(Error::Config(format!(
        "{what} must be a raw ML-DSA-87 public key of {PUBLIC_KEY_LEN} bytes, not {} (a `.pub` \
         file holds one in hex: bytes.fromhex(text))",
        key.len()
    )))
}

/// One PoH entry (SPEC §3): `num_hashes` hash operations ending at `hash`, the last one
/// recording the Merkle root of `mixins` when there are any (a tick has none).
#[pyclass(module = "poh", frozen, eq, from_py_object)]
#[derive(Clone, PartialEq)]
pub struct Entry(pub poh_core::Entry);

#[pymethods]
impl Entry {
    #[new]
    #[pyo3(signature = (num_hashes, hash, mixins = Vec::new()))]
    fn new(num_hashes: u64, hash: Vec<u8>, mixins: Vec<Vec<u8>>) -> Result<Self> {
        Ok(Self(poh_core::Entry {
            num_hashes,
            hash: hash_arg("hash", &hash)?,
            mixins: mixins
                .iter()
                .map(|m| hash_arg("each mixin", m))
                .collect::<Result<_>>()?,
        }))
    }

    /// An entry from its JSON in `GET /v1/poh/entries`: `{"num_hashes", "hash", "mixins"}`,
    /// hashes in hex.
    #[staticmethod]
    fn from_json(json: &Bound<'_, PyAny>) -> PyResult<Self> {
        let entry = serde_json::from_slice(&json_bytes(json)?)
            .map_err(|e| Error::Config(format!("not a PoH entry: {e}")))?;
        Ok(Self(entry))
    }

    /// Hash operations in the entry.
    #[getter]
    fn num_hashes(&self) -> u64 {
        self.0.num_hashes
    }

    /// The hash after them (32 bytes).
    #[getter]
    fn hash(&self) -> Vec<u8> {
        self.0.hash.0.to_vec()
    }

    /// What was recorded, in order (32 bytes each).
    #[getter]
    fn mixins(&self) -> Vec<Vec<u8>> {
        self.0.mixins.iter().map(|m| m.0.to_vec()).collect()
    }

    fn __repr__(&self) -> String {
        format!(
            "Entry(num_hashes={}, hash={}, mixins=<{}>)",
            self.0.num_hashes,
            self.0.hash,
            self.0.mixins.len()
        )
    }
}

/// The start hash and entries of a `GET /v1/poh/entries` answer (`str`, `bytes` or the
/// parsed `dict`), ready for `verify_entries`.
#[pyfunction]
pub fn entries_from_json(answer: &Bound<'_, PyAny>) -> PyResult<(Vec<u8>, Vec<Entry>)> {
    #[derive(serde::Deserialize)]
    struct Answer {
        start_hash: Hash,
        entries: Vec<poh_core::Entry>,
    }
    let answer: Answer = serde_json::from_slice(&json_bytes(answer)?)
        .map_err(|e| Error::Config(format!("not a GET /v1/poh/entries answer: {e}")))?;
    Ok((
        answer.start_hash.0.to_vec(),
        answer.entries.into_iter().map(Entry).collect(),
    ))
}

/// Verifies `entries`, which follow `start_hash` (32 bytes; the genesis hash before the
/// first entry), on every core with the GIL released. No entry may have more than
/// `hashes_per_tick` hashes. Raises `VerifyError` naming the first bad entry (`e.index`).
#[pyfunction]
pub fn verify_entries(
    py: Python<'_>,
    start_hash: &[u8],
    entries: Vec<PyRef<'_, Entry>>,
    hashes_per_tick: u64,
) -> Result<()> {
    let start = hash_arg("start_hash", start_hash)?;
    let entries: Vec<poh_core::Entry> = entries.iter().map(|e| e.0.clone()).collect();
    py.detach(|| {
        verify_parallel(
            Backend::fastest(),
            &start,
            &entries,
            hashes_per_tick,
            &|_| {},
        )
    })
    .map_err(|e| Error::Verify {
        index: e.index,
        why: e.failure.to_string(),
    })
}

/// The genesis hash of a chain (SPEC §3): what its first entry follows.
#[pyfunction]
pub fn genesis(chain_id: &str) -> Vec<u8> {
    poh_core::genesis(chain_id).0.to_vec()
}

/// A sealed header (SPEC §6). Read it from a node's JSON with `Header.from_json`.
#[pyclass(module = "poh", frozen, eq, from_py_object)]
#[derive(Clone, PartialEq)]
pub struct Header {
    pub(crate) header: poh_core::Header,
    recorded_at_seq: Option<u64>,
}

impl From<poh_core::Header> for Header {
    fn from(header: poh_core::Header) -> Self {
        Self {
            header,
            recorded_at_seq: None,
        }
    }
}

#[pymethods]
impl Header {
    /// A header from its JSON (`GET /v1/headers/{id}`, an item of `GET /v1/headers`), as
    /// `str`, `bytes` or the parsed `dict`. Raises `HeaderError` when a field is malformed or
    /// `header_id` is not the hash of the fields.
    #[staticmethod]
    fn from_json(json: &Bound<'_, PyAny>) -> PyResult<Self> {
        let parsed: HeaderJson = serde_json::from_slice(&json_bytes(json)?)
            .map_err(|e| Error::Header(format!("not a header: {e}")))?;
        let header = parsed.to_header().map_err(Error::Header)?;
        Ok(Self {
            header,
            recorded_at_seq: parsed.recorded_at_seq,
        })
    }

    /// The header's JSON, as a node serves it.
    fn to_json(&self) -> String {
        serde_json::to_string(&HeaderJson::new(&self.header, self.recorded_at_seq))
            .unwrap_or_default()
    }

    /// The canonical header bytes (SPEC §6): what is signed and hashed.
    fn header_bytes(&self) -> Vec<u8> {
        self.header.bytes()
    }

    /// SHA-256 of the header bytes (32 bytes).
    fn header_hash(&self) -> Vec<u8> {
        self.header.hash().0.to_vec()
    }

    /// `header_hash` in hex: the header's id.
    #[getter]
    fn header_id(&self) -> String {
        self.header.id()
    }

    /// Raises `HeaderError` unless the signature verifies by the header's own public key.
    /// (Whether that key is the chain's is for `HeaderVerifier` or the caller to check.)
    fn verify_signature(&self) -> Result<()> {
        self.header.verify_signature().map_err(|_| {
            Error::Header(format!(
                "header {}: signature does not verify",
                self.header.id()
            ))
        })
    }

    /// The sealing chain.
    #[getter]
    fn chain_id(&self) -> &str {
        &self.header.chain_id
    }
    /// `"municipality"`, `"continental"` or `"global"`.
    #[getter]
    fn level(&self) -> &'static str {
        self.header.level.name()
    }
    /// 0 for the first header, then +1.
    #[getter]
    fn height(&self) -> u64 {
        self.header.height
    }
    /// The previous header's hash (32 zero bytes at height 0).
    #[getter]
    fn prev_header_hash(&self) -> Vec<u8> {
        self.header.prev_header_hash.0.to_vec()
    }
    /// The first entry covered.
    #[getter]
    fn poh_start(&self) -> u64 {
        self.header.poh_start
    }
    /// One past the last entry covered.
    #[getter]
    fn poh_end(&self) -> u64 {
        self.header.poh_end
    }
    /// The hash of entry `poh_end - 1`.
    #[getter]
    fn poh_end_hash(&self) -> Vec<u8> {
        self.header.poh_end_hash.0.to_vec()
    }
    /// The sum of `num_hashes` over the covered entries.
    #[getter]
    fn poh_hashes(&self) -> u64 {
        self.header.poh_hashes
    }
    /// The RFC 6962 root of the covered items.
    #[getter]
    fn items_root(&self) -> Vec<u8> {
        self.header.items_root.0.to_vec()
    }
    /// How many items the header covers.
    #[getter]
    fn item_count(&self) -> u64 {
        self.header.item_count
    }
    /// Unix seconds when sealed.
    #[getter]
    fn timestamp(&self) -> f64 {
        self.header.timestamp
    }
    /// The sealing node's ML-DSA-87 public key.
    #[getter]
    fn public_key(&self) -> Vec<u8> {
        self.header.public_key.clone()
    }
    /// ML-DSA-87 over the header bytes.
    #[getter]
    fn signature(&self) -> Vec<u8> {
        self.header.signature.clone()
    }
    /// For a child header served by its parent: the parent's `poh_seq` that recorded it.
    #[getter]
    fn recorded_at_seq(&self) -> Option<u64> {
        self.recorded_at_seq
    }

    fn __repr__(&self) -> String {
        format!(
            "Header(chain_id={:?}, height={}, entries={}..{}, item_count={}, header_id={:?})",
            self.header.chain_id,
            self.header.height,
            self.header.poh_start,
            self.header.poh_end,
            self.header.item_count,
            self.header.id()
        )
    }
}

/// Checks one chain's headers in order from its first, each with the PoH entries it covers,
/// exactly as a parent node checks a child: chain and level, the chain's key, the signature,
/// the height and link, the covered range, every entry (on every core), the tick periods,
/// and `poh_hashes`, `poh_end_hash`, `items_root` and `item_count`.
///
/// The key it is given is the one it trusts: a header signed by any other is refused, so
/// what it accepts is anchored by that key, never by the key a header carries.
#[pyclass(module = "poh")]
pub struct HeaderVerifier {
    verifier: poh_core::HeaderVerifier,
    head: ChainHead,
}

#[pymethods]
impl HeaderVerifier {
    /// `public_key` is the chain's ML-DSA-87 key as the caller trusts it (from the chain's
    /// operator, e.g. `bytes.fromhex` of the `.pub` file `poh keygen` writes), never one read
    /// from the headers; `hashes_per_tick` is the chain's.
    #[new]
    #[pyo3(signature = (*, chain_id, public_key, hashes_per_tick, level = "municipality"))]
    fn new(
        chain_id: String,
        public_key: Vec<u8>,
        hashes_per_tick: u64,
        level: &str,
    ) -> Result<Self> {
        let level: Level = level.parse().map_err(|_| {
            Error::Config(format!(
                "level {level:?} is not municipality, continental or global"
            ))
        })?;
        check_key_len("public_key", &public_key)?;
        Ok(Self {
            head: ChainHead::genesis(&chain_id),
            verifier: poh_core::HeaderVerifier {
                chain_id,
                level,
                public_key,
                hashes_per_tick,
            },
        })
    }

    /// Verifies the next header with the entries it covers (`poh_start ≤ i < poh_end`), with
    /// the GIL released, and moves on to the one after. Raises `HeaderError` naming the first
    /// thing that is wrong; the verifier then still expects the same header.
    fn verify(
        &mut self,
        py: Python<'_>,
        header: &Header,
        entries: Vec<PyRef<'_, Entry>>,
    ) -> Result<()> {
        let entries: Vec<poh_core::Entry> = entries.iter().map(|e| e.0.clone()).collect();
        let header = &header.header;
        let (verifier, head) = (&self.verifier, &self.head);
        let next = py
            .detach(|| verifier.verify(head, header, &entries))
            .map_err(|e| {
                Error::Header(format!(
                    "header {} of {}: {e}",
                    header.height, header.chain_id
                ))
            })?;
        self.head = next;
        Ok(())
    }

    /// The height the next header must have.
    #[getter]
    fn height(&self) -> u64 {
        self.head.height
    }

    /// The first entry the next header must cover.
    #[getter]
    fn poh_start(&self) -> u64 {
        self.head.poh_start
    }
}

/// Verifies an inclusion proof (the JSON of `poh prove` and `GET /v1/tx/{id}/proof`, as
/// `str`, `bytes` or `dict`) offline: the transaction's digest is the first item, each audit
/// path reaches its header's `items_root`, each header's signature verifies, and each header
/// is an item of the next level's. With `tx`, the proof must be of exactly that transaction.
/// Returns the headers, from the transaction's up; raises `ProofError` naming the link that
/// fails.
///
/// A signature only shows that the key inside its header signed it, and anyone can make a
/// key: the proof must also be anchored, some header signed by one of `trusted_keys` (raw
/// public keys), which vouches for it and every header below. An unanchored proof raises
/// `ProofError` unless `untrusted` is true.
#[pyfunction]
#[pyo3(signature = (proof, tx = None, *, trusted_keys = Vec::new(), untrusted = false))]
pub fn verify_proof(
    py: Python<'_>,
    proof: &Bound<'_, PyAny>,
    tx: Option<Tx>,
    trusted_keys: Vec<Vec<u8>>,
    untrusted: bool,
) -> PyResult<Vec<Header>> {
    if untrusted && !trusted_keys.is_empty() {
        return Err(Error::Config(
            "give trusted_keys or untrusted=True, not both: untrusted=True would accept \
             a proof none of the keys signs"
                .into(),
        )
        .into());
    }
    for key in &trusted_keys {
        check_key_len("each of trusted_keys", key)?;
    }
    let proof: ProofJson = serde_json::from_slice(&json_bytes(proof)?)
        .map_err(|e| Error::Proof(format!("not a proof: {e}")))?;
    if let Some(tx) = tx {
        let digest = tx.0.digest().to_hex();
        if proof.item != digest {
            return Err(Error::Proof(format!(
                "the proof is of item {}, not of this transaction (digest {digest})",
                proof.item
            ))
            .into());
        }
    }
    let (links, anchor) = py
        .detach(|| proof.verify(&trusted_keys))
        .map_err(Error::Proof)?;
    if matches!(anchor, Anchor::Unanchored) && !untrusted {
        let signers: Vec<String> = links
            .iter()
            .map(|l| {
                let key = poh_core::sha256(&l.header.public_key).to_hex();
                format!("{} key {}", l.header.chain_id, &key[..16])
            })
            .collect();
        let why = match trusted_keys.len() {
            0 => "no trusted key was given".to_string(),
            n => format!("none of the {n} trusted keys signs any of its headers"),
        };
        return Err(Error::Proof(format!(
            "the proof is self-consistent but unanchored: {why} (it carries {}); pass the \
             public key of a chain you trust (the top chain's, or any on the path) in \
             trusted_keys, or untrusted=True to accept it unanchored",
            signers.join(", ")
        ))
        .into());
    }
    Ok(links.into_iter().map(|l| Header::from(l.header)).collect())
}
