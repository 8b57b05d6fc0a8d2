//! Connections to a provider's back-end: one or more instances, each with
//! several HTTP/2 connections over mutual TLS, opened lazily, reused across
//! calls and reopened when they close. One connection is driven by one task,
//! so a single connection would cap throughput; calls are spread round-robin
//! over the instances that are not ejected, then over their connections.
//!
//! The pool keeps the state of two resilience layers: the provider's
//! in-flight count ([`super::layers::shed`]) and each instance's [`Breaker`]
//! ([`super::layers::breaker`]), which [`Upstream::pick`] consults.

use bytes::Bytes;
use http::{Request, Response};
use rustls_pki_types::ServerName;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_rustls::TlsConnector;

use super::layers::breaker::{Admit, Breaker, BreakerState};
use super::layers::shed::InFlightLimit;
use crate::clock::Clock;
use crate::config::ProviderLimits;
use crate::identity::AgencyId;

mod wire;
pub use wire::RecvBody;
use wire::{ready, start, Sender};

/// How long opening one connection (TCP + TLS + HTTP/2) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a call could not be delivered to the provider.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// TCP connect failed.
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        /// The upstream address.
        addr: String,
        /// The error.
        source: std::io::Error,
    },
    /// Connecting took too long.
    #[error("connecting to {addr} took more than {CONNECT_TIMEOUT:?}")]
    ConnectTimeout {
        /// The upstream address.
        addr: String,
    },
    /// The TLS handshake with the provider failed.
    #[error("TLS handshake with {addr} failed: {reason}")]
    Tls {
        /// The upstream address.
        addr: String,
        /// Why.
        reason: String,
    },
    /// HTTP/2 failed on the connection.
    #[error("HTTP/2 error with {addr}: {source}")]
    Http {
        /// The upstream address.
        addr: String,
        /// The error.
        source: h2::Error,
    },
}

/// The connection pool of one provider, over its instances.
pub struct Upstream {
    provider: AgencyId,
    tls: TlsConnector,
    instances: Box<[Instance]>,
    next: AtomicUsize,
    limits: ProviderLimits,
    in_flight: InFlightLimit,
    /// The node's clock, which the breakers' cooldowns count on.
    clock: Arc<Clock>,
}

/// One instance (address) of a provider's back-end.
struct Instance {
    addr: String,
    /// `addr` as the request URI's authority, parsed once rather than per
    /// call; `None` when it does not parse (each call is then refused).
    authority: Option<http::uri::Authority>,
    server_name: ServerName<'static>,
    slots: Box<[Slot]>,
    next: AtomicUsize,
    breaker: Breaker,
}

#[derive(Default)]
struct Slot {
    /// The live sender; a plain mutex held only to clone it.
    sender: Mutex<Option<Sender>>,
    /// Serialises reconnection so a burst of calls opens one connection.
    connecting: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream")
            .field("provider", &self.provider)
            .field(
                "instances",
                &self.instances.iter().map(|i| &i.addr).collect::<Vec<_>>(),
            )
            .field("limits", &self.limits)
            .finish()
    }
}

/// The state of one instance, for operators and metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceStats {
    /// Its `host:port`.
    pub addr: String,
    /// Its breaker.
    pub state: BreakerState,
    /// How many times it was ejected.
    pub ejections: u64,
}

/// The state of a provider's pool, for operators and metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamStats {
    /// The provider.
    pub provider: AgencyId,
    /// Calls in flight now.
    pub in_flight: usize,
    /// Calls shed so far because `max_in_flight` were in flight.
    pub shed: u64,
    /// Each instance.
    pub instances: Vec<InstanceStats>,
}

impl Upstream {
    /// Opens a mutual-TLS connection to each instance, waits for its HTTP/2
    /// greeting and closes it: whether the gateway can reach the provider
    /// now (for `jisr probe`). No call is sent; the pool is not touched.
    pub async fn reach(&self) -> Vec<(String, Result<(), String>)> {
        let tries = self.instances.iter().map(|i| async move {
            let attempt = async {
                let mut tls = wire::handshake(&self.tls, &i.server_name, &i.addr)
                    .await
                    .map_err(|e| e.to_string())?;
                crate::tls::h2_greeting(&mut tls)
                    .await
                    .map_err(|why| format!("{}: {why}", i.addr))
            };
            let outcome = tokio::time::timeout(CONNECT_TIMEOUT, attempt)
                .await
                .unwrap_or_else(|_| {
                    Err(UpstreamError::ConnectTimeout {
                        addr: i.addr.clone(),
                    }
                    .to_string())
                });
            (i.addr.clone(), outcome)
        });
        futures_util::future::join_all(tries).await
    }

