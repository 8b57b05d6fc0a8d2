//! Calls from a peer replica: the connection proved a gateway certificate
//! of a peer node ([`Gateway::admits_peer`]). Such a node may only read the audit
//! API, for the agency it names in `jisr-on-behalf-of`; the audit API then
//! applies that agency's roles and answers from this node's log only.

use super::Gateway;
use crate::audit::peers::ON_BEHALF_OF;
use crate::audit::service::PeerRead;
use crate::identity::{AgencyId, Caller};
use crate::refusal::{Reason, Refusal};
use http::{Request, Response};
use hyper::body::Incoming;
use tonic::body::Body;
use tower::ServiceExt as _;

/// The only service a peer node may call.
const AUDIT: &str = "/jisr.audit.v1.Audit/";

impl Gateway {
    /// Whether gateway node `node` (its certificate already verified against
    /// the CA) may read this node's audit log: a `[cluster]` peer when
    /// peers are configured, else a node live in the replica registry.
    pub(super) fn admits_peer(&self, node: &AgencyId) -> bool {
        let routing = self.routing.load();
        if !routing.config.cluster.peers.is_empty() {
            return routing.config.cluster.peer(node.as_str()).is_some();
        }
        self.apis
            .live_peers
            .as_ref()
            .is_some_and(|live| live.is_live(node.as_str()))
    }

    /// Handles one request from peer node `node`.
    pub(super) async fn dispatch_peer(
        &self,
        mut request: Request<Incoming>,
        node: &AgencyId,
    ) -> Response<Body> {
        let routing = self.routing.load_full();
        let refuse = |refusal: Refusal| {
            tracing::warn!(%node, path = request.uri().path(), reason = %refusal.message, "peer call refused");
            tonic::Status::from(refusal).into_http()
        };
        // Checked again per call: a reload may have removed the peer, or it
        // may have left the registry.
        if !self.admits_peer(node) {
            return refuse(Refusal::new(
                Reason::AccessDenied,
                format!("gateway node `{node}` is no longer a peer of this node (not in [cluster] peers, nor live in the replica registry)"),
            ));
        }
        if !request.uri().path().starts_with(AUDIT) {
            return refuse(Refusal::new(
                Reason::AccessDenied,
                format!("a peer node may only read the audit API ({AUDIT}…), not call services"),
            ));
        }
        let on_behalf = request
            .headers()
            .get(ON_BEHALF_OF)
            .and_then(|v| v.to_str().ok())
            .map(AgencyId::parse);
        let agency = match on_behalf {
            Some(Ok(agency)) => agency,
            Some(Err(e)) => {
                return refuse(Refusal::new(
                    Reason::InvalidRequest,
                    format!("`{ON_BEHALF_OF}` does not name an agency: {e}"),
                ))
            }
            None => {
                return refuse(Refusal::new(
                    Reason::NoCallerIdentity,
                    format!("a peer read must name the agency it is made for in `{ON_BEHALF_OF}`"),
                ))
            }
        };
        request.extensions_mut().insert(Caller(agency));
        request
            .extensions_mut()
            .insert(PeerRead { from: node.clone() });
        match routing.own.clone().oneshot(request).await {
            Ok(response) => response,
            Err(never) => match never {},
        }
    }
}
