//! ML-DSA-87 (FIPS 204, pure mode, empty context) keys, signing and verification through
//! aws-lc-rs, the same provider rustls and quinn use in this stack.
//!
//! A key is stored as its 32-byte seed ξ (FIPS 204 Algorithm 6), which every conforming
//! implementation expands to the same key pair, so the provider stays swappable.

use std::fmt;

use aws_lc_rs::signature::{
    KeyPair, ML_DSA_87, ML_DSA_87_SIGNING, PqdsaKeyPair, VerificationAlgorithm,
};
use zeroize::Zeroizing;

use crate::{Error, Tx};

/// Length of an ML-DSA-87 public key.
pub const PUBLIC_KEY_LEN: usize = 2592;
/// Length of an ML-DSA-87 signature.
pub const SIGNATURE_LEN: usize = 4627;
/// Length of the seed a key is derived from.
pub const SEED_LEN: usize = 32;

/// An ML-DSA-87 signing key and its seed.
pub struct SigningKey {
    seed: Zeroizing<[u8; SEED_LEN]>,
    pair: PqdsaKeyPair,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the seed.
        f.debug_struct("SigningKey")
            .field("public_key_sha256", &crate::sha256(self.public_key()))
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// A new key from the operating system's random source.
    pub fn generate() -> Result<Self, Error> {
        let mut seed = Zeroizing::new([0u8; SEED_LEN]);
        aws_lc_rs::rand::fill(seed.as_mut())
            .map_err(|_| Error::Crypto("the system random source failed"))?;
        Self::from_seed(&seed)
    }

    /// The key pair that `seed` expands to (FIPS 204 ML-DSA.KeyGen_internal).
    pub fn from_seed(seed: &[u8; SEED_LEN]) -> Result<Self, Error> {
        let pair = PqdsaKeyPair::from_seed(&ML_DSA_87_SIGNING, seed)
            .map_err(|_| Error::Crypto("ML-DSA-87 key expansion failed"))?;
        Ok(Self {
            seed: Zeroizing::new(*seed),
            pair,
        })
    }

    /// The seed, for writing a key file.
    pub fn seed(&self) -> &[u8; SEED_LEN] {
        &self.seed
    }

    /// The raw 2592-byte public key.
    pub fn public_key(&self) -> &[u8] {
        self.pair.public_key().as_ref()
    }

    /// Signs `message` (hedged: fresh randomness per signature, as FIPS 204 recommends).
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>, Error> {
        let mut out = vec![0u8; SIGNATURE_LEN];
        self.pair
            .sign(message, &mut out)
            .map_err(|_| Error::Crypto("ML-DSA-87 signing failed"))?;
        Ok(out)
    }

    /// The key-file text: the seed in hex and a newline. Write it with mode 0600.
    pub fn to_key_file(&self) -> Zeroizing<String> {
        Zeroizing::new(format!("{}\n", hex::encode(self.seed.as_ref())))
    }

    /// Reads a key file: 64 hex characters (surrounding white space ignored) or 32 raw bytes.
    pub fn from_key_file(contents: &[u8]) -> Result<Self, Error> {
        let mut seed = Zeroizing::new([0u8; SEED_LEN]);
        let text = contents.trim_ascii();
        if text.len() == 2 * SEED_LEN && hex::decode_to_slice(text, seed.as_mut()).is_ok() {
            return Self::from_seed(&seed);
        }
        if contents.len() == SEED_LEN {
            seed.copy_from_slice(contents);
            return Self::from_seed(&seed);
        }
        Err(Error::KeyFile(
            "expected 64 hex characters (an ML-DSA-87 seed, as `poh keygen` writes)",
        ))
    }
}

/// Verifies an ML-DSA-87 `signature` by `public_key` over `message`.
pub fn verify(public_key: &[u8], message: &[u8], signature: &[u8]) -> Result<(), Error> {
    if public_key.len() != PUBLIC_KEY_LEN || signature.len() != SIGNATURE_LEN {
        return Err(Error::BadSignature);
    }
    // The length check above means only raw keys reach the parser, never DER.
    ML_DSA_87
        .verify_sig(public_key, message, signature)
        .map_err(|_| Error::BadSignature)
}

impl Tx {
    /// Sets `public_key` and `signature` from `key` over the signing bytes.
    pub fn sign(&mut self, key: &SigningKey) -> Result<(), Error> {
        self.signature = key.sign(&self.signing_bytes())?;
        self.public_key = key.public_key().to_vec();
        Ok(())
    }

    /// Verifies a present signature; an unsigned transaction passes (whether one is required
    /// is a [`Limits`](crate::validate::Limits) rule). Run [`Tx::validate`] first.
    pub fn verify_signature(&self) -> Result<(), Error> {
        if self.public_key.is_empty() && self.signature.is_empty() {
            return Ok(());
        }
        verify(&self.public_key, &self.signing_bytes(), &self.signature)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A vector produced by an independent FIPS 204 implementation (dilithium-py, see
    /// `tools/gen_mldsa87_vector.py`): the key pair of a fixed seed and a deterministic
    /// signature. Matching it shows seed expansion and verification follow the standard.
    #[derive(serde::Deserialize)]
    struct Vector {
        seed: String,
        public_key: String,
        public_key_sha256: String,
        message: String,
        signature: String,
    }

    fn vector() -> Vector {
        serde_json::from_str(include_str!("../tests/data/mldsa87_vector.json")).unwrap()
    }

    #[test]
    fn seed_expands_to_the_independent_implementations_public_key() {
        let v = vector();
        let seed: [u8; 32] = hex::decode(&v.seed).unwrap().try_into().unwrap();
        let key = SigningKey::from_seed(&seed).unwrap();
        assert_eq!(hex::encode(key.public_key()), v.public_key);
        assert_eq!(
            crate::sha256(key.public_key()).to_hex(),
            v.public_key_sha256
        );
    }

    #[test]
    fn verifies_the_independent_implementations_signature_and_nothing_else() {
        let v = vector();
        let pk = hex::decode(&v.public_key).unwrap();
        let msg = hex::decode(&v.message).unwrap();
        let mut signature = hex::decode(&v.signature).unwrap();
        verify(&pk, &msg, &signature).unwrap();
        assert!(matches!(
            verify(&pk, b"other", &signature),
            Err(Error::BadSignature)
        ));
        signature[100] ^= 1;
        assert!(matches!(
            verify(&pk, &msg, &signature),
            Err(Error::BadSignature)
        ));
    }

    #[test]
    fn sign_verify_and_key_file_round_trip() {
        let key = SigningKey::generate().unwrap();
        let mut tx = Tx {
            tx_id: "t".into(),
            payload: b"x".to_vec(),
            ..Tx::default()
        };
        tx.sign(&key).unwrap();
        assert_eq!(tx.public_key.len(), PUBLIC_KEY_LEN);
        assert_eq!(tx.signature.len(), SIGNATURE_LEN);
        tx.verify_signature().unwrap();
        tx.payload.push(0);
        assert!(matches!(tx.verify_signature(), Err(Error::BadSignature)));

        let again = SigningKey::from_key_file(key.to_key_file().as_bytes()).unwrap();
        assert_eq!(again.public_key(), key.public_key());
        let raw = SigningKey::from_key_file(key.seed()).unwrap();
        assert_eq!(raw.public_key(), key.public_key());
        assert!(SigningKey::from_key_file(b"nope").is_err());
        assert!(!format!("{key:?}").contains(&hex::encode(key.seed())));
    }
}
