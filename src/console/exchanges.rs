//! The Exchanges page: the audit log searched by agency (as consumer or
//! provider), procedure, purpose, outcome, reason, time range and
//! break-glass, newest first, a page at a time; and (in `entry`) one
//! entry with its inclusion proof, checked in the browser.
//!
//! Both read through the audit API itself ([`Audit::query`],
//! [`Audit::get_entry`]) as the signed-in agency, so an auditor sees every
//! entry and any other agency only its own, exactly as over gRPC.

mod entry;

use super::html::{self, esc, Reply};
use super::record::{self, Read};
use super::routes::{parse, value, Who};
use super::Console;
use crate::identity::Caller;
use crate::proto::jisr::audit::v1 as pb;
use pb::audit_server::Audit as _;
use std::fmt::Write as _;

pub(super) use entry::entry;

/// Entries per page.
const PAGE: u32 = 25;

/// The search form's fields, as given (re-shown in the form).
#[derive(Debug, Default)]
struct Filters {
    agency: String,
    side: String,
    procedure: String,
    purpose: String,
    outcome: String,
    reason: String,
    from: String,
    to: String,
    break_glass: bool,
    page: String,
}

impl Filters {
    fn read(query: &str) -> Self {
        let pairs = parse(query);
        let get = |k: &str| value(&pairs, k).unwrap_or_default();
        Self {
            agency: get("agency"),
            side: get("side"),
            procedure: get("procedure"),
            purpose: get("purpose"),
            outcome: get("outcome"),
            reason: get("reason"),
            from: get("from"),
            to: get("to"),
            break_glass: !get("break_glass").is_empty(),
            page: get("page"),
        }
    }

    /// The audit API's request, or what is wrong with a field.
    fn request(&self) -> Result<pb::QueryRequest, String> {
        let side = match self.side.as_str() {
            "" | "either" => pb::Side::Unspecified,
            "consumer" => pb::Side::Consumer,
            "provider" => pb::Side::Provider,
            other => {
                return Err(format!(
                    "side `{other}` is not consumer, provider or either"
                ))
            }
        };
        let outcome = match self.outcome.as_str() {
            "" | "any" => pb::Outcome::Unspecified,
            "allowed" => pb::Outcome::Allowed,
            "refused" => pb::Outcome::Refused,
            "failed" => pb::Outcome::Failed,
            other => {
                return Err(format!(
                    "outcome `{other}` is not allowed, refused or failed"
                ))
            }
        };
        Ok(pb::QueryRequest {
            agency: self.agency.clone(),
            side: side as i32,
            from_unix_micros: micros(&self.from, "from")?,
            to_unix_micros: micros(&self.to, "to")?,
            procedure: self.procedure.clone(),
            purpose: self.purpose.clone(),
            outcome: outcome as i32,
            reason: self.reason.clone(),
            break_glass: self.break_glass,
            page_size: PAGE,
            page_token: self.page.clone(),
        })
    }

    /// The query string of the same search at page `token`.
    fn at_page(&self, token: &str) -> String {
        let mut out = form_urlencoded::Serializer::new(String::new());
        for (k, v) in [
            ("agency", &self.agency),
            ("side", &self.side),
            ("procedure", &self.procedure),
            ("purpose", &self.purpose),
            ("outcome", &self.outcome),
            ("reason", &self.reason),
            ("from", &self.from),
            ("to", &self.to),
        ] {
            if !v.is_empty() {
                out.append_pair(k, v);
            }
        }
        if self.break_glass {
            out.append_pair("break_glass", "on");
        }
        out.append_pair("page", token);
        out.finish()
    }
}

