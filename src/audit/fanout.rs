//! Asking the other replicas: a query or a citizen's history goes to every
//! peer at once, within the caller's deadline, and their pages are merged
//! with this node's; a peer that does not answer in time is named in the
//! answer's `missing`, never silently left out. Entries and proofs of
//! another node are fetched from that node.

use std::time::Duration;

use super::merge::{self, Cursor, NodePage, Position};
use super::peers::{Peer, ON_BEHALF_OF};
use super::service::AuditService;
use crate::identity::AgencyId;
use crate::proto::jisr::audit::v1 as pb;
use crate::refusal::{Reason, Refusal};

/// A query or a history request, as sent on to peers.
#[derive(Debug, Clone)]
pub(super) enum Forward {
    Query(pb::QueryRequest),
    History(pb::CitizenHistoryRequest),
}

impl Forward {
    /// The request for one peer, starting at `before`.
    fn at(&self, before: Option<u64>, size: u32) -> Self {
        let token = before.map(|b| b.to_string()).unwrap_or_default();
        match self {
            Self::Query(q) => Self::Query(pb::QueryRequest {
                page_token: token,
                page_size: size,
                ..q.clone()
            }),
            Self::History(h) => Self::History(pb::CitizenHistoryRequest {
                page_token: token,
                page_size: size,
                ..h.clone()
            }),
        }
    }
}

/// A request to a peer, made for `caller`, bounded by `timeout`.
pub(super) fn peer_request<T>(
    message: T,
    caller: &AgencyId,
    timeout: Duration,
) -> Result<tonic::Request<T>, Refusal> {
    let mut request = tonic::Request::new(message);
    request.set_timeout(timeout);
    let value = caller.as_str().parse().map_err(|_| {
        Refusal::new(
            Reason::InvalidRequest,
            "the caller's id cannot be sent to a peer",
        )
    })?;
    request.metadata_mut().insert(ON_BEHALF_OF, value);
    Ok(request)
}

/// The time a peer read may take: the configured bound, or less when the
/// caller's deadline (`grpc-timeout`) is nearer, keeping a tenth of it to
/// merge and answer.
pub(super) fn budget(metadata: &tonic::metadata::MetadataMap, configured: Duration) -> Duration {
    let caller = metadata
        .get("grpc-timeout")
        .and_then(|v| v.to_str().ok())
        .and_then(grpc_timeout);
    match caller {
        Some(d) => configured.min(d.mul_f64(0.9)),
        None => configured,
    }
}

/// Parses a `grpc-timeout` value: digits and a unit (H, M, S, m, u, n).
fn grpc_timeout(text: &str) -> Option<Duration> {
    let (digits, unit) = text.split_at(text.len().checked_sub(1)?);
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n.saturating_mul(3600)),
        "M" => Duration::from_secs(n.saturating_mul(60)),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

/// Why a peer did not contribute, for the answer and the log.
pub(super) fn missing(peer: &str, why: &str) -> pb::MissingNode {
    tracing::warn!(peer, reason = why, "a peer did not answer an audit read");
    pb::MissingNode {
        node: peer.to_owned(),
        reason: why.to_owned(),
    }
}

/// Describes a failed peer call in a few words.
pub(super) fn failure(status: &tonic::Status) -> String {
    match status.code() {
        tonic::Code::DeadlineExceeded | tonic::Code::Cancelled => {
            "did not answer within the deadline".into()
        }
        tonic::Code::Unavailable => format!("unreachable ({})", status.message()),
        code => format!("refused the read: {code:?}: {}", status.message()),
    }
}

impl AuditService {
    /// Answers a query or a history for the whole deployment: this node's
    /// page and every peer's, merged. `query` is this node's part.
    pub(super) async fn merged(
        &self,
        caller: &AgencyId,
        query: super::index::Query,
        forward: Forward,
        token: &str,
        timeout: Duration,
    ) -> Result<pb::QueryResponse, Refusal> {
        let cursor = Cursor::parse(token)?;
        let size = query.page_size;
        let own = self.peers.node.to_string();
        let asked: Vec<Peer> = self
            .peers
            .list()
            .into_iter()
            .filter(|p| cursor.of(p.node.as_str()) != Position::Done)
            .collect();
        let calls = asked.iter().map(|peer| {
            let before = cursor.of(peer.node.as_str()).before();
            // `size` is at most 1000 (see `page_size`).
            let forward = forward.at(before, u32::try_from(size).unwrap_or(1000));
            ask(peer, forward, caller, timeout)
        });
        let local = async {
            match cursor.of(&own) {
                Position::Done => Ok(None),
                at => self
                    .run(super::index::Query {
                        before: at.before(),
                        ..query
                    })
                    .await
                    .map(Some),
            }
        };
        let (local, answers) = tokio::join!(local, futures_util::future::join_all(calls));
        let mut pages: Vec<NodePage> = local?.into_iter().collect();
        let mut missing_nodes = Vec::new();
        for (peer, answer) in asked.iter().zip(answers) {
            match answer {
                Ok(page) => pages.push(page),
                Err(why) => missing_nodes.push(missing(peer.node.as_str(), &why)),
            }
        }
        let (entries, next) = merge::merge(pages, &cursor, size);
        Ok(pb::QueryResponse {
            entries,
            next_page_token: next.map(|c| c.token()).unwrap_or_default(),
            missing: missing_nodes,
        })
    }
}

/// One peer's page, or why there is none.
async fn ask(
    peer: &Peer,
    forward: Forward,
    caller: &AgencyId,
    timeout: Duration,
) -> Result<NodePage, String> {
    let mut client = peer.client();
    let call = async {
        let answer = match forward {
            Forward::Query(q) => client.query(peer_request(q, caller, timeout)?).await,
            Forward::History(h) => {
                client
                    .citizen_history(peer_request(h, caller, timeout)?)
                    .await
            }
        };
        Ok::<_, Refusal>(answer)
    };
    // The request's own timeout is sent to the peer; this one also bounds
    // connecting to it.
    let answer = match tokio::time::timeout(timeout, call).await {
        Err(_) => return Err("did not answer within the deadline".into()),
        Ok(Err(refusal)) => return Err(refusal.message),
        Ok(Ok(Err(status))) => return Err(failure(&status)),
        Ok(Ok(Ok(answer))) => answer.into_inner(),
    };
    let next = match answer.next_page_token.as_str() {
        "" => None,
        n => Some(
            n.parse::<u64>()
                .map_err(|_| format!("answered with a page token `{n}` that is not a position"))?,
        ),
    };
    let node = peer.node.to_string();
    let entries = answer
        .entries
        .into_iter()
        .map(|e| pb::Entry {
            node: node.clone(),
            ..e
        })
        .collect();
    Ok(NodePage {
        node,
        entries,
        next,
    })
}
