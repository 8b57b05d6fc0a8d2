//! Which page answers which path. Only the static files and the sign-in
//! are open; every other path is behind the session check, and every
//! state-changing form (POST) behind the session's CSRF token as well.
//!
//! A new page: its module beside `exchanges.rs`, one arm in [`signed_in`]
//! (reading [`Who`] for its role check), a link in `html::page`'s nav.

use super::html::{self, esc, Reply};
use super::link::{unix_now, LinkError};
use super::session::{self, Session};
use super::{agencies, breakglass, citizen, consents, exchanges, integrity, traffic, Console};
use crate::config::Role;
use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt as _, Limited};
use hyper::body::Incoming;

const CSS: &str = include_str!("assets/console.css");
const VERIFY_JS: &str = include_str!("assets/verify.js");
const CITIZEN_JS: &str = include_str!("assets/citizen.js");
const INTEGRITY_JS: &str = include_str!("assets/integrity.js");
/// The largest form body read.
const MAX_FORM: usize = 16 * 1024;

/// The signed-in operator of a request.
#[derive(Debug)]
pub(super) struct Who {
    pub(super) id: String,
    pub(super) session: Session,
    /// Its agency's roles in the current config.
    pub(super) roles: Vec<Role>,
    /// The request's `Accept-Language` (the citizen page's language).
    pub(super) accept_language: String,
}

impl Who {
    /// The page header for this operator; `roles` from [`Who::role_names`].
    pub(super) fn header<'a>(&'a self, roles: &'a str) -> html::Header<'a> {
        html::Header {
            agency: self.session.agency.as_str(),
            roles,
            csrf: &self.session.csrf,
        }
    }

