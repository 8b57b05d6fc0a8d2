//! The `jisr.audit.v1.Audit` gRPC service: checkpoints, receipts (entries
//! with inclusion proofs), consistency proofs, queries and a citizen's
//! access history, each limited to what the caller may see.
//!
//! With peers (`[cluster]`), queries and histories cover every replica
//! (see [`super::fanout`]); a read a peer makes for one of its callers
//! ([`PeerRead`]) is answered from this node's log only.

mod history;

use super::disclosure::{self, disclosed};
use super::fanout::{self, Forward};
pub use super::index::catch_up;
use super::index::{AuditIndex, IndexError, Query};
use super::keys::Pseudonymizer;
use super::merge::{page_size, page_token, NodePage};
use super::peers::Peers;
use super::remote;
use super::AuditLog;

mod checkpoints;
use crate::config::Role;
use crate::identity::{AgencyId, Caller};
use crate::proto::jisr::audit::v1 as pb;
use crate::refusal::{Reason, Refusal};
use pb::audit_server::Audit;
use prost::Message as _;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tonic::{Request, Response, Status};

pub use history::CheckpointHistory;

/// The audit API of a node.
#[derive(Clone)]
pub struct AuditService {
    log: Arc<AuditLog>,
    index: Arc<Mutex<AuditIndex>>,
    pseudonyms: Pseudonymizer,
    roles: Arc<HashMap<AgencyId, Vec<Role>>>,
    pub(super) peers: Peers,
    /// Decides when a deferred entry is disclosed ([`super::disclosure`]).
    clock: Arc<crate::clock::Clock>,
    witnessing: Option<Arc<super::witnessing::Witnessing>>,
}

/// Marks a call made by a peer node for one of its callers (put in the
/// request's extensions by the gateway, which checked that the connection
/// is from a configured peer): answered from this node's log only.
#[derive(Debug, Clone)]
pub struct PeerRead {
    /// The peer node that asked.
    pub from: AgencyId,
}

fn is_peer_read<T>(request: &Request<T>) -> bool {
    request.extensions().get::<PeerRead>().is_some()
}

/// What a call without a caller identity is told.
const HOW_TO_CALL: &str =
    "call the audit API over the gateway's mutual TLS with your agency certificate";

fn unavailable(e: impl std::fmt::Display) -> Refusal {
    tracing::error!(error = %e, "audit API failure");
    Refusal::new(Reason::AuditUnavailable, "the audit log cannot be read right now; retry later, and tell the platform operator if it lasts")
}

impl std::fmt::Debug for AuditService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditService")
            .field("log", &self.log)
            .finish_non_exhaustive()
    }
}

impl AuditService {
    /// The service over node `node`'s log and index, without peers.
    pub fn new(
        node: AgencyId,
        log: Arc<AuditLog>,
        index: AuditIndex,
        pseudonyms: Pseudonymizer,
        roles: HashMap<AgencyId, Vec<Role>>,
    ) -> Self {
        Self {
            log,
            index: Arc::new(Mutex::new(index)),
            pseudonyms,
            roles: Arc::new(roles),
            peers: Peers::alone(node),
            clock: Arc::new(crate::clock::Clock::system()),
            witnessing: None,
        }
    }

    /// The same service asking `peers` too.
    #[must_use]
    pub fn with_peers(&self, peers: Peers) -> Self {
        Self {
            peers,
            ..self.clone()
        }
    }

    /// The same service reading the time of day from `clock`.
    #[must_use]
    pub fn with_clock(&self, clock: Arc<crate::clock::Clock>) -> Self {
        Self {
            clock,
            ..self.clone()
        }
    }

    /// The same service (same log and index) with the roles of a reloaded
    /// configuration.
    pub fn with_roles(&self, roles: HashMap<AgencyId, Vec<Role>>) -> Self {
        Self {
            roles: Arc::new(roles),
            ..self.clone()
        }
    }

    fn has(&self, agency: &AgencyId, role: Role) -> bool {
        self.roles.get(agency).is_some_and(|r| r.contains(&role))
    }

    /// Whether `caller` may read entry `index`: an exchange of its own, any
    /// entry for an auditor, and for the portal (`consent-manager`) an
    /// entry about the citizen it names (`citizen_id`), whose history it
    /// shows them, once disclosed to them, and nothing else. A deferred
    /// entry is refused as another citizen's would be: the refusal must
    /// not tell the portal that an investigation exists.
    fn may_read(
        &self,
        caller: &AgencyId,
        index: u64,
        record: &pb::AuditRecord,
        citizen_id: &str,
    ) -> Result<(), Refusal> {
        let mine = record.consumer == caller.as_str() || record.provider == caller.as_str();
        if mine || self.has(caller, Role::Auditor) {
            return Ok(());
        }
        if self.has(caller, Role::ConsentManager) && !citizen_id.is_empty() {
            let theirs = self.pseudonyms.pseudonym(citizen_id);
            let now = self.clock.unix_micros();
            if record.subject.as_slice() == theirs.as_slice() && disclosed(record, now) {
                return Ok(());
            }
            return Err(Refusal::new(Reason::AccessDenied, format!("entry {index} is not about the citizen named in citizen_id; the portal reads only entries of the citizen whose history it shows")));
        }
        Err(Refusal::new(Reason::AccessDenied, format!("entry {index} is not about an exchange of `{caller}`; only auditors read every entry, and the citizen portal (`consent-manager`) the entries about the citizen it names in citizen_id")))
    }

