//! Generates Rust code for Jisr's own gRPC APIs and the sample agency
//! contracts from `proto/`, with protox: the build needs no system `protoc`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protos = [
        "proto/jisr/annotations.proto",
        "proto/jisr/audit/v1/audit.proto",
        "proto/agencies/civilstatus/v1/civilstatus.proto",
        "proto/agencies/tax/v1/tax.proto",
        "proto/agencies/health/v1/health.proto",
    ];
    println!("cargo:rerun-if-changed=proto");
    let fds = protox::compile(protos, ["proto"])?;
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .compile_fds(fds)?;
    Ok(())
}
