//! The citizen page's HTML: the language switcher, the history table (a
//! row per exchange, with its receipt for the page's script to check and
//! offer for download) and the field that checks a receipt file.

use super::words::{self, Words};
use super::Line;
use crate::console::html::esc;
use crate::console::routes::Who;
use crate::proto::jisr::audit::v1 as pb;
use std::fmt::Write as _;

/// The language switcher: a form per language re-posting the citizen, so
/// that the id stays out of the URL.
pub(super) fn switcher(who: &Who, citizen: &str, current: &Words) -> String {
    let mut s = String::from("<nav class=\"langs\" aria-label=\"Language\">");
    for w in words::ALL {
        let pressed = if w.lang == current.lang {
            " aria-pressed=\"true\""
        } else {
            ""
        };
        let _ = write!(
            s,
            "<form method=\"post\" action=\"/citizen\" class=\"inline\">\
             <input type=\"hidden\" name=\"csrf\" value=\"{}\">\
             <input type=\"hidden\" name=\"citizen\" value=\"{}\">\
             <input type=\"hidden\" name=\"lang\" value=\"{}\">\
             <button type=\"submit\" id=\"lang-{}\" lang=\"{}\"{pressed}>{}</button></form>",
            esc(&who.session.csrf),
            esc(citizen),
            w.lang,
            w.lang,
            w.lang,
            esc(w.name)
        );
    }
    s.push_str("</nav>");
    s
}

/// The history's table, or the sentence saying there is none, and the
/// notice of a partial history when some node did not answer: an empty
/// history may be empty only for want of that node's entries.
pub(super) fn table(w: &Words, lines: &[Line], answer: &pb::QueryResponse) -> String {
    let mut t = if lines.is_empty() {
        format!("<p id=\"none\">{}</p>", esc(w.none))
    } else {
        rows(w, lines)
    };
    if !answer.missing.is_empty() {
        let nodes: Vec<_> = answer.missing.iter().map(|m| m.node.as_str()).collect();
        let text = w.partial.replace("{nodes}", &nodes.join(", "));
        let _ = write!(
            t,
            "<p class=\"warn\" id=\"partial\" role=\"status\">{}</p>",
            esc(&text)
        );
    }
    t
}

fn rows(w: &Words, lines: &[Line]) -> String {
    let r = &w.receipt;
    // The script's words, in the page's language.
    let mut t = format!(
        "<table id=\"history\" data-checking=\"{}\" data-verified=\"{}\" data-not-verified=\"{}\" \
         data-witnesses=\"{}\" data-cosigned=\"{}\" data-cosignature-bad=\"{}\" data-no-cosignature=\"{}\" \
         data-quorum-met=\"{}\" data-quorum-not-met=\"{}\">\
         <thead><tr><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th></tr></thead><tbody>",
        esc(r.checking), esc(r.verified), esc(r.not_verified),
        esc(r.witnesses), esc(r.cosigned), esc(r.cosignature_bad), esc(r.no_cosignature),
        esc(r.quorum_met), esc(r.quorum_not_met),
        esc(w.when), esc(w.who), esc(w.data), esc(w.why), esc(w.basis), esc(w.outcome), esc(r.heading)
    );
    for l in lines {
        let _ = write!(
            t,
            "<tr data-kind=\"{}\"><td data-label=\"{}\">{}</td><td data-label=\"{}\">{}</td><td data-label=\"{}\">{} · {}</td>\
             <td data-label=\"{}\">{}</td><td data-label=\"{}\">{}</td><td data-label=\"{}\">{}</td>\
             <td data-label=\"{}\" class=\"receipt\">{}</td></tr>",
            l.kind, esc(w.when), when(w, l), esc(w.who), asked_by(w, l), esc(w.data), esc(&l.data_of),
            esc(&l.category), esc(w.why), why(l), esc(w.basis), basis(l), esc(w.outcome), esc(&l.outcome),
            esc(r.heading), receipt_cell(w, l),
        );
    }
    t.push_str("</tbody></table>");
    t
}

