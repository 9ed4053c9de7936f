//! [`NodeHttp`]: the node's HTTP API, for the one thing only it answers, a transaction's
//! inclusion proof (`GET /v1/tx/{tx_id}/proof`, what `poh prove` fetches), with the client's
//! TLS settings and token as the CLI's `--url` gives them.

use std::time::Duration;

use poh_node::{
    network::client::{Bearer, ClientTls, http_client},
    wire::{headers::ProofJson, protobuf::code_name},
};
use reqwest::{StatusCode, Url};
use tonic::Code;

use super::convert::ProofText;
use crate::error::{Error, Result};

/// The most of a proof read from a node. A proof is a few headers (about 10 KB each, nearly
/// all key and signature) per level; anything much longer is not one.
const MAX_PROOF_BYTES: usize = 4 << 20;

/// One node's HTTP API.
pub struct NodeHttp {
    client: reqwest::Client,
    base: Url,
    token: Option<Bearer>,
}

impl NodeHttp {
    /// `url` is `http://HOST:PORT` or `https://…`; a token goes to an `http://` URL only on
    /// this machine or with `insecure`, as for the CLI.
    pub fn new(url: &str, tls: &ClientTls, timeout: Duration) -> Result<Self> {
        let bad = |why: String| Error::Config(format!("http {url:?}: {why}"));
        let base = Url::parse(url).map_err(|e| bad(e.to_string()))?;
        if !matches!(base.scheme(), "http" | "https") {
            return Err(bad("give an http:// or https:// URL".into()));
        }
        tls.check_url(url).map_err(|e| bad(e.to_string()))?;
        let client = http_client(timeout, &tls.trust, tls.identity.as_ref())?;
        Ok(Self {
            client,
            base,
            token: tls.token.clone(),
        })
    }

    /// The proof of `tx_id`, checked to be a proof of that transaction (verifying it is the
    /// caller's, under the keys the caller trusts).
    pub async fn proof(&self, tx_id: &str) -> Result<ProofText> {
        // A path segment of `.` or `..` is dropped from the URL, which would then ask for
        // something else.
        if matches!(tx_id, "." | "..") {
            return Err(Error::Client {
                code: code_name(Code::InvalidArgument),
                message: format!("the proof of {tx_id:?} cannot be asked for by URL"),
            });
        }
        let mut url = self.base.clone();
        url.path_segments_mut()
            .map_err(|()| Error::Config(format!("http {}: not a base URL", self.base)))?
            .pop_if_empty()
            .extend(["v1", "tx", tx_id, "proof"]);
        let mut request = self.client.get(url);
        if let Some(token) = &self.token {
            request = request.bearer_auth(token.token());
        }
        let base = self.base.as_str().trim_end_matches('/');
        let mut response = request.send().await.map_err(|e| unreachable(base, &e))?;
        let status = response.status();
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| unreachable(base, &e))? {
            if body.len() + chunk.len() > MAX_PROOF_BYTES {
                return Err(Error::Proof(format!(
                    "{base} sent more than {MAX_PROOF_BYTES} bytes for the proof of {tx_id}"
                )));
            }
            body.extend_from_slice(&chunk);
        }
        let text = String::from_utf8_lossy(&body).into_owned();
        if !status.is_success() {
            #[derive(serde::Deserialize)]
            struct ErrorBody {
                message: String,
            }
            let why = serde_json::from_str::<ErrorBody>(&text).map_or(text, |e| e.message);
            return Err(Error::Client {
                code: code_name(code_of(status)),
                message: format!("{base} answered {status}: {why}"),
            });
        }
        let proof: ProofJson = serde_json::from_str(&text)
            .map_err(|e| Error::Proof(format!("{base} did not answer with a proof: {e}")))?;
        if proof.tx_id != tx_id {
            return Err(Error::Proof(format!(
                "{base} answered with the proof of {:?}, not of {tx_id:?}",
                proof.tx_id
            )));
        }
        Ok(ProofText(text))
    }
}

/// A request that got no answer.
fn unreachable(base: &str, e: &reqwest::Error) -> Error {
    let code = if e.is_timeout() {
        Code::DeadlineExceeded
    } else {
        Code::Unavailable
    };
    Error::Client {
        code: code_name(code),
        message: format!("cannot reach {base}: {e}"),
    }
}

/// The gRPC code that says what an HTTP error status says, so `ClientError.code` reads the
/// same whichever API answered.
fn code_of(status: StatusCode) -> Code {
    match status {
        StatusCode::BAD_REQUEST => Code::InvalidArgument,
        StatusCode::UNAUTHORIZED => Code::Unauthenticated,
        StatusCode::FORBIDDEN => Code::PermissionDenied,
        StatusCode::NOT_FOUND => Code::NotFound,
        StatusCode::REQUEST_TIMEOUT | StatusCode::GATEWAY_TIMEOUT => Code::DeadlineExceeded,
        // A node answers 503 when overloaded (SPEC §4), where gRPC says RESOURCE_EXHAUSTED.
        StatusCode::TOO_MANY_REQUESTS
        | StatusCode::SERVICE_UNAVAILABLE
        | StatusCode::INSUFFICIENT_STORAGE => Code::ResourceExhausted,
        StatusCode::BAD_GATEWAY => Code::Unavailable,
        StatusCode::NOT_IMPLEMENTED => Code::Unimplemented,
        _ => Code::Internal,
    }
}
