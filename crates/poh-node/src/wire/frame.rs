//! The QUIC framing (SPEC §4): `u32 length (big-endian) || protobuf message` on a
//! bidirectional stream, ALPN `poh/1`, and the application codes a stream is reset with.
//!
//! [`FrameDecoder`] is pure (bytes in, frames out), so it is fuzzed and unit-tested without a
//! network; the server and the client feed it whatever chunks the stream delivers.

use bytes::{Buf, Bytes, BytesMut};

/// The ALPN protocol of SPEC §4.
pub const ALPN: &[u8] = b"poh/1";
/// Stream reset code: a frame was malformed; the stream is closed, the connection stays.
pub const MALFORMED_FRAME: u32 = 1;
/// Stream reset code: the client is over its limits (rate, requests in flight); retry later.
pub const OVERLOADED: u32 = 2;

/// Why a stream's bytes are not a sequence of frames.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// A frame announces more bytes than allowed.
    #[error("a frame of {len} bytes is above the limit of {max}")]
    TooLarge {
        /// The announced length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The stream ended inside a frame.
    #[error("the stream ended inside a frame ({0} bytes left over)")]
    Truncated(usize),
    /// A frame's bytes are not the expected protobuf message.
    #[error("a frame is not a valid protobuf message: {0}")]
    Protobuf(String),
}

/// Splits a byte stream into frames.
#[derive(Debug)]
pub struct FrameDecoder {
    buf: BytesMut,
    max: usize,
}

impl FrameDecoder {
    /// A decoder refusing frames above `max` bytes.
    pub fn new(max: usize) -> Self {
        Self {
            buf: BytesMut::new(),
            max,
        }
    }

    /// Adds received bytes.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// Bytes held: received and not yet taken as frames.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// The next complete frame's body, `None` until one is complete.
    pub fn next_frame(&mut self) -> Result<Option<Bytes>, FrameError> {
        let Some(header) = self.buf.get(..4) else {
            return Ok(None);
        };
        let len = u32::from_be_bytes([header[0], header[1], header[2], header[3]]) as usize;
        if len > self.max {
            return Err(FrameError::TooLarge { len, max: self.max });
        }
        if self.buf.len() < 4 + len {
            // The buffer grows only as bytes arrive: an announced length costs nothing.
            return Ok(None);
        }
        self.buf.advance(4);
        Ok(Some(self.buf.split_to(len).freeze()))
    }

    /// At the end of the stream: an error when bytes of an unfinished frame remain.
    pub fn finish(&self) -> Result<(), FrameError> {
        match self.buf.len() {
            0 => Ok(()),
            n => Err(FrameError::Truncated(n)),
        }
    }
}

/// Decodes one frame's body as a protobuf message.
pub fn decode<M: prost::Message + Default>(body: Bytes) -> Result<M, FrameError> {
    M::decode(body).map_err(|e| FrameError::Protobuf(e.to_string()))
}

/// Appends `message` as one frame.
pub fn encode<M: prost::Message>(message: &M, out: &mut Vec<u8>) {
    let len = message.encoded_len();
    out.reserve(4 + len);
    out.extend_from_slice(&(len as u32).to_be_bytes());
    // A Vec grows as needed, so encoding into it cannot fail.
    let _ = message.encode(out);
}

#[cfg(test)]
mod tests {
    use super::*;
    use poh_proto::v1 as pb;

    fn tx(id: &str) -> pb::Tx {
        pb::Tx {
            tx_id: id.into(),
            holder_id: "h".into(),
            timestamp: 1.5,
            payload: vec![1, 2, 3],
            ..Default::default()
        }
    }

    /// A length prefix alone reserves nothing: a client announcing huge frames and sending
    /// nothing more makes the node hold only what it sent.
    #[test]
    fn an_announced_length_costs_nothing_until_the_bytes_arrive() {
        let mut decoder = FrameDecoder::new(64 << 20);
        decoder.push(&(60u32 << 20).to_be_bytes());
        assert_eq!(decoder.next_frame(), Ok(None));
        assert!(
            decoder.buf.capacity() < 1 << 10,
            "{}",
            decoder.buf.capacity()
        );
        assert_eq!(decoder.buffered(), 4);
    }

    #[test]
    fn frames_come_out_whatever_the_chunking() {
        let mut wire = Vec::new();
        for id in ["a", "b", "c"] {
            encode(&tx(id), &mut wire);
        }
        for chunk in [1, 3, 7, wire.len()] {
            let mut decoder = FrameDecoder::new(1024);
            let mut out = Vec::new();
            for piece in wire.chunks(chunk) {
                decoder.push(piece);
                while let Some(body) = decoder.next_frame().unwrap() {
                    out.push(decode::<pb::Tx>(body).unwrap().tx_id);
                }
            }
            decoder.finish().unwrap();
            assert_eq!(out, ["a", "b", "c"]);
        }
    }

    #[test]
    fn oversized_truncated_and_garbage_frames_are_errors() {
        let mut decoder = FrameDecoder::new(10);
        decoder.push(&11u32.to_be_bytes());
        assert_eq!(
            decoder.next_frame(),
            Err(FrameError::TooLarge { len: 11, max: 10 })
        );

        let mut decoder = FrameDecoder::new(10);
        decoder.push(&[0, 0, 0, 5, 1]);
        assert_eq!(decoder.next_frame(), Ok(None));
        assert_eq!(decoder.finish(), Err(FrameError::Truncated(5)));

        let mut decoder = FrameDecoder::new(10);
        decoder.push(&[0, 0, 0, 2, 0xff, 0xff]);
        let body = decoder.next_frame().unwrap().unwrap();
        assert!(matches!(
            decode::<pb::Tx>(body),
            Err(FrameError::Protobuf(_))
        ));
    }
}
