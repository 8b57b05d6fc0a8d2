//! Agencies and contracts: the configuration in force as the node routes
//! with it — the agencies and their roles, the catalogue of services and
//! methods (category, subject field) each provider declares, the purposes,
//! and the rules (who may call what, for which purposes, on which basis).
//! For auditors and operators; it holds no personal data, so reading it is
//! not an audit entry.

use super::html::{self, esc, Reply};
use super::routes::Who;
use super::Console;
use crate::catalogue::Catalogue;
use crate::config::{Config, Role};
use http::StatusCode;
use std::fmt::Write as _;

/// GET /agencies.
pub(super) fn show(console: &Console, who: &Who) -> Reply {
    if !who
        .roles
        .iter()
        .any(|r| matches!(r, Role::Auditor | Role::Operator))
    {
        return html::refused(
            StatusCode::FORBIDDEN,
            "Refused",
            "Only auditors and operators read the agencies, contracts and rules.",
            "Sign in as an agency with the `auditor` or `operator` role.",
        );
    }
    let config = console.backend.config();
    let catalogue = console.backend.catalogue();
    let mut main = String::new();
    main.push_str("<h2 id=\"h-agencies\">Agencies</h2>");
    main.push_str(&agencies(&config));
    main.push_str("<h2 id=\"h-catalogue\">Catalogue</h2>");
    main.push_str(&methods(&catalogue));
    main.push_str("<h2 id=\"h-purposes\">Purposes</h2>");
    main.push_str(&purposes(&config));
    main.push_str("<h2 id=\"h-rules\">Rules</h2>");
    main.push_str(&rules(&config));
    let roles = who.role_names();
    html::reply(
        StatusCode::OK,
        html::page(
            "Agencies and contracts",
            Some(who.header(&roles)),
            &main,
            &[],
        ),
    )
}

fn agencies(config: &Config) -> String {
    let mut t = String::from(
        "<table id=\"agencies\"><thead><tr><th>Agency</th><th>Roles</th><th>Provides</th>\
         <th>Instances</th></tr></thead><tbody>",
    );
    for a in &config.agencies {
        let roles: Vec<_> = a.roles.iter().map(|r| r.as_str()).collect();
        let _ = write!(
            t,
            "<tr><td data-label=\"Agency\">{}</td><td data-label=\"Roles\">{}</td>\
             <td data-label=\"Provides\">{}</td><td data-label=\"Instances\">{}</td></tr>",
            esc(a.id.as_str()),
            esc(&roles.join(", ")),
            esc(&a.contracts.join(", ")),
            a.upstreams.len()
        );
    }
    t.push_str("</tbody></table>");
    t
}

fn methods(catalogue: &Catalogue) -> String {
    let mut t = String::from(
        "<table id=\"catalogue\"><thead><tr><th>Provider</th><th>Service</th><th>Method</th>\
         <th>Category</th><th>Citizen field</th><th>Shape</th></tr></thead><tbody>",
    );
    for m in catalogue.methods() {
        let category = if m.category.is_sensitive() {
            format!(
                "{} <span class=\"flag\">sensitive</span>",
                esc(m.category.as_str())
            )
        } else {
            esc(m.category.as_str())
        };
        let subject = match (&m.subject_field, &m.no_subject) {
            (Some(field), _) => esc(field),
            (None, Some(why)) => format!("none: {}", esc(why)),
            (None, None) => "none".into(),
        };
        let _ = write!(
            t,
            "<tr><td data-label=\"Provider\">{}</td><td data-label=\"Service\">{}</td>\
             <td data-label=\"Method\">{}</td><td data-label=\"Category\">{category}</td>\
             <td data-label=\"Citizen field\">{subject}</td><td data-label=\"Shape\">{}</td></tr>",
            esc(m.provider.as_str()),
            esc(&m.service),
            esc(&m.method),
            esc(m.streaming.as_str()),
        );
    }
    t.push_str("</tbody></table>");
    t
}

fn purposes(config: &Config) -> String {
    let mut t = String::from("<dl id=\"purposes\">");
    for p in &config.purposes {
        let _ = write!(
            t,
            "<dt>{}</dt><dd>{}</dd>",
            esc(&p.code),
            esc(&p.description)
        );
    }
    t.push_str("</dl>");
    t
}

fn rules(config: &Config) -> String {
    let mut t = String::from(
        "<table id=\"rules\"><thead><tr><th>Consumer</th><th>Methods</th><th>Purposes</th>\
         <th>Basis</th><th>Released</th></tr></thead><tbody>",
    );
    for r in &config.rules {
        let methods: Vec<_> = r.methods.iter().map(ToString::to_string).collect();
        let released = r
            .release
            .as_ref()
            .map_or_else(|| "every field".to_owned(), |fields| fields.join(", "));
        let flag = if r.break_glass {
            " <span class=\"flag\">break-glass</span>"
        } else {
            ""
        };
        let _ = write!(
            t,
            "<tr><td data-label=\"Consumer\">{}</td><td data-label=\"Methods\">{}</td>\
             <td data-label=\"Purposes\">{}</td><td data-label=\"Basis\">{}{flag}</td>\
             <td data-label=\"Released\">{}</td></tr>",
            esc(r.consumer.as_str()),
            esc(&methods.join(", ")),
            esc(&r.purposes.join(", ")),
            esc(&r.basis.to_string()),
            esc(&released),
        );
    }
    t.push_str("</tbody></table>");
    t
}
