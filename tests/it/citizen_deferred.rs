//! Deferred disclosure, black-box: tax's call about the citizen under a
//! rule with `disclose_on` (a covert investigation) is kept from the
//! citizen's page (HTML in headless Chromium, in Arabic and French, and
//! JSON) and from the portal's gRPC reads until the date, then shown; the
//! auditor sees it throughout, flagged with its date, in the console and
//! over gRPC. The date is passed by moving the gateway's injected clock,
//! never waited for. The partial-history notice, in the five languages.

use crate::citizen::labels;
use crate::console::{sign_in, Setup};
use crate::support::browser::Browser;
use crate::support::*;
use http::{Method, StatusCode};
use jisr::clock::Clock;
use jisr::proto::jisr::audit::v1 as pb;
use pb::audit_client::AuditClient;
use std::sync::Arc;

const SECOND: i64 = 1_000_000;
/// `disclose_on = "2030-01-01"`: 00:00 UTC that day.
const DATE: i64 = 1_893_456_000 * SECOND;

/// Tax's investigation: its own purpose and a rule deferring disclosure.
const INVESTIGATION: &str = r#"
[[purpose]]
code = "tax-investigation"
description = "Covert tax investigation"

[[rule]]
consumer = "tax"
methods = ["ma.civilstatus.v1.CivilStatus/GetBirthRecord"]
purposes = ["tax-investigation"]
basis = "law:cgi-art-213"
disclose_on = "2030-01-01"
"#;

/// The console setup (education's allowed call about CITIZEN, tax's
/// refused one) on a stopped clock at today, then tax's allowed call about
/// CITIZEN under the deferring rule; returns the setup and the deferred
/// entry's index.
async fn start(clock: &Arc<Clock>) -> (Setup, u64) {
    let extra = format!("{INVESTIGATION}{}", labels());
    let setup = Setup::start_clocked(&extra, clock.clone()).await;
    let body = birth(CITIZEN);
    let tax = setup.channel("tax").await;
    call_raw(&tax, RawCall::new(BIRTH, body, "tax-investigation"))
        .await
        .expect("the investigation's rule allows the call");
    setup.checkpoint_at_least(3).await;
    let entries = setup.entries("tax").await;
    let deferred = entries
        .iter()
        .find(|e| e.record.as_ref().unwrap().purpose == "tax-investigation")
        .expect("the auditor reads the investigation's entry");
    assert_eq!(
        deferred.record.as_ref().unwrap().disclose_from_unix_micros,
        DATE,
        "the entry carries its disclosure date"
    );
    (setup, deferred.index)
}

fn today() -> Arc<Clock> {
    Arc::new(Clock::stopped_at(Clock::system().unix_micros()))
}

/// The purposes of the citizen's history as the portal reads it over
/// gRPC, and the answer's disclosure dates, as `agency` reads them.
async fn history(setup: &Setup, agency: &str) -> Vec<(String, i64)> {
    let mut audit = AuditClient::new(setup.channel(agency).await);
    let request = pb::CitizenHistoryRequest {
        citizen_id: CITIZEN.into(),
        ..Default::default()
    };
    let answer = audit.citizen_history(request).await.unwrap().into_inner();
    answer
        .entries
        .into_iter()
        .map(|e| e.record.unwrap())
        .map(|r| (r.purpose, r.disclose_from_unix_micros))
        .collect()
}

