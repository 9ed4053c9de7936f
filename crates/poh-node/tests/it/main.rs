//! Integration tests: real nodes on 127.0.0.1 ports, real tonic and reqwest clients.

mod broadcast;
mod chain;
mod common;
mod grpc;
mod http;
mod metrics;
mod network;
