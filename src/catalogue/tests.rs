//! `Catalogue::load` on the sample contracts and on broken ones: what it
//! finds (routes, subjects, categories, call shapes) and where it points
//! when a contract is wrong.

use super::*;
use crate::config::{Config, ConfigError};
use std::path::{Path, PathBuf};

const FILE: &str = "/etc/jisr/jisr.toml";

const SAMPLES: &str = r#"
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
id = "education"
"#;

fn proto_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("proto")
}

/// A config whose catalogue searches `include` and whose agencies are `agencies`.
fn config(include: &[&Path], agencies: &str) -> Config {
    let include: Vec<String> = include
        .iter()
        .map(|p| format!("{:?}", p.display().to_string()))
        .collect();
    let text = format!(
        r#"[node]
id = "gw-1"
trust_domain = "interop.gov.ma"
listen = "127.0.0.1:8443"

[tls]
ca = "pki/ca.crt"
cert = "pki/gw.crt"
key = "pki/gw.key"

[catalogue]
include = [{}]
{agencies}"#,
        include.join(", ")
    );
    Config::from_toml(&text, Path::new(FILE)).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

/// A temporary include directory holding `files` (path, contents).
pub(super) fn contracts(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        let path = dir.path().join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    dir
}

fn samples() -> Catalogue {
    Catalogue::load(&config(&[&proto_dir()], SAMPLES)).unwrap_or_else(|e| panic!("{e}"))
}

/// One agency `extra` providing `extra.proto` from `dir`, with the samples' include too.
pub(super) fn load_extra(dir: &Path) -> Result<Catalogue, Vec<ConfigError>> {
    let agencies = r#"
[[agency]]
id = "extra"
upstream = "127.0.0.1:9009"
contracts = ["extra.proto"]
"#;
    Catalogue::load(&config(&[&proto_dir(), dir], agencies)).map_err(|e| e.0)
}

#[track_caller]
pub(super) fn one_error(result: Result<Catalogue, Vec<ConfigError>>) -> ConfigError {
    let mut errors = match result {
        Ok(_) => panic!("expected an error"),
        Err(errors) => errors,
    };
    assert_eq!(errors.len(), 1, "{errors:#?}");
    errors.remove(0)
}

#[test]
fn sample_contracts_load_with_routes_by_path() {
    let catalogue = samples();
    let paths: Vec<&str> = catalogue
        .methods()
        .iter()
        .map(|m| m.path.as_str())
        .collect();
    assert_eq!(
        paths,
        [
            "/ma.civilstatus.v1.CivilStatus/GetBirthRecord",
            "/ma.civilstatus.v1.CivilStatus/GetFamilyRecord",
            "/ma.civilstatus.v1.CivilStatus/ListCivilEvents",
            "/ma.health.v1.HealthRecords/GetVaccinationRecord",
            "/ma.tax.v1.TaxRecords/GetTaxStatus",
        ]
    );
    let route = catalogue.get("/ma.tax.v1.TaxRecords/GetTaxStatus").unwrap();
    assert_eq!(route.service, "ma.tax.v1.TaxRecords");
    assert_eq!(route.method, "GetTaxStatus");
    assert_eq!(route.qualified(), "ma.tax.v1.TaxRecords/GetTaxStatus");
    assert_eq!(route.provider.as_str(), "tax");
    assert_eq!(route.request_type, "ma.tax.v1.GetTaxStatusRequest");
    assert_eq!(route.response.full_name(), "ma.tax.v1.TaxStatus");
    assert!(catalogue.get("/ma.tax.v1.TaxRecords/Nope").is_none());
    assert!(catalogue.get("ma.tax.v1.TaxRecords/GetTaxStatus").is_none());
    assert!(catalogue.has_service("ma.health.v1.HealthRecords"));
    assert!(!catalogue.has_service("ma.health.v1"));
    assert!(catalogue.has_method("ma.civilstatus.v1.CivilStatus", "GetFamilyRecord"));
    assert!(!catalogue.has_method("ma.civilstatus.v1.CivilStatus", "GetTaxStatus"));
    assert!(catalogue
        .pool()
        .get_service_by_name("ma.civilstatus.v1.CivilStatus")
        .is_some());
}

#[test]
fn sample_subjects_categories_and_streaming() {
    let catalogue = samples();
    for route in catalogue.methods() {
        assert_eq!(
            route.subject_field.as_deref(),
            Some("citizen_id"),
            "{}",
            route.path
        );
        // `citizen_id = 1`: the schema picks it up from the wire.
        assert_eq!(route.schema.walk(&[0x0a, 2, b'A', b'1']), Ok(Some("A1")));
    }
    let category = |path: &str| catalogue.get(path).unwrap().category;
    let health = category("/ma.health.v1.HealthRecords/GetVaccinationRecord");
    assert_eq!(health, Category::Health);
    assert!(health.is_sensitive());
    let civil = category("/ma.civilstatus.v1.CivilStatus/GetBirthRecord");
    assert_eq!(civil, Category::Civil);
    assert!(!civil.is_sensitive());
    assert_eq!(
        category("/ma.tax.v1.TaxRecords/GetTaxStatus"),
        Category::Fiscal
    );
    let streaming = |path: &str| catalogue.get(path).unwrap().streaming;
    assert_eq!(
        streaming("/ma.civilstatus.v1.CivilStatus/ListCivilEvents"),
        Streaming::Server
    );
    assert_eq!(
        streaming("/ma.civilstatus.v1.CivilStatus/GetBirthRecord"),
        Streaming::Unary
    );
}

const EXTRA: &str = r#"syntax = "proto3";
package extra.v1;
import "jisr/annotations.proto";

service Mixed {
  option (jisr.default_category) = SOCIAL;
  rpc Get(Outer) returns (Outer);
  rpc Teach(Outer) returns (Outer) { option (jisr.category) = EDUCATION; }
  rpc Upload(stream Outer) returns (Outer);
  rpc Chat(stream Outer) returns (stream Outer);
}

service Plain {
  option (jisr.default_category) = NOT_PERSONAL;
  rpc Ping(Empty) returns (Empty) { option (jisr.no_subject) = "a liveness check"; }
}

message Empty {}

message Inner {
  string citizen_id = 1 [(jisr.subject) = true];
}

message Outer {
  int32 n = 1;
  Inner who = 3;
}
"#;

#[test]
fn nested_subjects_method_categories_and_every_call_shape() {
    let dir = contracts(&[("extra.proto", EXTRA)]);
    let catalogue = load_extra(dir.path()).unwrap_or_else(|e| panic!("{e:#?}"));
    let route = |name: &str| catalogue.get(name).unwrap();
    let get = route("/extra.v1.Mixed/Get");
    assert_eq!(get.subject_field.as_deref(), Some("who.citizen_id"));
    assert_eq!(
        get.schema.walk(&[0x1a, 4, 0x0a, 2, b'X', b'9']),
        Ok(Some("X9"))
    );
    assert_eq!(get.category, Category::Social);
    assert_eq!(get.streaming, Streaming::Unary);
    assert_eq!(route("/extra.v1.Mixed/Teach").category, Category::Education);
    assert_eq!(route("/extra.v1.Mixed/Upload").streaming, Streaming::Client);
    assert_eq!(route("/extra.v1.Mixed/Chat").streaming, Streaming::Bidi);
    assert!(!Streaming::Client.is_supported() && !Streaming::Bidi.is_supported());
    assert!(Streaming::Unary.is_supported() && Streaming::Server.is_supported());
    let ping = route("/extra.v1.Plain/Ping");
    assert_eq!(ping.category, Category::NotPersonal);
    assert_eq!(ping.subject_field, None);
    assert_eq!(ping.no_subject.as_deref(), Some("a liveness check"));
    assert_eq!(ping.schema.walk(&[0x0a, 1, b'A']), Ok(None));
    // The annotations and imported files offer no services of their own.
    assert_eq!(catalogue.methods().len(), 5);
    assert!(catalogue
        .methods()
        .iter()
        .all(|m| m.provider.as_str() == "extra"));
}

#[test]
fn two_subject_fields_are_refused_naming_both() {
    let dir = contracts(&[(
        "extra.proto",
        r#"syntax = "proto3";
package extra.v1;
import "jisr/annotations.proto";
service S { option (jisr.default_category) = CIVIL; rpc Get(Req) returns (Req); }
message Inner { string citizen_id = 1 [(jisr.subject) = true]; }
message Req {
  string citizen_id = 1 [(jisr.subject) = true];
  Inner spouse = 2;
}
"#,
    )]);
    let e = one_error(load_extra(dir.path()));
    assert!(e.message.contains("extra.proto"), "{e}");
    assert!(e.message.contains("several (jisr.subject) fields"), "{e}");
    assert!(e.message.contains("citizen_id, spouse.citizen_id"), "{e}");
    assert!(e.fix.contains("exactly one string field"), "{e}");
}

#[test]
fn a_subject_that_is_not_a_single_string_is_refused() {
    for (field, name) in [
        ("int64 citizen_id = 1", "extra.v1.Req.citizen_id"),
        (
            "repeated string citizen_ids = 1",
            "extra.v1.Req.citizen_ids",
        ),
        ("bytes citizen_id = 1", "extra.v1.Req.citizen_id"),
    ] {
        let text = format!(
            "syntax = \"proto3\";\npackage extra.v1;\nimport \"jisr/annotations.proto\";\n\
             service S {{ option (jisr.default_category) = CIVIL; rpc Get(Req) returns (Req); }}\n\
             message Req {{ {field} [(jisr.subject) = true]; }}\n"
        );
        let dir = contracts(&[("extra.proto", &text)]);
        let e = one_error(load_extra(dir.path()));
        assert!(e.message.contains(name), "{field}: {e}");
        assert!(
            e.message.contains("must be a single (not repeated) string"),
            "{e}"
        );
    }
}

#[test]
fn a_syntax_error_is_located_in_the_contract() {
    let text = "syntax = \"proto3\";\npackage extra.v1;\n\nmessage Req {\n  string id = 1\n}\n";
    let dir = contracts(&[("extra.proto", text)]);
    let e = one_error(load_extra(dir.path()));
    let at = e.at.as_ref().expect("a location");
    assert_eq!(at.file, dir.path().join("extra.proto"), "{e}");
    assert_eq!(at.line, 6, "{e}");
    assert!(e.message.contains("`extra.proto` does not compile"), "{e}");
}

#[test]
fn an_error_in_an_imported_contract_points_into_it() {
    let dir = contracts(&[
        (
            "extra.proto",
            "syntax = \"proto3\";\npackage extra.v1;\nimport \"common/types.proto\";\n",
        ),
        (
            "common/types.proto",
            "syntax = \"proto3\";\npackage common;\nmessage T {\n  strin x = 1;\n}\n",
        ),
    ]);
    let e = one_error(load_extra(dir.path()));
    let at = e.at.as_ref().expect("a location");
    assert_eq!(at.file, dir.path().join("common/types.proto"), "{e}");
    assert_eq!(at.line, 4, "{e}");
}

#[test]
fn a_missing_contract_names_the_include_directories() {
    let dir = tempfile::tempdir().unwrap();
    let e = one_error(load_extra(dir.path()));
    assert!(
        e.message
            .contains("`extra.proto` was not found in any catalogue.include directory"),
        "{e}"
    );
    assert!(e.fix.contains(&proto_dir().display().to_string()), "{e}");
    assert!(e.fix.contains(&dir.path().display().to_string()), "{e}");
    // Pointed at the agency that names it.
    let at = e.at.as_ref().expect("a location");
    assert_eq!(at.file, Path::new(FILE));
    assert_eq!(at.line, 14, "{e}");
}

#[test]
fn a_contract_listed_by_two_agencies_is_refused() {
    let agencies = format!(
        "{SAMPLES}\n[[agency]]\nid = \"tax-copy\"\nupstream = \"127.0.0.1:9004\"\n\
         contracts = [\"agencies/tax/v1/tax.proto\"]\n"
    );
    let e = one_error(Catalogue::load(&config(&[&proto_dir()], &agencies)).map_err(|e| e.0));
    assert!(
        e.message.contains(
            "contract `agencies/tax/v1/tax.proto` is listed by agencies `tax` and `tax-copy`"
        ),
        "{e}"
    );
    assert_eq!(e.at.as_ref().map(|at| at.line), Some(32), "{e}"); // the second [[agency]]
}

#[test]
fn render_lists_agencies_services_and_methods() {
    let text = samples().render();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "agency civil-status");
    assert_eq!(lines[1], "  service ma.civilstatus.v1.CivilStatus");
    assert!(lines[2].starts_with("    GetBirthRecord "), "{text}");
    for expected in [
        "category=civil  subject=citizen_id  request=ma.civilstatus.v1.GetBirthRecordRequest",
        "    ListCivilEvents          server-streaming category=civil",
        "agency health",
        "  service ma.health.v1.HealthRecords",
        "category=health (sensitive)  subject=citizen_id",
        "agency tax",
        "category=fiscal  subject=citizen_id  request=ma.tax.v1.GetTaxStatusRequest",
    ] {
        assert!(text.contains(expected), "`{expected}` not in:\n{text}");
    }
    assert_eq!(text.matches("agency ").count(), 3, "{text}");
}

#[test]
fn a_missing_import_names_the_import_not_the_contract() {
    let dir = contracts(&[(
        "extra.proto",
        "syntax = \"proto3\";\npackage extra.v1;\nimport \"missing/dep.proto\";\n",
    )]);
    let e = one_error(load_extra(dir.path()));
    assert!(
        e.message
            .contains("contract `extra.proto`: import 'missing/dep.proto' not found"),
        "{e}"
    );
    let at = e.at.as_ref().expect("a location");
    assert_eq!(at.file, dir.path().join("extra.proto"), "{e}");
    assert_eq!((at.line, at.column), (3, 1), "{e}");
}

#[test]
fn error_columns_count_characters() {
    // The missing `;` is reported at the `}`, after a two-byte character.
    let line = "/* é */ message Req { string x = 1 }";
    let text = format!("syntax = \"proto3\";\npackage extra.v1;\n{line}\n");
    let dir = contracts(&[("extra.proto", &text)]);
    let e = one_error(load_extra(dir.path()));
    let at = e.at.as_ref().expect("a location");
    let column = line.chars().position(|c| c == '}').unwrap() + 1;
    assert_eq!((at.line, at.column), (3, column), "{e}");
}
