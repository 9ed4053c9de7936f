//! Integration tests of the real `poh` binary.

mod common;
mod flood;
mod network;
mod peers;
mod serve;
mod tools;
