// The body of the `fragment` fuzz target, `include!`d both by the target and by poh-node's
// corpus-replay test (`crates/poh-node/tests/it/fuzz_corpus.rs`), so the two cannot drift.

/// The first byte picks what the rest is: 0 one fragment, 1 a batch, 2 several fragments
/// (each `u16 length || bytes`) rebuilt together. Decoding may fail, never panic; what
/// decodes keeps its declared shape, and a decoded batch re-encodes to bytes that decode to
/// the same encoding.
fn one_input(data: &[u8]) {
    use poh_node::retention::fragments::{
        SealedBatch,
        format::{self, Fragment},
    };

    fn batch(bytes: &[u8]) {
        let Ok(batch) = SealedBatch::decode(bytes) else {
            return;
        };
        let Ok(encoded) = batch.encode() else {
            return;
        };
        let again = SealedBatch::decode(&encoded).expect("an encoded batch decodes");
        assert_eq!(again.encode().expect("re-encodes"), encoded);
    }

    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    match mode % 3 {
        0 => {
            let Ok(f) = Fragment::decode(rest) else {
                return;
            };
            assert!(f.index < f.k + f.m);
            assert!(f.shard.len() as u64 * f.k as u64 >= f.batch_len);
            if f.k == 1 {
                let bytes =
                    format::rebuild(std::slice::from_ref(&f)).expect("one data shard is a batch");
                assert_eq!(bytes.len() as u64, f.batch_len);
                batch(&bytes);
            }
        }
        1 => batch(rest),
        _ => {
            let mut fragments: Vec<Fragment<'_>> = Vec::new();
            let mut rest = rest;
            while rest.len() >= 2 {
                let len = usize::from(u16::from_be_bytes([rest[0], rest[1]])).min(rest.len() - 2);
                let (one, tail) = rest[2..].split_at(len);
                rest = tail;
                if let Ok(f) = Fragment::decode(one)
                    && fragments.iter().all(|g| g.index != f.index)
                {
                    fragments.push(f);
                }
            }
            if let Ok(bytes) = format::rebuild(&fragments) {
                batch(&bytes);
            }
        }
    }
}
