//! Compiles `proto/groups/v1/*.proto` with protox (pure Rust, no `protoc`) and generates the
//! tonic clients and servers plus a file descriptor set for server reflection.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = [
        "proto/groups/v1/common.proto",
        "proto/groups/v1/directory.proto",
        "proto/groups/v1/events.proto",
        "proto/groups/v1/groups.proto",
        "proto/groups/v1/membership.proto",
    ];
    for file in &files {
        println!("cargo:rerun-if-changed={file}");
    }
    let descriptors = protox::compile(files, ["proto"])?;
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(
        out_dir.join("groups_descriptor.bin"),
        prost::Message::encode_to_vec(&descriptors),
    )?;
    // Type names let the codec find each request's descriptor (`src/grpc/codec.rs`).
    let mut config = tonic_prost_build::Config::new();
    config.enable_type_names();
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .codec_path("crate::grpc::codec::Codec")
        .compile_fds_with_config(descriptors, config)?;
    Ok(())
}
