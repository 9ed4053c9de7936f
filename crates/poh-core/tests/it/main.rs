//! Integration tests of poh-core.

mod fuzz_corpus;
