//! Access rules: which consumer may call which method, for which purposes,
//! on which basis.
//!
//! Rules from the config are compiled once against the catalogue into a
//! per-method table (`consumer → purpose → basis`), so a check is two hash
//! lookups. A successful check yields a [`Grant`], which forwarding requires:
//! a call cannot reach a provider without one.

use crate::catalogue::Catalogue;
use crate::config::{Basis, Config, ConfigError, ConfigErrors, MethodPattern, RuleConfig};
use crate::identity::AgencyId;
use crate::policy::release::Release;
use std::collections::HashMap;

pub mod release;

/// Permission to make one call: who, for what purpose, on which basis.
/// Only [`MethodAccess::check`] makes one (the fields are private), and
/// forwarding takes one: a call cannot be forwarded unchecked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant<'a> {
    consumer: &'a AgencyId,
    purpose: &'a str,
    basis: &'a Basis,
    rule: usize,
}

impl<'a> Grant<'a> {
    /// The calling agency.
    pub fn consumer(&self) -> &'a AgencyId {
        self.consumer
    }

    /// The declared purpose.
    pub fn purpose(&self) -> &'a str {
        self.purpose
    }

    /// The basis the rule names (a law, or consent).
    pub fn basis(&self) -> &'a Basis {
        self.basis
    }

    /// Index of the rule in the config (for logs and audit).
    pub fn rule(&self) -> usize {
        self.rule
    }
}

/// Why a call is not allowed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Denial {
    /// No rule lets this consumer call this method at all.
    NoRule,
    /// Rules exist for this consumer and method, but not for this purpose.
    PurposeNotAllowed {
        /// The purposes that are allowed, sorted.
        allowed: Vec<String>,
    },
}

#[derive(Debug, Clone)]
struct Entry {
    basis: Basis,
    rule: usize,
}

/// The rules that apply to one method.
#[derive(Debug, Clone, Default)]
pub struct MethodAccess {
    consumers: HashMap<AgencyId, HashMap<String, Entry>>,
}

impl MethodAccess {
    /// Checks a call by `consumer` for `purpose`.
    pub fn check<'a>(
        &'a self,
        consumer: &'a AgencyId,
        purpose: &'a str,
    ) -> Result<Grant<'a>, Denial> {
        let purposes = self.consumers.get(consumer).ok_or(Denial::NoRule)?;
        match purposes.get(purpose) {
            Some(entry) => Ok(Grant {
                consumer,
                purpose,
                basis: &entry.basis,
                rule: entry.rule,
            }),
            None => {
                let mut allowed: Vec<String> = purposes.keys().cloned().collect();
                allowed.sort();
                Err(Denial::PurposeNotAllowed { allowed })
            }
        }
    }

    /// The purposes for which `consumer` may call this method, sorted
    /// (empty when no rule lets it call the method at all).
    pub fn purposes_of(&self, consumer: &AgencyId) -> Vec<String> {
        let mut allowed: Vec<String> = self
            .consumers
            .get(consumer)
            .map(|purposes| purposes.keys().cloned().collect())
            .unwrap_or_default();
        allowed.sort();
        allowed
    }

    /// The consumers with at least one rule on this method.
    pub fn consumers(&self) -> impl Iterator<Item = &AgencyId> {
        self.consumers.keys()
    }
}

/// Every method's access table.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    by_path: HashMap<String, MethodAccess>,
    /// Response minimisation, by (gRPC path, rule index).
    releases: HashMap<(String, usize), std::sync::Arc<Release>>,
}

