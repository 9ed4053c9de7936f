//! Replays the fuzz corpora of the node's decoders (`fuzz/corpus/<target>`) through the
//! bodies of their fuzz targets, so plain `cargo test` keeps every input the fuzzer found
//! interesting passing without nightly or cargo-fuzz. Each body is the target's own, included
//! from one file into a module of its own.

use std::{fs, path::Path};

/// Runs every file of `fuzz/corpus/<target>` through `one_input`; none may panic, and there
/// must be at least 10 of them.
fn replay(target: &str, one_input: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target);
    let mut files = 0;
    for item in fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = item.unwrap().path();
        if !path.is_file() {
            continue;
        }
        let data = fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        // The panic hook has already printed the message; add which input it was.
        if std::panic::catch_unwind(|| one_input(&data)).is_err() {
            panic!("corpus input {} panics", path.display());
        }
        files += 1;
    }
    assert!(
        files >= 10,
        "only {files} corpus files in {}; expected at least 10",
        dir.display()
    );
}

mod json_tx {
    include!("../../../../fuzz/fuzz_targets/json_tx_body.rs");

    #[test]
    fn corpus_replays_cleanly() {
        super::replay("json_tx", one_input);
    }
}

mod udp_datagram {
    include!("../../../../fuzz/fuzz_targets/udp_datagram_body.rs");

    #[test]
    fn corpus_replays_cleanly() {
        super::replay("udp_datagram", one_input);
    }
}

mod pb_tx {
    include!("../../../../fuzz/fuzz_targets/pb_tx_body.rs");

    #[test]
    fn corpus_replays_cleanly() {
        super::replay("pb_tx", one_input);
    }
}

mod quic_frame {
    include!("../../../../fuzz/fuzz_targets/quic_frame_body.rs");

    #[test]
    fn corpus_replays_cleanly() {
        super::replay("quic_frame", one_input);
    }
}

mod peers_file {
    include!("../../../../fuzz/fuzz_targets/peers_file_body.rs");

    #[test]
    fn corpus_replays_cleanly() {
        super::replay("peers_file", one_input);
    }
}

mod config {
    include!("../../../../fuzz/fuzz_targets/config_body.rs");

    #[test]
    fn corpus_replays_cleanly() {
        super::replay("config", one_input);
    }
}

mod sealed_header {
    include!("../../../../fuzz/fuzz_targets/sealed_header_body.rs");

    #[test]
    fn corpus_replays_cleanly() {
        super::replay("sealed_header", one_input);
    }
}

mod fragment {
    include!("../../../../fuzz/fuzz_targets/fragment_body.rs");

    #[test]
    fn corpus_replays_cleanly() {
        super::replay("fragment", one_input);
    }
}

mod proof_json {
    include!("../../../../fuzz/fuzz_targets/proof_json_body.rs");

    #[test]
    fn corpus_replays_cleanly() {
        super::replay("proof_json", one_input);
    }
}

mod link_message {
    include!("../../../../fuzz/fuzz_targets/link_message_body.rs");

    #[test]
    fn corpus_replays_cleanly() {
        super::replay("link_message", one_input);
    }
}

mod expired_status {
    include!("../../../../fuzz/fuzz_targets/expired_status_body.rs");

    #[test]
    fn corpus_replays_cleanly() {
        super::replay("expired_status", one_input);
    }
}

mod replica_batch {
    include!("../../../../fuzz/fuzz_targets/replica_batch_body.rs");

    #[test]
    fn corpus_replays_cleanly() {
        super::replay("replica_batch", one_input);
    }
}

mod auth_header {
    include!("../../../../fuzz/fuzz_targets/auth_header_body.rs");

    #[test]
    fn corpus_replays_cleanly() {
        super::replay("auth_header", one_input);
    }
}
