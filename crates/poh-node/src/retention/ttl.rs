//! TTL (being written).
