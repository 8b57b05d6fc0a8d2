//! Typed reads from a parsed TOML table that keep every value's position and
//! record, rather than stop at, each missing key, wrong type or unknown key.
//!
//! Serde-derived structs would stop at the first problem of each table; an
//! operator fixing a configuration wants them all in one run.

use std::ops::Range;

use toml::de::{DeTable, DeValue};
use toml::Spanned;

use super::error::{ConfigError, ConfigErrors, Location, Source};

/// Where errors go while a configuration is read.
pub(super) struct Ctx {
    pub(super) src: Source,
    pub(super) errors: ConfigErrors,
}

impl Ctx {
    pub(super) fn at(&self, span: &Range<usize>) -> Location {
        self.src.span(span)
    }

    /// Records an error at `span`.
    pub(super) fn error(
        &mut self,
        span: &Range<usize>,
        message: impl Into<String>,
        fix: impl Into<String>,
    ) {
        let at = Some(self.at(span));
        self.errors.push(ConfigError::new(at, message, fix));
    }
}

/// A table of the file (`[node]`, one `[[agency]]`, ...) being read.
pub(super) struct Section<'a, 'i> {
    /// How the section is written, e.g. `[node]` or `[[agency]]`.
    pub(super) name: &'static str,
    pub(super) table: &'a DeTable<'i>,
    /// The span of its header (or of the inline table).
    pub(super) span: Range<usize>,
    allowed: &'static [&'static str],
}

fn article(kind: &str) -> &'static str {
    if kind.starts_with(['a', 'i']) {
        "an"
    } else {
        "a"
    }
}

