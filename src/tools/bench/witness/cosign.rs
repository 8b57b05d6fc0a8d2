//! How many checkpoints a witness cosigns per second: a real `jisr witness`
//! process (its durable state: each cosignature is fsynced and renamed
//! before the answer) over loopback HTTPS, fed growing checkpoints of
//! several logs with real RFC 6962 consistency proofs.
//!
//! The spec lets a log have one `add-checkpoint` in flight at a time (the
//! next names the size the previous one made the witness record), so each
//! log is a sequence; the logs run concurrently, as the replicas of a
//! fleet push to a shared witness. The requests are built before the clock
//! starts, so the figure is the witness's (and the HTTPS client's, which
//! opens a connection per request as the gateway does), not the bench's.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;

use super::WitnessProc;
use crate::audit::merkle::{leaf_hash, prove_consistency, MemoryTree};
use crate::audit::note::{Checkpoint, CosignatureVerifier, NoteSigner};
use crate::audit::witnessing::{AddCheckpoint, Answer, WitnessClient};
use crate::tools::bench::load::new_histogram;
use crate::tools::bench::procs::ProcStats;

/// The throughput run's figures.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CosignRun {
    /// Logs (origins) pushing concurrently, one request in flight each.
    pub logs: usize,
    /// Checkpoints sent per log.
    pub checkpoints_per_log: u64,
    /// Entries each checkpoint adds to its log.
    pub entries_per_checkpoint: u64,
    /// Cosignatures received and verified against the witness's key.
    pub cosigned: u64,
    /// Answers that were not a cosignature, or whose cosignature did not
    /// verify: each is a failure of the run.
    pub failures: u64,
    /// Wall time of the measured run, seconds.
    pub seconds: f64,
    /// Verified cosignatures per second.
    pub per_second: f64,
    /// One `add-checkpoint` as the log sees it (connection, TLS, the
    /// witness's checks and fsyncs), µs.
    pub p50_us: u64,
    /// p99, µs.
    pub p99_us: u64,
    /// Max, µs.
    pub max_us: u64,
    /// The witness process's CPU per cosignature, µs (when readable).
    pub witness_cpu_us_per_cosignature: Option<f64>,
}

/// One log of the run: its key, its requests in order.
struct Sequence {
    requests: Vec<(AddCheckpoint, String)>,
}

/// Builds `checkpoints` growing checkpoints of a log named `origin`, each
/// with the consistency proof from the one before.
fn sequence(origin: &str, checkpoints: u64, step: u64) -> anyhow::Result<(NoteSigner, Sequence)> {
    let signer = NoteSigner::generate(origin)?;
    let mut tree = MemoryTree::new();
    let mut requests = Vec::new();
    let mut old = 0;
    for _ in 0..checkpoints {
        for _ in 0..step {
            let entry = format!("{origin} entry {}", tree.size());
            tree.push(leaf_hash(entry.as_bytes()));
        }
        let size = tree.size();
        let text = Checkpoint {
            origin: origin.to_owned(),
            size,
            root: tree.root(size)?,
            extensions: vec![],
        }
        .to_text();
        let request = AddCheckpoint {
            old_size: old,
            proof: prove_consistency(size, old, &tree)?,
            checkpoint: signer.sign(&text)?,
        };
        requests.push((request, text));
        old = size;
    }
    Ok((signer, Sequence { requests }))
}

/// What one log's sequence came to.
#[derive(Default)]
struct Tally {
    cosigned: u64,
    failures: Vec<String>,
    latencies_us: Vec<u64>,
}

/// Sends one log's requests in order; stops at its first failure (the
/// next request would name a size the witness never recorded).
async fn push(client: WitnessClient, verifier: Arc<CosignatureVerifier>, seq: Sequence) -> Tally {
    let mut tally = Tally::default();
    for (request, text) in seq.requests {
        let start = Instant::now();
        let answer = client.add_checkpoint(&request).await;
        tally
            .latencies_us
            .push(u64::try_from(start.elapsed().as_micros()).unwrap_or(u64::MAX));
        let failure = match answer {
            Ok(Answer::Cosigned(lines)) => match verifier.verify(&text, &lines) {
                Ok(_) => None,
                Err(e) => Some(format!("a cosignature does not verify: {e}")),
            },
            Ok(other) => Some(format!("not cosigned: {other:?}")),
            Err(e) => Some(e.to_string()),
        };
        match failure {
            None => tally.cosigned += 1,
            Some(why) => {
                tally.failures.push(why);
                break;
            }
        }
    }
    tally
}

/// Starts a witness of `logs` logs, builds the sequences, and measures.
pub(super) async fn run(
    dir: &std::path::Path,
    pki: &std::path::Path,
    args: &super::WitnessBenchArgs,
) -> anyhow::Result<CosignRun> {
    let mut signers = Vec::new();
    let mut sequences = Vec::new();
    for i in 0..args.logs {
        let origin = format!("bench.jisr.test/log-{i}");
        let (signer, seq) = sequence(&origin, args.checkpoints, args.entries_per_checkpoint)
            .with_context(|| format!("building the checkpoints of {origin}"))?;
        signers.push(signer);
        sequences.push(seq);
    }
    let logs: Vec<String> = signers.iter().map(|s| s.verifier().to_text()).collect();
    let mut witness = WitnessProc::start(dir, pki, "throughput", &logs).await?;
    let client = WitnessClient::new(&format!("https://{}", witness.addr), &pki.join("ca.crt"))?;
    let verifier = Arc::new(witness.verifier.clone());
    let before = ProcStats::read(&[witness.proc.pid()]);
    let start = Instant::now();
    let tasks: Vec<_> = sequences
        .into_iter()
        .map(|seq| tokio::spawn(push(client.clone(), verifier.clone(), seq)))
        .collect();
    let mut histogram = new_histogram();
    let (mut cosigned, mut failures) = (0, Vec::new());
    for task in tasks {
        let tally = task.await.context("a pushing task failed")?;
        cosigned += tally.cosigned;
        failures.extend(tally.failures);
        for us in tally.latencies_us {
            histogram.saturating_record(us);
        }
    }
    let elapsed = start.elapsed();
    let cpu = ProcStats::read(&[witness.proc.pid()])
        .zip(before)
        .map(|(after, before)| after.since(before).cpu);
    witness.proc.check_running()?;
    for why in failures.iter().take(5) {
        eprintln!("bench: witness failure: {why}");
    }
    Ok(CosignRun {
        logs: args.logs,
        checkpoints_per_log: args.checkpoints,
        entries_per_checkpoint: args.entries_per_checkpoint,
        cosigned,
        failures: failures.len() as u64,
        seconds: elapsed.as_secs_f64(),
        per_second: cosigned as f64 / elapsed.as_secs_f64().max(1e-9),
        p50_us: histogram.value_at_quantile(0.5),
        p99_us: histogram.value_at_quantile(0.99),
        max_us: histogram.max(),
        witness_cpu_us_per_cosignature: cpu
            .filter(|_| cosigned > 0)
            .map(|c: Duration| c.as_secs_f64() * 1e6 / cosigned as f64),
    })
}
