//! The citizen's page, black-box: the portal signed in to a real gateway's
//! console asks for one citizen in a real headless Chromium, in each of the
//! portal's five languages. Screenshots go to `target/console-shots/`.

use crate::console::{sign_in, Setup};
use crate::support::browser::Browser;
use crate::support::*;
use http::{Method, StatusCode};

pub(crate) const OTHER: &str = "CD654321";

/// Each language: its code, `dir`, education's name, the purpose's label,
/// a word of the page's own (the "Why" heading).
const LANGUAGES: [(&str, &str, &str, &str, &str); 5] = [
    (
        "ar",
        "rtl",
        "وزارة التربية الوطنية",
        "الترشح للبكالوريا",
        "لماذا",
    ),
    (
        "zgh",
        "ltr",
        "ⵜⴰⵎⴰⵡⴰⵙⵜ ⵏ ⵓⵙⴳⵎⵉ",
        "ⴰⵙⵓⵜⵍ ⵏ ⵓⴱⴰⴽⴰⵍⵓⵕⵢⴰ",
        "ⵎⴰⵅ",
    ),
    (
        "fr",
        "ltr",
        "Éducation nationale",
        "Candidature au baccalauréat",
        "Pourquoi",
    ),
    (
        "en",
        "ltr",
        "Ministry of Education",
        "Baccalauréat application",
        "Why",
    ),
    (
        "es",
        "ltr",
        "Ministerio de Educación",
        "Candidatura al bachillerato",
        "Por qué",
    ),
];

/// Each language's verdict on a receipt checked by the page, in
/// [`LANGUAGES`] order.
const VERIFIED: [&str; 5] = ["تم التحقق", "ⵉⵜⵜⵓⵙⴼⵇⴷ", "Vérifié", "Verified", "Verificado"];

/// `[labels]` for the test network: education and the purpose in all five
/// languages, procedure bac-2027 in French only (a missing label falls back
/// to the code).
pub(crate) fn labels() -> String {
    let mut names = String::from("\n[labels.agency.education]\n");
    let mut purpose = String::from("\n[labels.purpose.bac-candidature]\n");
    for (lang, _, name, label, _) in LANGUAGES {
        names.push_str(&format!("{lang} = \"{name}\"\n"));
        purpose.push_str(&format!(
            "{lang} = {{ label = \"{label}\", explain = \"({lang}) why the ministry asks.\" }}\n"
        ));
    }
    format!(
        "{names}{purpose}\n[labels.procedure.bac-2027]\n\
         fr = {{ label = \"Baccalauréat 2027\", explain = \"La session 2027.\" }}\n"
    )
}

/// The setup of the console tests (education's allowed call about
/// CITIZEN for bac-2027, tax's refused one), with labels, and one call
/// about OTHER for procedure bac-2028 that CITIZEN's page must not show.
pub(crate) async fn start() -> Setup {
    let setup = Setup::start_with(&labels()).await;
    let body = birth(OTHER);
    let education = setup.channel("education").await;
    let call = RawCall::new(BIRTH, body, "bac-candidature").with("jisr-procedure", "bac-2028");
    call_raw(&education, call).await.unwrap();
    setup.checkpoint_at_least(3).await;
    setup
}

