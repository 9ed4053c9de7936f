//! Client authentication (SPEC §8): bearer tokens from a file (one per line) and JWTs (HS256
//! with a shared secret, EdDSA with a public key; `exp` and `nbf` checked, `iss` and `aud`
//! when configured), carried in gRPC `authorization` metadata and the HTTP `Authorization`
//! header as `Bearer <token>`. `Basic` with the token as the password (any user name) is taken
//! too: it is what a browser sends when it asks for credentials, for the explorer page.
//!
//! Tokens are kept and compared as SHA-256 digests: every comparison is of 32 bytes against
//! 32 bytes in constant time, so the time taken tells neither which token nearly matched nor
//! how long the tokens are.
//!
//! Without credentials a request is `UNAUTHENTICATED` / 401; with wrong ones
//! `PERMISSION_DENIED` / 403. The health endpoints (`/healthz`, `/readyz`, `/metrics`, and
//! `grpc.health.v1`) stay open unless `protect_health` is set.

use std::{path::Path, sync::Arc};

use jsonwebtoken::{Algorithm, DecodingKey, Validation};

use crate::{NodeError, config::AuthConfig, shared::Live};

/// Why a request is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No credentials (`UNAUTHENTICATED` / 401).
    #[error("credentials required: send `authorization: Bearer <token>`")]
    Missing,
    /// Credentials that do not grant access (`PERMISSION_DENIED` / 403).
    #[error("these credentials are not accepted")]
    Denied,
}

/// Checks credentials; cheap to clone, and every clone sees what a reload
/// [installs](Self::install).
#[derive(Clone)]
pub struct Authenticator {
    current: Arc<Live<Credentials>>,
}

/// The credentials accepted, as read from one `[auth]`: what a reload replaces.
pub(crate) struct Credentials {
    /// The settings they were read from.
    pub(crate) config: AuthConfig,
    /// SHA-256 of each token.
    tokens: Vec<[u8; 32]>,
    jwt: Vec<(DecodingKey, Validation)>,
    /// SHA-256 over the token digests and the JWT keys: whether a reload changed anything.
    pub(crate) digest: [u8; 32],
}

fn read(path: &Path, what: &str) -> Result<Vec<u8>, NodeError> {
    std::fs::read(path)
        .map_err(|e| NodeError::Config(format!("cannot read the {what} {}: {e}", path.display())))
}

impl Authenticator {
    /// From the configured files.
    pub fn from_config(config: &AuthConfig) -> Result<Self, NodeError> {
        Ok(Self {
            current: Arc::new(Live::new(Credentials::load(config)?)),
        })
    }

    /// What is accepted now.
    pub(crate) fn current(&self) -> Arc<Credentials> {
        self.current.get()
    }

    /// Accepts `next` (from [`Credentials::load`]) from the next request on.
    pub(crate) fn install(&self, next: Arc<Credentials>) {
        self.current.set(next);
    }

    /// Whether the health and metrics endpoints need credentials too.
    pub fn protects_health(&self) -> bool {
        self.current().config.protect_health
    }

    /// Checks an `authorization` header value.
    pub fn check(&self, header: Option<&[u8]>) -> Result<(), AuthError> {
        let header = header.ok_or(AuthError::Missing)?;
        let basic;
        let token = if let Some(token) = header
            .strip_prefix(b"Bearer ")
            .or_else(|| header.strip_prefix(b"bearer "))
        {
            token.trim_ascii()
        } else {
            basic = basic_password(header).ok_or(AuthError::Missing)?;
            &basic
        };
        if token.is_empty() {
            return Err(AuthError::Missing);
        }
        let inner = self.current();
        // Every token is compared, digest to digest, so the time taken tells nothing.
        let presented = digest(token);
        let matched = inner.tokens.iter().fold(false, |found, known| {
            aws_lc_rs::constant_time::verify_slices_are_equal(known, &presented).is_ok() | found
        });
        if matched {
            return Ok(());
        }
        if token.iter().filter(|&&b| b == b'.').count() == 2
            && let Ok(text) = std::str::from_utf8(token)
        {
            for (key, validation) in &inner.jwt {
                if jsonwebtoken::decode::<serde_json::Value>(text, key, validation).is_ok() {
                    return Ok(());
                }
            }
        }
        Err(AuthError::Denied)
    }
}

/// The password of `Basic base64(user:password)`: how a browser sends the token it asked for,
/// whatever user name was typed.
fn basic_password(header: &[u8]) -> Option<Vec<u8>> {
    use base64::{Engine as _, engine::general_purpose::STANDARD};
    let encoded = header
        .strip_prefix(b"Basic ")
        .or_else(|| header.strip_prefix(b"basic "))?;
    let decoded = STANDARD.decode(encoded.trim_ascii()).ok()?;
    let colon = decoded.iter().position(|&b| b == b':')?;
    Some(decoded[colon + 1..].to_vec())
}

