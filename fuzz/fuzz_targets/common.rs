//! What several targets share: the deployment they fuzz against (the
//! sample contracts, `proto/fuzz` with every wire shape, and bus topics on
//! both) and the fixture consent key. `examples/make_seeds.rs` uses the same,
//! so that the seeds it writes fit the targets.

#![allow(dead_code)] // each target uses its part

use jisr::audit::note::NoteSigner;
use jisr::bus::Topics;
use jisr::catalogue::Catalogue;
use jisr::config::Config;
use std::path::Path;
use std::sync::LazyLock;

const CONFIG: &str = r#"
[node]
id = "gw-1"
trust_domain = "interop.gov.ma"
listen = "127.0.0.1:8443"

[tls]
ca = "ca.crt"
cert = "gw.crt"
key = "gw.key"

[catalogue]
include = ["../proto", "proto"]

[[agency]]
id = "civil-status"
upstream = "127.0.0.1:9001"
contracts = ["agencies/civilstatus/v1/civilstatus.proto"]

[[agency]]
id = "tax"
upstream = "127.0.0.1:9002"
contracts = ["agencies/tax/v1/tax.proto"]

[[agency]]
id = "health"
upstream = "127.0.0.1:9003"
contracts = ["agencies/health/v1/health.proto"]

[[agency]]
id = "fuzz"
upstream = "127.0.0.1:9004"
contracts = ["fuzz/v1/rich.proto"]

[[purpose]]
code = "tax-household"
description = "Establishing a tax household"

[[purpose]]
code = "mortality-statistics"
description = "Statistics of the causes of death"

[[topic]]
name = "civil-status.birth-registered"
owner = "civil-status"
event = "ma.civilstatus.v1.BirthRegistered"

[[topic.subscriber]]
agency = "tax"
purposes = ["tax-household"]
basis = "law:cgi-art-22"
release = ["citizen_id", "birth_date"]

[[topic]]
name = "civil-status.death-registered"
owner = "civil-status"
event = "ma.civilstatus.v1.DeathRegistered"

[[topic.subscriber]]
agency = "health"
purposes = ["mortality-statistics"]
basis = "law:09-08-art-4"

[[topic]]
name = "fuzz.outer"
owner = "fuzz"
event = "fuzz.v1.Outer"

[[topic.subscriber]]
agency = "tax"
purposes = ["tax-household"]
basis = "law:cgi-art-22"

[[topic]]
name = "fuzz.other"
owner = "fuzz"
event = "fuzz.v1.Other"

[[topic.subscriber]]
agency = "tax"
purposes = ["tax-household"]
basis = "law:cgi-art-22"
"#;

/// The fuzzed deployment: its configuration, contracts and topics.
pub struct Deployment {
    pub config: Config,
    pub catalogue: Catalogue,
    pub topics: Topics,
}

pub static DEPLOYMENT: LazyLock<Deployment> = LazyLock::new(|| {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("jisr.toml");
    let config = Config::from_toml(CONFIG, &file).expect("the fuzz config is valid");
    let catalogue = Catalogue::load(&config).expect("the contracts load");
    let topics = Topics::compile(&config, &catalogue).expect("the fuzz topics compile");
    Deployment {
        config,
        catalogue,
        topics,
    }
});

/// The topic names, in a fixed order (the first input byte picks one).
pub const TOPICS: [&str; 4] = [
    "civil-status.birth-registered",
    "civil-status.death-registered",
    "fuzz.outer",
    "fuzz.other",
];

/// The fixture consent key (a key for fuzzing only, committed so that the
/// seeds `make_seeds` signs verify in the target).
pub fn consent_key() -> NoteSigner {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/consent.key");
    let text = std::fs::read_to_string(&path).expect("fuzz/fixtures/consent.key is readable");
    NoteSigner::from_secret_text(text.trim()).expect("the fixture consent key parses")
}

/// The fixture pseudonym key the bus seals Redis entries with.
pub const PSEUDONYM_KEY: [u8; 32] = *b"jisr-fuzz-fixture-pseudonym-key!";
