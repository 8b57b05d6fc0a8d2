//! This node's checkpoint history, a stretch at a time (the console's Log
//! integrity page). Checkpoints hold no personal data: the API gives the
//! latest one and consistency proofs to every agency.

use super::{unavailable, AuditService};
use crate::refusal::Refusal;

/// A stretch of the node's signed checkpoints.
#[derive(Debug, Clone)]
pub struct CheckpointHistory {
    /// `(position in the history, signed note)`, newest first.
    pub notes: Vec<(u64, String)>,
    /// Checkpoints in the whole history.
    pub total: u64,
    /// The node's verifier key (signed-note verifier key format).
    pub verifier_key: String,
    /// The node whose log this is.
    pub node: String,
}

impl AuditService {
    /// Up to `count` checkpoints of this node's history just before
    /// position `before` (the newest when `None`), newest first.
    pub async fn checkpoint_history(
        &self,
        before: Option<u64>,
        count: u64,
    ) -> Result<CheckpointHistory, Refusal> {
        let log = self.log.clone();
        let (notes, total) = tokio::task::spawn_blocking(move || {
            let history = log.history();
            let total = history.count()?;
            let end = before.unwrap_or(total).min(total);
            let from = end.saturating_sub(count);
            let mut notes: Vec<_> = (from..).zip(history.notes(from, end)?).collect();
            notes.reverse();
            Ok::<_, crate::audit::AuditError>((notes, total))
        })
        .await
        .map_err(unavailable)?
        .map_err(unavailable)?;
        Ok(CheckpointHistory {
            notes,
            total,
            verifier_key: self.log.verifier().to_text(),
            node: self.peers.node.to_string(),
        })
    }
}
