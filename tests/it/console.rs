//! The operators' web console, black-box: a real gateway with `[console]`,
//! sign-in links from the real `jisr console login`, and headless Chromium
//! over WebDriver checking the proofs with its own WebCrypto. Screenshots
//! go to `target/console-shots/`.

use crate::routing::echo_network_with;
use crate::support::browser::Browser;
use crate::support::checkpoints::checkpoint_at_least;
use crate::support::web;
use crate::support::*;
use http::{Method, StatusCode};
use jisr::proto::jisr::audit::v1 as pb;
use pb::audit_client::AuditClient;
use std::time::Duration;

const CONSOLE: &str = "\n[console]\nlisten = \"127.0.0.1:0\"\n";

/// A gateway with its console, after two exchanges: education's allowed
/// birth record (procedure bac-2027) and tax's refused one.
pub(crate) struct Setup {
    pub(crate) pki: Pki,
    _gateway: Gateway,
    addr: String,
    pub(crate) console: String,
    _echos: Vec<crate::support::echo::Echo>,
}

impl Setup {
    pub(crate) async fn start() -> Self {
        Self::start_with("").await
    }

    /// [`Setup::start`] with `extra` appended to the config (after `[console]`).
    pub(crate) async fn start_with(extra: &str) -> Self {
        Self::start_clocked(extra, std::sync::Arc::default()).await
    }

    /// [`Setup::start_with`] on a gateway reading the time of day from
    /// `clock` (see `support::Gateway::start_clocked`).
    pub(crate) async fn start_clocked(
        extra: &str,
        clock: std::sync::Arc<jisr::clock::Clock>,
    ) -> Self {
        let start = |pki: &Pki, name: &str, config: &str| {
            let gateway = Gateway::start_clocked(name, &write_config(pki, name, config), clock);
            let addr = gateway.addr.clone();
            (gateway, addr)
        };
        let extra = format!("{CONSOLE}{extra}");
        let (pki, gateway, addr, echos) = echo_network_with("", &extra, start).await;
        let console = gateway.console.clone().expect("the console is on");
        let setup = Self {
            pki,
            _gateway: gateway,
            addr,
            console,
            _echos: echos,
        };
        let body = birth(CITIZEN);
        let education = setup.channel("education").await;
        let call =
            RawCall::new(BIRTH, body.clone(), "bac-candidature").with("jisr-procedure", "bac-2027");
        call_raw(&education, call).await.unwrap();
        let tax = setup.channel("tax").await;
        let refused = call_raw(&tax, RawCall::new(BIRTH, body, "bac-candidature")).await;
        assert!(refused.is_err(), "tax has no rule for birth records");
        setup.checkpoint_at_least(2).await;
        setup
    }

    pub(crate) async fn channel(&self, agency: &str) -> tonic::transport::Channel {
        channel(&self.addr, &self.pki.files(agency)).await.unwrap()
    }

    async fn audit(&self) -> AuditClient<tonic::transport::Channel> {
        AuditClient::new(self.channel("cndp").await)
    }

    pub(crate) async fn checkpoint_at_least(&self, size: u64) {
        let mut audit = self.audit().await;
        checkpoint_at_least(&mut audit, size, Duration::from_secs(10)).await;
    }

    /// The entries of `agency`'s exchanges, as the auditor reads them.
    pub(crate) async fn entries(&self, agency: &str) -> Vec<pb::Entry> {
        let request = pb::QueryRequest {
            agency: agency.into(),
            ..Default::default()
        };
        self.audit()
            .await
            .query(request)
            .await
            .unwrap()
            .into_inner()
            .entries
    }

    /// A sign-in link printed by `jisr console login`.
    pub(crate) fn link(&self, agency: &str) -> String {
        let config = self.pki.root().join("gateway.toml");
        let out = jisr()
            .args(["console", "login", "--config"])
            .arg(&config)
            .args(["--as", agency, "--address", &self.console])
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        assert!(
            out.status.success(),
            "console login: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            stdout.starts_with(&format!("https://{}/signin?t=", self.console)),
            "{stdout}"
        );
        stdout
    }

    /// A session cookie for `agency`, signed in over plain HTTPS.
    pub(crate) async fn cookie(&self, agency: &str) -> String {
        let link = self.link(agency);
        let token = link.split_once("?t=").unwrap().1;
        let form = format!("t={token}");
        let signed = self.http(Method::POST, "/signin", None, Some(&form)).await;
        signed.session_cookie()
    }

    /// Signs `agency` in over plain HTTPS: its session cookie and the CSRF
    /// token of `page`'s forms.
    pub(crate) async fn session(&self, agency: &str, page: &str) -> (String, String) {
        let cookie = self.cookie(agency).await;
        let csrf = self
            .http(Method::GET, page, Some(&cookie), None)
            .await
            .csrf();
        (cookie, csrf)
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("https://{}{path}", self.console)
    }

