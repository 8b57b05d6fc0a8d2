//! The consent check of one call: the named consent must exist, be about
//! the request's citizen, be given to this consumer for this method (or its
//! data category), purpose and procedure, be inside its validity window, not
//! revoked and have uses left. For a consent with a use limit, the use is
//! counted atomically last, so a call refused for any other reason uses
//! nothing; consents without a limit are not written on each call. The store answers within
//! a bound or the call is refused: Jisr fails closed.

use super::store::{ConsentStore, StoredConsent, UseOutcome};
use crate::catalogue::MethodRoute;
use crate::config::MethodPattern;
use crate::identity::AgencyId;
use crate::proto::jisr::consent::v1::Consent;
use crate::refusal::{Reason, Refusal};
use std::time::Duration;

/// What a call claims.
#[derive(Debug, Clone, Copy)]
pub struct Claim<'a> {
    /// The `jisr-consent` id.
    pub consent_id: &'a str,
    /// The citizen in the request's subject field.
    pub subject: &'a str,
    /// The authenticated consumer.
    pub consumer: &'a AgencyId,
    /// The method called.
    pub route: &'a MethodRoute,
    /// `jisr-purpose`.
    pub purpose: &'a str,
    /// `jisr-procedure`, if sent.
    pub procedure: Option<&'a str>,
    /// Now, µs since the epoch.
    pub now: i64,
}

fn unavailable(e: impl std::fmt::Display) -> Refusal {
    tracing::error!(error = %e, "consent store unavailable: refusing (fail closed)");
    Refusal::new(
        Reason::ConsentUnavailable,
        "the consent store cannot be reached, so consent cannot be checked and the call is refused; retry shortly",
    )
}

async fn bounded<T>(
    timeout: Duration,
    work: impl std::future::Future<Output = Result<T, super::StoreError>>,
) -> Result<T, Refusal> {
    match tokio::time::timeout(timeout, work).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => Err(unavailable(e)),
        Err(_) => Err(unavailable(format!("no answer within {timeout:?}"))),
    }
}

/// Checks the claim and counts one use; returns the consent.
pub async fn check(
    store: &dyn ConsentStore,
    claim: Claim<'_>,
    timeout: Duration,
) -> Result<StoredConsent, Refusal> {
    let id = claim.consent_id;
    let stored = bounded(timeout, store.get(id)).await?.ok_or_else(|| {
        Refusal::new(
            Reason::ConsentRequired,
            format!("no consent `{id}` is recorded; the citizen gives consent through the portal, which returns the id to send in `jisr-consent`"),
        )
    })?;
    validate(&stored, &claim)?;
    if stored.consent.max_uses == 0 {
        // Nothing to count: the read above saw the consent active, which is
        // the check (a revocation that returned before it is seen). Skipping
        // the write keeps a store write (an fsync, embedded) off every call.
        return Ok(stored);
    }
    match bounded(timeout, store.use_once(id)).await? {
        UseOutcome::Counted(stored) => Ok(stored),
        UseOutcome::Unknown => Err(Refusal::new(
            Reason::ConsentRequired,
            format!("consent `{id}` no longer exists; ask the citizen to consent again"),
        )),
        UseOutcome::Revoked(_) => Err(revoked(id)),
        UseOutcome::Exhausted(s) => Err(exhausted(id, s.consent.max_uses)),
    }
}

fn revoked(id: &str) -> Refusal {
    Refusal::new(
        Reason::ConsentRevoked,
        format!("the citizen revoked consent `{id}`; the data may not be fetched on it — ask for a new consent or use another legal basis"),
    )
}

fn exhausted(id: &str, max: u32) -> Refusal {
    Refusal::new(
        Reason::ConsentExpired,
        format!("consent `{id}` allowed {max} use(s), all made; ask the citizen for a new consent"),
    )
}

/// Everything but the use count.
fn validate(stored: &StoredConsent, claim: &Claim<'_>) -> Result<(), Refusal> {
    check_in_force(stored, claim)?;
    check_parties(&stored.consent, claim)?;
    check_scope(&stored.consent, claim)
}

/// Not revoked, within its validity, with uses left.
fn check_in_force(stored: &StoredConsent, claim: &Claim<'_>) -> Result<(), Refusal> {
    let c = &stored.consent;
    let id = claim.consent_id;
    if stored.revoked_unix_micros != 0 {
        return Err(revoked(id));
    }
    if claim.now < c.not_before_unix_micros {
        return Err(Refusal::new(
            Reason::ConsentExpired,
            format!("consent `{id}` is not valid yet; retry once its validity starts"),
        ));
    }
    if claim.now >= c.not_after_unix_micros {
        return Err(Refusal::new(
            Reason::ConsentExpired,
            format!("consent `{id}` has expired; ask the citizen to renew it through the portal"),
        ));
    }
    if c.max_uses != 0 && stored.uses >= c.max_uses {
        return Err(exhausted(id, c.max_uses));
    }
    Ok(())
}

/// Given by the citizen the request is about, to the calling agency.
fn check_parties(c: &Consent, claim: &Claim<'_>) -> Result<(), Refusal> {
    let id = claim.consent_id;
    if c.subject != claim.subject {
        return Err(Refusal::new(
            Reason::SubjectMismatch,
            format!("consent `{id}` was given by another citizen than the one this request is about; send the consent of the citizen named in the request"),
        ));
    }
    if c.consumer != claim.consumer.as_str() {
        return Err(Refusal::new(
            Reason::ConsentRequired,
            format!("consent `{id}` was given to agency `{}`, not `{}`; each agency needs its own consent", c.consumer, claim.consumer),
        ));
    }
    Ok(())
}

/// Covering the method (or its data category), the purpose and the
/// procedure of the request.
fn check_scope(c: &Consent, claim: &Claim<'_>) -> Result<(), Refusal> {
    let id = claim.consent_id;
    let route = claim.route;
    let by_method = c
        .methods
        .iter()
        .any(|m| MethodPattern::text_matches(m, &route.service, &route.method));
    let by_category = c
        .categories
        .iter()
        .any(|cat| cat == route.category.as_str());
    if !by_method && !by_category {
        return Err(Refusal::new(
            Reason::ConsentRequired,
            format!("consent `{id}` does not cover `{}` ({} data); ask the citizen for a consent that includes it", route.qualified(), route.category.as_str()),
        ));
    }
    if c.purpose != claim.purpose {
        return Err(Refusal::new(
            Reason::PurposeMismatch,
            format!("consent `{id}` is for purpose `{}`, not `{}`; data may only be used for the purpose the citizen agreed to", c.purpose, claim.purpose),
        ));
    }
    if !c.procedure.is_empty() && claim.procedure != Some(c.procedure.as_str()) {
        return Err(Refusal::new(
            Reason::PurposeMismatch,
            format!(
                "consent `{id}` is for procedure `{}`; send it in `jisr-procedure`",
                c.procedure
            ),
        ));
    }
    Ok(())
}
