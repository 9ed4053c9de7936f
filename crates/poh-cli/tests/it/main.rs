//! Integration tests of the real `poh` binary.

mod audit;
mod bench_replica;
mod common;
mod crash;
mod failover;
mod faults;
mod federation;
mod flood;
mod full_disk;
mod hosts;
mod index;
mod link_attack;
mod load;
mod migrate;
mod network;
mod observability;
mod operator;
mod peers;
mod queries;
mod replica;
mod restore;
mod serve;
mod subscribe;
mod tools;
mod tour;
mod trust;