/// A `datetime-local` value (`YYYY-MM-DDTHH:MM[:SS]`, read as UTC) in
/// microseconds since the epoch; 0 when empty.
pub(super) fn micros(text: &str, field: &str) -> Result<i64, String> {
    if text.is_empty() {
        return Ok(0);
    }
    let with_seconds = if text.len() == 16 {
        format!("{text}:00")
    } else {
        text.to_owned()
    };
    let format = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]");
    time::PrimitiveDateTime::parse(&with_seconds, format)
        .map(|t| (t.assume_utc().unix_timestamp_nanos() / 1000) as i64)
        .map_err(|_| format!("`{field}` must be a date and time like 2026-12-07T09:30 (UTC)"))
}

/// A record's time, in UTC.
pub(super) fn when(micros: i64) -> String {
    let format =
        time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second] UTC");
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(micros) * 1000)
        .ok()
        .and_then(|t| t.format(format).ok())
        .unwrap_or_else(|| micros.to_string())
}

/// The outcome's name, with the reason when there is one.
pub(super) fn outcome(r: &pb::AuditRecord) -> String {
    let name = pb::Outcome::try_from(r.outcome).map_or("UNKNOWN", |o| o.as_str_name());
    if r.reason.is_empty() {
        name.to_owned()
    } else {
        format!("{name} ({})", r.reason)
    }
}

/// An audit API request made as the signed-in agency: the API's own role
/// checks then decide what it answers.
pub(super) fn as_caller<T>(who: &Who, message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request
        .extensions_mut()
        .insert(Caller(who.session.agency.clone()));
    request
}

/// A refusal of the audit API as a page.
pub(super) fn refused(status: &tonic::Status) -> Reply {
    let code = match status.code() {
        tonic::Code::PermissionDenied => http::StatusCode::FORBIDDEN,
        tonic::Code::InvalidArgument | tonic::Code::OutOfRange => http::StatusCode::BAD_REQUEST,
        tonic::Code::NotFound => http::StatusCode::NOT_FOUND,
        _ => http::StatusCode::SERVICE_UNAVAILABLE,
    };
    html::refused(
        code,
        "Refused",
        status.message(),
        "Change the search, or ask an auditor.",
    )
}

/// GET /exchanges.
pub(super) async fn search(console: &Console, who: &Who, query: &str) -> Reply {
    let filters = Filters::read(query);
    let roles = who.role_names();
    let form = search_form(&filters);
    let bad_field = |why: String| {
        let main = format!(
            "{form}<p class=\"refused\" id=\"refusal\">{}</p>",
            esc(&why)
        );
        html::reply(
            http::StatusCode::BAD_REQUEST,
            html::page("Exchanges", Some(who.header(&roles)), &main, &[]),
        )
    };
    let request = match filters.request() {
        Ok(request) => request,
        Err(why) => return bad_field(why),
    };
    let request = as_caller(who, request);
    let answer = match console.backend.audit().query(request).await {
        Ok(answer) => answer.into_inner(),
        Err(status) => return refused(&status),
    };
    let read = Read {
        page: "console:/exchanges",
        ..Read::default()
    };
    if let Err(reply) = record::reading(&console.recorder, &who.session.agency, read).await {
        return reply;
    }
    let main = format!("{form}{}", results(&answer, &filters));
    html::reply(
        http::StatusCode::OK,
        html::page("Exchanges", Some(who.header(&roles)), &main, &[]),
    )
}

/// The results table, missing nodes and the links to other pages.
fn results(answer: &pb::QueryResponse, filters: &Filters) -> String {
    let mut main = table(&answer.entries);
    if !answer.missing.is_empty() {
        let nodes: Vec<_> = answer.missing.iter().map(|m| m.node.as_str()).collect();
        let _ = write!(
            main,
            "<p class=\"warn\">Partial answer: no reply from {}.</p>",
            esc(&nodes.join(", "))
        );
    }
    main.push_str("<nav class=\"pages\" aria-label=\"Result pages\">");
    if !filters.page.is_empty() {
        let _ = write!(
            main,
            "<a href=\"/exchanges?{}\">Newest</a>",
            esc(&filters.at_page(""))
        );
    }
    if !answer.next_page_token.is_empty() {
        let next = filters.at_page(&answer.next_page_token);
        let _ = write!(
            main,
            "<a id=\"older\" href=\"/exchanges?{}\">Older entries</a>",
            esc(&next)
        );
    }
    main.push_str("</nav>");
    main
}

