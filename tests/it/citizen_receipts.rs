//! The citizen page's receipts and richer lines, black-box: each line's
//! receipt checked by the page's own script in headless Chromium, the same
//! file downloaded through the page and checked offline by `jisr audit
//! check-receipt`, one byte changed and refused by both; the audit API
//! giving the portal an entry only about the citizen it names; a refused
//! exchange in the citizen's history; the official and the consent (with
//! its link) on a line, in the five languages.

use crate::citizen::{start, OTHER};
use crate::consent::{grant, CONSENT_RULES};
use crate::console::{sign_in, Setup};
use crate::support::browser::Browser;
use crate::support::*;
use http::{Method, StatusCode};
use jisr::proto::jisr::audit::v1 as pb;
use jisr::proto::jisr::consent::v1::consents_client::ConsentsClient;
use pb::audit_client::AuditClient;
use std::time::Duration;

/// The verdict of every line's receipt, once none is still being checked.
async fn line_verdicts(browser: &Browser) -> Vec<String> {
    let script =
        "const s = Array.from(document.querySelectorAll('.receipt-state'), e => e.dataset.state); \
                  return s.length > 0 && !s.includes('checking') ? s.join(',') : '';";
    let states = browser.wait_for("every receipt's verdict", script).await;
    states.split(',').map(str::to_owned).collect()
}

/// The file verdict after choosing `path` in the page's receipt field.
async fn file_verdict(browser: &Browser, path: &std::path::Path) -> (String, String) {
    browser
        .execute("document.getElementById('file-verdict').dataset.state = 'none'; return '';")
        .await;
    browser
        .type_into("#receipt-file", path.to_str().unwrap())
        .await;
    let script = "const v = document.getElementById('file-verdict'); \
                  return ['verified', 'not-verified'].includes(v.dataset.state) ? v.dataset.state : '';";
    let state = browser.wait_for("the file's verdict", script).await;
    (state, browser.text("#file-verdict").await)
}

