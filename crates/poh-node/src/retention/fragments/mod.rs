//! Erasure-coded fragments of sealed batches (being written).
