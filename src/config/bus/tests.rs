//! `[bus]` and `[[topic]]`: defaults, and each error with its place and fix.

use crate::config::{Basis, Config, ConfigErrors};
use std::path::Path;
use std::time::Duration;

const BASE: &str = r#"[node]
id = "gw-1"
trust_domain = "interop.gov.ma"
listen = "127.0.0.1:8443"

[tls]
ca = "pki/ca.crt"
cert = "pki/gw.crt"
key = "pki/gw.key"

[[purpose]]
code = "tax-household"
description = "Tax"

[[agency]]
id = "civil-status"
upstream = "127.0.0.1:9001"
contracts = ["agencies/civilstatus/v1/civilstatus.proto"]

[[agency]]
id = "tax"

[[topic]]
name = "civil-status.death-registered"
owner = "civil-status"
event = "ma.civilstatus.v1.DeathRegistered"

[[topic.subscriber]]
agency = "tax"
purposes = ["tax-household"]
basis = "law:cgi-art-22"
release = ["citizen_id"]
"#;

fn load(text: &str) -> Result<Config, ConfigErrors> {
    Config::from_toml(text, Path::new("/etc/jisr/jisr.toml"))
}

fn errors(text: &str) -> Vec<(usize, String, String)> {
    load(text)
        .unwrap_err()
        .0
        .into_iter()
        .map(|e| (e.at.map_or(0, |a| a.line), e.message, e.fix))
        .collect()
}

#[test]
fn topics_and_bus_defaults_are_read() {
    let config = load(BASE).unwrap();
    assert_eq!(config.bus.path, Path::new("/etc/jisr/bus.redb"));
    assert_eq!(config.bus.redis_url, None);
    assert_eq!(config.bus.ack_deadline, Duration::from_secs(30));
    assert_eq!(config.bus.max_attempts, 5);
    assert_eq!(config.bus.max_in_flight, 256);
    let topic = &config.topics[0];
    assert_eq!(topic.owner.as_str(), "civil-status");
    assert_eq!(topic.subscribers[0].agency.as_str(), "tax");
    assert_eq!(topic.subscribers[0].basis, Basis::Law("cgi-art-22".into()));
    assert_eq!(
        topic.subscribers[0].release.as_deref(),
        Some(&["citizen_id".to_owned()][..])
    );
    assert_eq!(topic.at.line, 23);
}

#[test]
fn bus_limits_are_range_checked() {
    let text = format!("{BASE}\n[bus]\nack_deadline_ms = 5\nredis_url = \"http://x\"\n");
    let found = errors(&text);
    assert!(
        found.iter().any(|(line, m, f)| *line == 35
            && m.contains("`ack_deadline_ms` = 5")
            && f.contains("from 100")),
        "{found:?}"
    );
    assert!(
        found
            .iter()
            .any(|(line, m, _)| *line == 36 && m.contains("not a Redis URL")),
        "{found:?}"
    );
}

#[test]
fn retention_defaults_to_the_idempotency_window_and_may_not_be_shorter() {
    let config = load(BASE).unwrap();
    assert_eq!(config.bus.retention, config.bus.idempotency_window);
    assert_eq!(
        config.bus.dead_letter_retention,
        Duration::from_secs(7 * 86_400)
    );
    let longer = load(&format!(
        "{BASE}\n[bus]\nidempotency_window_ms = 7200000\ndead_letter_retention_ms = 60000\n"
    ))
    .unwrap();
    assert_eq!(longer.bus.retention, Duration::from_secs(7200));
    assert_eq!(longer.bus.dead_letter_retention, Duration::from_secs(60));

    let text = format!("{BASE}\n[bus]\nidempotency_window_ms = 60000\nretention_ms = 1000\n");
    let found = errors(&text);
    assert!(
        found.iter().any(|(line, m, f)| *line == 36
            && m.contains(
                "`retention_ms` = 1000 in [bus] is shorter than `idempotency_window_ms` = 60000"
            )
            && f.contains("at least 60000")),
        "{found:?}"
    );
    let found = errors(&format!("{BASE}\n[bus]\ndead_letter_retention_ms = 5\n"));
    assert!(
        found
            .iter()
            .any(|(_, m, _)| m.contains("`dead_letter_retention_ms` = 5")),
        "{found:?}"
    );
}

#[test]
fn undeclared_agencies_and_purposes_and_duplicates_are_located() {
    let text = BASE
        .replace("agency = \"tax\"", "agency = \"taxes\"")
        .replace("purposes = [\"tax-household\"]", "purposes = [\"tax\"]");
    let found = errors(&text);
    assert!(
        found.iter().any(|(line, m, f)| *line == 28
            && m.contains("`taxes` of topic")
            && f.contains("declared: civil-status, tax")),
        "{found:?}"
    );
    assert!(
        found
            .iter()
            .any(|(_, m, _)| m.contains("subscriber purpose `tax` is not declared")),
        "{found:?}"
    );
    let twice = format!("{BASE}\n[[topic.subscriber]]\nagency = \"tax\"\npurposes = [\"tax-household\"]\nbasis = \"law:x\"\n");
    let found = errors(&twice);
    assert!(
        found.iter().any(|(_, m, f)| m
            .contains("subscribes to topic `civil-status.death-registered` twice")
            && f.contains("one [[topic.subscriber]] entry")),
        "{found:?}"
    );
}

#[test]
fn a_bad_topic_name_and_a_missing_event_say_how_to_write_them() {
    let text = BASE
        .replace(
            "name = \"civil-status.death-registered\"",
            "name = \"Deaths!\"",
        )
        .replace("event = \"ma.civilstatus.v1.DeathRegistered\"\n", "");
    let found = errors(&text);
    assert!(
        found.iter().any(|(line, m, f)| *line == 24
            && m.contains("topic name `Deaths!`")
            && f.contains("lowercase")),
        "{found:?}"
    );
    assert!(
        found
            .iter()
            .any(|(_, m, f)| m.contains("missing the required key `event`")
                && f.contains("DeathRegistered")),
        "{found:?}"
    );
}
