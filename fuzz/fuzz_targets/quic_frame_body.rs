// The body of the `quic_frame` fuzz target, `include!`d both by the target and by poh-node's
// corpus-replay test (`crates/poh-node/tests/it/fuzz_corpus.rs`), so the two cannot drift.
//
// Input layout: byte 0 mod 16 = number of cut points `n`; the next `2n` bytes are the cut
// points (u16 big-endian, taken mod the stream length + 1); the rest is the QUIC stream.

/// Split the stream into frames as a QUIC stream handler does, fed in one piece and fed in
/// the chunks the input chooses; both must give the same frames and the same end. Frames
/// are decoded as `poh.v1.Tx`, converted and validated, up to the first malformed one (where
/// the server stops reading too). Never panic.
fn one_input(data: &[u8]) {
    use poh_node::wire::frame::{self, FrameDecoder, FrameError};
    use poh_proto::v1 as pb;

    /// The frame bodies, then how the stream ended: the decoder's error or `finish()`.
    type Outcome = (Vec<Vec<u8>>, Result<(), FrameError>);

    fn split(stream: &[u8], cuts: &[usize], max_frame: usize) -> Outcome {
        let mut decoder = FrameDecoder::new(max_frame);
        let mut frames = Vec::new();
        let mut start = 0;
        for end in cuts.iter().copied().chain([stream.len()]) {
            decoder.push(&stream[start..end]);
            start = end;
            loop {
                match decoder.next_frame() {
                    Ok(Some(body)) => frames.push(body.to_vec()),
                    Ok(None) => break,
                    Err(e) => return (frames, Err(e)),
                }
            }
        }
        let end = decoder.finish();
        (frames, end)
    }

    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let n = usize::from(first % 16);
    let (cut_bytes, stream) = rest.split_at((2 * n).min(rest.len()));
    let mut cuts: Vec<usize> = cut_bytes
        .chunks_exact(2)
        .map(|c| usize::from(u16::from_be_bytes([c[0], c[1]])) % (stream.len() + 1))
        .collect();
    cuts.sort_unstable();

    // What the node uses, so the size limit is the production one.
    let max_frame = poh_node::config::QuicConfig::default().max_frame_bytes;
    let whole = split(stream, &[], max_frame);
    let chunked = split(stream, &cuts, max_frame);
    assert_eq!(whole, chunked, "cut at {cuts:?}");
    // A small limit, so a frame above it is reached too, whatever the chunking.
    let small = 64;
    assert_eq!(
        split(stream, &[], small),
        split(stream, &cuts, small),
        "limit {small}, cut at {cuts:?}"
    );

    let limits = poh_node::NodeConfig::default().ingest.limits();
    for body in whole.0 {
        match frame::decode::<pb::Tx>(body.into()) {
            Ok(message) => {
                let _ = poh_node::tx_from_pb(message).validate(&limits);
            }
            Err(FrameError::Protobuf(_)) => break,
            Err(e) => panic!("decode returned a framing error: {e}"),
        }
    }
}
