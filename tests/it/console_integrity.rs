//! The console's Log integrity page in headless Chromium against a real
//! gateway: the node's checkpoints over time, each signature and each
//! consistency proof checked by the page's own script, a tampered proof
//! caught, and the page refused without a session or the role.
//! Screenshots go to `target/console-shots/`.

use crate::console::{sign_in, Setup};
use crate::support::browser::Browser;
use crate::support::*;
use http::{Method, StatusCode};

/// An `operator` agency besides the echo network's own.
pub(crate) const NOC: &str = "\n[[agency]]\nid = \"noc\"\nroles = [\"operator\"]\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_browser_checks_each_checkpoint_against_the_one_before() {
    let setup = Setup::start_with(NOC).await;
    // Three more exchanges, each in a checkpoint of its own: the history
    // then holds checkpoints of growing sizes.
    let education = setup.channel("education").await;
    let body = birth(CITIZEN);
    for size in 3..=5 {
        let call =
            RawCall::new(BIRTH, body.clone(), "bac-candidature").with("jisr-procedure", "bac-2027");
        call_raw(&education, call).await.unwrap();
        setup.checkpoint_at_least(size).await;
    }

    let browser = Browser::start().await;
    sign_in(&browser, &setup.link("cndp")).await;
    browser.follow("nav a[href='/integrity']").await;
    assert_eq!(
        browser.verdict().await,
        "verified",
        "{}",
        browser.text("#verdict").await
    );
    let table = browser.text("#checkpoints").await;
    let rows = browser
        .execute("return document.querySelectorAll('#checkpoints tbody tr').length;")
        .await
        .as_u64()
        .unwrap();
    assert!(rows >= 3, "three checkpoints at least: {table}");
    assert_eq!(
        table.matches("consistent with #").count() as u64,
        rows - 1,
        "every checkpoint but the first extends the one before: {table}"
    );
    assert_eq!(table.matches("signed").count() as u64, rows, "{table}");
    let key = browser.text("#verifier-key").await;
    assert!(key.starts_with("interop.gov.ma/jisr/"), "{key}");
    browser.click("#copy-key").await;
    browser
        .wait_for(
            "the copy button's answer",
            "return document.getElementById('copy-state').textContent;",
        )
        .await;
    browser.execute("window.scrollTo(0, 0); return '';").await;
    browser.screenshot("integrity").await;

    // One bit of one hash of a non-empty proof changed: that pair, and the
    // page, must then fail.
    let row = browser
        .execute(
            "const d = document.getElementById('checkpoint-data'); const h = JSON.parse(d.textContent); \
             const row = h.proofs.findIndex((p) => p.hashes && p.hashes.length > 0); \
             const b = atob(h.proofs[row].hashes[0]); \
             h.proofs[row].hashes[0] = btoa(String.fromCharCode(b.charCodeAt(0) ^ 1) + b.slice(1)); \
             d.textContent = JSON.stringify(h); \
             document.getElementById('verdict').dataset.state = 'checking'; return row;",
        )
        .await
        .as_u64()
        .expect("a proof with hashes");
    browser.click("#recheck").await;
    assert_eq!(browser.verdict().await, "not-verified");
    let cell = browser.text(&format!("#cons-{row}")).await;
    assert!(cell.starts_with("NOT consistent"), "{cell}");
    let state = browser
        .execute(&format!(
            "return document.getElementById('cons-{row}').dataset.state;"
        ))
        .await;
    assert_eq!(state, "bad");
    browser.execute("window.scrollTo(0, 0); return '';").await;
    browser.screenshot("integrity-tampered").await;

    // The operator reads it too; an older page starts further back.
    let noc = setup.cookie("noc").await;
    let older = setup
        .http(Method::GET, "/integrity?before=2", Some(&noc), None)
        .await;
    assert_eq!(older.status, StatusCode::OK, "{}", older.body);
    assert!(older.body.contains("id=\"sig-1\"") && !older.body.contains("id=\"sig-2\""));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_integrity_page_needs_a_session_and_the_role() {
    let setup = Setup::start_with(NOC).await;
    let anonymous = setup.http(Method::GET, "/integrity", None, None).await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    for agency in ["education", "portal"] {
        let cookie = setup.cookie(agency).await;
        let page = setup
            .http(Method::GET, "/integrity", Some(&cookie), None)
            .await;
        assert_eq!(page.status, StatusCode::FORBIDDEN, "{agency}");
        assert!(
            page.body.contains("Only auditors and operators"),
            "{agency}"
        );
    }
    let bad = setup
        .http(
            Method::GET,
            "/integrity?before=x",
            Some(&setup.cookie("cndp").await),
            None,
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
}
