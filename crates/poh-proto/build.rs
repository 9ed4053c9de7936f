//! Compiles `proto/poh.proto`, `proto/federation.proto` and `proto/replica.proto` with protox (a pure-Rust protobuf compiler), so a fresh machine
//! needs no system `protoc`. The descriptor set is also written out for gRPC server reflection.

use std::{env, path::PathBuf};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR")?).join("../../proto");
    let protos = [
        proto_dir.join("poh.proto"),
        proto_dir.join("federation.proto"),
        proto_dir.join("replica.proto"),
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
    // A replica's copy is bounded the same way; its messages reuse both packages' types.
    // The packages it imports are generated above; prost needs them to resolve the types but
    // generates them again, so this goes to a directory of its own and only its own file is
    // included.
    let replica = protox::compile([&protos[2]], [&proto_dir])?;
    let replica_dir = out.join("replica");
    std::fs::create_dir_all(&replica_dir)?;
    tonic_prost_build::configure()
        .out_dir(&replica_dir)
        .build_client(true)
        .build_server(true)
        .extern_path(".poh.v1", "crate::v1")
        .extern_path(".poh.federation.v1", "crate::federation")
        .codec_path("crate::bounded::BoundedCodec")
        .compile_fds(replica)?;
    Ok(())
}
