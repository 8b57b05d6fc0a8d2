//! The console's Break-glass review, Traffic and health, Agencies and
//! contracts, and Consents pages, in headless Chromium against a real
//! gateway (see `console.rs` for the set-up and the Exchanges pages).
//! Screenshots go to `target/console-shots/`.

use crate::consent::{call as consent_call, grant, CONSENT_RULES};
use crate::console::{sign_in, Setup};
use crate::support::browser::Browser;
use crate::support::*;
use cpb::consents_client::ConsentsClient;
use http::{Method, StatusCode};
use jisr::proto::jisr::audit::v1 as pb;
use jisr::proto::jisr::consent::v1 as cpb;
use std::time::Duration;

const JUSTIFICATION: &str = "pupil collapsed in class; identity needed for the ambulance";

/// An emergency rule for education, an `operator` agency, and consent rules.
fn extra() -> String {
    format!(
        r#"
[[purpose]]
code = "emergency"
description = "Emergency care"

[[rule]]
consumer = "education"
methods = ["ma.civilstatus.v1.CivilStatus/GetBirthRecord"]
purposes = ["emergency"]
basis = "law:emergency-care"
break_glass = true

[[agency]]
id = "noc"
roles = ["operator"]
{CONSENT_RULES}"#
    )
}

/// The auditor's reading of `agency`'s entries of `kind`.
async fn entries_of(setup: &Setup, agency: &str, kind: pb::Kind) -> Vec<pb::AuditRecord> {
    setup
        .entries(agency)
        .await
        .into_iter()
        .filter_map(|e| e.record)
        .filter(|r| r.kind == kind as i32)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_auditor_reviews_a_break_glass_exchange_and_the_review_is_logged() {
    let setup = Setup::start_with(&extra()).await;
    let education = setup.channel("education").await;
    let call = consent_call("emergency", CITIZEN, None).with("jisr-justification", JUSTIFICATION);
    call_raw(&education, call).await.unwrap();
    let emergency = setup
        .entries("education")
        .await
        .into_iter()
        .find(|e| e.record.as_ref().is_some_and(|r| r.break_glass))
        .expect("the emergency exchange is in the log");

    let browser = Browser::start().await;
    sign_in(&browser, &setup.link("education")).await;
    browser.goto(&setup.url("/break-glass")).await;
    assert!(browser.text("#refusal").await.contains("Only auditors"));
    // A refusal page has no header: sign out from a page that has one.
    browser.goto(&setup.url("/exchanges")).await;
    browser.follow("#signout").await;

    sign_in(&browser, &setup.link("cndp")).await;
    browser.follow("nav a[href='/break-glass']").await;
    let card = browser.text("#emergencies").await;
    assert!(
        card.contains(JUSTIFICATION) && card.contains("education"),
        "{card}"
    );
    browser.screenshot("break-glass").await;
    browser
        .type_into(
            "form.review textarea",
            "checked with the school: a real emergency",
        )
        .await;
    browser.follow("form.review button").await;
    let reviewed = browser.text(".reviewed").await;
    assert!(
        reviewed.contains("cndp") && reviewed.contains("a real emergency"),
        "{reviewed}"
    );
    assert!(browser.find("form.review").await.is_none());
    browser.screenshot("break-glass-reviewed").await;

    // The review is an entry of the log, naming the auditor and the entry.
    let reviews = entries_of(&setup, "cndp", pb::Kind::BreakGlassReviewed).await;
    assert_eq!(reviews.len(), 1, "{reviews:?}");
    let review = &reviews[0];
    assert_eq!(
        review.event_id,
        format!("{}/{}", emergency.node, emergency.index)
    );
    assert_eq!(
        review.justification,
        "checked with the school: a real emergency"
    );
    assert_eq!(review.subject, emergency.record.unwrap().subject);

    // A second review of the same entry, or one without a comment: refused.
    let (cookie, csrf) = setup.session("cndp", "/consents").await;
    let form = |comment: &str| {
        format!(
            "csrf={csrf}&node={}&index={}&comment={comment}",
            emergency.node, emergency.index
        )
    };
    let again = setup
        .http(
            Method::POST,
            "/break-glass/review",
            Some(&cookie),
            Some(&form("again")),
        )
        .await;
    assert_eq!(again.status, StatusCode::CONFLICT, "{}", again.body);
    let empty = setup
        .http(
            Method::POST,
            "/break-glass/review",
            Some(&cookie),
            Some(&form("")),
        )
        .await;
    assert_eq!(empty.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        entries_of(&setup, "cndp", pb::Kind::BreakGlassReviewed)
            .await
            .len(),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_reads_traffic_health_and_the_contracts_but_no_exchange() {
    let setup = Setup::start_with(&extra()).await;
    let browser = Browser::start().await;
    sign_in(&browser, &setup.link("noc")).await;
    browser.goto(&setup.url("/traffic")).await;
    let traffic = browser.text("#traffic").await;
    assert!(traffic.contains("civil-status"), "{traffic}");
    assert!(browser.text("#reasons").await.contains("ACCESS_DENIED"));
    let health = browser.text("#health").await;
    assert!(
        health.contains("audit") && health.contains("ok"),
        "{health}"
    );
    assert!(browser.find("#instances").await.is_some());
    // Calls per second need a second sample at least a second later: the
    // page reloads itself until it has one.
    browser
        .wait_for(
            "a rate over a window",
            "const t = document.getElementById('traffic'); \
             return t && t.textContent.includes('calls/s over the last') ? 'yes' : '';",
        )
        .await;
    browser.screenshot("traffic").await;

    browser.follow("nav a[href='/agencies']").await;
    assert!(browser.text("#catalogue").await.contains("GetBirthRecord"));
    let rules = browser.text("#rules").await;
    assert!(
        rules.contains("law:55-19") && rules.contains("break-glass"),
        "{rules}"
    );
    assert!(browser.text("#agencies").await.contains("operator"));
    browser.screenshot("agencies").await;

    // No exchange of another agency, and no break-glass review.
    browser.goto(&setup.url("/exchanges?agency=tax")).await;
    assert!(browser
        .text("#refusal")
        .await
        .contains("may query only its own"));
    browser.goto(&setup.url("/break-glass")).await;
    assert!(browser.text("#refusal").await.contains("Only auditors"));

    // An agency without a role reads neither page.
    let (cookie, _) = setup.session("cndp", "/consents").await;
    assert_eq!(
        setup
            .http(Method::GET, "/traffic", Some(&cookie), None)
            .await
            .status,
        StatusCode::OK
    );
    let cookie = setup.cookie("education").await;
    for path in ["/traffic", "/agencies", "/break-glass"] {
        let page = setup.http(Method::GET, path, Some(&cookie), None).await;
        assert_eq!(page.status, StatusCode::FORBIDDEN, "{path}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_consent_manager_revokes_a_consent_and_an_auditor_cannot() {
    let setup = Setup::start_with(&extra()).await;
    let mut portal_api = ConsentsClient::new(setup.channel("portal").await);
    let id = grant(
        &mut portal_api,
        CITIZEN,
        "school-enrolment",
        0,
        Duration::from_secs(3600),
    )
    .await;

    // The auditor lists the citizen's consents, with no way to revoke.
    let browser = Browser::start().await;
    sign_in(&browser, &setup.link("cndp")).await;
    browser.follow("nav a[href='/consents']").await;
    browser.type_into("#f-citizen", CITIZEN).await;
    browser.follow("#list").await;
    assert!(browser.text("#consents").await.contains(&id));
    assert!(browser.find("button.revoke").await.is_none());
    assert!(
        !browser.url().await.contains(CITIZEN),
        "no citizen in a URL"
    );
    // A revocation posted anyway (with the session's token) is refused.
    let (cookie, csrf) = setup.session("cndp", "/consents").await;
    let forced = setup
        .http(
            Method::POST,
            "/consents/revoke",
            Some(&cookie),
            Some(&format!("csrf={csrf}&id={id}&confirm=yes")),
        )
        .await;
    assert_eq!(forced.status, StatusCode::FORBIDDEN, "{}", forced.body);
    let state = |id: String| {
        let mut api = portal_api.clone();
        async move {
            api.get(cpb::GetRequest { id })
                .await
                .unwrap()
                .into_inner()
                .status
        }
    };
    assert_eq!(state(id.clone()).await, cpb::Status::Active as i32);
    browser.follow("#signout").await;

    // The portal revokes it, after confirming.
    sign_in(&browser, &setup.link("portal")).await;
    browser.goto(&setup.url("/consents")).await;
    browser.type_into("#f-citizen", CITIZEN).await;
    browser.follow("#list").await;
    browser.screenshot("consents").await;
    browser.follow("button.revoke").await;
    assert!(browser.text("#confirm-text").await.contains(&id));
    browser.screenshot("consent-revoke").await;
    browser.follow("#confirm").await;
    assert!(browser.text("#revoked").await.contains("revoked"));
    assert_eq!(state(id).await, cpb::Status::Revoked as i32);

    // Both listings are reads of the log, naming the citizen's pseudonym.
    let reads = entries_of(&setup, "cndp", pb::Kind::ConsoleRead).await;
    assert!(reads
        .iter()
        .any(|r| r.method == "console:/consents" && r.subject.len() == 32));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_new_pages_need_a_session_and_their_forms_a_token() {
    let setup = Setup::start_with(&extra()).await;
    for path in ["/break-glass", "/traffic", "/agencies", "/consents"] {
        let answer = setup.http(Method::GET, path, None, None).await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{path}");
    }
    for path in ["/break-glass/review", "/consents", "/consents/revoke"] {
        let answer = setup
            .http(Method::POST, path, None, Some("comment=x"))
            .await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{path}");
    }
    let (cookie, _) = setup.session("portal", "/consents").await;
    for path in ["/break-glass/review", "/consents", "/consents/revoke"] {
        let answer = setup
            .http(Method::POST, path, Some(&cookie), Some("id=x&citizen=AB1"))
            .await;
        assert_eq!(answer.status, StatusCode::FORBIDDEN, "{path}");
    }
}
