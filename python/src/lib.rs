//! `poh`, the Python package: the node's own Rust code for the ledger's Python services.
//!
//! - [`tx`]: `Tx` (signing bytes, digest, validation, JSON), ML-DSA-87 `SigningKey`s in
//!   `poh keygen`'s key files, `keygen` and `verify`;
//! - [`chain`]: PoH `Entry`s and `verify_entries` on every core, sealed `Header`s, the
//!   `HeaderVerifier` a parent node uses, and `verify_proof` for inclusion proofs;
//! - [`client`]: `Client`, a blocking gRPC client with the CLI's TLS and token options, and
//!   `AsyncClient`, the same calls for asyncio;
//! - [`error`]: the one error type and the Python exceptions it becomes.
//!
//! Long work (verification, waiting on a node) runs with the GIL released.
#![deny(missing_docs)]
#![forbid(unsafe_code)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

mod chain;
mod client;
mod error;
mod tx;

use pyo3::prelude::*;

/// Transactions, ML-DSA-87 keys, Proof of History, header and inclusion-proof verification,
/// and a gRPC client for poh nodes.
#[pymodule]
fn poh(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_class::<tx::Tx>()?;
    m.add_class::<tx::SigningKey>()?;
    m.add_function(wrap_pyfunction!(tx::keygen, m)?)?;
    m.add_function(wrap_pyfunction!(tx::verify, m)?)?;
    m.add_class::<chain::Entry>()?;
    m.add_class::<chain::Header>()?;
    m.add_class::<chain::HeaderVerifier>()?;
    m.add_function(wrap_pyfunction!(chain::entries_from_json, m)?)?;
    m.add_function(wrap_pyfunction!(chain::verify_entries, m)?)?;
    m.add_function(wrap_pyfunction!(chain::genesis, m)?)?;
    m.add_function(wrap_pyfunction!(chain::verify_proof, m)?)?;
    m.add_class::<client::Client>()?;
    m.add_class::<client::Ack>()?;
    m.add_class::<client::Status>()?;
    m.add_class::<client::Record>()?;
    m.add_class::<client::Subscription>()?;
    m.add_class::<client::Page>()?;
    m.add_class::<client::Pages>()?;
    m.add_class::<client::AsyncClient>()?;
    m.add_class::<client::AsyncSubscription>()?;
    m.add_class::<client::AsyncPages>()?;
    m.add("PohError", py.get_type::<error::PohError>())?;
    m.add("InvalidTxError", py.get_type::<error::InvalidTxError>())?;
    m.add("SignatureError", py.get_type::<error::SignatureError>())?;
    m.add("VerifyError", py.get_type::<error::VerifyError>())?;
    m.add("HeaderError", py.get_type::<error::HeaderError>())?;
    m.add("ProofError", py.get_type::<error::ProofError>())?;
    m.add("ClientError", py.get_type::<error::ClientError>())?;
    m.add("ExpiredError", py.get_type::<error::ExpiredError>())?;
    Ok(())
}