    /// Brings the index up to the log and runs a query on this node's log.
    pub(super) async fn run(&self, query: Query) -> Result<NodePage, Refusal> {
        let this = self.clone();
        let page = tokio::task::spawn_blocking(move || {
            let index = this.index.lock().unwrap_or_else(|e| e.into_inner());
            catch_up(&index, &this.log)?;
            let fetch = |i: u64| -> Result<pb::AuditRecord, IndexError> {
                let bytes = this.log.read(i).map_err(|e| IndexError::log(i, e))?;
                pb::AuditRecord::decode(bytes.as_slice()).map_err(|e| IndexError::log(i, e))
            };
            index.query(&query, &fetch)
        })
        .await
        .map_err(unavailable)?
        .map_err(unavailable)?;
        let node = self.peers.node.to_string();
        Ok(NodePage {
            entries: page
                .entries
                .into_iter()
                .map(|(index, record)| pb::Entry {
                    index,
                    record: Some(record),
                    node: node.clone(),
                    ..Default::default()
                })
                .collect(),
            next: page.next,
            node,
        })
    }

    /// Answers `query` for a peer (this node only, a bare position as the
    /// token) or for an agency (every node, merged).
    async fn answer<T>(
        &self,
        request: &Request<T>,
        caller: &AgencyId,
        query: Query,
        forward: Forward,
        token: &str,
    ) -> Result<pb::QueryResponse, Refusal> {
        if is_peer_read(request) {
            let page = self
                .run(Query {
                    before: page_token(token)?,
                    ..query
                })
                .await?;
            return Ok(pb::QueryResponse {
                entries: page.entries,
                next_page_token: page.next.map(|n| n.to_string()).unwrap_or_default(),
                missing: Vec::new(),
            });
        }
        let timeout = fanout::budget(request.metadata(), self.peers.timeout);
        self.merged(caller, query, forward, token, timeout).await
    }
}

#[tonic::async_trait]
impl Audit for AuditService {
    async fn get_checkpoint(
        &self,
        _request: Request<pb::GetCheckpointRequest>,
    ) -> Result<Response<pb::SignedCheckpoint>, Status> {
        Ok(Response::new(self.own_checkpoint()))
    }

    async fn list_checkpoints(
        &self,
        request: Request<pb::ListCheckpointsRequest>,
    ) -> Result<Response<pb::ListCheckpointsResponse>, Status> {
        let caller = Caller::of(&request, HOW_TO_CALL)?;
        if is_peer_read(&request) {
            return Ok(Response::new(pb::ListCheckpointsResponse {
                checkpoints: vec![self.own_checkpoint()],
                missing: Vec::new(),
            }));
        }
        let timeout = fanout::budget(request.metadata(), self.peers.timeout);
        Ok(Response::new(self.all_checkpoints(&caller, timeout).await))
    }

    async fn get_entry(
        &self,
        request: Request<pb::GetEntryRequest>,
    ) -> Result<Response<pb::Entry>, Status> {
        let caller = Caller::of(&request, HOW_TO_CALL)?;
        let timeout = fanout::budget(request.metadata(), self.peers.timeout);
        let peer_read = is_peer_read(&request);
        let ask = request.into_inner();
        let (index, tree_size) = (ask.index, ask.tree_size);
        if let Some(peer) = self.elsewhere(&ask.node, peer_read)? {
            let entry = remote::entry(&peer, ask, &caller, timeout).await?;
            return Ok(Response::new(entry));
        }
        let latest = self.log.checkpoint();
        let size = if tree_size == 0 {
            latest.checkpoint.size
        } else {
            tree_size
        };
        if index >= size {
            return Err(Refusal::new(
                Reason::NotYetCheckpointed,
                format!("entry {index} is not covered by a tree of {size} entries yet; a new checkpoint is signed within a second — retry, or name a larger tree_size"),
            )
            .into());
        }
        let bytes = self
            .log
            .read(index)
            .map_err(|e| Refusal::new(Reason::NotFound, e.to_string()))?;
        let record = pb::AuditRecord::decode(bytes.as_slice()).map_err(unavailable)?;
        self.may_read(&caller, index, &record, &ask.citizen_id)?;
        let proof = self
            .log
            .inclusion_proof(index, size)
            .map_err(|e| Refusal::new(Reason::OutOfRange, e.to_string()))?;
        let checkpoint_note = match self.witnessed() {
            Some(w) if w.size == size => w.note,
            _ if size == latest.checkpoint.size => latest.note,
            _ => String::new(),
        };
        Ok(Response::new(pb::Entry {
            index,
            record: Some(record),
            record_bytes: bytes,
            tree_size: size,
            inclusion_proof: proof.iter().map(|h| h.to_vec()).collect(),
            checkpoint_note,
            node: self.peers.node.to_string(),
        }))
    }

