//! Fuzzes the batches a replica reads from its primary (`poh.replica.v1.Batch`): the copy
//! codec's walk over the encoded message (entry, item, record, name and header caps; 32-byte
//! hashes), prost's decode, and the conversions the replica makes before it verifies anything:
//! the entries, each record, child header and signed header. Must never panic.
//! `cargo test -p poh-node` replays the corpus through the same body.
#![no_main]

use libfuzzer_sys::fuzz_target;

include!("replica_batch_body.rs");

fuzz_target!(|data: &[u8]| one_input(data));