/// When, and under an exchange whose disclosure was deferred, since when
/// it is shown.
fn when(w: &Words, l: &Line) -> String {
    match &l.disclosed_from {
        Some(date) => format!(
            "{}<br><small class=\"deferred\">{}</small>",
            esc(&l.when),
            esc(&w.deferred.replace("{date}", date))
        ),
        None => esc(&l.when),
    }
}

/// The agency that asked, and its official's reference when given.
fn asked_by(w: &Words, l: &Line) -> String {
    if l.official.is_empty() {
        return esc(&l.asked_by);
    }
    format!(
        "{}<br><small class=\"official\">{}: {}</small>",
        esc(&l.asked_by),
        esc(w.official),
        esc(&l.official)
    )
}

/// The purpose, and the procedure when given, each with its explanation.
fn why(l: &Line) -> String {
    let mut why = format!(
        "<strong>{}</strong><br><small>{}</small>",
        esc(&l.purpose.label),
        esc(&l.purpose.explain)
    );
    if let Some(p) = &l.procedure {
        let _ = write!(
            why,
            "<br><strong>{}</strong><br><small>{}</small>",
            esc(&p.label),
            esc(&p.explain)
        );
    }
    why
}

/// The law, or the consent (linked to the portal's page of it when
/// `[labels] consent_link` is set).
fn basis(l: &Line) -> String {
    match &l.consent {
        Some(super::Consent {
            link: Some(link), ..
        }) => format!(
            "<a class=\"consent\" href=\"{}\">{}</a>",
            esc(link),
            esc(&l.basis)
        ),
        // A call refused before its rule was found rested on nothing.
        _ if l.basis.is_empty() => "—".to_owned(),
        _ => esc(&l.basis),
    }
}

/// The receipt's data block, its state (set by the page's script) and
/// its download link (made by the script from the same data).
fn receipt_cell(w: &Words, l: &Line) -> String {
    let Some(receipt) = &l.receipt else {
        return format!(
            "<small class=\"pending\">{}</small>",
            esc(w.receipt.pending)
        );
    };
    // `<` escaped so that no value can end the data block early.
    let json = receipt.to_string().replace('<', "\\u003c");
    format!(
        "<span class=\"receipt-state\" data-state=\"checking\" role=\"status\">{}</span><br>\
         <a class=\"receipt-file\" download=\"receipt-{}-{}.json\">{}</a>\
         <script type=\"application/json\" class=\"receipt-data\">{json}</script>",
        esc(w.receipt.checking),
        esc(&l.node),
        l.index,
        esc(w.receipt.download),
    )
}

/// A field checking a receipt file the citizen has (one downloaded here
/// earlier, or sent to them), in the browser.
pub(super) fn check_file(w: &Words) -> String {
    format!(
        "<section class=\"check-file\"><label>{}<input type=\"file\" id=\"receipt-file\" accept=\".json,application/json\"></label>\
         <p id=\"file-verdict\" data-state=\"none\" role=\"status\"></p></section>",
        esc(w.receipt.check_file)
    )
}

/// The witnesses the gateway knows (`[[audit.witness]]`: each label and
/// cosignature verifier key) and the quorum: what the page's script checks
/// each receipt's cosignatures against (also in the JSON history).
pub(super) fn known_witnesses(config: &crate::config::Witnessing) -> serde_json::Value {
    serde_json::json!({
        "quorum": config.quorum,
        "witnesses": config.witnesses.iter().map(|w| serde_json::json!({
            "name": w.name,
            "verifier_key": w.verifier_key,
        })).collect::<Vec<_>>(),
    })
}

/// [`known_witnesses`] as the page's data block; empty without witnesses.
pub(super) fn witnesses(config: &crate::config::Witnessing) -> String {
    if config.witnesses.is_empty() {
        return String::new();
    }
    // `<` escaped so that no value can end the data block early.
    let json = known_witnesses(config).to_string().replace('<', "\\u003c");
    format!("<script type=\"application/json\" id=\"witnesses\">{json}</script>")
}
