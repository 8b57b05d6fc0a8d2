//! Readiness: the node takes traffic only when its certificate is valid,
//! its catalogue has methods, its audit log takes entries and it is not
//! draining. The shared consent store (Redis) is checked too but is not
//! needed to be ready: without it the node still serves every law-based
//! exchange, and refuses only what rests on consent (CONSENT_UNAVAILABLE);
//! a load balancer that dropped every replica when Redis fails would refuse
//! those too. Checked on each `/readyz` request, which never waits on Redis:
//! the consent store is probed in the background every
//! [`STORE_PROBE_INTERVAL`], each probe bounded by [`STORE_PROBE_DEADLINE`],
//! and `/readyz` shows the last answer (at most their sum old), so a Redis
//! that hangs cannot make a load balancer's check time out.

use super::view::Probe;
use crate::audit::AuditLog;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::CertificateDer;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::watch;

/// How often the consent store's Redis is probed for `/readyz`.
pub const STORE_PROBE_INTERVAL: Duration = Duration::from_millis(500);
/// A probe unanswered this long counts as the store being down: a Redis
/// that takes longer to answer a PING does not serve consent calls either.
pub const STORE_PROBE_DEADLINE: Duration = Duration::from_secs(1);

/// One readiness check's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// What was checked.
    pub name: &'static str,
    /// Whether it passed.
    pub ok: bool,
    /// Whether the node is not ready when it fails. A check that is not
    /// needed (the consent store) only narrows what the node serves.
    pub needed: bool,
    /// What was found, or what is wrong and what to do.
    pub detail: String,
}

/// The name of the consent store's check.
pub const CONSENT_STORE: &str = "consent store";

/// Whether the node is ready: every needed check passed.
pub fn is_ready(checks: &[Check]) -> bool {
    checks.iter().all(|c| c.ok || !c.needed)
}

/// Whether the consent store answered, when a shared one is checked.
pub fn consent_store_up(checks: &[Check]) -> Option<bool> {
    checks
        .iter()
        .find(|c| c.name == CONSENT_STORE)
        .map(|c| c.ok)
}

/// What readiness looks at.
#[derive(Debug)]
pub struct Readiness {
    /// What the current configuration serves: read at start and again
    /// after each applied reload.
    serving: std::sync::Mutex<Serving>,
    audit: Arc<AuditLog>,
    /// The shared consent store's Redis, when there is one.
    store: Option<Store>,
    /// The bus, which reports data Redis lost (see [`super::bus::check`]).
    bus: std::sync::OnceLock<Arc<crate::bus::Figures>>,
    /// The node's witnesses, when it has any (never needed to be ready).
    witnessing: std::sync::OnceLock<Arc<crate::audit::witnessing::Witnessing>>,
    draining: AtomicBool,
}

/// The shared consent store as the background probe last found it.
#[derive(Debug)]
struct Store {
    probe: Arc<dyn Probe>,
    /// The last probe's answer: what `/readyz` shows.
    last: Mutex<Result<(), String>>,
}

/// The node certificate's validity (unix seconds) and the routable methods.
#[derive(Debug)]
struct Serving {
    cert: Result<(i64, i64), String>,
    methods: usize,
}

impl Readiness {
    /// Readiness of a node serving `methods` methods with this certificate,
    /// audit log and (if Redis) what pings the consent store's Redis.
    pub fn new(
        cert: &Path,
        methods: usize,
        audit: Arc<AuditLog>,
        redis: Option<Arc<dyn Probe>>,
    ) -> Self {
        Self {
            serving: std::sync::Mutex::new(Serving {
                cert: validity(cert),
                methods,
            }),
            audit,
            store: redis.map(|probe| Store {
                probe,
                last: Mutex::new(Err("not probed yet".into())),
            }),
            bus: std::sync::OnceLock::new(),
            witnessing: std::sync::OnceLock::new(),
            draining: AtomicBool::new(false),
        }
    }

