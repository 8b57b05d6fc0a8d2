//! One witness's task: push the log's latest checkpoint whenever it is
//! newer than what the witness cosigned, keep the verified cosignature.
//!
//! - A witness that does not answer (or answers 5xx, or a cosignature that
//!   does not verify) is tried again after an exponential backoff with
//!   jitter, bounded by `witness_retry_max_ms`, with whatever checkpoint is
//!   latest by then.
//! - A 409 names the size the witness knows: the task sends the
//!   consistency proof from that size at once. A 409 for the very size it
//!   named is a split view (the witness cosigned another root at that
//!   size).
//! - A split view, a 422 (the proof does not verify from the witness's
//!   checkpoint: another tree), a 404 (the witness does not know this log),
//!   a 403 (nor its key) or a witness that knows a larger tree than this
//!   log are reported at error level and counted, and that checkpoint is
//!   not pushed again: the task waits for a newer one and the longest
//!   backoff, so a refusal is never retried in a loop.

use std::sync::Arc;
use std::time::Duration;

use super::kept;
use super::node::Inner;
use super::{AddCheckpoint, Answer};
use crate::audit::log::SignedCheckpoint;

/// The first wait after a failure.
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
/// 409s followed in one push (each names a size to prove from).
const MAX_CONFLICTS: usize = 3;

/// What one push came to.
enum Outcome {
    Cosigned,
    /// Worth trying again soon.
    Retry,
    /// Refused for a reason trying again cannot fix.
    Refused,
}

/// Pushes until the task is aborted.
pub(super) async fn run(inner: Arc<Inner>, i: usize) {
    let mut known = inner.kept().latest_of(i);
    let mut backoff = FIRST_BACKOFF;
    // The checkpoint a witness refused: not pushed again.
    let mut refused: Option<u64> = None;
    // Woken when the log signs a checkpoint, so a new one is pushed at once
    // rather than at the next poll; the poll stays, should a wake be lost.
    let mut published = inner.log.published();
    loop {
        let target = inner.log.checkpoint();
        let size = target.checkpoint.size;
        let due = !target.note.is_empty()
            && size > 0
            && known != Some(size)
            && refused.is_none_or(|r| size > r);
        if !due {
            match tokio::time::timeout(inner.poll, published.changed()).await {
                // Signed, or a poll went by: look again.
                Ok(Ok(())) | Err(_) => {}
                // The log closed: sleep, so the loop never spins.
                Ok(Err(_)) => tokio::time::sleep(inner.poll).await,
            }
            continue;
        }
        match push(&inner, i, &target, &mut known).await {
            Outcome::Cosigned => backoff = FIRST_BACKOFF,
            Outcome::Retry => {
                tokio::time::sleep(jitter(backoff)).await;
                backoff = (backoff * 2).min(inner.retry_max);
            }
            Outcome::Refused => {
                refused = Some(size);
                tokio::time::sleep(inner.retry_max).await;
            }
        }
    }
}

/// A wait drawn uniformly between half of `backoff` and all of it, so
/// that nodes that lost a witness together do not all come back at once.
fn jitter(backoff: Duration) -> Duration {
    let millis = u64::try_from(backoff.as_millis())
        .unwrap_or(u64::MAX)
        .max(1);
    Duration::from_millis(rand::random_range(millis / 2..=millis))
}

