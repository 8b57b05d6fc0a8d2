//! One `add-checkpoint` request, checked in the order c2sp.org/tlog-witness
//! gives: a body that parses, a known origin, the log's signature, sizes in
//! order, the old size the witness recorded, then the consistency proof.
//! The log's slot stays locked from reading its recorded size to writing
//! the new one, so two requests for one log can never roll it back.

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::Mutex;

use super::state::{Recorded, Store};
use super::WitnessError;
use crate::audit::merkle::{empty_root, verify_consistency};
use crate::audit::note::{open_note, Checkpoint, Cosigner, NoteError, NoteVerifier};
use crate::audit::witnessing::AddCheckpoint;

/// What the witness answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// 200: the cosignature line.
    Cosigned(String),
    /// 400: the request is malformed.
    BadRequest(String),
    /// 403: no signature by the log's key verifies.
    Forbidden(String),
    /// 404: the origin is not a log this witness knows.
    UnknownLog(String),
    /// 409: the old size is not the one recorded, or the same size with
    /// another root (a split view).
    Conflict {
        /// The size the witness last cosigned.
        known_size: u64,
        /// Why, for the log and the witness's own log.
        why: String,
    },
    /// 422: the consistency proof does not verify.
    BadProof(String),
    /// 500: the new state could not be made durable; nothing was cosigned.
    Failed(String),
}

struct Slot {
    verifier: NoteVerifier,
    latest: Mutex<Option<Recorded>>,
}

/// A witness: its key, its logs and what it recorded for each.
pub struct Witness {
    cosigner: Cosigner,
    logs: HashMap<String, Slot>,
    store: Arc<Store>,
}

impl std::fmt::Debug for Witness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Witness")
            .field("cosigner", &self.cosigner)
            .field("logs", &self.logs.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl Witness {
    /// A witness with `cosigner`, for `logs` (origin and verifier), with
    /// its state in `state_dir` (created if absent; each log's record read).
    pub fn open(
        cosigner: Cosigner,
        logs: &[super::KnownLog],
        state_dir: &std::path::Path,
    ) -> Result<Self, WitnessError> {
        let store = Store::open(state_dir)?;
        let mut slots = HashMap::with_capacity(logs.len());
        for log in logs {
            let latest = store.load(&log.origin)?;
            if let Some(r) = &latest {
                tracing::info!(origin = %log.origin, size = r.size, "witnessed log resumed");
            }
            slots.insert(
                log.origin.clone(),
                Slot {
                    verifier: log.verifier.clone(),
                    latest: Mutex::new(latest),
                },
            );
        }
        Ok(Witness {
            cosigner,
            logs: slots,
            store: Arc::new(store),
        })
    }

    /// The witness's cosigning key.
    pub fn cosigner(&self) -> &Cosigner {
        &self.cosigner
    }

    /// Checks one request body and, when it holds, records the checkpoint
    /// durably and cosigns it.
    pub async fn add_checkpoint(&self, body: &[u8]) -> Verdict {
        let request = match AddCheckpoint::parse(body) {
            Ok(r) => r,
            Err(e) => return Verdict::BadRequest(e.to_string()),
        };
        let origin = request.origin();
        let Some(slot) = self.logs.get(origin) else {
            return Verdict::UnknownLog(format!(
                "this witness does not witness the log `{origin}`"
            ));
        };
        let (checkpoint, text) = match opened(&request.checkpoint, &slot.verifier) {
            Ok(c) => c,
            Err(verdict) => return verdict,
        };
        if request.old_size > checkpoint.size {
            return Verdict::BadRequest(format!(
                "old size {} is larger than the checkpoint's size {}",
                request.old_size, checkpoint.size
            ));
        }
        let mut latest = slot.latest.lock().await;
        let (known_size, known_root) = latest
            .as_ref()
            .map_or((0, empty_root()), |r| (r.size, r.root));
        if request.old_size != known_size {
            return Verdict::Conflict {
                known_size,
                why: format!(
                    "the last checkpoint cosigned for `{origin}` has size {known_size}, not {}",
                    request.old_size
                ),
            };
        }
        let fork = |why: String| {
            tracing::error!(%origin, %why, "refused a validly signed checkpoint: the log may have forked");
            self.store.keep_evidence(origin, &why, &request.checkpoint);
        };
        if checkpoint.size == known_size && checkpoint.root != known_root {
            let why = format!("a checkpoint of size {known_size} with another root was cosigned before: split view");
            fork(why.clone());
            return Verdict::Conflict { known_size, why };
        }
        if let Err(e) = verify_consistency(
            &request.proof,
            checkpoint.size,
            &checkpoint.root,
            known_size,
            &known_root,
        ) {
            let why = format!(
                "not consistent with the checkpoint of size {known_size} cosigned before: {e}"
            );
            fork(why.clone());
            return Verdict::BadProof(why);
        }
        self.record_and_cosign(
            origin,
            (&checkpoint, &text),
            &request.checkpoint,
            &mut latest,
        )
        .await
    }

    async fn record_and_cosign(
        &self,
        origin: &str,
        (checkpoint, text): (&Checkpoint, &str),
        note: &str,
        latest: &mut Option<Recorded>,
    ) -> Verdict {
        let recorded = Recorded {
            size: checkpoint.size,
            root: checkpoint.root,
            note: note.to_owned(),
        };
        if latest.as_ref() != Some(&recorded) {
            let (store, origin_owned, copy) =
                (self.store.clone(), origin.to_owned(), recorded.clone());
            let saved = tokio::task::spawn_blocking(move || store.save(&origin_owned, &copy)).await;
            match saved {
                Ok(Ok(())) => *latest = Some(recorded),
                Ok(Err(e)) => {
                    tracing::error!(%origin, error = %e, "cannot record a checkpoint; not cosigning it");
                    return Verdict::Failed(
                        "the witness cannot record the checkpoint; try again later".into(),
                    );
                }
                Err(e) => return Verdict::Failed(format!("the witness failed: {e}")),
            }
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or_default();
        Verdict::Cosigned(self.cosigner.cosign(text, now))
    }
}

/// The log's signature checked and the checkpoint parsed, or the answer.
fn opened(note: &str, verifier: &NoteVerifier) -> Result<(Checkpoint, String), Verdict> {
    let text = open_note(note, verifier).map_err(|e| match e {
        NoteError::NotSigned(_) | NoteError::BadSignature(_) => Verdict::Forbidden(format!(
            "the checkpoint is not signed by the log's key: {e}"
        )),
        other => Verdict::BadRequest(other.to_string()),
    })?;
    let checkpoint = Checkpoint::parse(text).map_err(|e| Verdict::BadRequest(e.to_string()))?;
    Ok((checkpoint, text.to_owned()))
}
