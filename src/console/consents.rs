//! Consents: a citizen's consents, read and revoked through the Consents
//! API itself as the signed-in agency, so its role checks apply: the
//! portal (`consent-manager`) and auditors list them, only the portal
//! revokes. The citizen's identifier is posted (never in a URL), and a
//! listing is a `CONSOLE_READ` entry with the citizen's pseudonym.
//! Revoking asks for confirmation first; the API writes the revocation's
//! own audit entry.

use super::exchanges::{as_caller, refused, when};
use super::html::{self, esc, Reply};
use super::record::{self, Read};
use super::routes::{value, Who};
use super::Console;
use crate::config::Role;
use crate::proto::jisr::consent::v1 as pb;
use http::StatusCode;
use pb::consents_server::Consents as _;
use std::fmt::Write as _;

/// The form asking for a citizen (GET /consents and atop every listing).
fn ask_form(csrf: &str, citizen: &str) -> String {
    format!(
        "<form method=\"post\" action=\"/consents\" class=\"search\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{}\">\
         <label>Citizen identifier<input type=\"text\" name=\"citizen\" id=\"f-citizen\" autocomplete=\"off\" value=\"{}\" required></label>\
         <button type=\"submit\" id=\"list\">Show consents</button></form>\
         <p class=\"hint\">The identifier is sent in the form, never in the address, and this reading is written to the audit log.</p>",
        esc(csrf),
        esc(citizen)
    )
}

fn page(who: &Who, status: StatusCode, main: &str) -> Reply {
    let roles = who.role_names();
    html::reply(
        status,
        html::page("Consents", Some(who.header(&roles)), main, &[]),
    )
}

/// GET /consents.
pub(super) fn ask(who: &Who) -> Reply {
    page(who, StatusCode::OK, &ask_form(&who.session.csrf, ""))
}

/// POST /consents: the citizen's consents.
pub(super) async fn list(console: &Console, who: &Who, form: &[(String, String)]) -> Reply {
    let Some(citizen) = value(form, "citizen") else {
        let main = format!(
            "{}<p class=\"refused\" id=\"refusal\">Enter the citizen's identifier.</p>",
            ask_form(&who.session.csrf, "")
        );
        return page(who, StatusCode::BAD_REQUEST, &main);
    };
    let request = pb::ListBySubjectRequest {
        subject: citizen.clone(),
    };
    let consents = match console
        .backend
        .consents()
        .list_by_subject(as_caller(who, request))
        .await
    {
        Ok(answer) => answer.into_inner().consents,
        Err(status) => return refused(&status),
    };
    let subject = console.recorder.pseudonyms.pseudonym(&citizen);
    let read = Read {
        page: "console:/consents",
        subject: &subject,
        ..Read::default()
    };
    if let Err(reply) = record::reading(&console.recorder, &who.session.agency, read).await {
        return reply;
    }
    let manager = who.roles.contains(&Role::ConsentManager);
    let main = format!(
        "{}{}",
        ask_form(&who.session.csrf, &citizen),
        table(&consents, manager.then_some(who.session.csrf.as_str()))
    );
    page(who, StatusCode::OK, &main)
}

fn status_name(c: &pb::SignedConsent) -> &'static str {
    match pb::Status::try_from(c.status) {
        Ok(pb::Status::Active) => "active",
        Ok(pb::Status::Revoked) => "revoked",
        Ok(pb::Status::Expired) => "expired",
        Ok(pb::Status::Exhausted) => "used up",
        _ => "unknown",
    }
}

