//! `[[audit.witness]]` and `witness_quorum`: none by default, every
//! witness's mistakes located, the quorum bounded by the witnesses.

use super::*;
use crate::audit::note::{Cosigner, NoteSigner};

fn key(name: &str) -> String {
    Cosigner::generate(name).unwrap().verifier().to_text()
}

fn witness(name: &str, url: &str, key: &str) -> String {
    format!("\n[[audit.witness]]\nname = \"{name}\"\nurl = \"{url}\"\nverifier_key = \"{key}\"\nca = \"pki/cndp-ca.crt\"\n")
}

/// The 1-based line of the first line of `text` containing `needle`.
fn line_of(text: &str, needle: &str) -> usize {
    text.lines().position(|l| l.contains(needle)).unwrap() + 1
}

#[test]
fn no_witness_by_default_and_all_must_cosign_unless_told() {
    let config = Config::from_toml(BASE, Path::new(FILE)).unwrap();
    assert!(config.audit.witnessing.witnesses.is_empty());
    let two = format!(
        "{BASE}{}{}",
        witness(
            "cndp",
            "https://witness.cndp.ma/jisr",
            &key("witness.cndp.ma/jisr")
        ),
        witness(
            "cour",
            "https://127.0.0.1:9443",
            &key("courdescomptes.ma/w")
        ),
    );
    let audit = Config::from_toml(&two, Path::new(FILE)).unwrap().audit;
    let w = &audit.witnessing;
    assert_eq!(w.witnesses.len(), 2);
    assert_eq!(w.quorum, 2, "all witnesses by default");
    assert_eq!(w.retry_max, Duration::from_secs(30));
    assert_eq!(w.witnesses[0].name, "cndp");
    assert_eq!(w.witnesses[0].ca, Path::new("/etc/jisr/pki/cndp-ca.crt"));
    let one = format!(
        "{BASE}\n[audit]\nwitness_quorum = 1\nwitness_retry_max_ms = 500\n{}",
        &two[BASE.len()..]
    );
    let audit = Config::from_toml(&one, Path::new(FILE)).unwrap().audit;
    assert_eq!(audit.witnessing.quorum, 1);
    assert_eq!(audit.witnessing.retry_max, Duration::from_millis(500));
}

#[test]
fn witness_mistakes_are_located_and_explained() {
    let good = key("witness.cndp.ma/jisr");
    let text = format!("{BASE}{}", witness("CNDP!", "https://w.ma", &good));
    one_error(
        &text,
        line_of(&text, "CNDP!"),
        "is not a short label",
        "lowercase",
    );
    let text = format!("{BASE}{}", witness("cndp", "http://w.ma", &good));
    one_error(
        &text,
        line_of(&text, "http://"),
        "is not an https:// URL",
        "add-checkpoint",
    );
    // One character changed in the key: its key id no longer matches.
    let (head, tail) = good.rsplit_once('+').unwrap();
    let flipped = if tail.starts_with('B') {
        tail.replacen('B', "C", 1)
    } else {
        tail.replacen(&tail[..1], "B", 1)
    };
    let bad = format!("{head}+{flipped}");
    let text = format!("{BASE}{}", witness("cndp", "https://w.ma", &bad));
    one_error(
        &text,
        line_of(&text, "verifier_key"),
        "not a cosignature verifier key",
        "jisr witness verifier",
    );
    let log_key = NoteSigner::generate("interop.gov.ma/jisr/gw-1")
        .unwrap()
        .verifier()
        .to_text();
    let text = format!("{BASE}{}", witness("cndp", "https://w.ma", &log_key));
    one_error(
        &text,
        line_of(&text, "verifier_key"),
        "a log's (note) key",
        "jisr witness verifier",
    );
    let text = format!(
        "{BASE}{}{}",
        witness("cndp", "https://w.ma", &good),
        witness("cndp", "https://x.ma", &key("x.ma/w"))
    );
    let second = text
        .lines()
        .enumerate()
        .filter(|(_, l)| l.contains("\"cndp\""))
        .nth(1)
        .unwrap()
        .0
        + 1;
    one_error(
        &text,
        second,
        "declared twice (first at line",
        "its own `name`",
    );
    let text = format!("{BASE}{}", witness("cndp", "https://w.ma", &good)).replacen(
        "\n[[audit.witness]]",
        "\n[audit]\nwitness_quorum = 2\n\n[[audit.witness]]",
        1,
    );
    one_error(
        &text,
        line_of(&text, "witness_quorum"),
        "out of range",
        "from 1 to 1",
    );
    let text = format!("{BASE}\n[audit]\nwitness_quorum = 1\n");
    one_error(
        &text,
        line_of(&text, "witness_quorum"),
        "no [[audit.witness]] is declared",
        "remove `witness_quorum`",
    );
    let text = format!("{BASE}\n[audit]\nwitness = \"cndp\"\n");
    one_error(
        &text,
        line_of(&text, "witness ="),
        "must be an array of tables",
        "[[audit.witness]]",
    );
}