    /// After a reload: the certificate and methods now served (a renewed
    /// certificate's dates, contracts added or removed).
    pub fn update(&self, cert: &Path, methods: usize) {
        let serving = Serving {
            cert: validity(cert),
            methods,
        };
        *self.serving.lock().unwrap_or_else(|e| e.into_inner()) = serving;
    }

    /// Names the bus whose lost data `/readyz` reports.
    pub fn set_bus(&self, figures: Arc<crate::bus::Figures>) {
        let _ = self.bus.set(figures);
    }

    /// Names the witnessing whose lag `/readyz` and metrics report.
    pub fn set_witnessing(&self, witnessing: Arc<crate::audit::witnessing::Witnessing>) {
        if witnessing.is_on() {
            let _ = self.witnessing.set(witnessing);
        }
    }

    /// How witnessing is doing, when the node has witnesses.
    pub fn witnessing(&self) -> Option<crate::audit::witnessing::Overview> {
        self.witnessing.get().map(|w| w.figures())
    }

    /// Marks the node as draining: never ready again.
    pub fn set_draining(&self) {
        self.draining.store(true, Ordering::Relaxed);
    }

    /// Whether the audit log still takes entries (`Err` says why not).
    pub fn audit_up(&self) -> Result<(), String> {
        match self.audit.failure() {
            None => Ok(()),
            Some(why) => Err(why),
        }
    }

    /// Asks the consent store once, bounded by [`STORE_PROBE_DEADLINE`],
    /// and keeps the answer for `/readyz`; logs when the store goes down or
    /// comes back.
    pub async fn probe_store(&self) {
        let Some(store) = &self.store else { return };
        let answer = tokio::time::timeout(STORE_PROBE_DEADLINE, store.probe.probe())
            .await
            .unwrap_or_else(|_| {
                Err(format!(
                    "Redis did not answer a PING within {} ms; check that it runs and is not overloaded",
                    STORE_PROBE_DEADLINE.as_millis()
                ))
            });
        let was_up = std::mem::replace(&mut *lock(&store.last), answer.clone()).is_ok();
        match answer {
            Err(why) if was_up => {
                tracing::warn!(reason = %why, "the consent store is down: consent calls are refused, law-based exchanges are served")
            }
            Ok(()) if !was_up => tracing::info!("the consent store answers"),
            _ => {}
        }
    }

    /// Probes the consent store every [`STORE_PROBE_INTERVAL`] until
    /// `stopped` turns true (at once when there is no shared store).
    pub async fn probe_store_until(&self, mut stopped: watch::Receiver<bool>) {
        if self.store.is_none() {
            return;
        }
        loop {
            tokio::select! {
                () = tokio::time::sleep(STORE_PROBE_INTERVAL) => {}
                _ = stopped.wait_for(|s| *s) => return,
            }
            self.probe_store().await;
        }
    }

    /// Runs every check; the consent store's is the background probe's
    /// last answer, so this never waits.
    pub fn check(&self) -> Vec<Check> {
        let mut checks = Vec::with_capacity(5);
        let (cert, methods) = {
            let serving = self.serving.lock().unwrap_or_else(|e| e.into_inner());
            (serving.cert.clone(), serving.methods)
        };
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        checks.push(certificate_check(&cert, now));
        checks.push(catalogue_check(methods));
        checks.push(self.audit_check());
        if let Some(store) = &self.store {
            checks.push(consent_store_check(lock(&store.last).clone()));
        }
        if let Some(loss) = self.bus.get().and_then(|b| b.loss()) {
            checks.push(super::bus::check(&loss));
        }
        if let Some(overview) = self.witnessing() {
            checks.push(super::witness::check(&overview));
        }
        if self.draining.load(Ordering::Relaxed) {
            checks.push(Check {
                name: "serving",
                ok: false,
                needed: true,
                detail: "the node is shutting down".into(),
            });
        }
        checks
    }