impl<'a, 'i> Section<'a, 'i> {
    pub(super) fn new(
        name: &'static str,
        value: &'a Spanned<DeValue<'i>>,
        allowed: &'static [&'static str],
        ctx: &mut Ctx,
    ) -> Option<Self> {
        match value.get_ref() {
            DeValue::Table(table) => {
                let section = Self {
                    name,
                    table,
                    span: value.span(),
                    allowed,
                };
                section.check_keys(ctx);
                Some(section)
            }
            other => {
                let kind = other.type_str();
                ctx.error(
                    &value.span(),
                    format!("{name} must be a table, found {} {kind}", article(kind)),
                    format!("write a `{name}` header followed by its keys, one per line"),
                );
                None
            }
        }
    }

    fn check_keys(&self, ctx: &mut Ctx) {
        for key in self.table.keys() {
            if self.allowed.contains(&key.get_ref().as_ref()) {
                continue;
            }
            let mut fix = format!(
                "remove it, or use one of the keys allowed in {}: {}",
                self.name,
                self.allowed.join(", ")
            );
            let max = typo_distance(key.get_ref());
            if let Some(close) = closest(key.get_ref(), self.allowed.iter().copied(), max) {
                fix = format!("did you mean `{close}`? Otherwise {fix}");
            }
            ctx.error(
                &key.span(),
                format!("unknown key `{}` in {}", key.get_ref(), self.name),
                fix,
            );
        }
    }

    fn get(&self, key: &str) -> Option<&'a Spanned<DeValue<'i>>> {
        self.table.get(key)
    }

    fn missing(&self, ctx: &mut Ctx, key: &str, example: &str) {
        // A misspelt key is already reported with a "did you mean" hint.
        let misspelt = self.table.keys().any(|k| {
            let k = k.get_ref();
            !self.allowed.contains(&k.as_ref()) && distance(k, key) <= typo_distance(k)
        });
        if misspelt {
            return;
        }
        ctx.error(
            &self.span,
            format!("{} is missing the required key `{key}`", self.name),
            format!("add `{key} = {example}` under {}", self.name),
        );
    }

    fn wrong_type(
        &self,
        ctx: &mut Ctx,
        key: &str,
        want: &str,
        found: &Spanned<DeValue<'_>>,
        example: &str,
    ) {
        let kind = found.get_ref().type_str();
        ctx.error(
            &found.span(),
            format!(
                "`{key}` in {} must be {want}, found {} {kind}",
                self.name,
                article(kind)
            ),
            format!("write it as `{key} = {example}`"),
        );
    }

    /// An optional string.
    pub(super) fn opt_str(
        &self,
        ctx: &mut Ctx,
        key: &str,
        example: &str,
    ) -> Option<Spanned<String>> {
        let value = self.get(key)?;
        match value.get_ref().as_str() {
            Some(s) => Some(Spanned::new(value.span(), s.to_owned())),
            None => {
                self.wrong_type(ctx, key, "a string", value, example);
                None
            }
        }
    }

    /// A required string; `None` after recording why it is missing or wrong.
    pub(super) fn req_str(
        &self,
        ctx: &mut Ctx,
        key: &str,
        example: &str,
    ) -> Option<Spanned<String>> {
        if self.get(key).is_none() {
            self.missing(ctx, key, example);
        }
        self.opt_str(ctx, key, example)
    }

    /// An optional integer.
    pub(super) fn opt_int(&self, ctx: &mut Ctx, key: &str, example: &str) -> Option<Spanned<i64>> {
        let value = self.get(key)?;
        let Some(int) = value.get_ref().as_integer() else {
            self.wrong_type(ctx, key, "an integer", value, example);
            return None;
        };
        match i64::from_str_radix(int.as_str(), int.radix()) {
            Ok(n) => Some(Spanned::new(value.span(), n)),
            Err(_) => {
                ctx.error(
                    &value.span(),
                    format!("`{key}` in {} is too large", self.name),
                    format!("write it as `{key} = {example}`"),
                );
                None
            }
        }
    }

    /// An optional boolean.
    pub(super) fn opt_bool(
        &self,
        ctx: &mut Ctx,
        key: &str,
        example: &str,
    ) -> Option<Spanned<bool>> {
        let value = self.get(key)?;
        match value.get_ref().as_bool() {
            Some(b) => Some(Spanned::new(value.span(), b)),
            None => {
                self.wrong_type(ctx, key, "true or false", value, example);
                None
            }
        }
    }

    /// An optional array of strings (`None` if absent or wrong).
    pub(super) fn opt_str_list(
        &self,
        ctx: &mut Ctx,
        key: &str,
        example: &str,
    ) -> Option<Vec<Spanned<String>>> {
        let value = self.get(key)?;
        let Some(array) = value.get_ref().as_array() else {
            self.wrong_type(ctx, key, "an array of strings", value, example);
            return None;
        };
        let mut out = Vec::new();
        let mut ok = true;
        for item in array.iter() {
            match item.get_ref().as_str() {
                Some(s) => out.push(Spanned::new(item.span(), s.to_owned())),
                None => {
                    self.wrong_type(ctx, key, "an array of strings", item, example);
                    ok = false;
                }
            }
        }
        ok.then_some(out)
    }

    /// A required array of strings.
    pub(super) fn req_str_list(
        &self,
        ctx: &mut Ctx,
        key: &str,
        example: &str,
    ) -> Option<Vec<Spanned<String>>> {
        if self.get(key).is_none() {
            self.missing(ctx, key, example);
        }
        self.opt_str_list(ctx, key, example)
    }

    /// The span of a key's value, or of the section if the key is absent.
    pub(super) fn span_of(&self, key: &str) -> Range<usize> {
        self.get(key)
            .map_or_else(|| self.span.clone(), Spanned::span)
    }
}

/// How many edits a misspelt key name may be from the intended one.
fn typo_distance(key: &str) -> usize {
    match key.chars().count() {
        0..=2 => 1,
        3..=5 => 2,
        _ => 3,
    }
}

/// Levenshtein distance, for "did you mean" hints.
pub(super) fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let next = (diagonal + usize::from(ca != *cb))
                .min(row[j] + 1)
                .min(row[j + 1] + 1);
            diagonal = row[j + 1];
            row[j + 1] = next;
        }
    }
    row[b.len()]
}

/// The candidate closest to `word`, if within `max` edits.
pub(super) fn closest<'c>(
    word: &str,
    candidates: impl IntoIterator<Item = &'c str>,
    max: usize,
) -> Option<&'c str> {
    candidates
        .into_iter()
        .map(|c| (distance(word, c), c))
        .filter(|&(d, _)| d <= max)
        .min_by_key(|&(d, _)| d)
        .map(|(_, c)| c)
}
