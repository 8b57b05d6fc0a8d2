//! `[labels]`: what citizens read instead of codes. Each purpose code and
//! procedure id gets a short label and a one-sentence explanation, and each
//! agency a display name, in the portal's five languages ([`LANGS`]).
//!
//! ```toml
//! [labels.purpose.bac-candidature]
//! fr = { label = "Candidature au baccalauréat", explain = "…" }
//! [labels.procedure.bac-2027]
//! fr = { label = "Baccalauréat 2027", explain = "…" }
//! [labels.agency]
//! civil-status = { fr = "État civil", en = "Civil status", … }
//! ```
//!
//! A missing translation is not an error (the page falls back to the code,
//! or to another language); [`Labels::missing`] names each one for
//! `check-config`'s warnings. Labels are part of the config, so they reload
//! with the rules.

use std::collections::BTreeMap;

use toml::de::DeValue;
use toml::Spanned;

use super::table::Ctx;

/// The portal's languages: Arabic, Standard Moroccan Tamazight (Tifinagh),
/// French, English, Spanish; in the order the page's switcher shows them.
pub const LANGS: [&str; 5] = ["ar", "zgh", "fr", "en", "es"];

/// A label and its one-sentence explanation, in one language.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Text {
    /// A few words, e.g. "Baccalauréat application".
    pub label: String,
    /// One sentence saying what it is for.
    pub explain: String,
}

/// The labels of the configuration, by code and then language.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Labels {
    /// Purpose code → language → text.
    pub purposes: BTreeMap<String, BTreeMap<String, Text>>,
    /// Procedure id → language → text.
    pub procedures: BTreeMap<String, BTreeMap<String, Text>>,
    /// Agency id → language → display name.
    pub agencies: BTreeMap<String, BTreeMap<String, String>>,
    /// Where the portal shows a consent (`https://…{consent}…`, the
    /// consent's id in place of `{consent}`); the page links each exchange
    /// made on a consent there. `None`: the id is shown, unlinked.
    pub consent_link: Option<String>,
}

impl Labels {
    /// Every label a citizen could miss: each declared purpose and agency,
    /// and each labelled procedure, in each of [`LANGS`]. For warnings
    /// (see `Config::missing_labels`).
    pub fn missing(&self, purposes: &[&str], agencies: &[&str]) -> Vec<String> {
        let mut out = Vec::new();
        let mut check = |kind: &str, code: &str, has: &dyn Fn(&str) -> bool| {
            let absent: Vec<_> = LANGS.iter().copied().filter(|l| !has(l)).collect();
            if !absent.is_empty() {
                out.push(format!(
                    "{kind} `{code}` has no label in {}: add it under [labels.{kind}{}]",
                    absent.join(", "),
                    if kind == "agency" {
                        String::new()
                    } else {
                        format!(".{code}")
                    }
                ));
            }
        };
        for code in purposes {
            let texts = self.purposes.get(*code);
            check("purpose", code, &|l| {
                texts.is_some_and(|t| t.contains_key(l))
            });
        }
        for (code, texts) in &self.procedures {
            check("procedure", code, &|l| texts.contains_key(l));
        }
        for id in agencies {
            let names = self.agencies.get(*id);
            check("agency", id, &|l| names.is_some_and(|n| n.contains_key(l)));
        }
        out
    }
}

/// Reads `[labels]`; every wrong key or type is reported.
pub(super) fn read(ctx: &mut Ctx, value: &Spanned<DeValue<'_>>) -> Option<Labels> {
    let before = ctx.errors.len();
    let mut labels = Labels::default();
    for (key, v) in table(ctx, value, "[labels]")? {
        match key.as_str() {
            "purpose" => labels.purposes = texts(ctx, v, "purpose"),
            "procedure" => labels.procedures = texts(ctx, v, "procedure"),
            "agency" => labels.agencies = names(ctx, v),
            "consent_link" => labels.consent_link = consent_link(ctx, v),
            other => ctx.error(
                &v.span(),
                format!("[labels] has no `{other}`"),
                "use [labels.purpose.<code>], [labels.procedure.<id>], [labels.agency] or consent_link",
            ),
        }
    }
    (ctx.errors.len() == before).then_some(labels)
}

