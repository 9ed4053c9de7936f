//! What a gRPC call's body may make the node hold: its bytes count against a
//! [`ByteBudget`] from their arrival until the message they belong to is decoded and handed
//! on (the federation link's against its own budget, every other call's against the node's),
//! and a link's first message is held to the size of a `Hello`.

use std::sync::Arc;

use tonic::Status;

use crate::{
    federation,
    shared::{ByteBudget, ClientKey, Exhausted, Reservation},
};

pub(super) async fn budget_body(
    axum::extract::State((calls, link)): axum::extract::State<(Arc<ByteBudget>, Arc<ByteBudget>)>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let refuse = |e: BodyRefusal| {
        axum::Error::new(match e {
            BodyRefusal::Exhausted(e) => Status::resource_exhausted(e.to_string()),
            BodyRefusal::FirstTooLarge { .. } => Status::invalid_argument(e.to_string()),
        })
    };
    let client = req.extensions().get::<ClientKey>().copied();
    let path = req.uri().path();
    let (budget, first_max) = if path == federation::parent::LINK_PATH {
        // Until its Hello names a child, a link is a stranger: a few KiB at most.
        (&link, Some(poh_proto::bounded::MAX_HELLO_BYTES))
    } else if path.starts_with("/poh.federation.v1.") {
        (&link, None)
    } else {
        (&calls, None)
    };
    let reservation = budget.reserve(client);
    let req =
        req.map(|body| axum::body::Body::new(Budgeted::new(body, reservation, first_max, refuse)));
    next.run(req).await
}

/// A gRPC call's body, its bytes counted against a [`ByteBudget`] while the node holds them:
/// from their arrival until the message they belong to is complete and handed to the call's
/// handler. tonic decodes one message at a time and only reads on once it has handed every
/// complete one on, so the reservation is at most the message being received (and those that
/// arrived in the same read), however long the stream lives. A silent stream holds nothing.
///
/// The first message may be held to a smaller size than the rest (`first_max`: a federation
/// link's `Hello`, before the caller is known). When the budget is spent, or a message is
/// over its size, the body fails with `refuse` and the call ends.
pub(crate) struct Budgeted {
    body: axum::body::Body,
    reservation: Reservation,
    frames: Frames,
    refuse: fn(BodyRefusal) -> axum::Error,
}

/// Why a call's body was cut short.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum BodyRefusal {
    /// The budget could not cover the bytes.
    #[error(transparent)]
    Exhausted(#[from] Exhausted),
    /// The first message is larger than a first message may be.
    #[error("the first message is {len} bytes; it may be at most {max}")]
    FirstTooLarge {
        /// Its length prefix.
        len: usize,
        /// The limit.
        max: usize,
    },
}

/// Where a gRPC body stands in its length-prefixed messages (1 flag byte, a 4-byte length).
#[derive(Debug, Default)]
struct Frames {
    /// Prefix bytes of the next message seen so far.
    prefix: [u8; 5],
    prefix_len: usize,
    /// Body bytes still to come of the message being received.
    remaining: usize,
    /// Bytes of the message being received, prefix included.
    partial: usize,
    /// Bytes of messages that completed in the last read: held until tonic asks again.
    completed: usize,
    /// Messages whose length is known.
    started: u64,
    first_max: Option<usize>,
}

impl Frames {
    /// Follows `data`; the bytes to hold after it.
    fn read(&mut self, mut data: &[u8]) -> Result<usize, BodyRefusal> {
        while !data.is_empty() {
            if self.remaining == 0 && self.prefix_len < 5 {
                let n = (5 - self.prefix_len).min(data.len());
                self.prefix[self.prefix_len..self.prefix_len + n].copy_from_slice(&data[..n]);
                self.prefix_len += n;
                self.partial += n;
                data = &data[n..];
                if self.prefix_len < 5 {
                    break;
                }
                let [_, a, b, c, d] = self.prefix;
                let len = u32::from_be_bytes([a, b, c, d]) as usize;
                if let Some(max) = self.first_max.filter(|_| self.started == 0)
                    && len > max
                {
                    return Err(BodyRefusal::FirstTooLarge { len, max });
                }
                self.started += 1;
                self.remaining = len;
            } else {
                let n = self.remaining.min(data.len());
                self.remaining -= n;
                self.partial += n;
                data = &data[n..];
            }
            if self.remaining == 0 && self.prefix_len == 5 {
                self.completed += self.partial;
                self.partial = 0;
                self.prefix_len = 0;
            }
        }
        Ok(self.completed + self.partial)
    }
}

