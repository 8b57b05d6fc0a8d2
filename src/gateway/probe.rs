//! `jisr.probe.v1.Probe`: the connection test an agency runs (`jisr
//! probe`). It tells the caller who the gateway takes it for, what the
//! rules of the configuration in force let it call, and whether each
//! provider of those methods answers the gateway now. Nothing reaches a
//! provider but a TLS handshake, and nothing is audited: no exchange
//! happens.

use super::upstream::Upstream;
use crate::catalogue::Catalogue;
use crate::config::Config;
use crate::identity::{AgencyId, Caller};
use crate::proto::jisr::probe::v1::{
    probe_server::Probe, Allowed, CheckRequest, CheckResponse, Instance, Provider,
};
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

/// How to call the probe when the request did not come through mutual TLS.
const HOW_TO_CALL: &str =
    "call the probe through the gateway's port with the agency's certificate (`jisr probe`)";

/// The probe of one configuration (rebuilt on reload).
#[derive(Clone)]
pub(super) struct ProbeService {
    node: String,
    /// What each consumer may call, in rule order.
    allowed: Arc<HashMap<AgencyId, Vec<Allowed>>>,
    upstreams: HashMap<AgencyId, Arc<Upstream>>,
}

impl ProbeService {
    pub(super) fn new(
        config: &Config,
        catalogue: &Catalogue,
        upstreams: &HashMap<AgencyId, Arc<Upstream>>,
    ) -> Self {
        let mut allowed: HashMap<AgencyId, Vec<Allowed>> = HashMap::new();
        for rule in &config.rules {
            let mine = allowed.entry(rule.consumer.clone()).or_default();
            for m in catalogue.methods() {
                if rule
                    .methods
                    .iter()
                    .any(|p| p.matches(&m.service, &m.method))
                {
                    mine.push(Allowed {
                        method: m.qualified(),
                        provider: m.provider.to_string(),
                        purposes: rule.purposes.clone(),
                        basis: rule.basis.to_string(),
                        break_glass: rule.break_glass,
                    });
                }
            }
        }
        Self {
            node: config.node.id.to_string(),
            allowed: Arc::new(allowed),
            upstreams: upstreams.clone(),
        }
    }
}

#[tonic::async_trait]
impl Probe for ProbeService {
    async fn check(
        &self,
        request: tonic::Request<CheckRequest>,
    ) -> Result<tonic::Response<CheckResponse>, tonic::Status> {
        let caller = Caller::of(&request, HOW_TO_CALL)?;
        let allowed = self.allowed.get(&caller).cloned().unwrap_or_default();
        let providers: BTreeSet<&str> = allowed.iter().map(|a| a.provider.as_str()).collect();
        let reached = providers.into_iter().map(|provider| async move {
            let instances = match AgencyId::parse(provider)
                .ok()
                .and_then(|id| self.upstreams.get(&id))
            {
                Some(upstream) => upstream.reach().await,
                None => Vec::new(),
            };
            Provider {
                agency: provider.to_owned(),
                instances: instances
                    .into_iter()
                    .map(|(address, outcome)| Instance {
                        address,
                        reachable: outcome.is_ok(),
                        error: outcome.err().unwrap_or_default(),
                    })
                    .collect(),
            }
        });
        let providers = futures_util::future::join_all(reached).await;
        tracing::info!(agency = %caller, methods = allowed.len(), "probed by an agency");
        Ok(tonic::Response::new(CheckResponse {
            agency: caller.to_string(),
            node: self.node.clone(),
            allowed,
            providers,
        }))
    }
}
