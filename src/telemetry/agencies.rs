//! Which agencies get a label of their own. Only the agencies the
//! configuration in force names do (bounded cardinality: a valid
//! certificate of an undeclared agency counts under `other`), and that set
//! changes with reloads.
//!
//! Consumer labels are counter slots: every name ever declared since start
//! keeps its slot for the life of the process (`Registry`, append-only, so
//! a slot means the same thing in every generation of a method's counters).
//! Which names are *in force* is an [`AgencyLabels`] built when a
//! configuration is loaded and put in force when its routing state is
//! swapped in; the call path reads it through one `ArcSwap` load and one
//! hash lookup, no lock and no allocation.

use crate::config::Config;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// The label used for a consumer that is not declared in the configuration
/// (its certificate is valid, but no `[[agency]]` names it).
pub const OTHER_CONSUMER: &str = "other";

/// The counter slot of [`OTHER_CONSUMER`]: always the first, so a slot a
/// method's counters do not have yet falls back to it.
pub(crate) const OTHER_SLOT: usize = 0;

/// The agency labels of one configuration: each declared consumer's counter
/// slot, and the providers it names.
#[derive(Debug, Default)]
pub struct AgencyLabels {
    consumers: HashMap<String, usize>,
    providers: Vec<String>,
}

impl AgencyLabels {
    /// The counter slot of `consumer` ([`OTHER_SLOT`] when undeclared).
    pub(crate) fn slot(&self, consumer: &str) -> usize {
        self.consumers.get(consumer).copied().unwrap_or(OTHER_SLOT)
    }

    /// Whether `provider` is named by this configuration.
    pub(crate) fn names_provider(&self, provider: &str) -> bool {
        self.providers.iter().any(|p| p == provider)
    }

    /// The consumers (every `[[agency]]`) and providers (agencies with an
    /// upstream) `config` names.
    pub(crate) fn of_config(config: &Config) -> (Vec<&str>, Vec<&str>) {
        let consumers = config.agencies.iter().map(|a| a.id.as_str()).collect();
        let providers = config
            .agencies
            .iter()
            .filter(|a| !a.upstreams.is_empty())
            .map(|a| a.id.as_str())
            .collect();
        (consumers, providers)
    }
}

/// Every consumer label and provider counter since start. Read and written
/// only when a configuration is loaded and when metrics are exported.
#[derive(Debug)]
pub(crate) struct Registry {
    /// Consumer names by slot; slot 0 is [`OTHER_CONSUMER`].
    names: Vec<Arc<str>>,
    /// Upstream-error counters by provider, shared with the methods'
    /// counters (so a call adds to it without a lookup).
    upstream_errors: Vec<(String, Arc<AtomicU64>)>,
}

impl Default for Registry {
    fn default() -> Self {
        Self {
            names: vec![Arc::from(OTHER_CONSUMER)],
            upstream_errors: Vec::new(),
        }
    }
}

impl Registry {
    /// Registers what it does not know yet of `consumers` and `providers`
    /// and returns their labels.
    pub(crate) fn declare<'a>(
        &mut self,
        consumers: impl IntoIterator<Item = &'a str>,
        providers: impl IntoIterator<Item = &'a str>,
    ) -> AgencyLabels {
        let mut labels = AgencyLabels::default();
        for consumer in consumers {
            let slot = match self.names.iter().position(|n| &**n == consumer) {
                Some(slot) => slot,
                None => {
                    self.names.push(Arc::from(consumer));
                    self.names.len() - 1
                }
            };
            labels.consumers.insert(consumer.to_owned(), slot);
        }
        for provider in providers {
            if self.upstream_errors(provider).is_none() {
                self.upstream_errors
                    .push((provider.to_owned(), Arc::new(AtomicU64::new(0))));
            }
            labels.providers.push(provider.to_owned());
        }
        labels
    }

    /// How many consumer slots there are.
    pub(crate) fn slots(&self) -> usize {
        self.names.len()
    }

    /// Consumer names by slot.
    pub(crate) fn names(&self) -> &[Arc<str>] {
        &self.names
    }

    /// The upstream-error counter of `provider`, if declared.
    pub(crate) fn upstream_errors(&self, provider: &str) -> Option<Arc<AtomicU64>> {
        self.upstream_errors
            .iter()
            .find(|(p, _)| p == provider)
            .map(|(_, c)| c.clone())
    }

    /// Every provider's upstream errors, those named by `in_force` and
    /// those of providers dropped by a reload that had counted some.
    pub(crate) fn upstream_error_counts(&self, in_force: &AgencyLabels) -> Vec<(String, u64)> {
        self.upstream_errors
            .iter()
            .map(|(p, c)| (p, c.load(Ordering::Relaxed)))
            .filter(|(p, n)| *n > 0 || in_force.names_provider(p))
            .map(|(p, n)| (p.clone(), n))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_never_move_and_only_declared_names_are_in_force() {
        let mut registry = Registry::default();
        let first = registry.declare(["education", "tax"], ["civil-status"]);
        assert_eq!(first.slot("education"), 1);
        assert_eq!(first.slot("tax"), 2);
        assert_eq!(first.slot("nobody"), OTHER_SLOT);
        // A reload drops `education` and adds `employment`.
        let second = registry.declare(["tax", "employment"], ["civil-status", "employment"]);
        assert_eq!(second.slot("tax"), 2);
        assert_eq!(second.slot("employment"), 3);
        assert_eq!(second.slot("education"), OTHER_SLOT);
        assert_eq!(registry.slots(), 4);
        assert_eq!(&*registry.names()[0], OTHER_CONSUMER);
        assert!(second.names_provider("employment"));
        assert!(!first.names_provider("employment"));
        // A provider that is no longer named is listed only with errors.
        let third = registry.declare(["tax"], ["employment"]);
        assert_eq!(
            registry.upstream_error_counts(&third),
            [("employment".to_owned(), 0)]
        );
        registry
            .upstream_errors("civil-status")
            .unwrap()
            .fetch_add(2, Ordering::Relaxed);
        assert_eq!(
            registry.upstream_error_counts(&third),
            [("civil-status".to_owned(), 2), ("employment".to_owned(), 0)]
        );
    }
}
