//! The citizen's page ("who looked at my data"): one citizen's access
//! history as the portal embeds it, in the portal's five languages, as
//! HTML (`POST /citizen`) or JSON (`POST /citizen.json`).
//!
//! Only an agency with the `consent-manager` role (the portal) signed in to
//! the console may ask, and it names the citizen in a POSTed form, never in
//! a URL. The history is read through the audit API's `CitizenHistory` as
//! the portal, so it covers every replica and applies the API's rules.

mod page;
mod receipt;
#[cfg(test)]
mod tests;
mod words;

use super::exchanges::{as_caller, refused};
use super::html::{self, esc, Reply};
use super::record::{self, Read};
use super::routes::{value, Who};
use super::Console;
use crate::config::{Labels, Role};
use crate::proto::jisr::audit::v1 as pb;
use http::StatusCode;
use pb::audit_server::Audit as _;
use words::Words;

/// Entries shown (the newest); the page says when there are more.
const PAGE: u32 = 200;

/// One line of the history, in one language.
#[derive(Debug, serde::Serialize)]
struct Line {
    /// What the entry records (`EXCHANGE`, `CONSOLE_READ` when an auditor
    /// opened one of the citizen's entries in the console, …), so a reader
    /// of the page or its JSON tells the two apart without parsing text.
    kind: &'static str,
    when: String,
    time_unix_micros: i64,
    asked_by: String,
    asked_by_id: String,
    official: String,
    data_of: String,
    data_of_id: String,
    category: String,
    purpose: Label,
    procedure: Option<Label>,
    /// The basis as the citizen reads it: the law, or their consent.
    basis: String,
    /// The law's reference (`55-19`), when the basis is a law.
    law: Option<String>,
    /// The consent the exchange used, when it used one.
    consent: Option<Consent>,
    outcome: String,
    /// Deferred disclosure: when the exchange was first shown to the
    /// citizen, in the page's language (`null` when shown at once).
    disclosed_from: Option<String>,
    node: String,
    index: u64,
    /// The receipt file (see `receipt.rs`); `null` while the entry is not
    /// yet under a signed checkpoint.
    receipt: Option<serde_json::Value>,
}

/// The consent an exchange used, and where the portal shows it.
#[derive(Debug, serde::Serialize)]
struct Consent {
    id: String,
    /// `[labels] consent_link` with the id in it; `None` when not set.
    link: Option<String>,
}

/// A code with its label and explanation in the page's language.
#[derive(Debug, serde::Serialize)]
struct Label {
    code: String,
    label: String,
    explain: String,
}

/// The portal's refusal, unless the signed-in agency is the portal.
fn portal_only(who: &Who) -> Option<Reply> {
    (!who.roles.contains(&Role::ConsentManager)).then(|| {
        html::refused(
            StatusCode::FORBIDDEN,
            "Refused",
            "A citizen's page is shown only to the citizen portal (an agency with the `consent-manager` role).",
            "Sign in as the portal's agency; auditors use the Exchanges page.",
        )
    })
}

/// GET /citizen: the portal's form asking for one citizen.
pub(super) fn ask(who: &Who) -> Reply {
    if let Some(refusal) = portal_only(who) {
        return refusal;
    }
    let words = words::choose(None, &who.accept_language);
    let roles = who.role_names();
    let main = format!(
        "<form method=\"post\" action=\"/citizen\" class=\"search\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{}\">\
         <label>Citizen id<input type=\"text\" name=\"citizen\" id=\"f-citizen\" autocomplete=\"off\"></label>\
         <button type=\"submit\" id=\"show\">{}</button></form>",
        esc(&who.session.csrf),
        esc(words.title)
    );
    html::reply(
        StatusCode::OK,
        html::page_in(
            (words.lang, words.dir),
            words.title,
            Some(who.header(&roles)),
            &main,
            &[],
        ),
    )
}

/// POST /citizen (`json` false) or /citizen.json: the citizen's history.
pub(super) async fn history(
    console: &Console,
    who: &Who,
    form: &[(String, String)],
    json: bool,
) -> Reply {
    if let Some(refusal) = portal_only(who) {
        return refusal;
    }
    let Some(citizen) = value(form, "citizen") else {
        return html::refused(
            StatusCode::BAD_REQUEST,
            "Refused",
            "The form names no citizen.",
            "Post the citizen's id in the `citizen` field.",
        );
    };
    let words = words::choose(value(form, "lang").as_deref(), &who.accept_language);
    let request = pb::CitizenHistoryRequest {
        citizen_id: citizen.clone(),
        page_size: PAGE,
        page_token: String::new(),
    };
    let answer = match console
        .backend
        .audit()
        .citizen_history(as_caller(who, request))
        .await
    {
        Ok(answer) => answer.into_inner(),
        Err(status) => return refused(&status),
    };
    let read = Read {
        page: "console:/citizen",
        ..Read::default()
    };
    if let Err(reply) = record::reading(&console.recorder, &who.session.agency, read).await {
        return reply;
    }
    let labels = console.backend.labels();
    let receipts = receipt::receipts(console, who, &citizen, &answer.entries).await;
    let lines: Vec<Line> = answer
        .entries
        .iter()
        .zip(receipts)
        .filter_map(|(e, receipt)| line(console, &labels, words, e, receipt))
        .collect();
    let witnessing = console.backend.config().audit.witnessing;
    let view = View {
        citizen: &citizen,
        words,
        lines: &lines,
        answer: &answer,
        witnessing: &witnessing,
    };
    render(who, &view, json)
}

