//! The Traffic and health page's agencies' certificates, black-box: real
//! certificates issued by the project's PKI with short validities,
//! presented at real handshakes, and the page warning of the one that
//! expires within 30 days.

use crate::console::{sign_in, Setup};
use crate::console_integrity::NOC;
use crate::support::browser::Browser;
use crate::support::*;
use http::{Method, StatusCode};
use jisr::identity::AgencyId;

/// The rows of the certificates table about `agency`.
fn rows<'a>(page: &'a str, agency: &str) -> Vec<&'a str> {
    let table = page
        .split("<table id=\"certificates\">")
        .nth(1)
        .expect("the certificates table")
        .split("</table>")
        .next()
        .unwrap();
    let cell = format!("<td data-label=\"Agency\">{agency}</td>");
    table.split("<tr>").filter(|r| r.contains(&cell)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agency_certificate_expiring_within_30_days_is_warned() {
    let setup = Setup::start_with(NOC).await;
    let issue = |agency: &str, days: i64| {
        let agency = AgencyId::parse(agency).unwrap();
        jisr::tools::pki::issue_agency_for(
            &setup.pki.dir,
            None,
            &agency,
            time::Duration::days(days),
        )
        .unwrap();
    };
    issue("education", 10);
    issue("tax", 365);
    let body = birth(CITIZEN);
    // New channels: each presents the new certificate at its handshake.
    let education = setup.channel("education").await;
    call_raw(
        &education,
        RawCall::new(BIRTH, body.clone(), "bac-candidature"),
    )
    .await
    .unwrap();
    let tax = setup.channel("tax").await;
    let refused = call_raw(&tax, RawCall::new(BIRTH, body, "bac-candidature")).await;
    assert!(refused.is_err(), "tax has no rule for birth records");

    let noc = setup.cookie("noc").await;
    let page = setup.http(Method::GET, "/traffic", Some(&noc), None).await;
    assert_eq!(page.status, StatusCode::OK);
    let education = rows(&page.body, "education");
    assert_eq!(education.len(), 1, "{education:?}");
    assert!(
        education[0].contains("class=\"warn\"")
            && (education[0].contains("expires in 9 day(s)")
                || education[0].contains("expires in 10 day(s)")),
        "{}",
        education[0]
    );
    let tax = rows(&page.body, "tax");
    assert!(
        tax.len() == 1 && tax[0].contains("class=\"ok\"") && tax[0].contains("valid until"),
        "{tax:?}"
    );
    // The provider's server certificate, seen when the node called it.
    let civil = rows(&page.body, "civil-status");
    assert!(
        civil
            .iter()
            .any(|r| r.contains("as a provider") && r.contains("class=\"ok\"")),
        "{civil:?}"
    );
    // An agency the node never saw is said to be so.
    assert!(rows(&page.body, "health")[0].contains("not seen since this node started"));

    // As the operator sees it: the warning stands out in the page.
    let browser = Browser::start().await;
    sign_in(&browser, &setup.link("noc")).await;
    browser.goto(&setup.url("/traffic")).await;
    let warned = browser
        .execute(
            "const t = document.getElementById('certificates'); t.scrollIntoView(); \
             return Array.from(t.querySelectorAll('.warn'), e => e.textContent).join('|');",
        )
        .await;
    assert!(
        warned.as_str().is_some_and(|w| w.contains("expires in")),
        "{warned}"
    );
    browser.screenshot("traffic-certificates").await;
}
