//! One test per kind of configuration error, checking line, message and fix.

use super::*;

/// A valid file; the tests below break one line of it at a time.
const BASE: &str = r#"[node]
id = "gw-1"
trust_domain = "interop.gov.ma"
listen = "127.0.0.1:8443"

[tls]
ca = "pki/ca.crt"
cert = "pki/gw.crt"
key = "pki/gw.key"

[[purpose]]
code = "bac-candidature"
description = "Bac"

[[agency]]
id = "civil-status"
upstream = "127.0.0.1:9001"
contracts = ["agencies/civilstatus/v1/civilstatus.proto"]

[[agency]]
id = "education"

[[rule]]
consumer = "education"
methods = ["ma.civilstatus.v1.CivilStatus/GetBirthRecord"]
purposes = ["bac-candidature"]
basis = "law:55-19"
"#;

const FILE: &str = "/etc/jisr/jisr.toml";

fn with(old: &str, new: &str) -> String {
    assert!(BASE.contains(old), "test bug: `{old}` not in BASE");
    BASE.replacen(old, new, 1)
}

fn errors(text: &str) -> Vec<ConfigError> {
    match Config::from_toml(text, Path::new(FILE)) {
        Ok(_) => panic!("expected errors for:\n{text}"),
        Err(errors) => errors.0,
    }
}

/// Asserts the text has exactly one error, at `line`, mentioning `message` and `fix`.
#[track_caller]
fn one_error(text: &str, line: usize, message: &str, fix: &str) {
    let errors = errors(text);
    assert_eq!(errors.len(), 1, "{errors:#?}");
    let e = &errors[0];
    let at = e.at.as_ref().expect("a location");
    assert_eq!(at.file, Path::new(FILE));
    assert_eq!(at.line, line, "{e}");
    assert!(e.message.contains(message), "message of: {e}");
    assert!(e.fix.contains(fix), "fix of: {e}");
}

#[test]
fn valid_file_gets_defaults_and_locations() {
    let config = Config::from_toml(BASE, Path::new(FILE)).unwrap();
    assert_eq!(config.path, Path::new(FILE));
    assert_eq!(config.node.id.as_str(), "gw-1");
    assert_eq!(config.node.listen, "127.0.0.1:8443".parse().unwrap());
    assert_eq!(config.node.max_message_bytes, 4 * 1024 * 1024);
    assert_eq!(config.node.drain_timeout, Duration::from_secs(10));
    assert_eq!(config.node.lanes, 0, "one lane per core");
    assert_eq!(config.tls.ca, Path::new("/etc/jisr/pki/ca.crt"));
    assert_eq!(config.tls.key, Path::new("/etc/jisr/pki/gw.key"));
    assert!(config.tls.crls.is_empty());
    assert!(config.catalogue.include.is_empty());
    assert_eq!(config.purposes[0].at.line, 11);
    let cs = &config.agencies[0];
    assert_eq!(cs.connections, None);
    assert_eq!(cs.connections_on(1), 2, "at least 2");
    assert_eq!(cs.connections_on(8), 8, "one per lane");
    assert_eq!(cs.upstreams, ["127.0.0.1:9001"]);
    assert_eq!(cs.at.line, 15);
    let edu = config
        .agency(&AgencyId::parse("education").unwrap())
        .unwrap();
    assert_eq!((edu.upstreams.len(), edu.contracts.len()), (0, 0));
    let rule = &config.rules[0];
    assert_eq!(rule.at.line, 23);
    assert_eq!(rule.basis, Basis::Law("55-19".into()));
    assert_eq!(rule.methods_at.len(), 1);
    assert_eq!(
        (rule.methods_at[0].line, rule.methods_at[0].column),
        (25, 12)
    );
}

#[test]
fn explicit_values_override_defaults() {
    let text = with(
        "listen = \"127.0.0.1:8443\"\n",
        "listen = \"[::1]:8443\"\nmax_message_bytes = 1024\ndrain_timeout_ms = 250\nlanes = 3\n",
    )
    .replace("[catalogue]", "")
    .replace(
        "key = \"pki/gw.key\"\n",
        "key = \"/abs/gw.key\"\ncrls = [\"crl.pem\"]\n\n[catalogue]\ninclude = [\"../proto\"]\n",
    )
    .replace(
        "upstream = \"127.0.0.1:9001\"\n",
        "upstream = \"cs.internal:9001\"\nconnections = 8\n",
    );
    let config = Config::from_toml(&text, Path::new(FILE)).unwrap();
    assert_eq!(config.node.max_message_bytes, 1024);
    assert_eq!(config.node.drain_timeout, Duration::from_millis(250));
    assert_eq!(config.node.lanes, 3);
    assert_eq!(config.tls.key, Path::new("/abs/gw.key"));
    assert_eq!(config.tls.crls, vec![PathBuf::from("/etc/jisr/crl.pem")]);
    assert_eq!(
        config.catalogue.include,
        vec![PathBuf::from("/etc/jisr/../proto")]
    );
    assert_eq!(config.agencies[0].connections, Some(8));
    assert_eq!(config.agencies[0].connections_on(16), 8);
}

