//! [`Endpoints`]: the nodes a client application calls (the CLI's `submit` and `status`, the
//! Python package's `Client`), tried in turn: each call starts at the next one (round robin)
//! and fails over past endpoints that cannot be reached.

use std::{
    sync::atomic::{AtomicUsize, Ordering},
    time::Duration,
};

use tonic::{Code, Status, transport::Channel};

use super::{Bearer, ClientTls, grpc_channel};
use crate::NodeError;

/// Why a call through [`Endpoints`] failed.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// No endpoint could be reached; each one's reason, as `endpoint: why`.
    #[error("no endpoint answered ({})", .0.join("; "))]
    Unreachable(Vec<String>),
    /// An endpoint answered the call with an error status.
    #[error("{endpoint}: {:?}: {}", .status.code(), .status.message())]
    Refused {
        /// The endpoint that answered.
        endpoint: String,
        /// Its answer.
        status: Status,
    },
}

impl CallError {
    /// The gRPC code: the answer's, or `UNAVAILABLE` when nothing answered.
    pub fn code(&self) -> Code {
        match self {
            Self::Unreachable(_) => Code::Unavailable,
            Self::Refused { status, .. } => status.code(),
        }
    }
}

/// Lazily connected channels to one or more nodes, with the bearer token they want.
pub struct Endpoints {
    channels: Vec<(String, Channel)>,
    next: AtomicUsize,
    bearer: Option<Bearer>,
}

impl Endpoints {
    /// Channels to `endpoints` (`host:port` or URLs), trusting servers per `tls`; `timeout`
    /// bounds connecting to one. Refused when one would carry the token in plain text off
    /// this machine. Must be called inside a tokio runtime, which then runs the channels'
    /// connections.
    pub fn new(
        endpoints: &[String],
        timeout: Duration,
        tls: &ClientTls,
    ) -> Result<Self, NodeError> {
        if endpoints.is_empty() {
            return Err(NodeError::Config("give at least one endpoint".into()));
        }
        let channels = endpoints
            .iter()
            .map(|e| {
                let channel = grpc_channel(e, tls, timeout)
                    .map_err(|why| NodeError::Config(format!("endpoint {e}: {why}")))?;
                Ok((e.clone(), channel))
            })
            .collect::<Result<_, NodeError>>()?;
        Ok(Self {
            channels,
            next: AtomicUsize::new(0),
            bearer: tls.token.clone(),
        })
    }

    /// `message` as a request carrying the bearer token, when there is one.
    pub fn request<T>(&self, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        if let Some(b) = &self.bearer {
            b.authorize(&mut request);
        }
        request
    }

    /// Runs `call` on the next endpoint's channel, failing over while the error is that the
    /// endpoint is unreachable; the answer and the endpoint that gave it.
    pub async fn call<T, F, Fut>(&self, mut call: F) -> Result<(T, &str), CallError>
    where
        F: FnMut(Channel) -> Fut,
        Fut: Future<Output = Result<T, Status>>,
    {
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let mut errors = Vec::new();
        for i in 0..self.channels.len() {
            let (name, channel) = &self.channels[(start + i) % self.channels.len()];
            match call(channel.clone()).await {
                Ok(answer) => return Ok((answer, name)),
                Err(status)
                    if matches!(status.code(), Code::Unavailable | Code::DeadlineExceeded) =>
                {
                    errors.push(format!("{name}: {}", status.message()));
                }
                Err(status) => {
                    return Err(CallError::Refused {
                        endpoint: name.clone(),
                        status,
                    });
                }
            }
        }
        Err(CallError::Unreachable(errors))
    }
}