impl Credentials {
    /// The files `config` names, read and checked; the error names the file and what is wrong.
    pub(crate) fn load(config: &AuthConfig) -> Result<Arc<Self>, NodeError> {
        use sha2::Digest as _;
        // The settings and every byte read (as digests): what a reload compares.
        let mut all = sha2::Sha256::new();
        all.update(format!("{config:?}"));
        let mut tokens = Vec::new();
        if let Some(path) = &config.token_file {
            let text = String::from_utf8(read(path, "token file")?)
                .map_err(|_| NodeError::Config(format!("{} is not UTF-8 text", path.display())))?;
            tokens = text
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(|l| digest(l.as_bytes()))
                .collect();
            tokens.iter().for_each(|t| all.update(t));
            if tokens.is_empty() {
                return Err(NodeError::Config(format!(
                    "{} holds no token (one per line)",
                    path.display()
                )));
            }
        }
        let mut jwt = Vec::new();
        let validation = |alg| {
            let mut v = Validation::new(alg);
            v.leeway = 0;
            v.validate_exp = true;
            v.validate_nbf = true;
            let mut required = vec!["exp"];
            if let Some(issuer) = &config.jwt_issuer {
                v.set_issuer(&[issuer]);
                required.push("iss");
            }
            v.validate_aud = config.jwt_audience.is_some();
            if let Some(audience) = &config.jwt_audience {
                v.set_audience(&[audience]);
                required.push("aud");
            }
            v.set_required_spec_claims(&required);
            v
        };
        if let Some(path) = &config.jwt_hs256_secret_file {
            let secret = read(path, "JWT secret")?;
            let secret = secret.trim_ascii();
            all.update(digest(secret));
            if secret.len() < 32 {
                return Err(NodeError::Config(format!(
                    "the JWT secret in {} is shorter than 32 bytes",
                    path.display()
                )));
            }
            jwt.push((
                DecodingKey::from_secret(secret),
                validation(Algorithm::HS256),
            ));
        }
        if let Some(path) = &config.jwt_eddsa_public_key_file {
            let pem = read(path, "JWT public key")?;
            all.update(digest(&pem));
            let key = DecodingKey::from_ed_pem(&pem).map_err(|e| {
                NodeError::Config(format!(
                    "{} is not an Ed25519 public key (PEM): {e}",
                    path.display()
                ))
            })?;
            jwt.push((key, validation(Algorithm::EdDSA)));
        }
        if tokens.is_empty() && jwt.is_empty() {
            return Err(NodeError::Config(
                "[auth] needs token_file, jwt_hs256_secret_file or jwt_eddsa_public_key_file"
                    .into(),
            ));
        }
        Ok(Arc::new(Self {
            config: config.clone(),
            tokens,
            jwt,
            digest: all.finalize().into(),
        }))
    }

    /// What they hold, for the log: how many tokens and JWT keys, never what they are.
    pub(crate) fn describe(&self) -> String {
        let count = |n: usize, what: &str| match n {
            1 => format!("1 {what}"),
            n => format!("{n} {what}s"),
        };
        format!(
            "{}, {}",
            count(self.tokens.len(), "token"),
            count(self.jwt.len(), "JWT key")
        )
    }
}

fn digest(token: &[u8]) -> [u8; 32] {
    use sha2::Digest as _;
    sha2::Sha256::digest(token).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth(tokens: &str) -> Authenticator {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("tokens");
        std::fs::write(&file, tokens).unwrap();
        Authenticator::from_config(&AuthConfig {
            token_file: Some(file),
            ..AuthConfig::default()
        })
        .unwrap()
    }

    #[test]
    fn tokens_missing_wrong_and_right() {
        let a = auth("# operators\nalpha-token\n\nbeta-token\n");
        assert_eq!(a.check(None), Err(AuthError::Missing));
        assert_eq!(a.check(Some(b"Basic xyz")), Err(AuthError::Missing));
        assert_eq!(a.check(Some(b"Bearer ")), Err(AuthError::Missing));
        assert_eq!(a.check(Some(b"Bearer gamma")), Err(AuthError::Denied));
        assert_eq!(a.check(Some(b"Bearer alpha-toke")), Err(AuthError::Denied));
        assert_eq!(a.check(Some(b"Bearer alpha-token")), Ok(()));
        assert_eq!(a.check(Some(b"Bearer beta-token")), Ok(()));
    }
}
