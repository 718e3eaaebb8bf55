//! Compiles `proto/groups/v1/*.proto` with protox (pure Rust, no `protoc`) and generates the
//! tonic clients and servers plus a file descriptor set for server reflection. The vendored
//! googleapis files under `proto/google/` are found through the include path `proto` and go
//! into the descriptor set with the other imports (reflection clients need them).

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = [
        "proto/groups/v1/common.proto",
        "proto/groups/v1/directory.proto",
        "proto/groups/v1/events.proto",
        "proto/groups/v1/groups.proto",
        "proto/groups/v1/membership.proto",
    ];
    for file in files
        .iter()
        .chain(&["proto/google/api/field_behavior.proto"])
    {
        println!("cargo:rerun-if-changed={file}");
    }
    let mut compiler = protox::Compiler::new(["proto"])?;
    compiler
        .include_source_info(true)
        .include_imports(true)
        .open_files(files)?;
    let descriptors = compiler.file_descriptor_set();
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    // Encoded by protox rather than from `descriptors`: prost_types has no place for
    // extension options (`google.api.field_behavior`) and would drop them.
    std::fs::write(
        out_dir.join("groups_descriptor.bin"),
        compiler.encode_file_descriptor_set(),
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
