//! A contract must say, for every method, the category of data it releases
//! and which request field names the citizen (or why none does); a missing
//! annotation is an error located in the contract, with the fix.

use super::tests::{contracts, load_extra, one_error};
use super::Category;

fn contract(body: &str) -> String {
    format!("syntax = \"proto3\";\npackage extra.v1;\nimport \"jisr/annotations.proto\";\n{body}")
}

#[test]
fn a_service_without_a_category_is_refused_at_its_line() {
    let text = contract(
        "message Req { string citizen_id = 1 [(jisr.subject) = true]; }\n\
         service S {\n  rpc Get(Req) returns (Req);\n  rpc Put(Req) returns (Req) { option (jisr.category) = CIVIL; }\n}\n",
    );
    let dir = contracts(&[("extra.proto", &text)]);
    let e = one_error(load_extra(dir.path()));
    assert!(
        e.message
            .contains("service `extra.v1.S` declares no data category for `Get`"),
        "{e}"
    );
    assert!(!e.message.contains("`Put`"), "{e}");
    assert!(
        e.fix.contains("option (jisr.default_category) = CIVIL;"),
        "{e}"
    );
    assert!(e.fix.contains("NOT_PERSONAL"), "{e}");
    let at = e.at.as_ref().expect("a location");
    assert_eq!(at.file, dir.path().join("extra.proto"), "{e}");
    assert_eq!((at.line, at.column), (5, 1), "{e}");
}

#[test]
fn a_request_without_subject_must_say_why() {
    let text = contract(
        "message Req { string code = 1; }\n\
         service S {\n  option (jisr.default_category) = CIVIL;\n  rpc Get(Req) returns (Req);\n}\n",
    );
    let dir = contracts(&[("extra.proto", &text)]);
    let e = one_error(load_extra(dir.path()));
    assert!(
        e.message.contains(
            "the request `extra.v1.Req` of `extra.v1.S/Get` has no field marked (jisr.subject)"
        ),
        "{e}"
    );
    assert!(e.fix.contains("[(jisr.subject) = true]"), "{e}");
    assert!(
        e.fix.contains("option (jisr.no_subject) = \"<why>\";"),
        "{e}"
    );
    let at = e.at.as_ref().expect("a location");
    assert_eq!((at.line, at.column), (7, 3), "{e}");

    // Said explicitly, with a reason, it loads.
    let text = contract(
        "message Req { string code = 1; }\n\
         service S {\n  option (jisr.default_category) = NOT_PERSONAL;\n  \
         rpc Get(Req) returns (Req) { option (jisr.no_subject) = \"lists office codes\"; }\n}\n",
    );
    let dir = contracts(&[("extra.proto", &text)]);
    let catalogue = load_extra(dir.path()).unwrap_or_else(|e| panic!("{e:#?}"));
    let route = catalogue.get("/extra.v1.S/Get").unwrap();
    assert_eq!(route.category, Category::NotPersonal);
    assert_eq!(route.no_subject.as_deref(), Some("lists office codes"));
    let listing = catalogue.render();
    assert!(
        listing.contains("category=not-personal  subject=none (lists office codes)"),
        "{listing}"
    );
}

#[test]
fn an_empty_or_contradicted_no_subject_is_refused() {
    for (field, option, expected) in [
        (
            "string code = 1;",
            "\"  \"",
            "has an empty (jisr.no_subject)",
        ),
        (
            "string citizen_id = 1 [(jisr.subject) = true];",
            "\"none\"",
            "marks `citizen_id` as the subject",
        ),
    ] {
        let text = contract(&format!(
            "message Req {{ {field} }}\n\
             service S {{ option (jisr.default_category) = CIVIL;\n  \
             rpc Get(Req) returns (Req) {{ option (jisr.no_subject) = {option}; }}\n}}\n"
        ));
        let dir = contracts(&[("extra.proto", &text)]);
        let e = one_error(load_extra(dir.path()));
        assert!(e.message.contains(expected), "{e}");
    }
}

#[test]
fn annotations_used_without_their_import_name_the_import() {
    let text = "syntax = \"proto3\";\npackage extra.v1;\n\
                service S {\n  option (jisr.default_category) = CIVIL;\n  rpc Get(Req) returns (Req);\n}\n\
                message Req { string citizen_id = 1; }\n";
    let dir = contracts(&[("extra.proto", text)]);
    let e = one_error(load_extra(dir.path()));
    assert!(
        e.message.contains(
            "uses `(jisr.default_category)` but does not import `jisr/annotations.proto`"
        ),
        "{e}"
    );
    assert!(
        e.fix.contains("add `import \"jisr/annotations.proto\";`"),
        "{e}"
    );
    let at = e.at.as_ref().expect("a location");
    assert_eq!(at.line, 4, "{e}");
}

#[test]
fn a_contract_with_no_annotations_at_all_is_told_to_import_them() {
    let text = "syntax = \"proto3\";\npackage extra.v1;\n\
                service S { rpc Get(Req) returns (Req); }\n\
                message Req { string citizen_id = 1; }\n";
    let dir = contracts(&[("extra.proto", text)]);
    let errors = load_extra(dir.path()).map(drop).unwrap_err();
    assert_eq!(errors.len(), 2, "{errors:#?}");
    for e in &errors {
        assert!(
            e.fix
                .starts_with("add `import \"jisr/annotations.proto\";`"),
            "{e}"
        );
    }
}
