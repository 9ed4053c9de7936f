//! Integration tests of the real `poh` binary.

mod common;
mod federation;
mod flood;
mod network;
mod observability;
mod operator;
mod peers;
mod restore;
mod serve;
mod subscribe;
mod tools;
