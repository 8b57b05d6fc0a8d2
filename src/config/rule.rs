//! `[[rule]]`: who may call which methods, for which purposes, on which
//! basis, read on its own; whether its consumer and purposes are declared is
//! checked in `read.rs`.

use toml::Spanned;

use super::pattern::{Basis, MethodPattern};
use super::sections::agency_id;
use super::table::{Ctx, Section};
use super::RuleConfig;

pub(super) const RULE_KEYS: &[&str] = &[
    "consumer",
    "methods",
    "purposes",
    "basis",
    "release",
    "break_glass",
    "disclose_on",
];

/// Reads a `[[rule]]` on its own; whether its consumer and purposes are
/// declared is checked by the caller.
pub(super) fn rule(ctx: &mut Ctx, s: &Section<'_, '_>) -> Option<RuleConfig> {
    let consumer = s.req_str(ctx, "consumer", "\"education\"");
    let consumer = consumer.and_then(|v| agency_id(ctx, &v, "consumer", "[[rule]]"));
    let methods = s.req_str_list(ctx, "methods", "[\"ma.tax.v1.TaxRecords/GetTaxStatus\"]");
    let methods = methods.and_then(|list| rule_methods(ctx, s, &list));
    let purposes = s.req_str_list(ctx, "purposes", "[\"bac-candidature\"]");
    let purposes = purposes.and_then(|list| {
        if list.is_empty() {
            ctx.error(
                &s.span_of("purposes"),
                "`purposes` in [[rule]] is empty: the rule would allow nothing",
                "list the declared purposes the rule serves, e.g. `purposes = [\"bac-candidature\"]`",
            );
            return None;
        }
        Some(list.into_iter().map(Spanned::into_inner).collect::<Vec<_>>())
    });
    let basis = s.req_str(ctx, "basis", "\"law:55-19\"");
    let basis_at = basis.as_ref().map(|v| v.span());
    let basis = basis.and_then(|v| match Basis::parse_parts(v.get_ref()) {
        Ok(basis) => Some(basis),
        Err((message, fix)) => {
            ctx.error(&v.span(), message, fix);
            None
        }
    });
    let release = match s.opt_str_list(ctx, "release", "[\"first_name\", \"birth_date\"]") {
        Some(list) => Some(Some(
            list.into_iter()
                .map(Spanned::into_inner)
                .collect::<Vec<_>>(),
        )),
        None => s.table.get("release").is_none().then_some(None),
    };
    let break_glass = match s.opt_bool(ctx, "break_glass", "true") {
        Some(b) => Some(b.into_inner()),
        None => s.table.get("break_glass").is_none().then_some(false),
    };
    if let (Some(true), Some(Basis::Consent), Some(span)) = (break_glass, &basis, basis_at) {
        ctx.error(
            &span,
            "a break-glass rule cannot rest on consent: it is for emergencies where consent cannot be asked",
            "name the legal basis of emergency access, e.g. `basis = \"law:emergency-care\"`",
        );
    }
    let disclose_from = super::deferral::disclose_on(ctx, s);
    if let (Ok(Some(_)), Some(Basis::Consent)) = (disclose_from, &basis) {
        ctx.error(
            &s.span_of("disclose_on"),
            "a rule on consent cannot defer disclosure: the citizen gave the consent, so the exchange is no secret from them",
            "give the investigation's rule its legal basis (`basis = \"law:<reference>\"`), or remove `disclose_on`",
        );
    }
    let (methods, methods_at) = methods?;
    Some(RuleConfig {
        consumer: consumer?,
        methods,
        purposes: purposes?,
        basis: basis?,
        release: release?,
        break_glass: break_glass?,
        disclose_from: disclose_from.ok()?,
        at: ctx.at(&s.span),
        methods_at,
    })
}

type Methods = (Vec<MethodPattern>, Vec<super::Location>);

fn rule_methods(ctx: &mut Ctx, s: &Section<'_, '_>, list: &[Spanned<String>]) -> Option<Methods> {
    if list.is_empty() {
        ctx.error(
            &s.span_of("methods"),
            "`methods` in [[rule]] is empty: the rule would allow nothing",
            "list the methods the consumer may call, e.g. `methods = [\"ma.tax.v1.TaxRecords/GetTaxStatus\"]`",
        );
        return None;
    }
    let mut methods = Vec::new();
    let mut at = Vec::new();
    for entry in list {
        match MethodPattern::parse_parts(entry.get_ref()) {
            Ok(pattern) => {
                methods.push(pattern);
                at.push(ctx.at(&entry.span()));
            }
            Err((message, fix)) => ctx.error(&entry.span(), message, fix),
        }
    }
    (methods.len() == list.len()).then_some((methods, at))
}
