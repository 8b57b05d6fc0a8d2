//! How long a checkpoint waits for its k-th cosignature while the gateway
//! carries `jisr bench`'s exchange load: the bench's own network (sample
//! providers and a gateway, separate processes) with two `jisr witness`
//! processes in `[[audit.witness]]`, the load generator of `jisr bench`,
//! and a watcher asking the audit API's `GetCheckpoint` every
//! [`POLL`] as the auditor would.
//!
//! A checkpoint's signing time is when the watcher first sees it as the
//! latest; it is witnessed when the watcher first sees it as the latest
//! witnessed one, which the gateway serves only once k cosignatures of it
//! verified and were kept durably. Both ends are seen by the same poll, so
//! the lag is exact to within one poll. A checkpoint that a newer one
//! replaced before the witnesses cosigned it is counted as superseded
//! (the newer one covers its entries). Every witnessed note seen is
//! verified again here against each witness's key.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use tonic::transport::Endpoint;

use super::WitnessProc;
use crate::audit::note::{CosignatureVerifier, NoteError, NoteSigner};
use crate::proto::jisr::audit::v1::{audit_client::AuditClient, GetCheckpointRequest};
use crate::tls::{self, TlsFiles};
use crate::tools::bench::load::{self, new_histogram, Endpoints, Load, Stop};
use crate::tools::bench::procs::LocalNetwork;

/// How often the watcher asks for the checkpoint.
const POLL: Duration = Duration::from_millis(5);
/// How long the watcher waits, after the load, for the last checkpoint to
/// be witnessed.
const DRAIN: Duration = Duration::from_secs(15);

/// The lag run's figures.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LagRun {
    /// Witnesses configured, and the quorum k.
    pub witnesses: usize,
    /// Cosignatures a checkpoint needs to count as witnessed.
    pub quorum: usize,
    /// The gateway's `checkpoint_interval_ms`.
    pub checkpoint_interval_ms: u64,
    /// Exchanges completed under load, and their rate.
    pub exchanges: u64,
    /// Exchanges per second.
    pub exchanges_per_second: f64,
    /// Failed exchanges.
    pub exchange_errors: u64,
    /// Checkpoints seen signed, witnessed themselves, and superseded.
    pub checkpoints_signed: u64,
    /// Witnessed with k cosignatures of their own.
    pub checkpoints_witnessed: u64,
    /// Replaced by a newer checkpoint before being witnessed.
    pub checkpoints_superseded: u64,
    /// Cosignatures in the witnessed notes seen that verified.
    pub cosignatures_verified: u64,
    /// Cosignatures that did not verify, or witnessed notes with fewer
    /// than k that verify: each is a failure of the run.
    pub failures: u64,
    /// Signing → k-th cosignature kept, ms.
    pub p50_ms: f64,
    /// p99, ms.
    pub p99_ms: f64,
    /// Max, ms.
    pub max_ms: f64,
    /// The watcher's resolution, ms.
    pub poll_ms: f64,
}

/// What the watcher saw.
#[derive(Default)]
struct Watch {
    /// Signed checkpoints not yet witnessed, by size, with when first seen.
    pending: BTreeMap<u64, Instant>,
    latest: u64,
    witnessed: u64,
    signed: u64,
    lags_us: Vec<u64>,
    superseded: u64,
    verified: u64,
    failures: u64,
}

impl Watch {
    fn saw(&mut self, size: u64, witnessed: u64, note: &str, now: Instant, check: &Check) {
        if size > self.latest {
            self.latest = size;
            self.signed += 1;
            self.pending.insert(size, now);
        }
        if witnessed > self.witnessed {
            self.witnessed = witnessed;
            let (verified, failed) = check.note(note);
            self.verified += verified;
            self.failures += failed;
            let covered: Vec<u64> = self.pending.range(..=witnessed).map(|(s, _)| *s).collect();
            for s in covered {
                let Some(seen) = self.pending.remove(&s) else {
                    continue;
                };
                if s == witnessed {
                    let us = now.duration_since(seen).as_micros();
                    self.lags_us.push(u64::try_from(us).unwrap_or(u64::MAX));
                } else {
                    self.superseded += 1;
                }
            }
        }
    }
}

/// The witnesses' keys and the quorum.
struct Check {
    verifiers: Vec<CosignatureVerifier>,
    quorum: usize,
}

impl Check {
    /// Verifies each witness's cosignature of a witnessed note: (verified,
    /// failures).
    fn note(&self, note: &str) -> (u64, u64) {
        let Some((body, lines)) = note.split_once("\n\n") else {
            return (0, 1);
        };
        let text = format!("{body}\n");
        let (mut verified, mut failed) = (0u64, 0u64);
        for v in &self.verifiers {
            match v.verify(&text, lines) {
                Ok(_) => verified += 1,
                Err(NoteError::NotSigned(_)) => {}
                Err(e) => {
                    eprintln!("bench: a witnessed note's cosignature does not verify: {e}");
                    failed += 1;
                }
            }
        }
        if verified < self.quorum as u64 {
            eprintln!("bench: a witnessed note has {verified} verifying cosignatures, fewer than the quorum {}", self.quorum);
            failed += 1;
        }
        (verified, failed)
    }
}

/// The demo's gateway configuration with this run's checkpoint interval
/// and quorum.
fn configure(config: &str, interval: u64, quorum: usize) -> String {
    // The watcher asks often: lift the per-agency limit on the gateway's
    // own services, as `jisr bus bench` does.
    config
        .replace(
            "listen = \"127.0.0.1:0\"",
            "listen = \"127.0.0.1:0\"\nown_calls_per_second = 1000000\nown_calls_burst = 1000000",
        )
        .replace(
            "pseudonym_key = \"pseudonym.key\"\n",
            &format!("pseudonym_key = \"pseudonym.key\"\ncheckpoint_interval_ms = {interval}\nwitness_quorum = {quorum}\n"),
        )
}

