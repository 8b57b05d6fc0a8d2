//! Break-glass review: the emergency exchanges (a rule with `break_glass`,
//! taken without consent on a stated justification), newest first, each
//! with its review or a form to record one. Auditors only.
//!
//! A review is itself an audit entry (`BREAK_GLASS_REVIEWED`) naming the
//! auditor, the entry reviewed (`event_id` = `<node>/<index>`) and the
//! comment. Its procedure is [`REVIEW_PROCEDURE`], so the page finds the
//! reviews through the log's procedure index: the log is the only record
//! of reviews, and every replica sees them.

use super::exchanges::{as_caller, outcome, refused, when};
use super::html::{self, esc, Reply};
use super::record::{self, Read};
use super::routes::{parse, value, Who};
use super::Console;
use crate::audit::record::{Ending, Trail};
use crate::config::Role;
use crate::proto::jisr::audit::v1 as pb;
use http::StatusCode;
use pb::audit_server::Audit as _;
use std::collections::HashMap;
use std::fmt::Write as _;

/// The procedure of every review entry.
pub(super) const REVIEW_PROCEDURE: &str = "break-glass-review";
/// Emergency exchanges per page.
const PAGE: u32 = 25;
/// The longest comment kept, in characters.
const MAX_COMMENT: usize = 1000;
/// Pages of reviews read to mark a page of entries (1000 reviews each).
const REVIEW_PAGES: usize = 20;

/// Reviews by the entry they review (`<node>/<index>`).
type Reviews = HashMap<String, pb::AuditRecord>;

fn auditors_only(who: &Who) -> Option<Reply> {
    (!who.roles.contains(&Role::Auditor)).then(|| {
        html::refused(
            StatusCode::FORBIDDEN,
            "Refused",
            "Only auditors review break-glass exchanges.",
            "Sign in as an agency with the `auditor` role.",
        )
    })
}

/// GET /break-glass.
pub(super) async fn list(console: &Console, who: &Who, query: &str) -> Reply {
    if let Some(refusal) = auditors_only(who) {
        return refusal;
    }
    let page = value(&parse(query), "page").unwrap_or_default();
    let request = pb::QueryRequest {
        break_glass: true,
        page_size: PAGE,
        page_token: page.clone(),
        ..Default::default()
    };
    let answer = match console.backend.audit().query(as_caller(who, request)).await {
        Ok(answer) => answer.into_inner(),
        Err(status) => return refused(&status),
    };
    let since = answer
        .entries
        .iter()
        .filter_map(|e| e.record.as_ref())
        .map(|r| r.time_unix_micros)
        .min();
    let reviews = match since {
        Some(since) => match reviews_since(console, who, since).await {
            Ok(reviews) => reviews,
            Err(status) => return refused(&status),
        },
        None => Reviews::new(),
    };
    let read = Read {
        page: "console:/break-glass",
        ..Read::default()
    };
    if let Err(reply) = record::reading(&console.recorder, &who.session.agency, read).await {
        return reply;
    }
    let mut main = String::from(
        "<p class=\"hint\">Exchanges made under an emergency rule, without the citizen's consent. \
         Read each justification; mark the exchange reviewed with your comment. \
         The review is written to the audit log.</p>",
    );
    main.push_str(&cards(&answer.entries, &reviews, &who.session.csrf));
    main.push_str("<nav class=\"pages\" aria-label=\"Result pages\">");
    if !page.is_empty() {
        main.push_str("<a href=\"/break-glass\">Newest</a>");
    }
    if !answer.next_page_token.is_empty() {
        let next = form_urlencoded::Serializer::new(String::new())
            .append_pair("page", &answer.next_page_token)
            .finish();
        let _ = write!(
            main,
            "<a id=\"older\" href=\"/break-glass?{}\">Older entries</a>",
            esc(&next)
        );
    }
    main.push_str("</nav>");
    let roles = who.role_names();
    html::reply(
        StatusCode::OK,
        html::page("Break-glass review", Some(who.header(&roles)), &main, &[]),
    )
}

/// Every review written at or after `since` (a review follows its entry).
async fn reviews_since(console: &Console, who: &Who, since: i64) -> Result<Reviews, tonic::Status> {
    let mut reviews = Reviews::new();
    let mut token = String::new();
    for _ in 0..REVIEW_PAGES {
        let request = pb::QueryRequest {
            procedure: REVIEW_PROCEDURE.into(),
            from_unix_micros: since,
            page_size: 1000,
            page_token: token,
            ..Default::default()
        };
        let answer = console
            .backend
            .audit()
            .query(as_caller(who, request))
            .await?
            .into_inner();
        for r in answer.entries.into_iter().filter_map(|e| e.record) {
            if r.kind == pb::Kind::BreakGlassReviewed as i32 {
                // Newest first: the first review of an entry read is its latest.
                reviews.entry(r.event_id.clone()).or_insert(r);
            }
        }
        if answer.next_page_token.is_empty() {
            break;
        }
        token = answer.next_page_token;
    }
    Ok(reviews)
}