    /// A pool of `connections` connections to each of `addrs` (`host:port`);
    /// the TLS config must verify the provider's identity. Its breakers
    /// count their cooldowns on `clock`'s monotonic reading.
    pub fn new(
        provider: AgencyId,
        addrs: &[String],
        connections: usize,
        limits: ProviderLimits,
        tls: Arc<rustls::ClientConfig>,
        clock: Arc<Clock>,
    ) -> Self {
        let instances = addrs
            .iter()
            .map(|addr| Instance {
                addr: addr.clone(),
                authority: addr.parse().ok(),
                server_name: server_name(addr),
                slots: (0..connections.max(1)).map(|_| Slot::default()).collect(),
                next: AtomicUsize::new(0),
                breaker: Breaker::new(limits.breaker_failures, limits.breaker_cooldown),
            })
            .collect();
        Self {
            provider,
            tls: TlsConnector::from(tls),
            instances,
            next: AtomicUsize::new(0),
            in_flight: InFlightLimit::new(limits.max_in_flight),
            limits,
            clock,
        }
    }

    /// The provider agency.
    pub fn provider(&self) -> &AgencyId {
        &self.provider
    }

    /// Its timeout, in-flight limit and breaker thresholds.
    pub fn limits(&self) -> &ProviderLimits {
        &self.limits
    }

    /// In-flight calls, shed calls and each instance's breaker.
    pub fn stats(&self) -> UpstreamStats {
        UpstreamStats {
            provider: self.provider.clone(),
            in_flight: self.in_flight.in_flight(),
            shed: self.in_flight.shed(),
            instances: self
                .instances
                .iter()
                .map(|i| InstanceStats {
                    addr: i.addr.clone(),
                    state: i.breaker.state(),
                    ejections: i.breaker.ejections(),
                })
                .collect(),
        }
    }

    /// The provider's in-flight count, for the shedding layer.
    pub fn in_flight(&self) -> &InFlightLimit {
        &self.in_flight
    }

    /// An instance whose breaker lets a call through, round-robin over
    /// those, and whether the call is its probe; or, when every instance
    /// is ejected, how long until the first may be probed. Nothing waits.
    pub fn pick(&self) -> Result<(Target<'_>, bool), Duration> {
        let n = self.instances.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let mut now = None;
        let mut clock = || *now.get_or_insert_with(|| self.clock.monotonic_ms());
        let mut soonest = Duration::MAX;
        for k in 0..n {
            let instance = &self.instances[(start + k) % n];
            let target = Target {
                upstream: self,
                instance,
            };
            match instance.breaker.admit(&mut clock) {
                Admit::Call => return Ok((target, false)),
                Admit::Probe => return Ok((target, true)),
                Admit::Ejected(wait) => soonest = soonest.min(wait),
            }
        }
        Err(soonest)
    }

    fn http(addr: &str, source: h2::Error) -> UpstreamError {
        UpstreamError::Http {
            addr: addr.to_owned(),
            source,
        }
    }
}

/// A name for SNI from `host:port`. The provider is authenticated by its
/// SPIFFE id, not by this name.
fn server_name(addr: &str) -> ServerName<'static> {
    let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    ServerName::try_from(host.to_owned())
        .unwrap_or_else(|_| ServerName::try_from("provider.invalid").expect("a valid DNS name"))
}

/// One instance of a provider, chosen for a call.
#[derive(Clone, Copy)]
pub struct Target<'a> {
    upstream: &'a Upstream,
    instance: &'a Instance,
}

impl std::fmt::Debug for Target<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target")
            .field("provider", &self.upstream.provider)
            .field("addr", &self.instance.addr)
            .finish()
    }
}

