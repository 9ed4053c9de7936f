//! After data is stored: expiry of old sealed transactions from the hot store ([`ttl`]),
//! erasure-coded fragments of every sealed batch in object storage ([`fragments`]), and the
//! move of an earlier release's store into the current engine ([`migrate`]).

pub mod fragments;
pub mod migrate;
pub mod ttl;
