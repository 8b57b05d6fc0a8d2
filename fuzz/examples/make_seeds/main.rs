//! Writes the committed seed corpus, `fuzz/seeds/<target>/`, from real
//! artefacts: consents signed by the consent code, events packed as a
//! publisher packs them, the sample agencies' answers, an audit log written
//! by `AuditLog` (its segment, checkpoint, receipts and a witness request),
//! the example configuration. Run after a format changes:
//!
//! ```sh
//! cargo run --manifest-path fuzz/Cargo.toml --example make_seeds
//! ```
//!
//! Keys, times and ids are new on each run, so the bytes change; what the
//! seeds are does not. The fixture consent key (`fuzz/fixtures/consent.key`)
//! is made once and kept: the `consent_artefact` target opens the seeds
//! with it.

#[path = "../../fuzz_targets/common.rs"]
mod common;

mod audit;
mod exchange;

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf()
}

/// The seeds of one target: replaced whole, so none is left from a format
/// that is gone.
pub struct Seeds {
    dir: PathBuf,
}

impl Seeds {
    pub fn of(target: &str) -> Self {
        let dir = root().join("seeds").join(target);
        if dir.exists() {
            std::fs::remove_dir_all(&dir).expect("old seeds removed");
        }
        std::fs::create_dir_all(&dir).expect("seed directory made");
        Self { dir }
    }

    pub fn put(&self, name: &str, bytes: &[u8]) {
        std::fs::write(self.dir.join(name), bytes).expect("seed written");
    }
}

/// The fixture consent key: made on the first run, kept after.
fn consent_key() {
    let path = root().join("fixtures/consent.key");
    if !path.exists() {
        let key =
            jisr::audit::note::NoteSigner::generate("fuzz.example/jisr/consents").expect("a key");
        std::fs::create_dir_all(root().join("fixtures")).expect("fixtures directory");
        std::fs::write(&path, format!("{}\n", key.to_secret_text())).expect("key written");
    }
}

fn main() {
    consent_key();
    exchange::consent_artefact();
    exchange::bus_event();
    exchange::grpc_body();
    exchange::minimise();
    exchange::wire_walk();
    exchange::call_metadata();
    let config = std::fs::read(root().join("../config/example.toml")).expect("example config");
    Seeds::of("config_parse").put("example.toml", &config);
    audit::all();
    println!("seeds written to {}", root().join("seeds").display());
}