impl Policy {
    /// Compiles the config's rules against the loaded catalogue. A rule that
    /// names a method no contract provides, or two rules that give the same
    /// access on different bases, are errors at the rule's place.
    pub fn compile(config: &Config, catalogue: &Catalogue) -> Result<Self, ConfigErrors> {
        let methods: Vec<(&str, &str)> = catalogue
            .methods()
            .iter()
            .map(|m| (m.service.as_str(), m.method.as_str()))
            .collect();
        let mut errors = ConfigErrors(Vec::new());
        for rule in &config.rules {
            for (pattern, at) in rule.methods.iter().zip(&rule.methods_at) {
                if !methods.iter().any(|(s, m)| pattern.matches(s, m)) {
                    errors.0.push(ConfigError {
                        at: Some(at.clone()),
                        message: format!(
                            "the rule names `{pattern}`, which no loaded contract provides"
                        ),
                        fix: suggest(pattern, &methods),
                    });
                }
            }
        }
        let (mut policy, conflicts) = Self::build(&config.rules, &methods);
        for (index, rule) in config.rules.iter().enumerate() {
            let Some(fields) = &rule.release else {
                continue;
            };
            for route in catalogue.methods() {
                if !rule
                    .methods
                    .iter()
                    .any(|p| p.matches(&route.service, &route.method))
                {
                    continue;
                }
                match Release::compile(&route.response, fields) {
                    Ok(release) => {
                        policy.releases.insert((route.path.clone(), index), std::sync::Arc::new(release));
                    }
                    Err(why) => errors.0.push(ConfigError {
                        at: Some(rule.at.clone()),
                        message: format!("`release` of this rule does not fit `{}`: {why}", route.qualified()),
                        fix: "name fields of the method's response; a rule covering methods with different responses needs one rule per method".into(),
                    }),
                }
            }
        }
        for (rule, message) in conflicts {
            errors.0.push(ConfigError {
                at: Some(config.rules[rule].at.clone()),
                message,
                fix: "give each (consumer, method, purpose) a single basis: remove or merge one of the rules".into(),
            });
        }
        if errors.0.is_empty() {
            Ok(policy)
        } else {
            Err(errors)
        }
    }

    /// Builds the tables from rules over the given `(service, method)` list;
    /// returns the conflicts found (rule index, message). The first rule wins.
    pub fn build(rules: &[RuleConfig], methods: &[(&str, &str)]) -> (Self, Vec<(usize, String)>) {
        let mut by_path: HashMap<String, MethodAccess> = HashMap::new();
        let mut conflicts = Vec::new();
        for (index, rule) in rules.iter().enumerate() {
            for &(service, method) in methods {
                if !rule.methods.iter().any(|p| p.matches(service, method)) {
                    continue;
                }
                let access = by_path.entry(format!("/{service}/{method}")).or_default();
                let purposes = access.consumers.entry(rule.consumer.clone()).or_default();
                for purpose in &rule.purposes {
                    match purposes.get(purpose) {
                        Some(existing) if existing.basis != rule.basis => conflicts.push((
                            index,
                            format!(
                                "`{}` calling `{service}/{method}` for `{purpose}` is already allowed on basis `{}` (rule {}); this rule says `{}`",
                                rule.consumer, existing.basis, existing.rule + 1, rule.basis
                            ),
                        )),
                        Some(_) => {}
                        None => {
                            purposes.insert(purpose.clone(), Entry { basis: rule.basis.clone(), rule: index });
                        }
                    }
                }
            }
        }
        (
            Self {
                by_path,
                releases: HashMap::new(),
            },
            conflicts,
        )
    }

    /// The fields a rule releases from a method's responses, if it minimises.
    pub fn release(&self, path: &str, rule: usize) -> Option<&std::sync::Arc<Release>> {
        self.releases.get(&(path.to_owned(), rule))
    }

    /// The access table of a method, by gRPC path; `None` when no rule names it.
    pub fn access(&self, path: &str) -> Option<&MethodAccess> {
        self.by_path.get(path)
    }
}

/// A fix for a pattern that matches nothing: the closest method, if any.
fn suggest(pattern: &MethodPattern, methods: &[(&str, &str)]) -> String {
    let wanted = pattern.to_string();
    let best = methods
        .iter()
        .map(|(s, m)| format!("{s}/{m}"))
        .min_by_key(|candidate| edit_distance(candidate, &wanted));
    match best {
        Some(c) if edit_distance(&c, &wanted) <= 3 => {
            format!("did you mean `{c}`? `jisr catalog --config FILE` lists every method")
        }
        _ => "check the spelling against `jisr catalog --config FILE`, or add the contract to an [[agency]]".into(),
    }
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests;