#[test]
fn syntax_error() {
    one_error(
        &with("\"127.0.0.1:8443\"", "\"127.0.0.1:8443"),
        4,
        "invalid TOML",
        "syntax",
    );
}

#[test]
fn missing_key() {
    one_error(
        &with("listen = \"127.0.0.1:8443\"\n", ""),
        1,
        "[node] is missing the required key `listen`",
        "add `listen = \"127.0.0.1:8443\"`",
    );
}

#[test]
fn missing_section() {
    let text = with(
        "[tls]\nca = \"pki/ca.crt\"\ncert = \"pki/gw.crt\"\nkey = \"pki/gw.key\"\n",
        "",
    );
    one_error(&text, 1, "no [tls] section", "ca, cert and key");
}

#[test]
fn wrong_type() {
    one_error(
        &with("listen = \"127.0.0.1:8443\"", "listen = 8443"),
        4,
        "must be a string, found an integer",
        "listen = \"127.0.0.1:8443\"",
    );
    one_error(
        &with("methods = [", "methods = [1, "),
        25,
        "must be an array of strings",
        "methods = [",
    );
}

#[test]
fn section_of_the_wrong_shape() {
    one_error(
        &with("[[rule]]", "[rule]"),
        23,
        "`rule` must be an array of tables, found a table",
        "`[[rule]]` header",
    );
    let no_tls = with(
        "[tls]\nca = \"pki/ca.crt\"\ncert = \"pki/gw.crt\"\nkey = \"pki/gw.key\"\n",
        "",
    );
    one_error(
        &format!("tls = 1\n{no_tls}"),
        1,
        "[tls] must be a table, found an integer",
        "`[tls]` header",
    );
}

#[test]
fn unknown_key() {
    one_error(
        &with("listen =", "lsten ="),
        4,
        "unknown key `lsten` in [node]",
        "did you mean `listen`",
    );
    let errors = errors(&with("listen =", "lsten ="));
    assert!(
        errors[0]
            .fix
            .contains("id, trust_domain, listen, max_message_bytes, drain_timeout_ms"),
        "{}",
        errors[0]
    );
    one_error(
        &format!("{BASE}[[agencies]]\nid = \"x\"\n"),
        28,
        "unknown key `agencies`",
        "did you mean `agency`",
    );
}

#[test]
fn bad_node_id() {
    one_error(
        &with("\"gw-1\"", "\"GW_1\""),
        2,
        "`GW_1` is not a valid id",
        "rename it, e.g. `id = \"gw-1\"`",
    );
}

#[test]
fn bad_trust_domain() {
    one_error(
        &with("\"interop.gov.ma\"", "\"Interop..ma\""),
        3,
        "not a valid trust domain",
        "interop.gov.ma",
    );
}

#[test]
fn bad_listen_address() {
    one_error(
        &with("\"127.0.0.1:8443\"", "\"localhost:8443\""),
        4,
        "not an IP address and port",
        "127.0.0.1:8443",
    );
}

#[test]
fn max_message_bytes_out_of_range() {
    let text = with(
        "listen = \"127.0.0.1:8443\"\n",
        "listen = \"127.0.0.1:8443\"\nmax_message_bytes = 0\n",
    );
    one_error(
        &text,
        5,
        "`max_message_bytes` = 0 in [node] is out of range",
        "from 1 to 67108864",
    );
    let text = with(
        "listen = \"127.0.0.1:8443\"\n",
        "listen = \"127.0.0.1:8443\"\nmax_message_bytes = 67108865\n",
    );
    one_error(&text, 5, "out of range", "4194304");
}

#[test]
fn lanes_out_of_range() {
    let text = with(
        "listen = \"127.0.0.1:8443\"\n",
        "listen = \"127.0.0.1:8443\"\nlanes = 257\n",
    );
    one_error(
        &text,
        5,
        "`lanes` = 257 in [node] is out of range",
        "from 0 to 256, or remove the key for the default 0",
    );
}

#[test]
fn duplicate_agency() {
    let text = format!("{BASE}\n[[agency]]\nid = \"education\"\n");
    one_error(
        &text,
        30,
        "agency `education` is declared twice (first at line 21)",
        "remove one of the two [[agency]]",
    );
}

#[test]
fn duplicate_purpose() {
    let text =
        format!("{BASE}\n[[purpose]]\ncode = \"bac-candidature\"\ndescription = \"again\"\n");
    one_error(
        &text,
        30,
        "purpose `bac-candidature` is declared twice",
        "another code",
    );
}

