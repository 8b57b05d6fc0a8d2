//! The citizen page's check of the witnesses, black-box: a gateway with
//! two real `jisr witness` processes, the citizen's entries under a
//! checkpoint both cosigned; the page's own script (headless Chromium)
//! shows each witness's cosignature verified and the 2-of-2 policy met, in
//! Arabic, Tifinagh and French; then one cosignature changed in what the page
//! received: that witness shows failed and the policy unmet, while the
//! entry's own inclusion still verifies; and the same two receipts chosen
//! as files are checked for their witnesses too.

use crate::citizen::labels;
use crate::console::{sign_in, Setup};
use crate::support::browser::Browser;
use crate::support::checkpoints::witnessed_at_least;
use crate::support::*;
use crate::witness::{configure, pki, start, RunningWitness};
use jisr::audit::note::NoteSigner;
use jisr::proto::jisr::audit::v1 as pb;
use pb::audit_client::AuditClient;

/// Each witness's state and the policy's, once the page checked them all.
async fn witness_states(browser: &Browser) -> (Vec<String>, Vec<String>) {
    let script = "const l = Array.from(document.querySelectorAll('ul.witnesses')); \
                  if (l.length === 0 || l.some(e => e.dataset.state !== 'done')) return ''; \
                  const w = Array.from(document.querySelectorAll('ul.witnesses li'), e => e.dataset.witness + '=' + e.dataset.state); \
                  const q = Array.from(document.querySelectorAll('small.quorum'), e => e.dataset.state); \
                  return w.join(',') + '|' + q.join(',');";
    let got = browser.wait_for("every line's witnesses", script).await;
    let (w, q) = got.split_once('|').unwrap();
    let split = |s: &str| s.split(',').map(str::to_owned).collect();
    (split(w), split(q))
}

/// The verdict of every line's own receipt (inclusion and log signature).
async fn line_verdicts(browser: &Browser) -> Vec<String> {
    let script =
        "const s = Array.from(document.querySelectorAll('.receipt-state'), e => e.dataset.state); \
         return s.length > 0 && !s.includes('checking') ? s.join(',') : '';";
    let states = browser.wait_for("every receipt's verdict", script).await;
    states.split(',').map(str::to_owned).collect()
}