    pub(crate) async fn http(
        &self,
        method: Method,
        path: &str,
        cookie: Option<&str>,
        form: Option<&str>,
    ) -> web::Answer {
        web::console(
            &self.console,
            &self.pki.dir.join("ca.crt"),
            method,
            path,
            cookie,
            form,
        )
        .await
    }
}

/// Signs in through the link's page, as a browser would.
pub(crate) async fn sign_in(browser: &Browser, link: &str) {
    browser.goto(link).await;
    browser.follow("#signin").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_auditor_signs_in_searches_and_the_browser_verifies_an_entry() {
    let setup = Setup::start().await;
    let browser = Browser::start().await;
    browser.goto(&setup.url("/exchanges")).await;
    assert!(browser
        .text("#refusal")
        .await
        .contains("without signing in"));
    browser.screenshot("signed-out").await;

    let link = setup.link("cndp");
    browser.goto(&link).await;
    browser.screenshot("sign-in").await;
    browser.follow("#signin").await;
    assert!(browser.url().await.ends_with("/exchanges"));
    assert_eq!(browser.text("#agency").await, "cndp");

    browser.type_into("#f-procedure", "bac-2027").await;
    browser.follow("#search").await;
    let results = browser.text("#results").await;
    assert!(
        results.contains("education") && results.contains("bac-2027"),
        "{results}"
    );
    assert!(
        !results.contains("tax"),
        "the search is for bac-2027 only: {results}"
    );
    browser.screenshot("exchanges").await;

    browser.follow("a.detail").await;
    assert_eq!(
        browser.verdict().await,
        "verified",
        "{}",
        browser.text("#verdict").await
    );
    assert!(browser.text("#fields").await.contains("law:55-19"));
    browser.screenshot("entry-verified").await;

    // One hash of the inclusion path changed: the same script must refuse it.
    browser
        .execute(
            "const d = document.getElementById('receipt'); const r = JSON.parse(d.textContent); \
             const h = atob(r.proof[0]); \
             r.proof[0] = btoa(String.fromCharCode(h.charCodeAt(0) ^ 1) + h.slice(1)); \
             d.textContent = JSON.stringify(r); \
             document.getElementById('verdict').dataset.state = 'checking'; return '';",
        )
        .await;
    browser.click("#recheck").await;
    assert_eq!(browser.verdict().await, "not-verified");
    assert!(browser.text("#verdict").await.contains("another root"));
    browser.screenshot("entry-tampered").await;
    assert!(
        !browser.url().await.contains(CITIZEN),
        "no citizen id in a URL"
    );

    browser.resize(800, 1100).await;
    browser.goto(&setup.url("/exchanges")).await;
    browser.screenshot("exchanges-tablet").await;

    browser.follow("#signout").await;
    assert!(browser.url().await.contains("/signin"));
    browser.goto(&setup.url("/exchanges")).await;
    assert!(browser
        .text("#refusal")
        .await
        .contains("without signing in"));

    // The link was used: it signs no one in again.
    sign_in(&browser, &link).await;
    assert!(browser.text("#refusal").await.contains("already used"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agency_sees_only_its_own_exchanges_and_its_reads_are_logged() {
    let setup = Setup::start().await;
    let tax_entry = setup.entries("tax").await.remove(0);
    let education_entry = setup.entries("education").await.remove(0);
    let browser = Browser::start().await;
    sign_in(&browser, &setup.link("education")).await;
    assert_eq!(browser.text("#agency").await, "education");

    // Its own entry: shown and verified.
    let own = format!("/exchanges/entry?node=gw-1&index={}", education_entry.index);
    browser.goto(&setup.url(&own)).await;
    assert_eq!(browser.verdict().await, "verified");

    // Another agency's: refused, as the audit API refuses it.
    let other = format!("/exchanges/entry?node=gw-1&index={}", tax_entry.index);
    browser.goto(&setup.url(&other)).await;
    assert!(browser.text("#refusal").await.contains("only auditors"));
    browser.screenshot("entry-refused").await;
    browser.goto(&setup.url("/exchanges?agency=tax")).await;
    assert!(browser
        .text("#refusal")
        .await
        .contains("may query only its own"));

    // Who watched: the auditor finds education's console reads in the log,
    // the entry read naming the citizen's pseudonym.
    let reads: Vec<_> = setup
        .entries("education")
        .await
        .into_iter()
        .filter_map(|e| e.record)
        .filter(|r| r.kind == pb::Kind::ConsoleRead as i32)
        .collect();
    let subject = education_entry.record.unwrap().subject;
    assert!(reads
        .iter()
        .any(|r| r.method == "console:/exchanges/entry" && r.subject == subject));
    assert!(reads.iter().all(|r| r.consumer == "education"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_page_needs_a_session_and_forms_need_their_token() {
    let setup = Setup::start().await;
    for path in [
        "/",
        "/exchanges",
        "/exchanges?procedure=bac-2027",
        "/exchanges/entry?index=0",
        "/elsewhere",
    ] {
        let answer = setup.http(Method::GET, path, None, None).await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{path}");
    }
    let forged = setup
        .http(
            Method::GET,
            "/signin?t=v1.cndp.99999999999.00.00",
            None,
            None,
        )
        .await;
    assert_eq!(forged.status, StatusCode::UNAUTHORIZED);

    let link = setup.link("cndp");
    let token = link.split_once("?t=").unwrap().1;
    let signed = setup
        .http(Method::POST, "/signin", None, Some(&format!("t={token}")))
        .await;
    assert_eq!(signed.status, StatusCode::SEE_OTHER);
    let cookie = signed.headers["set-cookie"].to_str().unwrap().to_owned();
    for flag in ["HttpOnly", "Secure", "SameSite=Strict"] {
        assert!(cookie.contains(flag), "{cookie}");
    }
    let cookie = cookie.split(';').next().unwrap().to_owned();
    let page = setup
        .http(Method::GET, "/exchanges", Some(&cookie), None)
        .await;
    assert_eq!(page.status, StatusCode::OK);
    let csp = page.headers["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    assert!(!page.body.contains("<script>"), "no inline script");

    // The purpose filter: both exchanges were for bac-candidature, none
    // for tax-household.
    let bac = setup
        .http(
            Method::GET,
            "/exchanges?purpose=bac-candidature",
            Some(&cookie),
            None,
        )
        .await;
    assert!(
        bac.body.contains("<td data-label=\"Consumer\">tax</td>"),
        "{}",
        bac.body
    );
    assert!(bac
        .body
        .contains("<td data-label=\"Consumer\">education</td>"));
    let none = setup
        .http(
            Method::GET,
            "/exchanges?purpose=tax-household",
            Some(&cookie),
            None,
        )
        .await;
    assert!(none.body.contains("id=\"none\""), "{}", none.body);

    // More exchanges than a page holds: the next page follows the link.
    let tax = setup.channel("tax").await;
    let body = birth(CITIZEN);
    for _ in 0..30 {
        let refused = call_raw(&tax, RawCall::new(BIRTH, body.clone(), "bac-candidature")).await;
        assert!(refused.is_err());
    }
    let first = setup
        .http(
            Method::GET,
            "/exchanges?agency=tax&outcome=refused",
            Some(&cookie),
            None,
        )
        .await;
    assert_eq!(first.body.matches("class=\"detail\"").count(), 25);
    let older = first
        .body
        .split("id=\"older\" href=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap();
    let next = setup
        .http(
            Method::GET,
            &older.replace("&amp;", "&"),
            Some(&cookie),
            None,
        )
        .await;
    assert_eq!(next.status, StatusCode::OK);
    assert_eq!(
        next.body.matches("class=\"detail\"").count(),
        6,
        "31 refusals of tax in all"
    );
    assert!(!next.body.contains("id=\"older\""));

    // Sign-out without the page's token: refused, the session lives on.
    let refused = setup
        .http(Method::POST, "/signout", Some(&cookie), Some(""))
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    let wrong = setup
        .http(Method::POST, "/signout", Some(&cookie), Some("csrf=00"))
        .await;
    assert_eq!(wrong.status, StatusCode::FORBIDDEN);
    assert_eq!(
        setup
            .http(Method::GET, "/exchanges", Some(&cookie), None)
            .await
            .status,
        StatusCode::OK
    );

    let csrf = page.csrf();
    let out = setup
        .http(
            Method::POST,
            "/signout",
            Some(&cookie),
            Some(&format!("csrf={csrf}")),
        )
        .await;
    assert_eq!(out.status, StatusCode::SEE_OTHER);
    let after = setup
        .http(Method::GET, "/exchanges", Some(&cookie), None)
        .await;
    assert_eq!(after.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_serve_turns_the_console_on_and_prints_how_to_sign_in() {
    let tmp = tempfile::tempdir().unwrap();
    let (demo, dir) = demo_serve(tmp.path());
    let console = wait_for_file(&dir.join("console.addr"), &demo);
    let out = jisr()
        .args(["console", "login", "--config"])
        .arg(dir.join("jisr.toml"))
        .args(["--as", "cndp", "--address", &console])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let link = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let token = link.split_once("?t=").unwrap().1.to_owned();
    let ca = dir.join("pki/ca.crt");
    let form = format!("t={token}");
    let signed = web::console(&console, &ca, Method::POST, "/signin", None, Some(&form)).await;
    assert_eq!(signed.status, StatusCode::SEE_OTHER, "{}", signed.body);
    let cookie = signed.headers["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let page = web::console(
        &console,
        &ca,
        Method::GET,
        "/exchanges",
        Some(&cookie),
        None,
    )
    .await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("<strong id=\"agency\">cndp</strong>"));
    drop(demo);
}