/// The consents; with `csrf` (the portal), a Revoke button on active ones.
fn table(consents: &[pb::SignedConsent], csrf: Option<&str>) -> String {
    if consents.is_empty() {
        return "<p id=\"none\">This citizen has no consent.</p>".into();
    }
    let mut t = String::from(
        "<table id=\"consents\"><thead><tr><th>Consent</th><th>Consumer</th><th>Covers</th><th>Purpose</th>\
         <th>Valid</th><th>Uses</th><th>State</th><th></th></tr></thead><tbody>",
    );
    for c in consents {
        let Some(d) = &c.decoded else { continue };
        let mut covers = d.methods.clone();
        covers.extend(d.categories.iter().map(|k| format!("category {k}")));
        let uses = if d.max_uses == 0 {
            format!("{} (no limit)", c.uses)
        } else {
            format!("{} of {}", c.uses, d.max_uses)
        };
        let action = match csrf {
            Some(csrf) if c.status == pb::Status::Active as i32 => format!(
                "<form method=\"post\" action=\"/consents/revoke\" class=\"inline\">\
                 <input type=\"hidden\" name=\"csrf\" value=\"{}\"><input type=\"hidden\" name=\"id\" value=\"{}\">\
                 <button type=\"submit\" class=\"revoke\">Revoke…</button></form>",
                esc(csrf),
                esc(&d.id)
            ),
            _ => String::new(),
        };
        let _ = write!(
            t,
            "<tr data-consent=\"{}\"><td data-label=\"Consent\">{}</td><td data-label=\"Consumer\">{}</td>\
             <td data-label=\"Covers\">{}</td><td data-label=\"Purpose\">{} {}</td>\
             <td data-label=\"Valid\">{} – {}</td><td data-label=\"Uses\">{}</td>\
             <td data-label=\"State\" class=\"state\">{}</td><td>{action}</td></tr>",
            esc(&d.id),
            esc(&d.id),
            esc(&d.consumer),
            esc(&covers.join(", ")),
            esc(&d.purpose),
            esc(&d.procedure),
            esc(&when(d.not_before_unix_micros)),
            esc(&when(d.not_after_unix_micros)),
            esc(&uses),
            status_name(c),
        );
    }
    t.push_str("</tbody></table>");
    t
}

/// POST /consents/revoke: without `confirm`, asks; with it, revokes.
pub(super) async fn revoke(console: &Console, who: &Who, form: &[(String, String)]) -> Reply {
    let Some(id) = value(form, "id") else {
        return html::refused(
            StatusCode::BAD_REQUEST,
            "Not revoked",
            "The form named no consent.",
            "Go back to the Consents page and choose one.",
        );
    };
    let service = console.backend.consents();
    if value(form, "confirm").as_deref() != Some("yes") {
        // Read it first: the API's own check refuses an agency that may not
        // read consents before anything is shown.
        let consent = match service
            .get(as_caller(who, pb::GetRequest { id: id.clone() }))
            .await
        {
            Ok(c) => c.into_inner(),
            Err(status) => return refused(&status),
        };
        let d = consent.decoded.unwrap_or_default();
        let main = format!(
            "<p id=\"confirm-text\">Revoke consent <strong>{}</strong> given to <strong>{}</strong> for {}? \
             Calls relying on it are refused from now on, on every node. This cannot be undone.</p>\
             <form method=\"post\" action=\"/consents/revoke\">\
             <input type=\"hidden\" name=\"csrf\" value=\"{}\"><input type=\"hidden\" name=\"id\" value=\"{}\">\
             <input type=\"hidden\" name=\"confirm\" value=\"yes\">\
             <button type=\"submit\" id=\"confirm\">Revoke</button> <a href=\"/consents\">Cancel</a></form>",
            esc(&d.id),
            esc(&d.consumer),
            esc(&d.purpose),
            esc(&who.session.csrf),
            esc(&d.id)
        );
        return page(who, StatusCode::OK, &main);
    }
    match service
        .revoke(as_caller(who, pb::RevokeRequest { id: id.clone() }))
        .await
    {
        Ok(revoked) => {
            let revoked = revoked.into_inner();
            tracing::info!(agency = %who.session.agency, consent = %id, "console: consent revoked");
            let main = format!(
                "<p id=\"revoked\">Consent <strong>{}</strong> is {} since {}.</p><p><a href=\"/consents\">Back to Consents</a></p>",
                esc(&id),
                status_name(&revoked),
                esc(&when(revoked.revoked_unix_micros))
            );
            page(who, StatusCode::OK, &main)
        }
        Err(status) => refused(&status),
    }
}
