//! Integration tests: real nodes on 127.0.0.1 ports, real tonic and reqwest clients.

mod auth;
mod broadcast;
mod chain;
mod client_networks;
mod common;
mod connections;
mod dag;
mod errors;
mod expired;
mod federation;
mod flood;
mod fragments;
mod fuzz_corpus;
mod grpc;
mod http;
mod layers;
mod link;
mod metrics;
mod network;
mod reload;
mod repair;
mod replica;
mod sealing;
mod security;
mod subscribe;
mod ttl;
