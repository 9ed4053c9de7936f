//! Compiles `proto/poh.proto` and `proto/federation.proto` with protox (a pure-Rust protobuf compiler), so a fresh machine
//! needs no system `protoc`. The descriptor set is also written out for gRPC server reflection.

use std::{env, path::PathBuf};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR")?).join("../../proto");
    let protos = [
        proto_dir.join("poh.proto"),
        proto_dir.join("federation.proto"),
    ];
    for proto in &protos {
        println!("cargo:rerun-if-changed={}", proto.display());
    }

    let fds = protox::compile(&protos, [&proto_dir])?;
    let out = PathBuf::from(env::var("OUT_DIR")?);
    std::fs::write(
        out.join("poh_descriptor.bin"),
        prost::Message::encode_to_vec(&fds),
    )?;
    let poh = protox::compile([&protos[0]], [&proto_dir])?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        // Hand-written (src/timestamped.rs) so a -0.0 timestamp survives the wire.
        .extern_path(".poh.v1.Tx", "crate::timestamped::Tx")
        .extern_path(".poh.v1.TxRequest", "crate::timestamped::TxRequest")
        .compile_fds(poh)?;
    // The link between chains decodes through a codec that bounds what a message may
    // inflate into (src/bounded.rs).
    let federation = protox::compile([&protos[1]], [&proto_dir])?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .codec_path("crate::bounded::BoundedCodec")
        .compile_fds(federation)?;
    Ok(())
}