/// Starts the network with two witnesses, loads it, watches the lag.
pub(super) async fn run(dir: &Path, args: &super::WitnessBenchArgs) -> anyhow::Result<LagRun> {
    let exe = std::env::current_exe()?;
    let pki = crate::tools::demo::prepare(dir).context("creating the PKI and contracts")?;
    let origin = format!("{}/jisr/gw-1", crate::tools::demo::TRUST_DOMAIN);
    let signer = NoteSigner::generate(&origin)?;
    std::fs::write(dir.join("audit-signing.key"), signer.to_secret_text())?;
    let log = [signer.verifier().to_text()];
    let mut witnesses = Vec::new();
    for name in ["cndp", "cour-des-comptes"] {
        witnesses.push(WitnessProc::start(dir, &pki, name, &log).await?);
    }
    let sections: String = witnesses
        .iter()
        .zip(["cndp", "cour-des-comptes"])
        .map(|(w, name)| w.section(name, &pki))
        .collect();
    let (interval, quorum) = (args.checkpoint_interval_ms, args.quorum);
    let network = LocalNetwork::start_prepared(dir, &exe, pki.clone(), |config| {
        configure(&config, interval, quorum) + &sections
    })
    .await?;
    let check = Check {
        verifiers: witnesses.iter().map(|w| w.verifier.clone()).collect(),
        quorum,
    };
    let measured = measure(&network, args, &check).await;
    for w in &mut witnesses {
        w.proc.check_running()?;
    }
    let (outcome, watch) = measured?;
    let mut histogram = new_histogram();
    for us in &watch.lags_us {
        histogram.saturating_record((*us).clamp(1, 60_000_000));
    }
    let ms = |us: u64| us as f64 / 1000.0;
    let exchanges = outcome.latency.len();
    Ok(LagRun {
        witnesses: witnesses.len(),
        quorum,
        checkpoint_interval_ms: interval,
        exchanges,
        exchanges_per_second: exchanges as f64 / outcome.elapsed.as_secs_f64().max(1e-9),
        exchange_errors: outcome.errors.values().sum(),
        checkpoints_signed: watch.signed,
        checkpoints_witnessed: watch.lags_us.len() as u64,
        checkpoints_superseded: watch.superseded,
        cosignatures_verified: watch.verified,
        failures: watch.failures,
        p50_ms: ms(histogram.value_at_quantile(0.5)),
        p99_ms: ms(histogram.value_at_quantile(0.99)),
        max_ms: ms(histogram.max()),
        poll_ms: POLL.as_secs_f64() * 1000.0,
    })
}

/// Runs the load while the watcher polls, then lets the watcher drain.
async fn measure(
    network: &LocalNetwork,
    args: &super::WitnessBenchArgs,
    check: &Check,
) -> anyhow::Result<(load::Outcome, Watch)> {
    let as_auditor = tls::tonic_client_tls(&TlsFiles::for_agency(&network.pki, "cndp"))?;
    let channel = Endpoint::from_shared(format!("https://{}", network.gateway))?
        .tls_config(as_auditor)?
        .connect()
        .await
        .context("connecting to the gateway's audit API as cndp")?;
    let mut audit = AuditClient::new(channel);
    let as_agency = tls::tonic_client_tls(&TlsFiles::for_agency(&network.pki, "education"))?;
    let endpoints = Endpoints::gateway(&network.gateway, &as_agency, args.connections)
        .await?
        .with_consents(network.consents());
    let done = Arc::new(AtomicBool::new(false));
    let load = Load {
        in_flight: args.in_flight,
        stop: Stop::After(args.duration),
        rate: None,
    };
    let loaded = {
        let done = done.clone();
        tokio::spawn(async move {
            let outcome = load::run(&endpoints, load).await;
            done.store(true, Ordering::Release);
            outcome
        })
    };
    let watched = watch(&mut audit, &done, check).await;
    let outcome = loaded.await.context("the load task failed")?;
    Ok((outcome, watched?))
}

/// Asks for the checkpoint every [`POLL`] until the load is `done` and the
/// latest checkpoint is witnessed (or [`DRAIN`] passed).
async fn watch(
    audit: &mut AuditClient<tonic::transport::Channel>,
    done: &AtomicBool,
    check: &Check,
) -> anyhow::Result<Watch> {
    let mut watch = Watch::default();
    let mut first = true;
    let mut drain_until = None;
    loop {
        let asked = tokio::time::timeout(
            Duration::from_secs(5),
            audit.get_checkpoint(GetCheckpointRequest {}),
        )
        .await;
        let now = Instant::now();
        let answer = match asked {
            Ok(Ok(a)) => a.into_inner(),
            Ok(Err(status)) => anyhow::bail!("GetCheckpoint failed: {status}"),
            Err(_) => anyhow::bail!("GetCheckpoint did not answer within 5 s"),
        };
        if first {
            // Signed before the watcher looked: its signing time is unknown.
            watch.latest = answer.size;
            watch.witnessed = answer.witnessed_size;
            first = false;
        }
        watch.saw(
            answer.size,
            answer.witnessed_size,
            &answer.witnessed_note,
            now,
            check,
        );
        if done.load(Ordering::Acquire) {
            let until = *drain_until.get_or_insert(now + DRAIN);
            if watch.witnessed >= watch.latest || now >= until {
                break;
            }
        }
        tokio::time::sleep(POLL).await;
    }
    Ok(watch)
}