fn section(name: &str, w: &RunningWitness, pki: &std::path::Path) -> String {
    format!(
        "\n[[audit.witness]]\nname = \"{name}\"\nurl = \"{}\"\nverifier_key = \"{}\"\nca = \"{}\"\n",
        w.client.url(),
        w.verifier.to_text(),
        pki.join("ca.crt").display()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_checks_each_witness_and_shows_a_tampered_cosignature_failed() {
    let dir = tempfile::tempdir().unwrap();
    let witness_pki = pki(dir.path());
    let signer = NoteSigner::generate(&format!("{DOMAIN}/jisr/gw-1")).unwrap();
    let key = dir.path().join("gateway-audit.key");
    std::fs::write(&key, signer.to_secret_text()).unwrap();
    let mut witnesses = Vec::new();
    for (label, name) in [
        ("cndp", "cndp.ma/witness"),
        ("cour-des-comptes", "courdescomptes.ma/witness"),
    ] {
        let home = dir.path().join(label);
        let config = configure(&home, &witness_pki, name, &[&signer]);
        witnesses.push((label, start(&home, &config, &witness_pki)));
    }
    let mut audit = format!(
        "{}\n[audit]\nsigning_key = \"{}\"\ncheckpoint_interval_ms = 100\nwitness_retry_max_ms = 400\n",
        labels(),
        key.display()
    );
    for (label, w) in &witnesses {
        audit.push_str(&section(label, w, &witness_pki));
    }
    let setup = Setup::start_with(&audit).await;
    let mut audit_api = AuditClient::new(setup.channel("cndp").await);
    witnessed_at_least(&mut audit_api, 2).await;

    let browser = Browser::start_in("ar").await;
    sign_in(&browser, &setup.link("portal")).await;
    browser.goto(&setup.url("/citizen")).await;
    browser.type_into("#f-citizen", CITIZEN).await;
    browser.follow("#show").await;
    assert_eq!(line_verdicts(&browser).await, ["verified", "verified"]);
    let (each, policy) = witness_states(&browser).await;
    let both = ["cndp=verified", "cour-des-comptes=verified"];
    assert_eq!(each, [both, both].concat());
    assert_eq!(policy, ["met", "met"]);
    let said = browser.text("td.receipt").await;
    assert!(said.contains("التوقيع المشترك صحيح"), "{said}");
    assert!(said.contains("مشهود عليه"), "{said}");
    browser.screenshot("citizen-witnesses-ar").await;

    browser.follow("#lang-zgh").await;
    let (each, _) = witness_states(&browser).await;
    assert_eq!(each, [both, both].concat());
    let said = browser.text("td.receipt").await;
    assert!(said.contains("ⴰⵙⵎⴰⵍ ⵉⵜⵜⵓⵙⴼⵇⴷ"), "{said}");
    browser.screenshot("citizen-witnesses-zgh").await;

    browser.follow("#lang-fr").await;
    let (each, policy) = witness_states(&browser).await;
    assert_eq!(each, [both, both].concat());
    assert_eq!(policy, ["met", "met"]);
    let said = browser.text("td.receipt").await;
    assert!(said.contains("cosignature vérifiée"), "{said}");
    browser.screenshot("citizen-witnesses-fr").await;

    let good = receipt_text(&browser).await;

    // One bit of the Court of Accounts' signature flipped in every
    // receipt the page received, then the page checks again.
    let tamper = "for (const d of document.querySelectorAll('.receipt-data')) { \
          const r = JSON.parse(d.textContent); \
          r.checkpoint = r.checkpoint.split('\\n').map((l) => { \
            if (!l.startsWith('\\u2014 courdescomptes.ma/witness ')) return l; \
            const [dash, name, sig] = l.split(' '); \
            const b = Uint8Array.from(atob(sig), (c) => c.charCodeAt(0)); \
            b[b.length - 1] ^= 1; \
            return dash + ' ' + name + ' ' + btoa(String.fromCharCode(...b)); \
          }).join('\\n'); \
          d.textContent = JSON.stringify(r); } \
        document.querySelectorAll('ul.witnesses').forEach((e) => e.dataset.state = 'checking'); \
        window.jisrCheckLines(); return '';";
    browser.execute(tamper).await;
    let (each, policy) = witness_states(&browser).await;
    let one = ["cndp=verified", "cour-des-comptes=failed"];
    assert_eq!(each, [one, one].concat());
    assert_eq!(policy, ["not-met", "not-met"]);
    // The entry's own inclusion, under the log's signature, still holds.
    assert_eq!(line_verdicts(&browser).await, ["verified", "verified"]);
    let said = browser.text("td.receipt").await;
    assert!(said.contains("cosignature NON vérifiée"), "{said}");
    assert!(said.contains("Non témoigné"), "{said}");
    browser.screenshot("citizen-witnesses-tampered-fr").await;

    // The same two receipts as files the citizen picks: the witnesses are
    // checked there too, not only the inclusion.
    let bad = receipt_text(&browser).await;
    for (name, text, expected, met) in [
        (
            "good.json",
            good,
            ["cndp=verified", "cour-des-comptes=verified"],
            "met",
        ),
        ("bad.json", bad, one, "not-met"),
    ] {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        let (each, policy) = file_witnesses(&browser, &path).await;
        assert_eq!(each, expected, "{name}");
        assert_eq!(policy, met, "{name}");
    }
}

/// The first line's receipt as the page holds it.
async fn receipt_text(browser: &Browser) -> String {
    let got = browser
        .execute("return document.querySelector('.receipt-data').textContent;")
        .await;
    got.as_str().unwrap().to_owned()
}

/// Each witness's state and the policy's for the receipt file at `path`,
/// chosen in the page's file field.
async fn file_witnesses(browser: &Browser, path: &std::path::Path) -> (Vec<String>, String) {
    browser
        .execute("document.querySelectorAll('section.check-file ul.witnesses').forEach((e) => e.remove()); return '';")
        .await;
    browser
        .type_into("#receipt-file", path.to_str().unwrap())
        .await;
    let script = "const l = document.querySelector('section.check-file ul.witnesses'); \
                  const q = document.querySelector('section.check-file small.quorum'); \
                  if (!l || l.dataset.state !== 'done' || !q) return ''; \
                  const w = Array.from(l.querySelectorAll('li'), e => e.dataset.witness + '=' + e.dataset.state); \
                  return w.join(',') + '|' + q.dataset.state;";
    let got = browser.wait_for("the file's witnesses", script).await;
    let (w, q) = got.split_once('|').unwrap();
    (w.split(',').map(str::to_owned).collect(), q.to_owned())
}
