//! The command line: check-config's messages and exit code, catalog,
//! pki init, and the demo.

use crate::support::*;
use std::path::Path;
use std::process::Output;

fn run(args: &[&str]) -> Output {
    jisr().args(args).output().unwrap()
}

pub(crate) fn good_config(pki: &Pki) -> String {
    let up = Upstreams {
        civil_status: "127.0.0.1:9101".into(),
        tax: "127.0.0.1:9102".into(),
        health: "127.0.0.1:9103".into(),
    };
    gateway_config(pki, &up, "", "")
}

pub(crate) fn check(pki: &Pki, name: &str, config: &str) -> (i32, String) {
    let path = pki.root().join(name);
    std::fs::write(&path, config).unwrap();
    let out = run(&["check-config", path.to_str().unwrap()]);
    (out.status.code().unwrap(), text(&out))
}

fn line_of(config: &str, needle: &str) -> usize {
    config.lines().position(|l| l.contains(needle)).unwrap() + 1
}

#[test]
fn check_config_accepts_a_good_config() {
    let pki = Pki::new();
    let (code, out) = check(&pki, "good.toml", &good_config(&pki));
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("ok — 6 agencies, 5 methods, 2 rules"), "{out}");
}

#[test]
fn check_config_reports_every_error_with_file_line_and_fix() {
    let pki = Pki::new();
    let config = good_config(&pki)
        .replace("listen = \"127.0.0.1:0\"", "listen = \"localhost\"")
        .replace(
            "purposes = [\"tax-household\"]",
            "purposes = [\"tax-houshold\"]",
        )
        .replace(
            "ma.tax.v1.TaxRecords/GetTaxStatus\"",
            "ma.tax.v1.TaxRecords/GetTaxStatuss\"",
        );
    let (code, out) = check(&pki, "bad.toml", &config);
    assert_eq!(code, 64, "{out}");
    let file = pki.root().join("bad.toml");
    let listen = format!("{}:{}:", file.display(), line_of(&config, "listen = "));
    assert!(out.contains(&listen), "no error at {listen}:\n{out}");
    assert!(out.contains("did you mean `tax-household`"), "{out}");
    assert!(out.contains("fix:"), "{out}");
    assert!(
        out.contains("2 errors in"),
        "the unknown method is checked once the file parses:\n{out}"
    );

    // Once the file itself is right, rules are checked against the contracts.
    let config = good_config(&pki).replace(
        "ma.tax.v1.TaxRecords/GetTaxStatus\"",
        "ma.tax.v1.TaxRecords/GetTaxStatuss\"",
    );
    let (code, out) = check(&pki, "bad-method.toml", &config);
    assert_eq!(code, 64, "{out}");
    let at = format!("bad-method.toml:{}:", line_of(&config, "GetTaxStatuss"));
    assert!(out.contains(&at), "no error at {at}:\n{out}");
    assert!(
        out.contains("did you mean `ma.tax.v1.TaxRecords/GetTaxStatus`"),
        "{out}"
    );
}

#[test]
fn check_config_locates_contract_and_tls_problems() {
    let pki = Pki::new();
    let protos = pki.root().join("contracts");
    std::fs::create_dir_all(&protos).unwrap();
    std::fs::write(
        protos.join("broken.proto"),
        "syntax = \"proto3\";\npackage ma.broken.v1;\n\nmessage A {\n  strin x = 1;\n}\n",
    )
    .unwrap();
    let config = good_config(&pki)
        .replace(
            &format!("include = [\"{}\"]", proto_dir().display()),
            &format!(
                "include = [\"{}\", \"{}\"]",
                proto_dir().display(),
                protos.display()
            ),
        )
        .replace(
            "contracts = [\"agencies/tax/v1/tax.proto\"]",
            "contracts = [\"broken.proto\"]",
        );
    let (code, out) = check(&pki, "contract.toml", &config);
    assert_eq!(code, 64, "{out}");
    assert!(
        out.contains("broken.proto:5:"),
        "the contract error should point into the file:\n{out}"
    );

    let config = good_config(&pki)
        .replace("missing", "x")
        .replace("gateway.key", "nowhere.key");
    let (code, out) = check(&pki, "tls.toml", &config);
    assert_eq!(code, 64, "{out}");
    assert!(out.contains("nowhere.key"), "{out}");

    let config = good_config(&pki).replace(
        "contracts = [\"agencies/tax/v1/tax.proto\"]",
        "contracts = [\"agencies/tax/v9/tax.proto\"]",
    );
    let (code, out) = check(&pki, "missing.toml", &config);
    assert_eq!(code, 64, "{out}");
    assert!(
        out.contains("agencies/tax/v9/tax.proto") && out.contains("not found"),
        "{out}"
    );
}

