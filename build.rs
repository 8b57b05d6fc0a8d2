//! Generates Rust code for Jisr's own gRPC APIs and the sample agency
//! contracts from `proto/`, with protox: the build needs no system `protoc`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protos = [
        "proto/jisr/annotations.proto",
        "proto/jisr/audit/v1/audit.proto",
        "proto/jisr/consent/v1/consent.proto",
        "proto/jisr/bus/v1/bus.proto",
        "proto/jisr/probe/v1/probe.proto",
        "proto/agencies/civilstatus/v1/civilstatus.proto",
        "proto/agencies/tax/v1/tax.proto",
        "proto/agencies/health/v1/health.proto",
    ];
    println!("cargo:rerun-if-changed=proto");
    let fds = protox::compile(protos, ["proto"])?;
    // Jisr's own APIs, for server reflection.
    let own = protox::compile(
        [
            "proto/jisr/audit/v1/audit.proto",
            "proto/jisr/consent/v1/consent.proto",
            "proto/jisr/bus/v1/bus.proto",
            "proto/jisr/probe/v1/probe.proto",
        ],
        ["proto"],
    )?;
    // The sample agencies' contracts, for their server reflection.
    let samples = protox::compile(
        [
            "proto/agencies/civilstatus/v1/civilstatus.proto",
            "proto/agencies/tax/v1/tax.proto",
            "proto/agencies/health/v1/health.proto",
        ],
        ["proto"],
    )?;
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(
        out.join("jisr_own.bin"),
        prost::Message::encode_to_vec(&own),
    )?;
    std::fs::write(
        out.join("samples.bin"),
        prost::Message::encode_to_vec(&samples),
    )?;
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .compile_fds(fds)?;
    Ok(())
}