fn search_form(f: &Filters) -> String {
    let input = |name: &str, label: &str, value: &str, kind: &str| {
        format!(
            "<label>{label}<input type=\"{kind}\" name=\"{name}\" id=\"f-{name}\" value=\"{}\"></label>",
            esc(value)
        )
    };
    let select = |name: &str, label: &str, value: &str, options: &[&str]| {
        let mut s = format!("<label>{label}<select name=\"{name}\" id=\"f-{name}\">");
        for o in options {
            let selected = if *o == value { " selected" } else { "" };
            let _ = write!(s, "<option{selected}>{o}</option>");
        }
        s.push_str("</select></label>");
        s
    };
    let checked = if f.break_glass { " checked" } else { "" };
    format!(
        "<form method=\"get\" action=\"/exchanges\" class=\"search\" role=\"search\">{}{}{}{}{}{}{}{}\
         <label class=\"check\"><input type=\"checkbox\" name=\"break_glass\" id=\"f-break_glass\"{checked}> break-glass only</label>\
         <button type=\"submit\" id=\"search\">Search</button></form>\
         <p class=\"hint\">Times are UTC. Citizens are never searched here: the log holds only pseudonyms.</p>",
        input("agency", "Agency", &f.agency, "text"),
        select("side", "as", &f.side, &["either", "consumer", "provider"]),
        input("procedure", "Procedure", &f.procedure, "text"),
        input("purpose", "Purpose", &f.purpose, "text"),
        select("outcome", "Outcome", &f.outcome, &["any", "allowed", "refused", "failed"]),
        input("reason", "Reason", &f.reason, "text"),
        input("from", "From", &f.from, "datetime-local"),
        input("to", "To", &f.to, "datetime-local"),
    )
}

fn table(entries: &[pb::Entry]) -> String {
    if entries.is_empty() {
        return "<p id=\"none\">No exchange matches.</p>".into();
    }
    let mut t = String::from(
        "<table id=\"results\"><thead><tr><th>When</th><th>Kind</th><th>Consumer</th><th>Provider</th>\
         <th>Method</th><th>Purpose</th><th>Procedure</th><th>Outcome</th><th></th></tr></thead><tbody>",
    );
    for e in entries {
        let Some(r) = &e.record else { continue };
        let kind = pb::Kind::try_from(r.kind).map_or("UNKNOWN", |k| k.as_str_name());
        let mut flag = String::new();
        if r.break_glass {
            flag.push_str(" <span class=\"flag\">break-glass</span>");
        }
        if r.disclose_from_unix_micros != 0 {
            let _ = write!(
                flag,
                " <span class=\"flag deferred\">deferred until {}</span>",
                esc(&when(r.disclose_from_unix_micros))
            );
        }
        let link = form_urlencoded::Serializer::new(String::new())
            .append_pair("node", &e.node)
            .append_pair("index", &e.index.to_string())
            .finish();
        let _ = write!(
            t,
            "<tr><td data-label=\"When\">{}</td><td data-label=\"Kind\">{}</td><td data-label=\"Consumer\">{}</td>\
             <td data-label=\"Provider\">{}</td><td data-label=\"Method\">{}</td><td data-label=\"Purpose\">{}</td>\
             <td data-label=\"Procedure\">{}</td><td data-label=\"Outcome\">{}{flag}</td>\
             <td><a class=\"detail\" href=\"/exchanges/entry?{}\">Entry {} of {}</a></td></tr>",
            esc(&when(r.time_unix_micros)),
            esc(kind),
            esc(&r.consumer),
            esc(&r.provider),
            esc(&r.method),
            esc(&r.purpose),
            esc(&r.procedure),
            esc(&outcome(r)),
            esc(&link),
            e.index,
            esc(&e.node),
        );
    }
    t.push_str("</tbody></table>");
    t
}