    async fn get_consistency_proof(
        &self,
        request: Request<pb::GetConsistencyProofRequest>,
    ) -> Result<Response<pb::ConsistencyProof>, Status> {
        let timeout = fanout::budget(request.metadata(), self.peers.timeout);
        let peer_read = is_peer_read(&request);
        let caller = Caller::of(&request, HOW_TO_CALL);
        let pb::GetConsistencyProofRequest {
            old_size,
            new_size,
            node,
        } = request.into_inner();
        if let Some(peer) = self.elsewhere(&node, peer_read)? {
            let sizes = (old_size, new_size);
            let proof = remote::consistency(&peer, sizes, &caller?, timeout).await?;
            return Ok(Response::new(proof));
        }
        let hashes = self
            .log
            .consistency_proof(old_size, new_size)
            .map_err(|e| Refusal::new(Reason::OutOfRange, e.to_string()))?;
        Ok(Response::new(pb::ConsistencyProof {
            old_size,
            new_size,
            hashes: hashes.iter().map(|h| h.to_vec()).collect(),
        }))
    }

    async fn query(
        &self,
        request: Request<pb::QueryRequest>,
    ) -> Result<Response<pb::QueryResponse>, Status> {
        let caller = Caller::of(&request, HOW_TO_CALL)?;
        let q = request.get_ref().clone();
        let auditor = self.has(&caller, Role::Auditor);
        let agency = match (q.agency.is_empty(), auditor) {
            (true, true) => None,
            (true, false) => Some(caller.to_string()),
            (false, true) => Some(q.agency.clone()),
            (false, false) if q.agency == caller.as_str() => Some(q.agency.clone()),
            (false, false) => {
                return Err(Refusal::new(Reason::AccessDenied, format!("`{caller}` may query only its own exchanges; leave `agency` empty or set it to `{caller}`")).into());
            }
        };
        let side = match pb::Side::try_from(q.side).unwrap_or(pb::Side::Unspecified) {
            pb::Side::Unspecified => None,
            side => Some(side),
        };
        let query = Query {
            agency,
            side,
            subject: None,
            from_unix_micros: (q.from_unix_micros != 0).then_some(q.from_unix_micros),
            to_unix_micros: (q.to_unix_micros != 0).then_some(q.to_unix_micros),
            procedure: (!q.procedure.is_empty()).then(|| q.procedure.clone()),
            purpose: (!q.purpose.is_empty()).then(|| q.purpose.clone()),
            outcome: (q.outcome != 0).then_some(q.outcome),
            reason: (!q.reason.is_empty()).then(|| q.reason.clone()),
            break_glass: q.break_glass,
            page_size: page_size(q.page_size),
            before: None,
        };
        let token = q.page_token.clone();
        let answer = self
            .answer(&request, &caller, query, Forward::Query(q), &token)
            .await?;
        Ok(Response::new(answer))
    }

    async fn citizen_history(
        &self,
        request: Request<pb::CitizenHistoryRequest>,
    ) -> Result<Response<pb::QueryResponse>, Status> {
        let caller = Caller::of(&request, HOW_TO_CALL)?;
        let auditor = self.has(&caller, Role::Auditor);
        if !auditor && !self.has(&caller, Role::ConsentManager) {
            return Err(Refusal::new(Reason::AccessDenied, "a citizen's access history is shown through the citizen portal (`consent-manager` role) or to auditors").into());
        }
        let q = request.get_ref().clone();
        if q.citizen_id.is_empty() {
            return Err(Refusal::new(
                Reason::InvalidRequest,
                "set citizen_id to the citizen whose history is asked for",
            )
            .into());
        }
        let query = Query {
            subject: Some(self.pseudonyms.pseudonym(&q.citizen_id)),
            page_size: page_size(q.page_size),
            ..Query::default()
        };
        let token = q.page_token.clone();
        let mut answer = self
            .answer(&request, &caller, query, Forward::History(q), &token)
            .await?;
        if !auditor {
            disclosure::for_the_citizen(&mut answer, self.clock.unix_micros());
        }
        Ok(Response::new(answer))
    }
}
