//! The `jisr.consent.v1.Consents` gRPC service: the portal records and
//! revokes citizens' consents; anyone holding a receipt can verify it. Every
//! grant and revocation is an audit entry.

use super::artefact::{self, ConsentSigner};
use super::store::{ConsentStore, StoredConsent};
use crate::audit::record::{Ending, Recorder, Trail};
use crate::config::{MethodPattern, Role};
use crate::identity::{AgencyId, Caller};
use crate::proto::jisr::audit::v1::{Kind, Outcome};
use crate::proto::jisr::consent::v1 as pb;
use crate::refusal::{Reason, Refusal};
use pb::consents_server::Consents;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;
use tonic::{Request, Response, Status};

/// Data categories a consent may name.
const CATEGORIES: [&str; 5] = ["civil", "fiscal", "health", "education", "social"];

/// The consents API of a node.
#[derive(Clone)]
pub struct ConsentService {
    /// Where consents live.
    pub store: Arc<dyn ConsentStore>,
    /// The consent signing key.
    pub signer: Arc<ConsentSigner>,
    /// The audit log.
    pub recorder: Recorder,
    /// Roles by agency.
    pub roles: Arc<HashMap<AgencyId, Vec<Role>>>,
    /// Declared purposes.
    pub purposes: Arc<HashSet<String>>,
    /// `[consent] timeout_ms`: what bounds each store operation, through
    /// [`ConsentStore::answer_bound`].
    pub timeout: Duration,
    /// The time validity is read on (the node's, shared with its checks).
    pub clock: Arc<crate::clock::Clock>,
}

impl std::fmt::Debug for ConsentService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsentService")
            .field("store", &self.store)
            .finish_non_exhaustive()
    }
}

/// What a call without a caller identity is told.
const HOW_TO_CALL: &str = "call the consents API over the gateway's mutual TLS";

fn no_consent(id: &str) -> Refusal {
    Refusal::new(Reason::NotFound, format!("no consent `{id}`"))
}

impl ConsentService {
    fn has(&self, agency: &AgencyId, role: Role) -> bool {
        self.roles.get(agency).is_some_and(|r| r.contains(&role))
    }

    fn manager(&self, caller: &AgencyId) -> Result<(), Refusal> {
        if self.has(caller, Role::ConsentManager) {
            Ok(())
        } else {
            Err(Refusal::new(
                Reason::AccessDenied,
                format!("`{caller}` may not record or read consents: only the citizen portal (`consent-manager` role) does"),
            ))
        }
    }

    async fn bounded<T>(
        &self,
        work: impl std::future::Future<Output = Result<T, super::StoreError>>,
    ) -> Result<T, Refusal> {
        let bound = self.store.answer_bound(self.timeout);
        match tokio::time::timeout(bound, work).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => {
                tracing::error!(error = %e, "consent store failure");
                Err(Refusal::new(
                    Reason::ConsentUnavailable,
                    "the consent store cannot be reached; retry shortly",
                ))
            }
            Err(_) => Err(Refusal::new(
                Reason::ConsentUnavailable,
                "the consent store did not answer in time; retry shortly",
            )),
        }
    }

    /// Records a grant or revocation in the audit log; the answer waits for it.
    async fn audit(
        &self,
        caller: &AgencyId,
        kind: Kind,
        method: &str,
        consent: &pb::Consent,
    ) -> Result<(), Refusal> {
        let mut trail = Trail::start(
            &format!("{:032x}", rand::random::<u128>()),
            caller.as_str(),
            method,
            &http::HeaderMap::new(),
        );
        trail.provider.clone_from(&consent.consumer);
        trail.purpose.clone_from(&consent.purpose);
        trail.procedure.clone_from(&consent.procedure);
        trail.basis = "consent".into();
        trail.consent_id.clone_from(&consent.id);
        trail.subject = Some(self.recorder.pseudonyms.pseudonym(&consent.subject));
        let ending = Ending {
            outcome: Outcome::Allowed,
            reason: "",
            grpc_status: 0,
            response_digest: None,
        };
        self.recorder.record_kind(&trail, ending, kind).await.map(drop).map_err(|e| {
            tracing::error!(error = %e, "consent change not recorded");
            Refusal::new(Reason::AuditUnavailable, "the change cannot be recorded in the audit log right now, so it is not made; retry later")
        })
    }

    fn validate(&self, c: &pb::Consent) -> Result<(), Refusal> {
        let id_ok = |s: &str| {
            !s.is_empty()
                && s.len() <= 64
                && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        };
        if !id_ok(&c.subject) {
            return Err(Refusal::new(
                Reason::InvalidRequest,
                "`subject` must be the citizen's id (letters, digits, `-`)",
            ));
        }
        if !self.roles.contains_key(
            &AgencyId::parse(&c.consumer)
                .map_err(|e| Refusal::new(Reason::InvalidRequest, format!("`consumer`: {e}")))?,
        ) {
            return Err(Refusal::new(
                Reason::InvalidRequest,
                format!(
                    "`consumer` `{}` is not an agency of this gateway",
                    c.consumer
                ),
            ));
        }
        if !self.purposes.contains(&c.purpose) {
            return Err(Refusal::new(
                Reason::InvalidRequest,
                format!("`purpose` `{}` is not a declared purpose", c.purpose),
            ));
        }
        if c.methods.is_empty() && c.categories.is_empty() {
            return Err(Refusal::new(Reason::InvalidRequest, "name the data covered: `methods` (`pkg.Service/Method` or `pkg.Service/*`) or `categories`"));
        }
        for m in &c.methods {
            MethodPattern::parse(m)
                .map_err(|e| Refusal::new(Reason::InvalidRequest, format!("method `{m}`: {e}")))?;
        }
        if let Some(bad) = c
            .categories
            .iter()
            .find(|cat| !CATEGORIES.contains(&cat.as_str()))
        {
            return Err(Refusal::new(
                Reason::InvalidRequest,
                format!(
                    "category `{bad}` is unknown; use one of {}",
                    CATEGORIES.join(", ")
                ),
            ));
        }
        if c.not_after_unix_micros <= self.clock.unix_micros()
            || c.not_after_unix_micros <= c.not_before_unix_micros
        {
            return Err(Refusal::new(
                Reason::InvalidRequest,
                "`not_after_unix_micros` must be in the future and after `not_before_unix_micros`",
            ));
        }
        Ok(())
    }

    fn signed(&self, stored: &StoredConsent) -> pb::SignedConsent {
        artefact::to_signed(stored, &self.signer.verifier(), self.clock.unix_micros())
    }
}

