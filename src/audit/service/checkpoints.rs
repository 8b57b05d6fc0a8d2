//! The checkpoints the service gives: the node's latest signed one and,
//! with witnesses, its latest witnessed one.

use super::AuditService;
use crate::proto::jisr::audit::v1 as pb;
use std::sync::Arc;

impl AuditService {
    /// The same service serving the witnessed checkpoints of `witnessing`.
    #[must_use]
    pub fn with_witnessing(&self, witnessing: Arc<crate::audit::witnessing::Witnessing>) -> Self {
        Self {
            witnessing: Some(witnessing),
            ..self.clone()
        }
    }

    pub(super) fn witnessed(&self) -> Option<crate::audit::witnessing::Witnessed> {
        self.witnessing.as_ref()?.witnessed()
    }

    /// This node's latest signed checkpoint and verifier key, and its
    /// latest witnessed checkpoint.
    pub(in crate::audit) fn own_checkpoint(&self) -> pb::SignedCheckpoint {
        let signed = self.log.checkpoint();
        let witnessed = self.witnessed();
        pb::SignedCheckpoint {
            witnessed_size: witnessed.as_ref().map_or(0, |w| w.size),
            witnessed_note: witnessed.map(|w| w.note).unwrap_or_default(),
            note: signed.note,
            verifier_key: self.log.verifier().to_text(),
            size: signed.checkpoint.size,
            root_hash: signed.checkpoint.root.to_vec(),
            origin: signed.checkpoint.origin,
            node: self.peers.node.to_string(),
        }
    }
}
