//! After data is sealed: expiry of old sealed transactions from the hot store ([`ttl`]), and
//! erasure-coded fragments of every sealed batch in object storage ([`fragments`]).

pub mod fragments;
pub mod ttl;