/// `jisr audit check-receipt FILE`: success, and what it printed.
fn check_receipt(path: &std::path::Path) -> (bool, String) {
    let out = jisr()
        .args(["audit", "check-receipt"])
        .arg(path)
        .output()
        .unwrap();
    outcome(&out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_receipt_is_verified_in_the_page_and_a_tampered_one_is_refused_there_and_offline() {
    let setup = start().await;
    let browser = Browser::start_in("fr").await;
    sign_in(&browser, &setup.link("portal")).await;
    browser.goto(&setup.url("/citizen")).await;
    browser.type_into("#f-citizen", CITIZEN).await;
    browser.follow("#show").await;
    // Education's allowed call and tax's refused one, both about CITIZEN.
    assert_eq!(line_verdicts(&browser).await, ["verified", "verified"]);
    let first = browser.text(".receipt-state").await;
    assert!(first.contains("Vérifié"), "{first}");
    browser.screenshot("citizen-receipts").await;

    // The file as the page offers it: the download link's own bytes.
    let got = browser
        .execute(
            "const a = document.querySelector('a.receipt-file'); \
             return [a.getAttribute('download'), decodeURIComponent(a.href.slice(a.href.indexOf(',') + 1))];",
        )
        .await;
    let name = got[0].as_str().unwrap();
    assert!(
        name.starts_with("receipt-gw-1-") && name.ends_with(".json"),
        "{name}"
    );
    let text = got[1].as_str().unwrap().to_owned();
    let file = setup.pki.dir.join(name);
    std::fs::write(&file, &text).unwrap();
    let (ok, out) = check_receipt(&file);
    assert!(ok, "{out}");
    assert!(out.contains("OK: entry"), "{out}");

    // One byte of the entry changed: a base64 letter for another.
    let at = text.find("\"record\": \"").unwrap() + "\"record\": \"".len() + 12;
    let mut bytes = text.into_bytes();
    bytes[at] = if bytes[at] == b'A' { b'B' } else { b'A' };
    let tampered = setup.pki.dir.join("tampered.json");
    std::fs::write(&tampered, &bytes).unwrap();
    let (ok, out) = check_receipt(&tampered);
    assert!(!ok, "a tampered receipt passed: {out}");
    assert!(
        out.contains("FAIL: the inclusion proof does not verify"),
        "{out}"
    );

    // The page's own check of a file the citizen picks.
    let (state, said) = file_verdict(&browser, &tampered).await;
    assert_eq!(state, "not-verified", "{said}");
    assert!(said.contains("NON vérifié"), "{said}");
    browser.screenshot("citizen-receipt-tampered").await;
    let (state, said) = file_verdict(&browser, &file).await;
    assert_eq!(state, "verified", "{said}");
}

/// The entry of `agency`'s exchange for `procedure`, as the auditor reads it.
async fn entry_of(setup: &Setup, agency: &str, procedure: &str) -> pb::Entry {
    setup
        .entries(agency)
        .await
        .into_iter()
        .find(|e| e.record.as_ref().unwrap().procedure == procedure)
        .unwrap_or_else(|| panic!("no {agency} entry for {procedure}"))
}

async fn get_entry(
    setup: &Setup,
    agency: &str,
    index: u64,
    citizen: &str,
) -> Result<pb::Entry, tonic::Status> {
    let mut audit = AuditClient::new(setup.channel(agency).await);
    audit
        .get_entry(pb::GetEntryRequest {
            index,
            citizen_id: citizen.into(),
            ..Default::default()
        })
        .await
        .map(tonic::Response::into_inner)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_entry_gives_the_portal_only_entries_about_the_citizen_it_names() {
    let setup = start().await;
    let theirs = entry_of(&setup, "education", "bac-2027").await.index;
    let others = entry_of(&setup, "education", "bac-2028").await.index;

    let read = get_entry(&setup, "portal", theirs, CITIZEN).await.unwrap();
    assert_eq!(read.index, theirs);
    assert!(!read.inclusion_proof.is_empty() || read.tree_size == 1);
    assert_eq!(read.record.unwrap().subject.len(), 32);
    let read = get_entry(&setup, "portal", others, OTHER).await.unwrap();
    assert_eq!(read.record.unwrap().procedure, "bac-2028");

    // Another citizen's entry, or none named: refused.
    for (index, citizen) in [(others, CITIZEN), (theirs, OTHER), (theirs, "")] {
        let refused = get_entry(&setup, "portal", index, citizen)
            .await
            .unwrap_err();
        assert_eq!(refused.code(), tonic::Code::PermissionDenied, "{refused:?}");
        assert!(
            refused.message().contains("citizen"),
            "{}",
            refused.message()
        );
    }
    // Naming the citizen gives nothing to an agency without the role.
    let refused = get_entry(&setup, "health", theirs, CITIZEN)
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::PermissionDenied);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_exchange_is_in_the_citizens_history() {
    let setup = start().await;
    let refused = entry_of(&setup, "tax", "").await;
    let record = refused.record.unwrap();
    assert_eq!(record.outcome, pb::Outcome::Refused as i32);
    assert_eq!(
        record.subject.len(),
        32,
        "the refused call's citizen, as a pseudonym"
    );
    // The auditor opens that entry in the console: the citizen sees the
    // reading too, marked as one (who watched the watchers).
    let auditor = setup.cookie("cndp").await;
    let opened = setup
        .http(
            Method::GET,
            &format!("/exchanges/entry?node=gw-1&index={}", refused.index),
            Some(&auditor),
            None,
        )
        .await;
    assert_eq!(opened.status, StatusCode::OK, "{}", opened.body);
    let (cookie, csrf) = setup.session("portal", "/exchanges").await;
    let answer = setup
        .http(
            Method::POST,
            "/citizen.json",
            Some(&cookie),
            Some(&format!("csrf={csrf}&citizen={CITIZEN}&lang=en")),
        )
        .await;
    let answer: serde_json::Value = serde_json::from_str(&answer.body).unwrap();
    let read = answer["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "CONSOLE_READ")
        .unwrap_or_else(|| panic!("the auditor's reading is not shown: {answer}"));
    assert_eq!(read["asked_by_id"], "cndp");
    assert_eq!(read["data_of_id"], record.provider.as_str());
    let line = answer["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["asked_by_id"] == "tax" && e["kind"] == "EXCHANGE")
        .unwrap_or_else(|| panic!("tax's refused call is not shown: {answer}"));
    assert_eq!(line["outcome"], "Refused");
    assert_eq!(line["kind"], "EXCHANGE");
    assert_eq!(line["receipt"]["index"], refused.index);
    // The other citizen's history does not have it.
    let other = setup
        .http(
            Method::POST,
            "/citizen.json",
            Some(&cookie),
            Some(&format!("csrf={csrf}&citizen={OTHER}&lang=en")),
        )
        .await;
    assert!(!other.body.contains("\"tax\""), "{}", other.body);
}

/// The official's word in each language.
const OFFICIAL: [(&str, &str); 5] = [
    ("ar", "الموظف"),
    ("zgh", "ⴰⵎⵙⵡⵓⵔⵉ"),
    ("fr", "Agent"),
    ("en", "Official"),
    ("es", "Funcionario"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_line_names_the_official_the_law_and_the_consent_with_its_link() {
    let extra = format!(
        "{CONSENT_RULES}\n[labels]\nconsent_link = \"https://portal.example/consents/{{consent}}\"\n"
    );
    let setup = Setup::start_with(&extra).await;
    let mut consents = ConsentsClient::new(setup.channel("portal").await);
    let id = grant(
        &mut consents,
        CITIZEN,
        "school-enrolment",
        1,
        Duration::from_secs(600),
    )
    .await;
    let call = crate::consent::call("school-enrolment", CITIZEN, Some(&id))
        .with("jisr-official", "education.agent-7");
    call_raw(&setup.channel("education").await, call)
        .await
        .unwrap();
    setup.checkpoint_at_least(3).await;

    let (cookie, csrf) = setup.session("portal", "/exchanges").await;
    let ask = |lang: &str, path: &str| {
        let form = format!("csrf={csrf}&citizen={CITIZEN}&lang={lang}");
        let cookie = cookie.clone();
        let setup = &setup;
        let path = path.to_owned();
        async move {
            setup
                .http(Method::POST, &path, Some(&cookie), Some(&form))
                .await
        }
    };
    let json = ask("en", "/citizen.json").await;
    assert_eq!(json.status, StatusCode::OK, "{}", json.body);
    let answer: serde_json::Value = serde_json::from_str(&json.body).unwrap();
    let entries = answer["entries"].as_array().unwrap();
    let on_consent = entries
        .iter()
        .find(|e| e["consent"]["id"] == id.as_str())
        .unwrap_or_else(|| panic!("no line on consent {id}: {answer}"));
    assert_eq!(on_consent["official"], "education.agent-7");
    assert_eq!(
        on_consent["consent"]["link"],
        format!("https://portal.example/consents/{id}")
    );
    assert!(on_consent["law"].is_null());
    assert_eq!(on_consent["basis"], format!("your consent ({id})"));
    let on_law = entries
        .iter()
        .find(|e| e["procedure"]["code"] == "bac-2027")
        .unwrap();
    assert_eq!(on_law["law"], "55-19");
    assert!(on_law["consent"].is_null());

    for (lang, official) in OFFICIAL {
        let page = ask(lang, "/citizen").await;
        assert_eq!(page.status, StatusCode::OK);
        assert!(
            page.body
                .contains(&format!("{official}: education.agent-7")),
            "{lang}: the official"
        );
        assert!(
            page.body.contains(&format!(
                "class=\"consent\" href=\"https://portal.example/consents/{id}\""
            )),
            "{lang}: the consent's link"
        );
    }
}