#[test]
fn bad_purpose_code() {
    let text = with("code = \"bac-candidature\"", "code = \"Bac candidature\"").replace(
        "purposes = [\"bac-candidature\"]",
        "purposes = [\"Bac candidature\"]",
    );
    one_error(
        &text,
        12,
        "purpose code `Bac candidature` is not valid",
        "lowercase",
    );
}

#[test]
fn undeclared_consumer() {
    one_error(
        &with("consumer = \"education\"", "consumer = \"educaton\""),
        24,
        "rule consumer `educaton` is not declared as an [[agency]]",
        "did you mean `education`",
    );
    one_error(
        &with("consumer = \"education\"", "consumer = \"police\""),
        24,
        "not declared",
        "declared: civil-status, education",
    );
}

#[test]
fn undeclared_purpose() {
    one_error(
        &with(
            "purposes = [\"bac-candidature\"]",
            "purposes = [\"bac-candidatur\"]",
        ),
        26,
        "rule purpose `bac-candidatur` is not declared under [[purpose]]",
        "did you mean `bac-candidature`",
    );
    let text = with(
        "purposes = [\"bac-candidature\"]",
        "purposes = [\"marketing\"]",
    );
    let errors = errors(&text);
    assert!(!errors[0].fix.contains("did you mean"), "{}", errors[0]);
}

#[test]
fn bad_method_pattern() {
    let text = with(
        "methods = [\"ma.civilstatus.v1.CivilStatus/GetBirthRecord\"]",
        "methods = [\n  \"ma.civilstatus.v1.CivilStatus/GetBirthRecord\",\n  \"CivilStatus/GetFamilyRecord\",\n]",
    );
    one_error(
        &text,
        27,
        "`CivilStatus/GetFamilyRecord` is not a method pattern",
        "ma.tax.v1.CivilStatus/GetFamilyRecord",
    );
}

#[test]
fn empty_lists() {
    one_error(
        &with(
            "methods = [\"ma.civilstatus.v1.CivilStatus/GetBirthRecord\"]",
            "methods = []",
        ),
        25,
        "`methods` in [[rule]] is empty",
        "methods = [",
    );
    one_error(
        &with("purposes = [\"bac-candidature\"]", "purposes = []"),
        26,
        "`purposes` in [[rule]] is empty",
        "purposes = [",
    );
}

#[test]
fn consent_basis_is_accepted_but_not_for_break_glass() {
    let config = Config::from_toml(
        &with("\"law:55-19\"", "\"consent\""),
        Path::new("/etc/jisr/jisr.toml"),
    )
    .unwrap();
    assert_eq!(config.rules[0].basis, Basis::Consent);
    one_error(
        &with("\"law:55-19\"", "\"consent\"\nbreak_glass = true"),
        27,
        "a break-glass rule cannot rest on consent",
        "law:emergency-care",
    );
}

#[test]
fn unknown_basis() {
    one_error(
        &with("\"law:55-19\"", "\"article 5\""),
        27,
        "`article 5` is not a legal basis",
        "law:<reference>",
    );
    one_error(
        &with("\"law:55-19\"", "\"law:\""),
        27,
        "empty or malformed law reference",
        "law:55-19",
    );
}

#[test]
fn contracts_without_upstream() {
    one_error(
        &with("upstream = \"127.0.0.1:9001\"\n", ""),
        17,
        "agency `civil-status` has contracts but no `upstream`",
        "add `upstream = \"host:port\"`",
    );
}

#[test]
fn bad_upstream() {
    one_error(
        &with("\"127.0.0.1:9001\"", "\"127.0.0.1\""),
        17,
        "is not host:port",
        "127.0.0.1:9001",
    );
}

#[test]
fn connections_out_of_range() {
    let text = with(
        "upstream = \"127.0.0.1:9001\"\n",
        "upstream = \"127.0.0.1:9001\"\nconnections = 65\n",
    );
    one_error(
        &text,
        18,
        "`connections` = 65 in [[agency]] is out of range",
        "from 1 to 64, or remove the key for the default (one per lane, at least 2)",
    );
}

#[test]
fn all_errors_are_reported_at_once_in_file_order() {
    let text = with("\"gw-1\"", "\"GW\"")
        .replace("\"127.0.0.1:8443\"", "8443")
        .replace("consumer = \"education\"", "consumer = \"educaton\"")
        .replace("\"law:55-19\"", "\"law:\"")
        .replace(
            "id = \"education\"",
            "id = \"education\"\ncolour = \"blue\"",
        );
    let errors = errors(&text);
    let lines: Vec<usize> = errors.iter().map(|e| e.at.as_ref().unwrap().line).collect();
    assert_eq!(lines, vec![2, 4, 22, 25, 28], "{errors:#?}");
    let report = report(&ConfigErrors(errors));
    assert!(
        report.ends_with("5 errors in /etc/jisr/jisr.toml"),
        "{report}"
    );
    assert!(
        report
            .starts_with("/etc/jisr/jisr.toml:2:6: error: `id` in [node]: `GW` is not a valid id"),
        "{report}"
    );
}