/// The entries of a table, or an error saying `what` must be one.
fn table<'a, 'i>(
    ctx: &mut Ctx,
    value: &'a Spanned<DeValue<'i>>,
    what: &str,
) -> Option<Vec<(String, &'a Spanned<DeValue<'i>>)>> {
    match value.get_ref() {
        DeValue::Table(t) => Some(
            t.iter()
                .map(|(k, v)| (k.get_ref().to_string(), v))
                .collect(),
        ),
        _ => {
            ctx.error(
                &value.span(),
                format!("{what} must be a table"),
                "write it as a [table] or { key = value, … }",
            );
            None
        }
    }
}

fn lang_ok(ctx: &mut Ctx, lang: &str, v: &Spanned<DeValue<'_>>, at: &str) -> bool {
    let ok = LANGS.contains(&lang);
    if !ok {
        ctx.error(
            &v.span(),
            format!("{at}: `{lang}` is not one of the portal's languages"),
            format!("use {}", LANGS.join(", ")),
        );
    }
    ok
}

fn string(ctx: &mut Ctx, v: &Spanned<DeValue<'_>>, at: &str) -> Option<String> {
    match v.get_ref().as_str() {
        Some(s) if !s.trim().is_empty() => Some(s.to_owned()),
        _ => {
            ctx.error(
                &v.span(),
                format!("{at} must be a non-empty string"),
                "write the text in double quotes",
            );
            None
        }
    }
}

/// `[labels.purpose]` or `[labels.procedure]`: code → lang → {label, explain}.
fn texts(
    ctx: &mut Ctx,
    value: &Spanned<DeValue<'_>>,
    kind: &str,
) -> BTreeMap<String, BTreeMap<String, Text>> {
    let mut out = BTreeMap::new();
    let head = format!("[labels.{kind}]");
    for (code, by_lang) in table(ctx, value, &head).unwrap_or_default() {
        let at = format!("[labels.{kind}.{code}]");
        let mut langs = BTreeMap::new();
        for (lang, v) in table(ctx, by_lang, &at).unwrap_or_default() {
            if !lang_ok(ctx, &lang, v, &at) {
                continue;
            }
            let mut text = Text::default();
            for (key, s) in table(ctx, v, &format!("{at} {lang}")).unwrap_or_default() {
                let field = format!("{at} {lang}.{key}");
                let Some(s) = string(ctx, s, &field) else {
                    continue;
                };
                match key.as_str() {
                    "label" => text.label = s,
                    "explain" => text.explain = s,
                    _ => ctx.error(
                        &v.span(),
                        format!("{field} is not a known key"),
                        "give `label` (a few words) and `explain` (one sentence)",
                    ),
                }
            }
            if text.label.is_empty() || text.explain.is_empty() {
                ctx.error(
                    &v.span(),
                    format!("{at} {lang} needs both `label` and `explain`"),
                    "write it as { label = \"…\", explain = \"…\" }",
                );
            }
            langs.insert(lang, text);
        }
        out.insert(code, langs);
    }
    out
}

/// `[labels.agency]`: agency id → lang → display name.
fn names(
    ctx: &mut Ctx,
    value: &Spanned<DeValue<'_>>,
) -> BTreeMap<String, BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for (id, by_lang) in table(ctx, value, "[labels.agency]").unwrap_or_default() {
        let at = format!("[labels.agency] {id}");
        let mut langs = BTreeMap::new();
        for (lang, v) in table(ctx, by_lang, &at).unwrap_or_default() {
            if lang_ok(ctx, &lang, v, &at) {
                if let Some(s) = string(ctx, v, &format!("{at}.{lang}")) {
                    langs.insert(lang, s);
                }
            }
        }
        out.insert(id, langs);
    }
    out
}

/// `consent_link`: an https address of the portal with `{consent}` in it.
fn consent_link(ctx: &mut Ctx, v: &Spanned<DeValue<'_>>) -> Option<String> {
    let link = string(ctx, v, "[labels] consent_link")?;
    if link.starts_with("https://") && link.contains("{consent}") {
        return Some(link);
    }
    ctx.error(
        &v.span(),
        format!("[labels] consent_link `{link}` is not an https address with `{{consent}}` in it"),
        "write the portal's consent page, e.g. \"https://portal.example/consents/{consent}\"",
    );
    None
}
