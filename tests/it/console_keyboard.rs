//! The console by keyboard alone, in a real browser: from the page's top,
//! Tab reaches the search form, Enter searches, Tab reaches an entry's
//! link, Enter opens it and the browser verifies it; every element that
//! takes the focus shows it (the outline the style sheet draws).

use crate::console::{sign_in, Setup};
use crate::support::browser::{Browser, ENTER, TAB};

/// Presses Tab until the focused element matches `css`, and returns how
/// many presses that took; fails after `limit` presses. Each element the
/// focus passes through must show it.
async fn tab_to(browser: &Browser, css: &str, limit: usize) -> usize {
    let check = format!(
        "const e = document.activeElement; \
         if (e === document.body) return 'body'; \
         const o = getComputedStyle(e).outlineStyle; \
         return (e.matches('{css}') ? 'there' : 'on') + ':' + o + ':' + e.outerHTML.slice(0, 80);"
    );
    for presses in 1..=limit {
        browser.press(TAB).await;
        let at = browser.execute(&check).await;
        let at = at.as_str().unwrap_or_default().to_owned();
        if at == "body" {
            continue;
        }
        let (place, rest) = at.split_once(':').unwrap();
        let (outline, element) = rest.split_once(':').unwrap();
        assert_ne!(outline, "none", "the focus is not shown on {element}");
        if place == "there" {
            return presses;
        }
    }
    panic!("`{css}` not reached within {limit} Tab presses");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_auditor_searches_and_opens_an_entry_by_keyboard_alone() {
    let setup = Setup::start().await;
    let browser = Browser::start().await;
    sign_in(&browser, &setup.link("cndp")).await;
    browser.goto(&setup.url("/exchanges")).await;

    tab_to(&browser, "#f-procedure", 40).await;
    browser.press("bac-2027").await;
    tab_to(&browser, "#search", 40).await;
    browser
        .execute("document.documentElement.dataset.left = 'yes'; return '';")
        .await;
    browser.press(ENTER).await;
    browser
        .wait_for(
            "the results after Enter",
            "return !document.documentElement.dataset.left && document.getElementById('results') \
             ? document.getElementById('results').textContent : '';",
        )
        .await;
    let results = browser.text("#results").await;
    assert!(
        results.contains("bac-2027") && !results.contains("tax"),
        "{results}"
    );

    tab_to(&browser, "a.detail", 80).await;
    browser.press(ENTER).await;
    browser
        .wait_for(
            "the entry after Enter",
            "return location.pathname === '/exchanges/entry' ? 'yes' : '';",
        )
        .await;
    assert_eq!(browser.verdict().await, "verified");
    browser.screenshot("entry-by-keyboard").await;
}