#[test]
fn check_config_explains_syntax_errors_and_missing_files() {
    let pki = Pki::new();
    let (code, out) = check(&pki, "syntax.toml", "[node\nid = 1\n");
    assert_eq!(code, 64, "{out}");
    assert!(out.contains("syntax.toml:1:"), "{out}");
    let out = run(&["check-config", "/nonexistent/jisr.toml"]);
    assert_eq!(out.status.code(), Some(64));
    assert!(
        text(&out).contains("/nonexistent/jisr.toml"),
        "{}",
        text(&out)
    );
}

#[test]
fn catalog_lists_agencies_services_methods_and_subjects() {
    let pki = Pki::new();
    let path = pki.root().join("good.toml");
    std::fs::write(&path, good_config(&pki)).unwrap();
    let out = run(&["catalog", "--config", path.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    let listing = String::from_utf8_lossy(&out.stdout);
    for expected in [
        "agency civil-status",
        "service ma.civilstatus.v1.CivilStatus",
        "GetBirthRecord",
        "ListCivilEvents",
        "server-streaming",
        "agency health",
        "category=health (sensitive)",
        "subject=citizen_id",
        "agency tax",
        "GetTaxStatus",
    ] {
        assert!(
            listing.contains(expected),
            "missing {expected:?} in:\n{listing}"
        );
    }
}

#[test]
fn pki_init_writes_a_ca_and_one_certificate_per_agency() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("pki");
    let args = [
        "pki",
        "init",
        "--dir",
        dir.to_str().unwrap(),
        "--trust-domain",
        "interop.gov.ma",
        "--agency",
        "education",
        "--agency",
        "tax,health",
    ];
    let out = run(&args);
    assert!(out.status.success(), "{}", text(&out));
    for file in [
        "ca.crt",
        "education.crt",
        "education.key",
        "tax.crt",
        "health.key",
        "gateway.crt",
        "gateway.key",
    ] {
        assert!(Path::new(&dir).join(file).is_file(), "{file} missing");
    }
    let again = run(&args);
    assert!(!again.status.success());
    assert!(text(&again).contains("--force"), "{}", text(&again));
}

#[test]
fn the_demo_plays_the_procedure_and_exits_zero() {
    let out = run(&["demo"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", text(&out));
    for expected in [
        "portal → jisr",
        "education → civil-status",
        "education → tax",
        "education → health",
        "basis consent",
        "SUBJECT_MISMATCH",
        "basis law:cgi-art-22",
        "ACCESS_DENIED",
        "CONSENT_REVOKED",
        "3 refused",
        "AB123456's access history",
        "Audit log verified offline",
    ] {
        assert!(
            stdout.contains(expected),
            "missing {expected:?} in:\n{stdout}"
        );
    }
    // Its temporary directory is gone when it ends: no command names it.
    assert!(!stdout.contains("jisr audit verify /"), "{stdout}");
    assert!(stdout.contains("jisr demo --dir DIR"), "{stdout}");
    // Three keys are created at first start, each logged under its name.
    let stderr = String::from_utf8_lossy(&out.stderr);
    for (line, times) in [
        ("created a new audit signing key", 1),
        ("created a new pseudonym key", 1),
        ("created a new consent signing key", 1),
    ] {
        assert_eq!(stderr.matches(line).count(), times, "{line}:\n{stderr}");
    }
    assert_eq!(stderr.matches(" WARN ").count(), 3, "{stderr}");
}

#[test]
fn audit_verify_says_when_the_directory_does_not_exist() {
    let tmp = tempfile::tempdir().unwrap();
    let gone = tmp.path().join("audit");
    let out = run(&["audit", "verify", gone.to_str().unwrap()]);
    assert!(!out.status.success());
    let said = text(&out);
    assert!(said.contains("does not exist"), "{said}");
    assert!(!said.contains("no verifier key"), "{said}");
}

// Multi-threaded: the client's connection must keep answering HTTP/2 pings
// while the test thread blocks waiting for the process to exit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_serve_keeps_the_network_up_and_stops_on_sigterm() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut demo, dir) = demo_serve(tmp.path());
    let addr = wait_for_file(&dir.join("gateway.addr"), &demo);
    for agency in ["education", "tax", "health", "civil-status", "portal"] {
        assert!(
            dir.join("pki").join(format!("{agency}.crt")).is_file(),
            "{agency}"
        );
    }
    let files = jisr::tls::TlsFiles::for_agency(&dir.join("pki"), "education");
    let client = channel(&addr, &files).await.unwrap();
    let body = tax(CITIZEN, 0);
    // The demo leaves an active consent for AB123456 ready to use.
    // Written once the portal has recorded it, a moment after gateway.addr.
    let consent = wait_for_file(&dir.join("consent.id"), &demo);
    let call = RawCall::new(TAX, body, "bac-candidature")
        .with("jisr-consent", consent.trim())
        .with("jisr-procedure", "bac-2027-free-candidate");
    call_raw(&client, call).await.unwrap();
    let status = demo.terminate();
    assert!(status.success(), "{status:?}\n{}", demo.logs());
}

/// `jisr keys init` writes the shared keys (0600), refuses to replace them
/// unless asked, and a node configured with them starts on them as they are.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_init_makes_the_shared_keys_a_node_starts_with() {
    use std::os::unix::fs::PermissionsExt as _;
    let pki = Pki::new();
    let keys = pki.root().join("keys");
    let init = |extra: &[&str]| {
        let mut args = vec!["keys", "init", "--dir", keys.to_str().unwrap()];
        args.extend_from_slice(&["--trust-domain", DOMAIN]);
        args.extend_from_slice(extra);
        run(&args)
    };
    let out = init(&[]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("kubectl create secret generic jisr-keys"));
    let files = [keys.join("pseudonym.key"), keys.join("consent-signing.key")];
    let read = || files.clone().map(|f| std::fs::read(f).unwrap());
    for f in &files {
        let mode = std::fs::metadata(f).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{}", f.display());
    }
    let first = read();
    let again = init(&[]);
    assert!(!again.status.success());
    assert!(text(&again).contains("already exists"), "{}", text(&again));
    assert_eq!(read(), first, "a refused init must leave the keys alone");
    let forced = init(&["--force"]);
    assert!(forced.status.success(), "{}", text(&forced));
    let made = read();
    assert_ne!(made[0], first[0]);
    assert_ne!(made[1], first[1]);

    // A node whose config names them: check-config accepts it, and it starts
    // on them (a key in the wrong format or with another name is refused at
    // start), leaving them as they were.
    let extra = format!(
        "[audit]\ndir = \"keys-audit\"\nsigning_key = \"keys-audit.key\"\npseudonym_key = \"{}\"\n\n[consent]\npath = \"keys-consents.redb\"\nsigning_key = \"{}\"\n",
        files[0].display(),
        files[1].display()
    );
    let up = Upstreams {
        civil_status: "127.0.0.1:9101".into(),
        tax: "127.0.0.1:9102".into(),
        health: "127.0.0.1:9103".into(),
    };
    let path = write_config(&pki, "keys", &gateway_config(&pki, &up, "", &extra));
    let out = run(&["check-config", path.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    let gateway = Gateway::start("keys", &path);
    gateway.stop();
    assert_eq!(read(), made);
}

#[test]
fn check_config_warns_on_each_missing_label_and_refuses_an_unknown_language() {
    let pki = Pki::new();
    let labelled = good_config(&pki)
        + "\n[labels.purpose.bac-candidature]\n\
           fr = { label = \"Candidature au bac\", explain = \"Le dossier du candidat.\" }\n\
           [labels.agency]\neducation = { ar = \"وزارة التربية الوطنية\", zgh = \"ⵜⴰⵎⴰⵡⴰⵙⵜ\", fr = \"Éducation\", en = \"Education\", es = \"Educación\" }\n";
    let (code, out) = check(&pki, "labels.toml", &labelled);
    assert_eq!(code, 0, "a missing label is a warning: {out}");
    assert!(
        out.contains("warning: purpose `bac-candidature` has no label in ar, zgh, en, es"),
        "{out}"
    );
    assert!(
        out.contains("warning: agency `tax` has no label in ar, zgh, fr, en, es"),
        "{out}"
    );
    assert!(!out.contains("agency `education`"), "{out}");

    let klingon = labelled.replace("fr = { label", "tlh = { label");
    let (code, out) = check(&pki, "klingon.toml", &klingon);
    assert_eq!(code, 64, "{out}");
    assert!(
        out.contains("`tlh` is not one of the portal's languages"),
        "{out}"
    );
    assert!(out.contains("ar, zgh, fr, en, es"), "{out}");
}

#[test]
fn check_config_refuses_a_consent_link_without_https_or_the_consents_place() {
    let pki = Pki::new();
    for link in [
        "http://portal.example/consents/{consent}",
        "https://portal.example/consents",
    ] {
        let config = good_config(&pki) + &format!("\n[labels]\nconsent_link = \"{link}\"\n");
        let (code, out) = check(&pki, "link.toml", &config);
        assert_eq!(code, 64, "{link}: {out}");
        assert!(
            out.contains("is not an https address with `{consent}` in it"),
            "{out}"
        );
    }
    let config = good_config(&pki)
        + "\n[labels]\nconsent_link = \"https://portal.example/consents/{consent}\"\n";
    let (code, out) = check(&pki, "link.toml", &config);
    assert_eq!(code, 0, "{out}");
}

#[test]
fn check_config_without_labels_gives_no_label_warnings() {
    let pki = Pki::new();
    let (code, out) = check(&pki, "good.toml", &good_config(&pki));
    assert_eq!(code, 0, "{out}");
    assert!(!out.contains("warning"), "{out}");
}