/// What the history shows.
struct View<'a> {
    citizen: &'a str,
    words: &'a Words,
    lines: &'a [Line],
    answer: &'a pb::QueryResponse,
    witnessing: &'a crate::config::Witnessing,
}

/// The history as JSON (`json`) or as the page.
fn render(who: &Who, view: &View<'_>, json: bool) -> Reply {
    let View {
        citizen,
        words,
        lines,
        answer,
        witnessing,
    } = *view;
    if json {
        let body = serde_json::json!({
            "lang": words.lang,
            "entries": lines,
            "more": !answer.next_page_token.is_empty(),
            "missing_nodes": answer.missing.iter().map(|m| m.node.as_str()).collect::<Vec<_>>(),
            "witnesses": page::known_witnesses(witnessing),
        });
        return html::json(StatusCode::OK, body.to_string());
    }
    let roles = who.role_names();
    let main = format!(
        "{}<p class=\"hint\">{}</p>{}{}{}",
        page::switcher(who, citizen, words),
        esc(words.intro),
        page::table(words, lines, answer),
        page::witnesses(witnessing),
        page::check_file(words),
    );
    html::reply(
        StatusCode::OK,
        html::page_in(
            (words.lang, words.dir),
            words.title,
            Some(who.header(&roles)),
            &main,
            &["verify.js", "citizen.js"],
        ),
    )
}

fn line(
    console: &Console,
    labels: &Labels,
    w: &Words,
    e: &pb::Entry,
    receipt: Option<serde_json::Value>,
) -> Option<Line> {
    let r = e.record.as_ref()?;
    let name = |id: &str| {
        labels
            .agencies
            .get(id)
            .and_then(|n| n.get(w.lang))
            .map_or_else(|| id.to_owned(), Clone::clone)
    };
    let text = |map: &std::collections::BTreeMap<
        String,
        std::collections::BTreeMap<String, crate::config::Text>,
    >,
                code: &str| {
        let t = map.get(code).and_then(|t| t.get(w.lang));
        Label {
            code: code.to_owned(),
            label: t.map_or_else(|| code.to_owned(), |t| t.label.clone()),
            explain: t.map(|t| t.explain.clone()).unwrap_or_default(),
        }
    };
    let law = r.basis.strip_prefix("law:").map(str::to_owned);
    let consent = (!r.consent_id.is_empty()).then(|| Consent {
        id: r.consent_id.clone(),
        link: labels
            .consent_link
            .as_ref()
            .map(|l| l.replace("{consent}", &url_part(&r.consent_id))),
    });
    let basis = match (&consent, &law) {
        (Some(c), _) => format!("{} ({})", w.consent, c.id),
        (None, Some(law)) => format!("{} {law}", w.law),
        (None, None) => r.basis.clone(),
    };
    let outcome = match pb::Outcome::try_from(r.outcome) {
        Ok(pb::Outcome::Allowed) => w.outcomes[0],
        Ok(pb::Outcome::Refused) => w.outcomes[1],
        _ => w.outcomes[2],
    };
    Some(Line {
        kind: pb::Kind::try_from(r.kind).map_or("KIND_UNSPECIFIED", |k| k.as_str_name()),
        when: w.date(r.time_unix_micros),
        time_unix_micros: r.time_unix_micros,
        asked_by: name(&r.consumer),
        asked_by_id: r.consumer.clone(),
        official: r.official.clone(),
        data_of: name(&r.provider),
        data_of_id: r.provider.clone(),
        category: w.category(console.backend.category(&r.method)).to_owned(),
        purpose: text(&labels.purposes, &r.purpose),
        procedure: (!r.procedure.is_empty()).then(|| text(&labels.procedures, &r.procedure)),
        basis,
        law,
        consent,
        outcome: outcome.to_owned(),
        disclosed_from: (r.disclose_from_unix_micros != 0)
            .then(|| w.date(r.disclose_from_unix_micros)),
        node: e.node.clone(),
        index: e.index,
        receipt,
    })
}

/// `text` percent-encoded for a URL's path or query.
fn url_part(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes()).collect()
}
