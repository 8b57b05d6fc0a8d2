//! Where the node id comes from: the file, `JISR_NODE_ID` or the host name,
//! read through an injected environment.

use super::*;

fn env(vars: &[(&str, &str)], hostname: Option<&str>) -> FixedEnvironment {
    FixedEnvironment {
        vars: vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        hostname: hostname.map(str::to_owned),
    }
}

fn load(text: &str, env: &FixedEnvironment) -> Result<Config, ConfigErrors> {
    Config::from_toml_in(text, Path::new(FILE), env)
}

#[track_caller]
fn one_error_in(text: &str, env: &FixedEnvironment, line: usize, message: &str, fix: &str) {
    let errors = load(text, env).expect_err("expected an error").0;
    assert_eq!(errors.len(), 1, "{errors:#?}");
    let e = &errors[0];
    assert_eq!(e.at.as_ref().expect("a location").line, line, "{e}");
    assert!(e.message.contains(message), "message of: {e}");
    assert!(e.fix.contains(fix), "fix of: {e}");
}

#[test]
fn the_id_written_in_the_file_ignores_the_environment() {
    let config = load(BASE, &env(&[(NODE_ID_VAR, "gw-9")], Some("jisr-3"))).unwrap();
    assert_eq!(config.node.id.as_str(), "gw-1");
    assert_eq!(config.node.id_source, NodeIdSource::File);
    assert_eq!(config.node.advertise, None);
    assert_eq!(config.node.registration_ttl, Duration::from_secs(15));
}

#[test]
fn the_id_from_jisr_node_id() {
    let text = with(r#"id = "gw-1""#, r#"id_from = "env""#);
    let config = load(&text, &env(&[(NODE_ID_VAR, " gw-2\n")], Some("jisr-0"))).unwrap();
    assert_eq!(config.node.id.as_str(), "gw-2");
    assert_eq!(config.node.id_source, NodeIdSource::Env);
}

#[test]
fn the_id_from_the_host_name_is_its_short_name() {
    let text = with(r#"id = "gw-1""#, r#"id_from = "hostname""#);
    let env = env(&[], Some("jisr-1.jisr.jisr.svc.cluster.local\n"));
    let config = load(&text, &env).unwrap();
    assert_eq!(config.node.id.as_str(), "jisr-1");
    assert_eq!(config.node.id_source, NodeIdSource::Hostname);
}

#[test]
fn an_unset_variable_is_located_and_says_what_to_set() {
    let text = with(r#"id = "gw-1""#, r#"id_from = "env""#);
    one_error_in(
        &text,
        &env(&[], None),
        2,
        "JISR_NODE_ID",
        "set JISR_NODE_ID",
    );
    let empty = env(&[(NODE_ID_VAR, "  ")], None);
    one_error_in(&text, &empty, 2, "not set", "JISR_NODE_ID=gw-2");
}

#[test]
fn a_bad_id_from_the_environment_names_its_value() {
    let text = with(r#"id = "gw-1""#, r#"id_from = "env""#);
    let bad = env(&[(NODE_ID_VAR, "GW_2")], None);
    one_error_in(
        &text,
        &bad,
        2,
        "`GW_2`, read from JISR_NODE_ID",
        "lower-case",
    );
    let text = with(r#"id = "gw-1""#, r#"id_from = "hostname""#);
    one_error_in(&text, &env(&[], None), 2, "the host name", "pod");
}

#[test]
fn id_and_id_from_together_or_an_unknown_source_are_refused() {
    let both = with(r#"id = "gw-1""#, "id = \"gw-1\"\nid_from = \"env\"");
    one_error_in(
        &both,
        &env(&[], None),
        3,
        "both `id` and `id_from`",
        "keep one",
    );
    let unknown = with(r#"id = "gw-1""#, r#"id_from = "pod""#);
    one_error_in(
        &unknown,
        &env(&[], None),
        2,
        "`pod`",
        "id_from = \"hostname\"",
    );
}

#[test]
fn advertise_and_registration_ttl() {
    let text = with(
        r#"id = "gw-1""#,
        "id = \"gw-1\"\nadvertise = \"jisr-0.jisr:8443\"\nregistration_ttl_ms = 2000",
    );
    let config = load(&text, &env(&[], None)).unwrap();
    assert_eq!(config.node.advertise.as_deref(), Some("jisr-0.jisr:8443"));
    assert_eq!(config.node.registration_ttl, Duration::from_secs(2));
    let templated = with(
        r#"id = "gw-1""#,
        "id = \"jisr-2\"\nadvertise = \"{id}.jisr:8443\"",
    );
    let config = load(&templated, &env(&[], None)).unwrap();
    assert_eq!(config.node.advertise.as_deref(), Some("jisr-2.jisr:8443"));
    let short = with(r#"id = "gw-1""#, "id = \"gw-1\"\nregistration_ttl_ms = 100");
    one_error_in(
        &short,
        &env(&[], None),
        3,
        "registration_ttl_ms",
        "from 500",
    );
}