    /// The roles as the config writes them, for the page header.
    pub(super) fn role_names(&self) -> String {
        if self.roles.is_empty() {
            return "its own exchanges".into();
        }
        self.roles
            .iter()
            .map(|r| r.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Answers one request.
pub(super) async fn answer(console: &Console, request: Request<Incoming>) -> Reply {
    let (parts, body) = request.into_parts();
    let query = parts.uri.query().unwrap_or("").to_owned();
    match (&parts.method, parts.uri.path()) {
        (&Method::GET, "/static/console.css") => html::asset("text/css; charset=utf-8", CSS),
        (&Method::GET, "/static/verify.js") => {
            html::asset("text/javascript; charset=utf-8", VERIFY_JS)
        }
        (&Method::GET, "/static/citizen.js") => {
            html::asset("text/javascript; charset=utf-8", CITIZEN_JS)
        }
        (&Method::GET, "/static/integrity.js") => {
            html::asset("text/javascript; charset=utf-8", INTEGRITY_JS)
        }
        (&Method::GET, "/signin") => signin_form(console, &query),
        (&Method::POST, "/signin") => match read_form(body).await {
            Ok(form) => signin(console, &form).await,
            Err(reply) => reply,
        },
        (method, path) => {
            let who = match signed_in_as(console, &parts.headers).await {
                Ok(who) => who,
                Err(e) => return store_down(&e),
            };
            let Some(who) = who else {
                return html::refused(
                    StatusCode::UNAUTHORIZED,
                    "Sign-in needed",
                    "The console shows nothing without signing in.",
                    "Ask for a sign-in link: `jisr console login --config <file> --as <agency>`.",
                );
            };
            let form = if method == Method::POST {
                match read_form(body).await {
                    Ok(form) => Some(form),
                    Err(reply) => return reply,
                }
            } else {
                None
            };
            signed_in(console, &who, method, path, &query, form.as_deref()).await
        }
    }
}

async fn signed_in(
    console: &Console,
    who: &Who,
    method: &Method,
    path: &str,
    query: &str,
    form: Option<&[(String, String)]>,
) -> Reply {
    if let Some(form) = form {
        if !csrf_ok(who, form) {
            return html::refused(
                StatusCode::FORBIDDEN,
                "Refused",
                "This form did not carry the page's security token, so nothing was done.",
                "Go back to the page, reload it, and submit the form again.",
            );
        }
    }
    match (method, path) {
        (&Method::GET, "/") => html::see_other("/exchanges", None),
        (&Method::POST, "/signout") => {
            if let Err(e) = console.sessions.end(&who.id).await {
                return store_down(&e);
            }
            tracing::info!(agency = %who.session.agency, "console: signed out");
            html::see_other("/signin", Some(session::clear_cookie()))
        }
        (&Method::GET, "/exchanges") => exchanges::search(console, who, query).await,
        (&Method::GET, "/exchanges/entry") => exchanges::entry(console, who, query).await,
        (&Method::GET, "/break-glass") => breakglass::list(console, who, query).await,
        (&Method::POST, "/break-glass/review") => {
            breakglass::review(console, who, form.unwrap_or_default()).await
        }
        (&Method::GET, "/traffic") => traffic::show(console, who),
        (&Method::GET, "/integrity") => integrity::show(console, who, query).await,
        (&Method::GET, "/agencies") => agencies::show(console, who),
        (&Method::GET, "/consents") => consents::ask(who),
        (&Method::POST, "/consents") => {
            consents::list(console, who, form.unwrap_or_default()).await
        }
        (&Method::POST, "/consents/revoke") => {
            consents::revoke(console, who, form.unwrap_or_default()).await
        }
        (&Method::GET, "/citizen") => citizen::ask(who),
        (&Method::POST, "/citizen") => {
            citizen::history(console, who, form.unwrap_or_default(), false).await
        }
        (&Method::POST, "/citizen.json") => {
            citizen::history(console, who, form.unwrap_or_default(), true).await
        }
        _ => html::refused(
            StatusCode::NOT_FOUND,
            "No such page",
            "The console has no page here.",
            "Start from the Exchanges page.",
        ),
    }
}

/// A page saying the session store cannot be asked.
fn store_down(e: &super::shared::Unavailable) -> Reply {
    tracing::warn!(error = %e, "console: session store unavailable");
    html::refused(
        StatusCode::SERVICE_UNAVAILABLE,
        "Not available",
        &format!("{e}."),
        "Tell the platform operator if it lasts.",
    )
}

/// The session of a request, if live and its agency still declared.
async fn signed_in_as(
    console: &Console,
    headers: &http::HeaderMap,
) -> Result<Option<Who>, super::shared::Unavailable> {
    let Some(id) = session::cookie(headers) else {
        return Ok(None);
    };
    let Some(session) = console.sessions.get(&id).await? else {
        return Ok(None);
    };
    let Some(roles) = console.backend.roles(&session.agency) else {
        return Ok(None);
    };
    let accept_language = headers
        .get(http::header::ACCEPT_LANGUAGE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    Ok(Some(Who {
        id,
        session,
        roles,
        accept_language,
    }))
}

fn csrf_ok(who: &Who, form: &[(String, String)]) -> bool {
    form.iter()
        .find(|(k, _)| k == "csrf")
        .is_some_and(|(_, v)| {
            bool::from(subtle::ConstantTimeEq::ct_eq(
                v.as_bytes(),
                who.session.csrf.as_bytes(),
            ))
        })
}

/// The sign-in page for a link: the token is checked (not used up) and
/// posted back by a button, so a link preview fetching the URL signs no one in.
fn signin_form(console: &Console, query: &str) -> Reply {
    let token = value(&parse(query), "t").unwrap_or_default();
    let opened = match console.key.open(&token, unix_now()) {
        Ok(opened) => opened,
        Err(e) => return link_refused(e),
    };
    let main = format!(
        "<form method=\"post\" action=\"/signin\"><input type=\"hidden\" name=\"t\" value=\"{}\">\
         <p>This link signs you in as <strong>{}</strong>.</p>\
         <button type=\"submit\" id=\"signin\">Sign in</button></form>",
        esc(&token),
        esc(opened.agency.as_str())
    );
    html::reply(StatusCode::OK, html::page("Sign in", None, &main, &[]))
}

/// Exchanges a link for a session, once.
async fn signin(console: &Console, form: &[(String, String)]) -> Reply {
    let token = value(form, "t").unwrap_or_default();
    let now = unix_now();
    let opened = console.key.open(&token, now).and_then(|opened| {
        if console.backend.roles(&opened.agency).is_none() {
            return Err(LinkError::Unknown);
        }
        Ok(opened)
    });
    let started = match opened {
        Ok(opened) => match console
            .sessions
            .start(opened, console.session_ttl, now)
            .await
        {
            Ok(started) => started,
            Err(e) => return store_down(&e),
        },
        Err(e) => Err(e),
    };
    match started {
        Ok((id, session)) => {
            tracing::info!(agency = %session.agency, "console: signed in");
            html::see_other(
                "/exchanges",
                Some(session::set_cookie(&id, console.session_ttl)),
            )
        }
        Err(e) => link_refused(e),
    }
}

fn link_refused(e: LinkError) -> Reply {
    tracing::info!(reason = %e, "console: sign-in link refused");
    html::refused(
        StatusCode::UNAUTHORIZED,
        "Sign-in refused",
        &format!("{e}."),
        "Ask for a new link: `jisr console login --config <file> --as <agency>`; each link works once, for a few minutes.",
    )
}

async fn read_form(body: Incoming) -> Result<Vec<(String, String)>, Reply> {
    match Limited::new(body, MAX_FORM).collect().await {
        Ok(collected) => Ok(parse_bytes(&collected.to_bytes())),
        Err(_) => Err(html::refused(
            StatusCode::PAYLOAD_TOO_LARGE,
            "Refused",
            "The form could not be read (too large or cut off).",
            "Go back and submit it again.",
        )),
    }
}

/// The pairs of a query string or form body.
pub(super) fn parse(query: &str) -> Vec<(String, String)> {
    parse_bytes(&Bytes::copy_from_slice(query.as_bytes()))
}

fn parse_bytes(bytes: &[u8]) -> Vec<(String, String)> {
    form_urlencoded::parse(bytes).into_owned().collect()
}

/// The first non-empty value of `key`.
pub(super) fn value(pairs: &[(String, String)], key: &str) -> Option<String> {
    pairs
        .iter()
        .find(|(k, v)| k == key && !v.trim().is_empty())
        .map(|(_, v)| v.trim().to_owned())
}