impl Budgeted {
    pub(crate) fn new(
        body: axum::body::Body,
        reservation: Reservation,
        first_max: Option<usize>,
        refuse: fn(BodyRefusal) -> axum::Error,
    ) -> Self {
        Self {
            body,
            reservation,
            frames: Frames {
                first_max,
                ..Frames::default()
            },
            refuse,
        }
    }
}

impl http_body::Body for Budgeted {
    type Data = axum::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        let this = &mut *self;
        // Asked again: every message that was complete has been decoded and handed on.
        this.frames.completed = 0;
        let _ = this.reservation.resize(this.frames.partial);
        let frame = std::task::ready!(std::pin::Pin::new(&mut this.body).poll_frame(cx));
        if let Some(Ok(frame)) = &frame
            && let Some(data) = frame.data_ref()
        {
            let held = this
                .frames
                .read(data)
                .and_then(|held| Ok(this.reservation.resize(held)?));
            if let Err(e) = held {
                return std::task::Poll::Ready(Some(Err((this.refuse)(e))));
            }
        }
        std::task::Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grpc_frame(len: usize) -> Vec<u8> {
        let mut frame = vec![0u8];
        frame.extend((len as u32).to_be_bytes());
        frame.extend(std::iter::repeat_n(7u8, len));
        frame
    }

    /// A stream's reservation is the message being received: each complete message is
    /// released when the reader asks for more, so a long stream holds no more than one.
    #[tokio::test]
    async fn a_budgeted_body_holds_only_the_message_being_received() {
        use http_body_util::BodyExt as _;
        let budget = ByteBudget::new(1 << 20, 5000, metrics::Gauge::noop());
        let client = ClientKey::new("10.0.0.9".parse().unwrap(), 64);
        let refuse = |e: BodyRefusal| axum::Error::new(e);
        // Twenty messages of 2,000 bytes, split across reads at odd places: 40,000 bytes in
        // all against a client share of 5,000.
        let wire: Vec<u8> = (0..20).flat_map(|_| grpc_frame(1995)).collect();
        let chunks: Vec<_> = wire
            .chunks(1500)
            .map(|c| Ok::<_, std::io::Error>(c.to_vec()))
            .collect();
        let body = axum::body::Body::from_stream(futures_util::stream::iter(chunks));
        let mut stream = Budgeted::new(body, budget.reserve(Some(client)), None, refuse);
        let mut read = 0;
        while let Some(frame) = stream.frame().await {
            read += frame.unwrap().into_data().unwrap().len();
            assert!(budget.available() >= (1 << 20) - 2 * 2000, "{read}");
        }
        assert_eq!(read, 40_000);
        assert_eq!(
            budget.available(),
            1 << 20,
            "a finished stream holds nothing"
        );
        drop(stream);

        // One message larger than the client's share is refused as it arrives.
        let wire = grpc_frame(6000);
        let chunks: Vec<_> = wire
            .chunks(2000)
            .map(|c| Ok::<_, std::io::Error>(c.to_vec()))
            .collect();
        let body = axum::body::Body::from_stream(futures_util::stream::iter(chunks));
        let mut big = Budgeted::new(body, budget.reserve(Some(client)), None, refuse);
        assert!(big.frame().await.unwrap().is_ok());
        assert!(big.frame().await.unwrap().is_ok());
        assert!(big.frame().await.unwrap().is_err());
        drop(big);
        assert_eq!(budget.available(), 1 << 20);
    }

    #[tokio::test]
    async fn a_first_message_over_its_limit_is_refused_by_its_length_prefix() {
        use http_body_util::BodyExt as _;
        let budget = ByteBudget::new(1 << 20, 1 << 20, metrics::Gauge::noop());
        let refuse = |e: BodyRefusal| axum::Error::new(e);
        let body = |wire: Vec<u8>| {
            axum::body::Body::from_stream(futures_util::stream::iter([Ok::<_, std::io::Error>(
                wire,
            )]))
        };
        // The prefix alone announces 16 MiB: refused before any of it is held.
        let mut wire = vec![0u8];
        wire.extend((16u32 << 20).to_be_bytes());
        let mut hello = Budgeted::new(body(wire), budget.reserve(None), Some(4096), refuse);
        assert!(hello.frame().await.unwrap().is_err());
        // A small first message and a large second one pass.
        let mut wire = grpc_frame(100);
        wire.extend(grpc_frame(100_000));
        let mut ok = Budgeted::new(body(wire), budget.reserve(None), Some(4096), refuse);
        assert!(ok.frame().await.unwrap().is_ok());
    }
}