/// Sends `target` to witness `i` from the size it is believed to know,
/// following its 409s.
async fn push(
    inner: &Inner,
    i: usize,
    target: &SignedCheckpoint,
    known: &mut Option<u64>,
) -> Outcome {
    let witness = &inner.witnesses[i];
    let size = target.checkpoint.size;
    for _ in 0..MAX_CONFLICTS {
        let old = known.unwrap_or(0);
        if old > size {
            return refuse(inner, i, "witness_ahead", format!(
                "the witness cosigned a tree of {old} entries for this log, larger than its latest checkpoint ({size}): the log was rolled back or forked (a split view); see docs/witness.md"
            ));
        }
        let proof = match inner.log.consistency_proof(old, size) {
            Ok(p) => p,
            Err(e) => {
                return retry(
                    inner,
                    i,
                    "proof",
                    format!("cannot prove {old} → {size}: {e}"),
                )
            }
        };
        let request = AddCheckpoint {
            old_size: old,
            proof,
            checkpoint: target.note.clone(),
        };
        let answer = match witness.client.add_checkpoint(&request).await {
            Ok(a) => a,
            Err(e) => return retry(inner, i, "unreachable", e.to_string()),
        };
        match answer {
            Answer::Cosigned(lines) => return keep(inner, i, target, &lines, known).await,
            Answer::Conflict { known_size } if known_size == old => {
                return refuse(inner, i, "split_view", format!(
                    "the witness refused the checkpoint of size {size} (409 at the size it knows, {known_size}): it cosigned another tree of that size for this log — a split view; see docs/witness.md"
                ));
            }
            Answer::Conflict { known_size } => {
                tracing::info!(witness = %witness.name, known_size, sent = old, "the witness knows another size; proving from it");
                *known = Some(known_size);
            }
            Answer::Refused { status, body } => return refused(inner, i, size, status, &body),
        }
    }
    retry(
        inner,
        i,
        "conflict",
        format!("the witness answered 409 {MAX_CONFLICTS} times in a row"),
    )
}

/// A refusal by status: 4xx is reported and not retried, 5xx is retried.
fn refused(inner: &Inner, i: usize, size: u64, status: u16, body: &str) -> Outcome {
    let body = body.trim();
    let (reason, what) = match status {
        422 => ("bad_proof", format!(
            "the witness refused the checkpoint of size {size} (422): it is not consistent with the tree it cosigned before — a possible split view; see docs/witness.md ({body})"
        )),
        404 => ("unknown_log", format!(
            "the witness does not know this log (404): add its origin and verifier key to the witness's [[log]] ({body})"
        )),
        403 => ("bad_signature", format!(
            "the witness does not accept this log's signature (403): give it this node's verifier key ({body})"
        )),
        s if s >= 500 => return retry(inner, i, "witness_error", format!("HTTP {s}: {body}")),
        s => ("refused", format!("HTTP {s}: {body}")),
    };
    refuse(inner, i, reason, what)
}

async fn keep(
    inner: &Inner,
    i: usize,
    target: &SignedCheckpoint,
    lines: &str,
    known: &mut Option<u64>,
) -> Outcome {
    let witness = &inner.witnesses[i];
    let size = target.checkpoint.size;
    let text = target.checkpoint.to_text();
    let line = match witness.verifier.verify(&text, lines) {
        Ok((line, _)) => line.to_owned(),
        Err(e) => {
            return retry(inner, i, "bad_cosignature", format!(
                "the witness answered 200 but no cosignature of its key verifies ({e}): check its `verifier_key`"
            ))
        }
    };
    // One writer at a time, or two witnesses' lines could each be written
    // over the other's.
    let _writing = inner.writing.lock().await;
    let next = inner.kept().with(i, target, &line);
    // Written before it counts: a crash keeps the old file or this one.
    let written = tokio::task::spawn_blocking(move || kept::write(&next).map(|()| next)).await;
    match written {
        Ok(Ok(next)) => {
            *inner.kept() = next;
            *known = Some(size);
            witness.counters.cosigned(size);
            tracing::debug!(witness = %witness.name, size, "checkpoint cosigned");
            Outcome::Cosigned
        }
        Ok(Err(e)) => retry(
            inner,
            i,
            "store",
            format!("cannot keep the cosignature: {e}"),
        ),
        Err(e) => retry(
            inner,
            i,
            "store",
            format!("cannot keep the cosignature: {e}"),
        ),
    }
}

fn retry(inner: &Inner, i: usize, reason: &'static str, what: String) -> Outcome {
    let witness = &inner.witnesses[i];
    tracing::warn!(witness = %witness.name, url = witness.client.url(), reason, error = %what, "witness push failed; retrying with backoff");
    witness.counters.failed(reason, what);
    Outcome::Retry
}

fn refuse(inner: &Inner, i: usize, reason: &'static str, what: String) -> Outcome {
    let witness = &inner.witnesses[i];
    tracing::error!(witness = %witness.name, url = witness.client.url(), reason, error = %what, "a witness refused this log's checkpoint");
    witness.counters.failed(reason, what);
    Outcome::Refused
}