/// The portal's `GetEntry` of entry `index`, naming CITIZEN.
async fn portal_entry(setup: &Setup, index: u64) -> Result<pb::Entry, tonic::Status> {
    let mut audit = AuditClient::new(setup.channel("portal").await);
    let request = pb::GetEntryRequest {
        index,
        citizen_id: CITIZEN.into(),
        ..Default::default()
    };
    audit
        .get_entry(request)
        .await
        .map(tonic::Response::into_inner)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_portal_over_grpc_reads_a_deferred_entry_only_from_its_date_and_the_auditor_always() {
    let clock = today();
    let (setup, index) = start(&clock).await;
    let investigation = ("tax-investigation".to_owned(), DATE);
    for before in [clock.unix_micros(), DATE - SECOND] {
        clock.pin(before);
        let portal = history(&setup, "portal").await;
        assert_eq!(portal.len(), 2, "education's and tax's refused: {portal:?}");
        assert!(!portal.contains(&investigation), "{portal:?}");
        let refused = portal_entry(&setup, index).await.unwrap_err();
        assert_eq!(refused.code(), tonic::Code::PermissionDenied);
        // Refused as another citizen's entry would be: nothing in the
        // refusal tells the portal an investigation exists.
        assert!(
            refused.message().contains("not about the citizen"),
            "{}",
            refused.message()
        );
        let auditor = history(&setup, "cndp").await;
        assert!(auditor.contains(&investigation), "flagged: {auditor:?}");
    }
    for after in [DATE, DATE + SECOND] {
        clock.pin(after);
        let portal = history(&setup, "portal").await;
        assert_eq!(portal.len(), 3, "{portal:?}");
        assert!(portal.contains(&investigation), "{portal:?}");
        let entry = portal_entry(&setup, index).await.unwrap();
        assert_eq!(entry.record.unwrap().disclose_from_unix_micros, DATE);
        assert!(history(&setup, "cndp").await.contains(&investigation));
    }
}

/// The number of lines of the page's history, once shown.
async fn rows(browser: &Browser) -> usize {
    let n = browser
        .execute("return document.querySelectorAll('#history tbody tr').length;")
        .await;
    usize::try_from(n.as_u64().unwrap()).unwrap()
}

/// Switches the page to `lang` through its switcher (which re-posts the
/// citizen) and waits for the new page. The old one is marked first: when
/// it is already in `lang`, its language alone would not tell the two apart.
async fn switch_to(browser: &Browser, lang: &str) {
    browser
        .execute("document.documentElement.dataset.old = 'yes'; return '';")
        .await;
    browser.click(&format!("#lang-{lang}")).await;
    let script = format!(
        "const d = document.documentElement; \
         return d.lang === '{lang}' && d.dataset.old !== 'yes' ? 'yes' : '';"
    );
    browser.wait_for("the page in its language", &script).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deferred_exchange_is_hidden_from_the_citizens_page_until_its_date_then_shown() {
    let clock = today();
    let (setup, _) = start(&clock).await;
    let browser = Browser::start_in("ar").await;
    sign_in(&browser, &setup.link("portal")).await;
    browser.goto(&setup.url("/citizen")).await;
    browser.type_into("#f-citizen", CITIZEN).await;
    browser.follow("#show").await;
    for (lang, dir) in [("ar", "rtl"), ("fr", "ltr")] {
        switch_to(&browser, lang).await;
        let got = browser
            .execute("return document.documentElement.dir;")
            .await;
        assert_eq!(got, dir);
        assert_eq!(rows(&browser).await, 2, "{lang}: hidden");
        let history = browser.text("#history").await;
        assert!(!history.contains("tax-investigation"), "{lang}: {history}");
        assert!(browser.find(".deferred").await.is_none());
    }
    clock.pin(DATE - SECOND);
    switch_to(&browser, "ar").await;
    assert_eq!(rows(&browser).await, 2, "one second before the date");

    clock.pin(DATE);
    for (lang, note) in [
        ("ar", "معروض ابتداءً من 1 يناير 2030، 00:00 UTC"),
        ("fr", "Affiché à partir du 1 janvier 2030 à 00:00 UTC"),
    ] {
        switch_to(&browser, lang).await;
        assert_eq!(rows(&browser).await, 3, "{lang}: shown from the date");
        let history = browser.text("#history").await;
        assert!(history.contains("tax-investigation"), "{lang}: {history}");
        let shown = browser.text(".deferred").await;
        assert!(shown.starts_with(note), "{lang}: {shown}");
        browser
            .screenshot(&format!("citizen-deferred-shown-{lang}"))
            .await;
    }
    // The JSON form says the same.
    let (cookie, csrf) = setup.session("portal", "/exchanges").await;
    let json = |lang: &'static str| {
        let form = format!("csrf={csrf}&citizen={CITIZEN}&lang={lang}");
        let (setup, cookie) = (&setup, cookie.clone());
        async move {
            let answer = setup
                .http(Method::POST, "/citizen.json", Some(&cookie), Some(&form))
                .await;
            assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
            serde_json::from_str::<serde_json::Value>(&answer.body).unwrap()
        }
    };
    let shown = json("en").await;
    let deferred: Vec<_> = shown["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| !e["disclosed_from"].is_null())
        .collect();
    assert_eq!(deferred.len(), 1, "{shown}");
    assert_eq!(deferred[0]["purpose"]["code"], "tax-investigation");
    assert_eq!(deferred[0]["disclosed_from"], "1 January 2030, 00:00 UTC");
    clock.pin(DATE - SECOND);
    let hidden = json("en").await;
    let codes: Vec<_> = hidden["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["purpose"]["code"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(codes, ["bac-candidature", "bac-candidature"], "{hidden}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_auditor_sees_a_deferred_exchange_flagged_with_its_date_before_and_after_it() {
    let clock = today();
    let (setup, index) = start(&clock).await;
    let (cookie, _) = setup.session("cndp", "/exchanges").await;
    for now in [DATE - SECOND, DATE + SECOND] {
        clock.pin(now);
        let list = setup
            .http(Method::GET, "/exchanges?agency=tax", Some(&cookie), None)
            .await;
        assert_eq!(list.status, StatusCode::OK);
        let flags: Vec<_> = list.body.matches("class=\"flag deferred\"").collect();
        assert_eq!(flags.len(), 1, "only the investigation's: {}", list.body);
        assert!(
            list.body
                .contains("deferred until 2030-01-01 00:00:00 UTC</span>"),
            "{}",
            list.body
        );
        let path = format!("/exchanges/entry?node=gw-1&index={index}");
        let entry = setup.http(Method::GET, &path, Some(&cookie), None).await;
        assert_eq!(entry.status, StatusCode::OK);
        assert!(
            entry.body.contains(
                "<dt>Deferred disclosure</dt><dd>hidden from the citizen until 2030-01-01 00:00:00 UTC</dd>"
            ),
            "{}",
            entry.body
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partial_history_says_so_in_each_language() {
    // A peer that is not there: a port bound, then closed.
    let gone = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = gone.local_addr().unwrap();
    drop(gone);
    let cluster = format!(
        "\n[cluster]\npeers = [{{ node = \"gw-2\", address = \"{address}\" }}]\npeer_timeout_ms = 500\n"
    );
    let setup = Setup::start_with(&format!("{cluster}{}", labels())).await;
    let (cookie, csrf) = setup.session("portal", "/exchanges").await;
    for (lang, words) in [
        ("ar", "قد يكون هذا السجل غير مكتمل"),
        ("zgh", "ⴰⵎⵣⵔⵓⵢ ⴰⴷ ⵉⵖⵢ ⴰⴷ ⵓⵔ ⵉⴽⵎⵉⵍ"),
        ("fr", "Cet historique est peut-être incomplet"),
        ("en", "This history may be incomplete"),
        ("es", "Este historial puede estar incompleto"),
    ] {
        let form = format!("csrf={csrf}&citizen={CITIZEN}&lang={lang}");
        let page = setup
            .http(Method::POST, "/citizen", Some(&cookie), Some(&form))
            .await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        assert!(page.body.contains(&format!("lang=\"{lang}\"")), "{lang}");
        let notice = page
            .body
            .split("id=\"partial\" role=\"status\">")
            .nth(1)
            .and_then(|rest| rest.split("</p>").next())
            .unwrap_or_else(|| panic!("{lang}: no partial notice in {}", page.body));
        assert!(notice.starts_with(words), "{lang}: {notice}");
        assert!(
            notice.contains("(gw-2)"),
            "{lang}: the node named: {notice}"
        );
        assert!(
            !notice.contains("Partial"),
            "{lang}: no English left: {notice}"
        );
    }
    let form = format!("csrf={csrf}&citizen={CITIZEN}&lang=en");
    let json = setup
        .http(Method::POST, "/citizen.json", Some(&cookie), Some(&form))
        .await;
    let json: serde_json::Value = serde_json::from_str(&json.body).unwrap();
    assert_eq!(json["missing_nodes"], serde_json::json!(["gw-2"]));
}

#[test]
fn check_config_refuses_a_malformed_disclosure_date_and_warns_on_an_unlikely_one() {
    use crate::cli::{check, good_config};
    let pki = Pki::new();
    let with = |date: &str| good_config(&pki) + &INVESTIGATION.replace("2030-01-01", date);
    let (code, out) = check(&pki, "deferred.toml", &with("2030-01-01"));
    assert_eq!(code, 0, "{out}");
    assert!(!out.contains("warning"), "{out}");
    for bad in ["2027-02-30", "30/06/2027", "2027-06-30 08:00"] {
        let config = with(bad);
        let (code, out) = check(&pki, "bad-date.toml", &config);
        assert_eq!(code, 64, "{bad}: {out}");
        let line = config.lines().position(|l| l.contains(bad)).unwrap() + 1;
        assert!(
            out.contains(&format!(
                "bad-date.toml:{line}:15: error: `disclose_on` in [[rule]] is not a date: `{bad}`"
            )),
            "{out}"
        );
        assert!(
            out.contains("fix: write a date as `disclose_on = \"2027-06-30\"`"),
            "{out}"
        );
    }
    let (code, out) = check(&pki, "past.toml", &with("2020-01-01"));
    assert_eq!(code, 0, "a past date is a warning: {out}");
    assert!(
        out.contains("`disclose_on = \"2020-01-01\"` is already past"),
        "{out}"
    );
    let (code, out) = check(&pki, "far.toml", &with("2099-01-01T12:00:00Z"));
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("`disclose_on = \"2099-01-01T12:00:00Z\"` is more than ten years ahead"),
        "{out}"
    );
    let on_consent = with("2030-01-01").replace("law:cgi-art-213", "consent");
    let (code, out) = check(&pki, "consent.toml", &on_consent);
    assert_eq!(code, 64, "{out}");
    assert!(
        out.contains("a rule on consent cannot defer disclosure"),
        "{out}"
    );
}
