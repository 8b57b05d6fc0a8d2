//! Micro-benchmarks of the per-call work on Jisr's exchange path, so
//! regressions show: access rule matching ([`policy`]), the validating wire
//! walk that finds the subject ([`wire`]), and building, hashing and durably
//! appending an audit entry ([`audit`]).
//!
//! Run with `cargo bench --bench micro` (add `-- --warm-up-time 1
//! --measurement-time 3` for a quick pass, or a name filter such as
//! `-- policy/`). The test suite does not run them; `cargo clippy
//! --all-targets` compiles them.

mod audit;
mod policy;
mod wire;

use std::path::{Path, PathBuf};

criterion::criterion_group!(benches, policy::benches, wire::benches, audit::benches);
criterion::criterion_main!(benches);

/// The repository root: relative paths of a config resolve against it.
fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// A file name in the repository root for a config read from text, so that
/// its `include = ["proto"]` finds the sample contracts.
fn config_path() -> PathBuf {
    repo().join("bench.toml")
}

/// The demo's gateway configuration (`src/tools/demo/demo.toml.in`), with
/// upstreams that are never dialled and `extra` TOML appended.
fn demo_config(extra: &str) -> jisr::config::Config {
    let text = format!(
        include_str!("../../src/tools/demo/demo.toml.in"),
        civil_status = "127.0.0.1:9001",
        tax = "127.0.0.1:9002",
        health = "127.0.0.1:9003",
    ) + extra;
    jisr::config::Config::from_toml(&text, &config_path())
        .unwrap_or_else(|e| panic!("the benchmark config does not load: {e}"))
}

/// The catalogue of the sample contracts, as the demo loads it.
fn demo_catalogue(config: &jisr::config::Config) -> jisr::catalogue::Catalogue {
    jisr::catalogue::Catalogue::load(config)
        .unwrap_or_else(|e| panic!("the sample contracts do not load: {e}"))
}