#[tonic::async_trait]
impl Consents for ConsentService {
    async fn grant(
        &self,
        request: Request<pb::GrantRequest>,
    ) -> Result<Response<pb::SignedConsent>, Status> {
        let caller = Caller::of(&request, HOW_TO_CALL)?;
        self.manager(&caller)?;
        let mut consent = request
            .into_inner()
            .consent
            .ok_or_else(|| Refusal::new(Reason::InvalidRequest, "`consent` is required"))?;
        let now = self.clock.unix_micros();
        consent.id = format!("{:032x}", rand::random::<u128>());
        consent.recorded_by = caller.to_string();
        consent.recorded_unix_micros = now;
        if consent.not_before_unix_micros == 0 {
            consent.not_before_unix_micros = now;
        }
        self.validate(&consent)?;
        let (encoded, signature) = self.signer.sign(&consent);
        let stored = StoredConsent {
            encoded,
            signature,
            consent: consent.clone(),
            revoked_unix_micros: 0,
            uses: 0,
        };
        self.audit(
            &caller,
            Kind::ConsentGranted,
            "/jisr.consent.v1.Consents/Grant",
            &consent,
        )
        .await?;
        self.bounded(self.store.put(stored.clone())).await?;
        Ok(Response::new(self.signed(&stored)))
    }

    async fn revoke(
        &self,
        request: Request<pb::RevokeRequest>,
    ) -> Result<Response<pb::SignedConsent>, Status> {
        let caller = Caller::of(&request, HOW_TO_CALL)?;
        self.manager(&caller)?;
        let id = request.into_inner().id;
        let current = self
            .bounded(self.store.get(&id))
            .await?
            .ok_or_else(|| no_consent(&id))?;
        self.audit(
            &caller,
            Kind::ConsentRevoked,
            "/jisr.consent.v1.Consents/Revoke",
            &current.consent,
        )
        .await?;
        let revoked = self
            .bounded(self.store.revoke(&id, self.clock.unix_micros()))
            .await?
            .ok_or_else(|| no_consent(&id))?;
        Ok(Response::new(self.signed(&revoked)))
    }

    async fn get(
        &self,
        request: Request<pb::GetRequest>,
    ) -> Result<Response<pb::SignedConsent>, Status> {
        let caller = Caller::of(&request, HOW_TO_CALL)?;
        let id = request.into_inner().id;
        let stored = self
            .bounded(self.store.get(&id))
            .await?
            .ok_or_else(|| no_consent(&id))?;
        let allowed = self.has(&caller, Role::ConsentManager)
            || self.has(&caller, Role::Auditor)
            || stored.consent.consumer == caller.as_str();
        if !allowed {
            return Err(Refusal::new(
                Reason::AccessDenied,
                format!("consent `{id}` is not addressed to `{caller}`"),
            )
            .into());
        }
        Ok(Response::new(self.signed(&stored)))
    }

    async fn list_by_subject(
        &self,
        request: Request<pb::ListBySubjectRequest>,
    ) -> Result<Response<pb::ListBySubjectResponse>, Status> {
        let caller = Caller::of(&request, HOW_TO_CALL)?;
        if !self.has(&caller, Role::ConsentManager) && !self.has(&caller, Role::Auditor) {
            return Err(Refusal::new(
                Reason::AccessDenied,
                "a citizen's consents are listed for the portal (`consent-manager`) and auditors",
            )
            .into());
        }
        let subject = request.into_inner().subject;
        let all = self.bounded(self.store.list_by_subject(&subject)).await?;
        Ok(Response::new(pb::ListBySubjectResponse {
            consents: all.iter().map(|s| self.signed(s)).collect(),
        }))
    }

    async fn verify(
        &self,
        request: Request<pb::VerifyRequest>,
    ) -> Result<Response<pb::VerifyResponse>, Status> {
        let signed = request
            .into_inner()
            .consent
            .ok_or_else(|| Refusal::new(Reason::InvalidRequest, "`consent` is required"))?;
        let Some(consent) = artefact::open(&self.signer.verifier(), &signed)? else {
            return Ok(Response::new(pb::VerifyResponse {
                signature_valid: false,
                status: pb::Status::Unspecified as i32,
                message: "the signature does not match: this is not a consent recorded by this gateway, or it was altered".into(),
            }));
        };
        let status = match self.bounded(self.store.get(&consent.id)).await? {
            Some(stored) => artefact::status(&stored, self.clock.unix_micros()),
            None => pb::Status::Unspecified,
        };
        Ok(Response::new(pb::VerifyResponse {
            signature_valid: true,
            status: status as i32,
            message: format!(
                "consent `{}` signed by {}; currently {}",
                consent.id,
                self.signer.verifier().name(),
                status.as_str_name()
            ),
        }))
    }
}
