//! Server-rendered HTML: escaping, the page layout, and responses with the
//! console's security headers (a Content-Security-Policy allowing only the
//! console's own script and style files, no inline script).

use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};
use http_body_util::Full;
use std::fmt::Write as _;

/// What every console response is.
pub(super) type Reply = Response<Full<Bytes>>;

/// Only the console's own files; no inline script or style, no framing.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
                   connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Escapes text for HTML element content and quoted attribute values.
pub(super) fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Who is signed in, for the page header (and the sign-out form).
#[derive(Debug, Clone, Copy)]
pub(super) struct Header<'a> {
    /// The agency.
    pub(super) agency: &'a str,
    /// Its roles, as written in the config.
    pub(super) roles: &'a str,
    /// The session's CSRF token.
    pub(super) csrf: &'a str,
}

/// A whole page: `title`, the signed-in header when there is one, `main`
/// (already escaped HTML), and `scripts` (paths under /static/).
pub(super) fn page(
    title: &str,
    header: Option<Header<'_>>,
    main: &str,
    scripts: &[&str],
) -> String {
    page_in(("en", "ltr"), title, header, main, scripts)
}

/// [`page`] in language `lang` written in direction `dir` (`ltr`, `rtl`).
pub(super) fn page_in(
    (lang, dir): (&str, &str),
    title: &str,
    header: Option<Header<'_>>,
    main: &str,
    scripts: &[&str],
) -> String {
    let mut html = String::with_capacity(main.len() + 1024);
    let _ = write!(
        html,
        "<!doctype html>\n<html lang=\"{}\" dir=\"{}\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{} · Jisr console</title><link rel=\"stylesheet\" href=\"/static/console.css\">",
        esc(lang),
        esc(dir),
        esc(title)
    );
    for script in scripts {
        let _ = write!(
            html,
            "<script src=\"/static/{}\" defer></script>",
            esc(script)
        );
    }
    html.push_str("</head><body><header><span class=\"brand\">Jisr console</span>");
    if let Some(h) = header {
        let _ = write!(
            html,
            "<nav aria-label=\"Pages\"><a href=\"/exchanges\">Exchanges</a><a href=\"/break-glass\">Break-glass</a>\
             <a href=\"/traffic\">Traffic</a><a href=\"/integrity\">Integrity</a><a href=\"/agencies\">Agencies</a><a href=\"/consents\">Consents</a>\
             <a href=\"/citizen\">Citizen</a></nav>\
             <span class=\"who\">Signed in as <strong id=\"agency\">{}</strong> ({})</span>\
             <form method=\"post\" action=\"/signout\" class=\"inline\">\
             <input type=\"hidden\" name=\"csrf\" value=\"{}\">\
             <button type=\"submit\" id=\"signout\">Sign out</button></form>",
            esc(h.agency),
            esc(h.roles),
            esc(h.csrf)
        );
    }
    let _ = write!(
        html,
        "</header><main><h1>{}</h1>{main}</main></body></html>",
        esc(title)
    );
    html
}

/// A JSON answer with the security headers.
pub(super) fn json(status: StatusCode, body: String) -> Reply {
    with_headers(status, "application/json", Bytes::from(body))
}

/// An HTML answer with the security headers.
pub(super) fn reply(status: StatusCode, html: String) -> Reply {
    with_headers(status, "text/html; charset=utf-8", Bytes::from(html))
}

/// A page explaining a refusal (sign-in needed, wrong role, bad form).
pub(super) fn refused(status: StatusCode, title: &str, why: &str, next: &str) -> Reply {
    let main = format!(
        "<p class=\"refused\" id=\"refusal\">{}</p><p>{}</p>",
        esc(why),
        esc(next)
    );
    reply(status, page(title, None, &main, &[]))
}

/// A 303 to `location` (after a form), optionally setting a cookie.
pub(super) fn see_other(location: &'static str, cookie: Option<String>) -> Reply {
    let mut response = with_headers(
        StatusCode::SEE_OTHER,
        "text/plain; charset=utf-8",
        Bytes::new(),
    );
    response
        .headers_mut()
        .insert(header::LOCATION, HeaderValue::from_static(location));
    if let Some(cookie) = cookie.and_then(|c| HeaderValue::from_str(&c).ok()) {
        response.headers_mut().insert(header::SET_COOKIE, cookie);
    }
    response
}

/// One of the console's own static files.
pub(super) fn asset(content_type: &'static str, body: &'static str) -> Reply {
    with_headers(
        StatusCode::OK,
        content_type,
        Bytes::from_static(body.as_bytes()),
    )
}

fn with_headers(status: StatusCode, content_type: &'static str, body: Bytes) -> Reply {
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::STRICT_TRANSPORT_SECURITY,
        HeaderValue::from_static("max-age=31536000"),
    );
    response
}
