//! Each agency's certificate expiry, as this node knows it: the client
//! certificate an agency last presented on the node's listener, and the
//! server certificate a provider last presented when the node connected to
//! it (`tls::seen`). Warned [`WARN_DAYS`] days ahead; an expired one is
//! shown as such (the node saw it while it was valid).

use crate::config::Config;
use crate::console::exchanges::when;
use crate::console::html::esc;
use crate::tls::seen::{Seen, Side};
use std::fmt::Write as _;

/// Days before its not-after date from which a certificate is warned.
pub(super) const WARN_DAYS: i64 = 30;

/// The state of a certificate expiring at `not_after` at time `now` (both
/// in seconds since the epoch): its class and its words.
pub(super) fn expiry(now: i64, not_after: i64) -> (&'static str, String) {
    let date = when(not_after.saturating_mul(1_000_000));
    let left = not_after - now;
    if left <= 0 {
        return ("bad", format!("EXPIRED on {date}"));
    }
    let days = left / 86_400;
    if days < WARN_DAYS {
        (
            "warn",
            format!("expires in {days} day(s), on {date}: renew it"),
        )
    } else {
        ("ok", format!("valid until {date}"))
    }
}

/// The table: every declared agency, with each certificate seen from it.
pub(super) fn table(
    config: &Config,
    seen: &[(crate::identity::AgencyId, Side, Seen)],
    now: i64,
) -> String {
    let mut t = format!(
        "<h2>Agencies' certificates</h2><p class=\"hint\">The certificates this node saw at TLS handshakes \
         since it started (an agency's latest), warned {WARN_DAYS} days before they expire.</p>\
         <table id=\"certificates\"><thead><tr><th>Agency</th><th>Seen</th><th>Certificate</th>\
         <th>Expiry</th></tr></thead><tbody>"
    );
    for agency in &config.agencies {
        let mut any = false;
        for (_, side, s) in seen.iter().filter(|(a, _, _)| a == &agency.id) {
            any = true;
            let (class, words) = expiry(now, s.not_after);
            let _ = write!(
                t,
                "<tr><td data-label=\"Agency\">{}</td><td data-label=\"Seen\">{}</td>\
                 <td data-label=\"Certificate\">{}</td><td data-label=\"Expiry\" class=\"{class}\">{}</td></tr>",
                esc(agency.id.as_str()),
                esc(side.as_str()),
                esc(&s.subject),
                esc(&words)
            );
        }
        if !any {
            let _ = write!(
                t,
                "<tr><td data-label=\"Agency\">{}</td><td data-label=\"Seen\" colspan=\"3\">\
                 not seen since this node started (it has not called, nor been called)</td></tr>",
                esc(agency.id.as_str())
            );
        }
    }
    t.push_str("</tbody></table>");
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warned_thirty_days_ahead_and_expired_shown_as_such() {
        let now = 1_800_000_000;
        let day = 86_400;
        assert_eq!(expiry(now, now + 365 * day).0, "ok");
        assert_eq!(expiry(now, now + 31 * day).0, "ok");
        let (class, words) = expiry(now, now + 10 * day);
        assert_eq!(class, "warn");
        assert!(words.contains("in 10 day(s)"), "{words}");
        let (class, words) = expiry(now, now - day);
        assert_eq!(class, "bad");
        assert!(words.starts_with("EXPIRED on "), "{words}");
    }
}