impl<'a> Target<'a> {
    /// The `host:port` of the instance.
    pub fn addr(&self) -> &'a str {
        &self.instance.addr
    }

    /// The instance's address as a URI authority, `None` if it is not one.
    pub fn authority(&self) -> Option<&'a http::uri::Authority> {
        self.instance.authority.as_ref()
    }

    /// The provider agency.
    pub fn provider(&self) -> &'a AgencyId {
        &self.upstream.provider
    }

    /// Its provider's limits and breaker thresholds.
    pub(crate) fn limits(&self) -> &'a ProviderLimits {
        &self.upstream.limits
    }

    /// The instance's breaker.
    pub(crate) fn breaker(&self) -> &'a Breaker {
        &self.instance.breaker
    }

    /// Milliseconds on the clock the breaker counts on.
    pub(crate) fn now_ms(&self) -> u64 {
        self.upstream.clock.monotonic_ms()
    }

    /// Sends a request on one of the instance's connections. A connection
    /// found closed before anything was sent on it is replaced, and the
    /// request sent once on the new one.
    pub async fn send(&self, request: Request<Bytes>) -> Result<Response<RecvBody>, UpstreamError> {
        let instance = self.instance;
        let turn = instance.next.fetch_add(1, Ordering::Relaxed);
        // On a lane, one of that lane's own connections: the call and the
        // connection's task then run on the same thread.
        let index = super::lanes::slot(super::lanes::current(), instance.slots.len(), turn);
        let slot = &instance.slots[index];
        let sender = self.sender(slot).await?;
        let ready = match ready(&sender).await {
            Ok(ready) => ready,
            Err(_) => {
                // Nothing was sent: the connection was gone. Once more on a new one.
                discard(slot, &sender);
                let sender = self.sender(slot).await?;
                ready(&sender)
                    .await
                    .map_err(|source| Upstream::http(&instance.addr, source))?
            }
        };
        // The request's head moves into h2 (its headers are not copied):
        // it is sent only on a connection that was ready for it.
        let response = start(ready, request)
            .await
            .map_err(|source| Upstream::http(&instance.addr, source))?;
        let response = response
            .await
            .map_err(|source| Upstream::http(&instance.addr, source))?;
        Ok(response.map(RecvBody::new))
    }

    async fn sender(&self, slot: &Slot) -> Result<Sender, UpstreamError> {
        if let Some(sender) = live(slot) {
            return Ok(sender);
        }
        let _connecting = slot.connecting.lock().await;
        if let Some(sender) = live(slot) {
            return Ok(sender);
        }
        let connect = wire::connect(
            &self.upstream.tls,
            &self.instance.server_name,
            &self.instance.addr,
            &self.upstream.provider,
        );
        let sender = tokio::time::timeout(CONNECT_TIMEOUT, connect)
            .await
            .map_err(|_| UpstreamError::ConnectTimeout {
                addr: self.instance.addr.clone(),
            })??;
        *slot.sender.lock().unwrap_or_else(|e| e.into_inner()) = Some(sender.clone());
        Ok(sender)
    }
}

fn live(slot: &Slot) -> Option<Sender> {
    let guard = slot.sender.lock().unwrap_or_else(|e| e.into_inner());
    guard.as_ref().filter(|s| !s.is_closed()).cloned()
}

fn discard(slot: &Slot, dead: &Sender) {
    let mut guard = slot.sender.lock().unwrap_or_else(|e| e.into_inner());
    if guard
        .as_ref()
        .is_some_and(|s| s.is_closed() || dead.is_closed())
    {
        *guard = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(addrs: &[&str], limits: ProviderLimits) -> Upstream {
        pool_on(addrs, limits, Arc::default())
    }

    fn pool_on(addrs: &[&str], limits: ProviderLimits, clock: Arc<Clock>) -> Upstream {
        crate::tls::install_crypto_provider();
        let tls = rustls::ClientConfig::builder()
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth();
        Upstream::new(
            AgencyId::parse("tax").unwrap(),
            &addrs.iter().map(|a| (*a).to_owned()).collect::<Vec<_>>(),
            2,
            limits,
            Arc::new(tls),
            clock,
        )
    }

    #[test]
    fn an_ejected_instance_is_probed_once_its_clock_passes_the_cooldown() {
        let limits = ProviderLimits {
            breaker_failures: 1,
            breaker_cooldown: Duration::from_secs(3600),
            ..ProviderLimits::default()
        };
        let clock = Arc::new(Clock::system());
        let up = pool_on(&["127.0.0.1:1"], limits, clock.clone());
        let (only, _) = up.pick().unwrap();
        assert!(only.breaker().failure(false, only.now_ms()));
        let wait = up.pick().unwrap_err();
        assert!(wait > Duration::from_secs(3500), "{wait:?}");
        // An hour later on the node's clock (not the process's): one probe.
        clock.advance(wait);
        let (probed, probe) = up.pick().expect("the cooldown has passed");
        assert!(probe, "the first call after the cooldown is the probe");
        assert!(up.pick().is_err(), "one probe at a time");
        assert!(probed.breaker().success(probe), "the probe closes it");
        assert!(matches!(up.pick(), Ok((_, false))), "back in service");
    }

    #[test]
    fn ejected_instances_are_skipped_until_all_are_out() {
        let limits = ProviderLimits {
            breaker_failures: 1,
            breaker_cooldown: Duration::from_secs(30),
            ..ProviderLimits::default()
        };
        let up = pool(&["127.0.0.1:1", "127.0.0.1:2"], limits);
        let (first, _) = up.pick().unwrap();
        let bad = first.addr().to_owned();
        assert!(first.breaker().failure(false, first.now_ms()));
        // Every call now goes to the other instance.
        for _ in 0..4 {
            let (target, probe) = up.pick().unwrap();
            assert_ne!(target.addr(), bad);
            assert!(!probe);
            target.breaker().success(false);
        }
        let (other, _) = up.pick().unwrap();
        assert!(other.breaker().failure(false, other.now_ms()));
        let wait = up.pick().unwrap_err();
        assert!(wait <= Duration::from_secs(30), "{wait:?}");
        let stats = up.stats();
        assert!(stats
            .instances
            .iter()
            .all(|i| i.state == BreakerState::Open && i.ejections == 1));
    }
}