#[test]
fn error_display() {
    let at = Location {
        file: "jisr.toml".into(),
        line: 3,
        column: 7,
    };
    let e = ConfigError::new(Some(at), "bad", "change it");
    assert_eq!(e.to_string(), "jisr.toml:3:7: error: bad\n  fix: change it");
    let e = ConfigError::new(None, "bad", "change it");
    assert_eq!(e.to_string(), "error: bad\n  fix: change it");
    assert_eq!(
        report(&e.into()),
        "error: bad\n  fix: change it\n\n1 error in the configuration"
    );
}

#[test]
fn missing_file_says_which() {
    let errors = Config::load(Path::new("/nonexistent/jisr.toml")).unwrap_err();
    assert_eq!(errors.len(), 1);
    assert!(errors.0[0].at.is_none());
    assert!(
        errors.0[0].message.contains("/nonexistent/jisr.toml"),
        "{errors}"
    );
}

#[test]
fn example_config_loads() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/example.toml");
    let config = Config::load(&path).unwrap_or_else(|e| panic!("{}", report(&e)));
    let ids: Vec<&str> = config.agencies.iter().map(|a| a.id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "civil-status",
            "tax",
            "health",
            "education",
            "portal",
            "cndp"
        ]
    );
    assert_eq!(config.rules.len(), 2);
    assert_eq!(config.rules[0].methods.len(), 3);
    assert_eq!(
        config.catalogue.include,
        vec![path.parent().unwrap().join("../proto")]
    );
}

mod console;
mod node;
mod resilience;
mod telemetry;
mod witness;
#[test]
fn telemetry_defaults_to_no_export_loopback_admin_and_text_logs() {
    let config = Config::from_toml(BASE, Path::new(FILE)).unwrap();
    assert_eq!(config.telemetry, TelemetryConfig::default());
    assert_eq!(config.telemetry.admin_listen.to_string(), "127.0.0.1:0");
    let text = format!(
        "{BASE}\n[telemetry]\notlp_endpoint = \"http://127.0.0.1:4317\"\nadmin_listen = \"127.0.0.1:9464\"\nlog_format = \"json\"\n"
    );
    let config = Config::from_toml(&text, Path::new(FILE)).unwrap();
    assert_eq!(
        config.telemetry.otlp_endpoint.as_deref(),
        Some("http://127.0.0.1:4317")
    );
    assert_eq!(config.telemetry.admin_listen.port(), 9464);
    assert_eq!(config.telemetry.log_format, LogFormat::Json);
}

#[test]
fn telemetry_errors_are_located_with_a_fix() {
    // BASE has 27 lines; `[telemetry]` is line 29, its key line 30.
    let section = |line: &str| format!("{BASE}\n[telemetry]\n{line}\n");
    one_error(
        &section("otlp_endpoint = \"127.0.0.1:4317\""),
        30,
        "`otlp_endpoint` `127.0.0.1:4317` is not an OTLP/gRPC collector URL",
        "http://host:4317",
    );
    one_error(
        &section("otlp_endpoint = \"https://\""),
        30,
        "is not an OTLP/gRPC collector URL",
        "https://host:4317",
    );
    one_error(
        &section("admin_listen = \"localhost\""),
        30,
        "`admin_listen` in [telemetry] is not an IP address and port",
        "127.0.0.1:9464",
    );
    one_error(
        &section("log_format = \"xml\""),
        30,
        "`log_format` `xml` is not a log format",
        "\"json\"",
    );
    one_error(
        &section("otlp = \"http://x:4317\""),
        30,
        "otlp",
        "otlp_endpoint",
    );
}

#[test]
fn audit_archive_dir_is_optional_relative_and_not_the_log_itself() {
    let config = Config::from_toml(BASE, Path::new(FILE)).unwrap();
    assert_eq!(config.audit.archive_dir, None);
    let text = format!("{BASE}\n[audit]\narchive_dir = \"archive\"\n");
    let config = Config::from_toml(&text, Path::new(FILE)).unwrap();
    assert_eq!(
        config.audit.archive_dir.as_deref(),
        Some(Path::new("/etc/jisr/archive"))
    );
    one_error(
        &format!("{BASE}\n[audit]\ndir = \"a\"\narchive_dir = \"a\"\n"),
        31,
        "is the log directory itself",
        "another volume",
    );
}