    fn audit_check(&self) -> Check {
        match self.audit_up() {
            Ok(()) => Check {
                name: "audit",
                ok: true,
                needed: true,
                detail: format!("{} entries", self.audit.size()),
            },
            Err(why) => Check {
                name: "audit",
                ok: false,
                needed: true,
                detail: format!(
                    "the audit log stopped: {why}; the node releases no data until restarted"
                ),
            },
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // The answer is replaced whole under the lock: never half-written.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The shared consent store's state and what the node serves because of it.
fn consent_store_check(probe: Result<(), String>) -> Check {
    match probe {
        Ok(()) => Check {
            name: CONSENT_STORE,
            ok: true,
            needed: false,
            detail: "answers; calls and grants on a consent basis are served".into(),
        },
        Err(why) => Check {
            name: CONSENT_STORE,
            ok: false,
            needed: false,
            detail: format!(
                "calls and grants on a consent basis are refused (CONSENT_UNAVAILABLE); law-based exchanges are served; {why}"
            ),
        },
    }
}

/// Whether the node certificate is valid at `now` (seconds since the epoch).
fn certificate_check(cert: &Result<(i64, i64), String>, now: i64) -> Check {
    match cert {
        Ok((from, until)) if (*from..=*until).contains(&now) => Check {
            name: "certificates",
            ok: true,
            needed: true,
            detail: format!(
                "node certificate valid for {} more day(s)",
                (until - now) / 86_400
            ),
        },
        Ok((from, _)) if now < *from => Check {
            name: "certificates",
            ok: false,
            needed: true,
            detail: "the node certificate is not valid yet; check the clock or the certificate"
                .into(),
        },
        Ok(_) => Check {
            name: "certificates",
            ok: false,
            needed: true,
            detail: "the node certificate has expired; install a renewed one and restart".into(),
        },
        Err(e) => Check {
            name: "certificates",
            ok: false,
            needed: true,
            detail: e.clone(),
        },
    }
}

fn catalogue_check(methods: usize) -> Check {
    Check {
        name: "catalogue",
        ok: methods > 0,
        needed: true,
        detail: if methods > 0 {
            format!("{methods} method(s) routable")
        } else {
            "no method is routable: add an [[agency]] with an upstream and contracts".into()
        },
    }
}

/// The validity window of the first certificate in a PEM file.
fn validity(path: &Path) -> Result<(i64, i64), String> {
    let der = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("cannot read the node certificate {}: {e}", path.display()))?
        .next()
        .ok_or_else(|| format!("no certificate in {}", path.display()))?
        .map_err(|e| format!("cannot read the node certificate {}: {e}", path.display()))?;
    let (_, cert) = x509_parser::parse_x509_certificate(&der)
        .map_err(|e| format!("the node certificate {} is not X.509: {e}", path.display()))?;
    let v = cert.validity();
    Ok((v.not_before.timestamp(), v.not_after.timestamp()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_consent_store_down_narrows_what_is_served_but_an_expired_certificate_stops_all() {
        let now = 10 * 86_400;
        let valid = certificate_check(&Ok((0, 20 * 86_400)), now);
        let store_down = consent_store_check(Err("connection refused".into()));
        let checks = vec![valid, catalogue_check(3), store_down.clone()];
        assert!(is_ready(&checks));
        assert_eq!(consent_store_up(&checks), Some(false));
        assert!(
            store_down.detail.starts_with(
                "calls and grants on a consent basis are refused (CONSENT_UNAVAILABLE); law-based exchanges are served; connection refused"
            ),
            "{}",
            store_down.detail
        );

        let expired = certificate_check(&Ok((0, 86_400)), now);
        assert!(expired.detail.contains("expired"), "{}", expired.detail);
        assert!(!is_ready(&[expired, catalogue_check(3)]));
        assert!(!is_ready(&[catalogue_check(0)]));
        assert_eq!(consent_store_up(&[catalogue_check(3)]), None);
    }
}
