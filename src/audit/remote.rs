//! Reads of another node's log through this one: an entry with its proof,
//! a consistency proof, and every node's latest checkpoint.

use std::time::Duration;

use super::fanout;
use super::peers::Peer;
use super::service::AuditService;
use crate::identity::AgencyId;
use crate::proto::jisr::audit::v1 as pb;
use crate::refusal::{Reason, Refusal};

impl AuditService {
    /// The peer holding `node`'s log, or `None` when it is this node's
    /// (`node` empty or this node's id). A peer's read names this node only.
    pub(super) fn elsewhere(&self, node: &str, peer_read: bool) -> Result<Option<Peer>, Refusal> {
        if node.is_empty() || node == self.peers.node.as_str() {
            return Ok(None);
        }
        if peer_read {
            return Err(Refusal::new(
                Reason::InvalidRequest,
                format!("a peer read is answered from this node's log only, not `{node}`'s"),
            ));
        }
        self.peers.get(node).map(Some).ok_or_else(|| {
            let mut nodes: Vec<String> = vec![self.peers.node.to_string()];
            nodes.extend(self.peers.list().iter().map(|p| p.node.to_string()));
            nodes.sort();
            Refusal::new(
                Reason::NotFound,
                format!(
                    "no node `{node}` in this deployment; its nodes are: {}",
                    nodes.join(", ")
                ),
            )
        })
    }

    /// This node's checkpoint and every peer's that answers within `timeout`.
    pub(super) async fn all_checkpoints(
        &self,
        caller: &AgencyId,
        timeout: Duration,
    ) -> pb::ListCheckpointsResponse {
        let peers = self.peers.list();
        let calls = peers.iter().map(|peer| async move {
            let mut client = peer.client();
            let request = fanout::peer_request(pb::GetCheckpointRequest {}, caller, timeout)
                .map_err(|r| r.message)?;
            match tokio::time::timeout(timeout, client.get_checkpoint(request)).await {
                Err(_) => Err("did not answer within the deadline".to_owned()),
                Ok(Err(status)) => Err(fanout::failure(&status)),
                Ok(Ok(cp)) => Ok(pb::SignedCheckpoint {
                    node: peer.node.to_string(),
                    ..cp.into_inner()
                }),
            }
        });
        let answers = futures_util::future::join_all(calls).await;
        let mut response = pb::ListCheckpointsResponse {
            checkpoints: vec![self.own_checkpoint()],
            missing: Vec::new(),
        };
        for (peer, answer) in peers.iter().zip(answers) {
            match answer {
                Ok(cp) => response.checkpoints.push(cp),
                Err(why) => response
                    .missing
                    .push(fanout::missing(peer.node.as_str(), &why)),
            }
        }
        response
    }
}

/// The entry `ask` names, from `peer`'s log (the citizen it must be about,
/// if any, goes along: the peer applies the same rule).
pub(super) async fn entry(
    peer: &Peer,
    ask: pb::GetEntryRequest,
    caller: &AgencyId,
    timeout: Duration,
) -> Result<pb::Entry, tonic::Status> {
    let ask = pb::GetEntryRequest {
        node: String::new(),
        ..ask
    };
    let entry = peer
        .client()
        .get_entry(fanout::peer_request(ask, caller, timeout)?)
        .await
        .map_err(|s| remote(peer.node.as_str(), s))?;
    Ok(pb::Entry {
        node: peer.node.to_string(),
        ..entry.into_inner()
    })
}

/// A consistency proof between two sizes of `peer`'s log.
pub(super) async fn consistency(
    peer: &Peer,
    (old_size, new_size): (u64, u64),
    caller: &AgencyId,
    timeout: Duration,
) -> Result<pb::ConsistencyProof, tonic::Status> {
    let ask = pb::GetConsistencyProofRequest {
        old_size,
        new_size,
        node: String::new(),
    };
    let proof = peer
        .client()
        .get_consistency_proof(fanout::peer_request(ask, caller, timeout)?)
        .await
        .map_err(|s| remote(peer.node.as_str(), s))?;
    Ok(proof.into_inner())
}

/// A failed read of `node`'s log: its own refusal passed on, or why it
/// could not be asked.
fn remote(node: &str, status: tonic::Status) -> tonic::Status {
    match status.code() {
        tonic::Code::Unavailable | tonic::Code::DeadlineExceeded | tonic::Code::Cancelled => {
            Refusal::new(
                Reason::AuditUnavailable,
                format!(
                    "node `{node}` holds that log but {}; retry later",
                    fanout::failure(&status)
                ),
            )
            .into()
        }
        _ => status,
    }
}
