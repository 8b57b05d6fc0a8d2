//! The node's witnessing: one background task per `[[audit.witness]]`
//! pushing the log's latest checkpoint (`push.rs`), the cosigned
//! checkpoints kept (`kept.rs`), and what the audit API, metrics and
//! `/readyz` read of them. Nothing here is on the exchange path: a witness
//! that is down, slow or refusing only makes witnessing lag.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use super::kept::{Kept, Witnessed};
use super::WitnessClient;
use crate::audit::note::CosignatureVerifier;
use crate::audit::{AuditError, AuditLog};

/// One configured witness, ready to be asked.
#[derive(Debug)]
pub(super) struct Witness {
    pub(super) name: String,
    pub(super) client: WitnessClient,
    pub(super) verifier: CosignatureVerifier,
    pub(super) counters: Counters,
}

/// How one witness is doing, for metrics and `/readyz`.
#[derive(Debug, Default)]
pub(super) struct Counters {
    /// The largest size it cosigned (as kept); 0 before the first.
    pub(super) cosigned: AtomicU64,
    /// Failed pushes by reason.
    pub(super) failures: Mutex<BTreeMap<&'static str, u64>>,
    /// The last push's failure, cleared by a cosignature.
    pub(super) last_error: Mutex<Option<String>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Each value is replaced whole under its lock: never half-written.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Counters {
    pub(super) fn failed(&self, reason: &'static str, what: String) {
        *lock(&self.failures).entry(reason).or_default() += 1;
        *lock(&self.last_error) = Some(what);
    }

    pub(super) fn cosigned(&self, size: u64) {
        self.cosigned.fetch_max(size, Ordering::AcqRel);
        *lock(&self.last_error) = None;
    }
}

/// What the node's tasks share.
#[derive(Debug)]
pub(super) struct Inner {
    pub(super) log: Arc<AuditLog>,
    pub(super) witnesses: Vec<Witness>,
    pub(super) quorum: usize,
    pub(super) retry_max: Duration,
    /// How often a task looks for a new checkpoint.
    pub(super) poll: Duration,
    pub(super) kept: Mutex<Kept>,
    /// Held from reading `kept` to replacing it after the file is written.
    pub(super) writing: tokio::sync::Mutex<()>,
}

impl Inner {
    pub(super) fn kept(&self) -> std::sync::MutexGuard<'_, Kept> {
        lock(&self.kept)
    }
}

/// One witness as metrics and `/readyz` show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WitnessFigures {
    /// Its label in the configuration.
    pub name: String,
    /// The largest tree size it cosigned.
    pub cosigned_size: u64,
    /// Failed pushes by reason (`unreachable`, `split_view`, …).
    pub failures: Vec<(&'static str, u64)>,
    /// Why the last push failed, when it did and nothing was cosigned since.
    pub last_error: Option<String>,
}

/// Witnessing as metrics and `/readyz` show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Overview {
    /// The size of the log's latest signed checkpoint.
    pub checkpoint_size: u64,
    /// The size of the latest witnessed checkpoint (0 if none).
    pub witnessed_size: u64,
    /// Cosignatures a checkpoint needs to count as witnessed.
    pub quorum: usize,
    /// Each witness, in configuration order.
    pub witnesses: Vec<WitnessFigures>,
}

/// The node's witnessing: started with the gateway, stopped at close.
#[derive(Debug)]
pub struct Witnessing {
    inner: Arc<Inner>,
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

impl Witnessing {
    /// Reads the kept cosignatures of `log` and starts one task per
    /// witness of `config` (none when it has no witness). Must run on a
    /// Tokio runtime.
    pub fn start(
        log: Arc<AuditLog>,
        config: &crate::config::Witnessing,
        poll: Duration,
    ) -> Result<Arc<Self>, AuditError> {
        let mut witnesses = Vec::with_capacity(config.witnesses.len());
        for w in &config.witnesses {
            let bad = |what: String| {
                AuditError::Unavailable(format!("[[audit.witness]] `{}`: {what}", w.name))
            };
            let verifier = CosignatureVerifier::from_text(&w.verifier_key)
                .map_err(|e| bad(format!("verifier_key: {e}")))?;
            let client = WitnessClient::new(&w.url, &w.ca).map_err(|e| bad(e.to_string()))?;
            witnesses.push(Witness {
                name: w.name.clone(),
                client,
                verifier,
                counters: Counters::default(),
            });
        }
        let verifiers: Vec<_> = witnesses.iter().map(|w| w.verifier.clone()).collect();
        let kept = Kept::open(&log, &verifiers, config.quorum)?;
        for (i, w) in witnesses.iter().enumerate() {
            w.counters.cosigned(kept.latest_of(i).unwrap_or(0));
        }
        let inner = Arc::new(Inner {
            log,
            witnesses,
            quorum: config.quorum,
            retry_max: config.retry_max,
            poll,
            kept: Mutex::new(kept),
            writing: tokio::sync::Mutex::new(()),
        });
        let tasks = (0..inner.witnesses.len())
            .map(|i| tokio::spawn(super::push::run(inner.clone(), i)))
            .collect();
        Ok(Arc::new(Witnessing {
            inner,
            tasks: Mutex::new(tasks),
        }))
    }

    /// Whether any witness is configured.
    pub fn is_on(&self) -> bool {
        !self.inner.witnesses.is_empty()
    }

    /// The latest checkpoint with at least the quorum of cosignatures.
    pub fn witnessed(&self) -> Option<Witnessed> {
        self.inner.kept().witnessed()
    }

    /// How witnessing is doing now.
    pub fn figures(&self) -> Overview {
        Overview {
            checkpoint_size: self.inner.log.checkpoint().checkpoint.size,
            witnessed_size: self.witnessed().map_or(0, |w| w.size),
            quorum: self.inner.quorum,
            witnesses: self
                .inner
                .witnesses
                .iter()
                .map(|w| WitnessFigures {
                    name: w.name.clone(),
                    cosigned_size: w.counters.cosigned.load(Ordering::Acquire),
                    failures: lock(&w.counters.failures)
                        .iter()
                        .map(|(k, v)| (*k, *v))
                        .collect(),
                    last_error: lock(&w.counters.last_error).clone(),
                })
                .collect(),
        }
    }

    /// Stops the tasks (at close; a push in flight is abandoned, which a
    /// witness tolerates: the next start pushes again).
    pub fn stop(&self) {
        for task in lock(&self.tasks).drain(..) {
            task.abort();
        }
    }
}

impl Drop for Witnessing {
    fn drop(&mut self) {
        self.stop();
    }
}