fn cards(entries: &[pb::Entry], reviews: &Reviews, csrf: &str) -> String {
    if entries.is_empty() {
        return "<p id=\"none\">No break-glass exchange.</p>".into();
    }
    let mut out = String::from("<ol class=\"cards\" id=\"emergencies\">");
    for e in entries {
        let Some(r) = &e.record else { continue };
        let key = format!("{}/{}", e.node, e.index);
        let detail = form_urlencoded::Serializer::new(String::new())
            .append_pair("node", &e.node)
            .append_pair("index", &e.index.to_string())
            .finish();
        let _ = write!(
            out,
            "<li class=\"card\" data-entry=\"{}\"><h2>{} · {} called {}</h2>\
             <p>Official <strong>{}</strong>, purpose {}, outcome {}.</p>\
             <blockquote class=\"justification\">{}</blockquote>\
             <p><a class=\"detail\" href=\"/exchanges/entry?{}\">Entry {} of {}</a></p>",
            esc(&key),
            esc(&when(r.time_unix_micros)),
            esc(&r.consumer),
            esc(&r.method),
            esc(if r.official.is_empty() {
                "not named"
            } else {
                &r.official
            }),
            esc(&r.purpose),
            esc(&outcome(r)),
            esc(&r.justification),
            esc(&detail),
            e.index,
            esc(&e.node),
        );
        match reviews.get(&key) {
            Some(review) => {
                let _ = write!(
                    out,
                    "<p class=\"reviewed\">Reviewed by <strong>{}</strong> on {}: {}</p>",
                    esc(&review.consumer),
                    esc(&when(review.time_unix_micros)),
                    esc(&review.justification)
                );
            }
            None => {
                let _ = write!(
                    out,
                    "<form method=\"post\" action=\"/break-glass/review\" class=\"review\">\
                     <input type=\"hidden\" name=\"csrf\" value=\"{}\">\
                     <input type=\"hidden\" name=\"node\" value=\"{}\">\
                     <input type=\"hidden\" name=\"index\" value=\"{}\">\
                     <label>Review comment<textarea name=\"comment\" required maxlength=\"{MAX_COMMENT}\" rows=\"2\"></textarea></label>\
                     <button type=\"submit\">Mark reviewed</button></form>",
                    esc(csrf),
                    esc(&e.node),
                    e.index
                );
            }
        }
        out.push_str("</li>");
    }
    out.push_str("</ol>");
    out
}

/// POST /break-glass/review: records the review, once per entry.
pub(super) async fn review(console: &Console, who: &Who, form: &[(String, String)]) -> Reply {
    if let Some(refusal) = auditors_only(who) {
        return refusal;
    }
    let bad = |why: &str| {
        html::refused(
            StatusCode::BAD_REQUEST,
            "Not recorded",
            why,
            "Go back to the Break-glass page and submit the review again.",
        )
    };
    let comment = value(form, "comment").unwrap_or_default();
    if comment.is_empty() {
        return bad("A review needs a comment saying what was checked.");
    }
    if comment.chars().count() > MAX_COMMENT {
        return bad(&format!(
            "The comment is longer than {MAX_COMMENT} characters."
        ));
    }
    let node = value(form, "node").unwrap_or_default();
    let Some(index) = value(form, "index").and_then(|i| i.parse::<u64>().ok()) else {
        return bad("The form named no entry.");
    };
    let request = pb::GetEntryRequest {
        index,
        tree_size: 0,
        node: node.clone(),
        ..Default::default()
    };
    let entry = match console
        .backend
        .audit()
        .get_entry(as_caller(who, request))
        .await
    {
        Ok(entry) => entry.into_inner(),
        Err(status) => return refused(&status),
    };
    let Some(reviewed) = entry.record.filter(|r| r.break_glass) else {
        return bad("That entry is not a break-glass exchange.");
    };
    let key = format!("{}/{}", entry.node, entry.index);
    match reviews_since(console, who, reviewed.time_unix_micros).await {
        Ok(reviews) if reviews.contains_key(&key) => {
            return html::refused(
                StatusCode::CONFLICT,
                "Already reviewed",
                "Another review of this exchange is already in the log.",
                "Reload the Break-glass page to read it.",
            )
        }
        Ok(_) => {}
        Err(status) => return refused(&status),
    }
    write_review(console, who, &reviewed, &key, &comment).await
}

async fn write_review(
    console: &Console,
    who: &Who,
    reviewed: &pb::AuditRecord,
    key: &str,
    comment: &str,
) -> Reply {
    let mut trail = Trail::start(
        &format!("{:032x}", rand::random::<u128>()),
        who.session.agency.as_str(),
        "console:/break-glass/review",
        &http::HeaderMap::new(),
    );
    trail.official = "console".into();
    trail.procedure = REVIEW_PROCEDURE.into();
    reviewed.provider.clone_into(&mut trail.provider);
    trail.subject = <[u8; 32]>::try_from(reviewed.subject.as_slice()).ok();
    key.clone_into(&mut trail.event_id);
    comment.clone_into(&mut trail.justification);
    let ending = Ending {
        outcome: pb::Outcome::Allowed,
        reason: "",
        grpc_status: 0,
        response_digest: None,
    };
    match console
        .recorder
        .record_kind(&trail, ending, pb::Kind::BreakGlassReviewed)
        .await
    {
        Ok(_) => {
            tracing::info!(agency = %who.session.agency, entry = key, "console: break-glass exchange reviewed");
            html::see_other("/break-glass", None)
        }
        Err(e) => {
            tracing::error!(error = %e, "console: break-glass review not recorded");
            html::refused(
                StatusCode::SERVICE_UNAVAILABLE,
                "Not recorded",
                "The audit log cannot take the review right now; nothing was recorded.",
                "Retry in a moment; tell the platform operator if it lasts.",
            )
        }
    }
}