/// The page's `<html lang dir>`.
async fn lang_dir(browser: &Browser) -> (String, String) {
    let v = browser
        .execute("const h = document.documentElement; return [h.lang, h.dir];")
        .await;
    (
        v[0].as_str().unwrap().to_owned(),
        v[1].as_str().unwrap().to_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_portal_reads_a_citizens_history_in_five_languages() {
    let setup = start().await;
    let browser = Browser::start_in("fr-FR,fr;q=0.9,en;q=0.5").await;
    sign_in(&browser, &setup.link("portal")).await;
    browser.goto(&setup.url("/citizen")).await;
    browser.type_into("#f-citizen", CITIZEN).await;
    browser.follow("#show").await;
    // Accept-Language chose French.
    assert_eq!(lang_dir(&browser).await, ("fr".into(), "ltr".into()));
    let history = browser.text("#history").await;
    for expected in [
        "Éducation nationale",
        "Candidature au baccalauréat",
        "Baccalauréat 2027",
        "état civil",
        "Loi 55-19",
        "Accordé",
    ] {
        assert!(history.contains(expected), "{expected} in {history}");
    }
    assert!(
        !history.contains("bac-2028"),
        "another citizen's exchange: {history}"
    );
    for ((lang, dir, name, purpose, why), verified) in LANGUAGES.into_iter().zip(VERIFIED) {
        browser.click(&format!("#lang-{lang}")).await;
        browser
            .wait_for(
                "the page in its language",
                &format!("return document.documentElement.lang === '{lang}' ? 'yes' : '';"),
            )
            .await;
        assert_eq!(lang_dir(&browser).await, (lang.into(), dir.into()));
        let history = browser.text("#history").await;
        for expected in [name, purpose, why] {
            assert!(
                history.contains(expected),
                "{lang}: {expected} in {history}"
            );
        }
        assert!(!browser.url().await.contains(CITIZEN), "no id in the URL");
        let verdict = browser
            .wait_for(
                "the first receipt's verdict",
                "const s = document.querySelector('.receipt-state'); \
                 return s && s.dataset.state !== 'checking' ? s.dataset.state + ':' + s.textContent : '';",
            )
            .await;
        assert!(
            verdict.starts_with(&format!("verified:{verified}")),
            "{lang}: {verdict}"
        );
        browser.screenshot(&format!("citizen-{lang}")).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tifinagh_is_drawn_with_glyphs_not_boxes() {
    let setup = start().await;
    let browser = Browser::start_in("zgh").await;
    sign_in(&browser, &setup.link("portal")).await;
    browser.goto(&setup.url("/citizen")).await;
    browser.type_into("#f-citizen", CITIZEN).await;
    browser.follow("#show").await;
    assert_eq!(lang_dir(&browser).await, ("zgh".into(), "ltr".into()));
    // Each character drawn on a canvas with the page's own font: a font
    // without Tifinagh draws every letter as the same box (.notdef), the
    // box an unassigned code point (U+FFFF) gets; real glyphs differ.
    let drawn = browser
        .execute(
            "const font = getComputedStyle(document.body).fontFamily; \
             const draw = s => { const c = document.createElement('canvas'); c.width = 64; c.height = 64; \
               const x = c.getContext('2d'); x.font = '40px ' + font; x.fillText(s, 8, 48); \
               return Array.from(x.getImageData(0, 0, 64, 64).data).join(','); }; \
             const [thin, wide, none] = ['\u{2D49}', '\u{2D4E}', '\u{FFFF}'].map(draw); \
             return [thin !== wide, thin !== none && wide !== none, font];",
        )
        .await;
    assert!(
        drawn[2].as_str().unwrap().contains("DejaVu Sans"),
        "the page names the font: {drawn}"
    );
    assert_eq!(drawn[0], true, "ⵉ and ⵎ drawn alike (boxes): {drawn}");
    assert_eq!(
        drawn[1], true,
        "Tifinagh drawn as the missing-glyph box: {drawn}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_portal_reads_a_citizen_and_never_another_citizen() {
    let setup = start().await;
    let form = format!("citizen={CITIZEN}");
    let anonymous = setup
        .http(Method::POST, "/citizen", None, Some(&form))
        .await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    for agency in ["education", "cndp"] {
        let (cookie, csrf) = setup.session(agency, "/exchanges").await;
        let form = format!("csrf={csrf}&citizen={CITIZEN}");
        for path in ["/citizen", "/citizen.json"] {
            let answer = setup
                .http(Method::POST, path, Some(&cookie), Some(&form))
                .await;
            assert_eq!(answer.status, StatusCode::FORBIDDEN, "{agency} {path}");
            assert!(answer.body.contains("consent-manager"), "{}", answer.body);
        }
    }
    let (cookie, csrf) = setup.session("portal", "/exchanges").await;
    let without_token = setup
        .http(Method::POST, "/citizen.json", Some(&cookie), Some(&form))
        .await;
    assert_eq!(without_token.status, StatusCode::FORBIDDEN);
    let json = setup
        .http(
            Method::POST,
            "/citizen.json",
            Some(&cookie),
            Some(&format!("csrf={csrf}&citizen={CITIZEN}&lang=en")),
        )
        .await;
    assert_eq!(json.status, StatusCode::OK, "{}", json.body);
    let answer: serde_json::Value = serde_json::from_str(&json.body).unwrap();
    assert_eq!(answer["lang"], "en");
    let entries = answer["entries"].as_array().unwrap();
    let procedures: Vec<_> = entries
        .iter()
        .filter_map(|e| e["procedure"]["code"].as_str())
        .collect();
    assert!(procedures.contains(&"bac-2027"), "{answer}");
    assert!(
        !procedures.contains(&"bac-2028"),
        "another citizen's: {answer}"
    );
    let allowed = entries.iter().find(|e| e["outcome"] == "Allowed").unwrap();
    assert_eq!(allowed["asked_by"], "Ministry of Education");
    assert_eq!(allowed["data_of_id"], "civil-status");
    assert_eq!(allowed["category"], "civil status");
    assert_eq!(allowed["purpose"]["label"], "Baccalauréat application");
    // No French-only procedure label in English: the code stands in.
    assert_eq!(allowed["procedure"]["label"], "bac-2027");
    assert_eq!(allowed["basis"], "Law 55-19");
    assert!(!json.body.contains(CITIZEN), "the id is not echoed");
    // The other citizen's history holds the bac-2028 call only.
    let other = setup
        .http(
            Method::POST,
            "/citizen.json",
            Some(&cookie),
            Some(&format!("csrf={csrf}&citizen={OTHER}")),
        )
        .await;
    let other: serde_json::Value = serde_json::from_str(&other.body).unwrap();
    let codes: Vec<_> = other["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            e["procedure"]["code"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    assert_eq!(codes, ["bac-2028"], "{other}");
}
