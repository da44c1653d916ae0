//! Generates the Rust code for `proto/raftmq/v1/*.proto` with tonic-prost-build, using the
//! protoc binary shipped in the `protoc-bin-vendored` crate, so building needs nothing
//! installed on the machine.

use std::path::PathBuf;

/// The .proto files of package `raftmq.v1`, relative to the include root.
const PROTOS: [&str; 4] = [
    "proto/raftmq/v1/common.proto",
    "proto/raftmq/v1/broker.proto",
    "proto/raftmq/v1/namesrv.proto",
    "proto/raftmq/v1/raft.proto",
];

/// Directory that `import "raftmq/v1/...";` statements resolve against.
const INCLUDE_ROOT: &str = "proto";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()
        .map_err(|e| format!("no vendored protoc for this platform: {e}"))?;
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);

    let mut config = tonic_prost_build::Config::new();
    config.protoc_executable(protoc);

    tonic_prost_build::configure()
        // Message bodies, entry payloads and snapshot chunks are handed around without
        // copying, so every `bytes` field is a `bytes::Bytes`.
        .bytes(".")
        // Deterministic encoding of maps (membership nodes, message properties): the same
        // value always encodes to the same bytes.
        .btree_map(".")
        .file_descriptor_set_path(out_dir.join("raftmq_v1_descriptor.bin"))
        .compile_with_config(config, &PROTOS, &[INCLUDE_ROOT])?;

    // prost-build reports each listed file; a new file in the directory must rebuild too.
    println!("cargo:rerun-if-changed={INCLUDE_ROOT}");
    Ok(())
}
