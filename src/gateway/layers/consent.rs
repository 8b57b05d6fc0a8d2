//! The legal-basis permit of one call. The access rules yield a [`Grant`];
//! its rule's terms turn it into a [`Justified`] (a break-glass rule needs
//! `jisr-justification`); the consent check turns that into a [`Consented`]
//! (a law needs no consent; consent needs a valid one for the request's
//! citizen, its use counted). Delivery takes a [`Consented`].
//!
//! Both permits have private fields and only the checks here make them, so
//! a call cannot reach a provider without its basis checked: the break-glass
//! path and the consent path are not conventions a new caller could skip,
//! they are the only way to the type delivery asks for.

use crate::audit::record::Trail;
use crate::catalogue::MethodRoute;
use crate::config::Basis;
use crate::consent::check::{self, Claim};
use crate::gateway::exchange::{Consents, RuleTerms};
use crate::gateway::metadata::CallMetadata;
use crate::policy::Grant;
use crate::refusal::{Reason, Refusal};
use tokio::time::Instant;

/// A granted call whose rule's terms are met: when the rule is
/// break-glass, the caller said why. Only [`Justified::check`] makes one.
#[derive(Debug)]
pub struct Justified<'a> {
    grant: Grant<'a>,
    justification: Option<&'a str>,
}

/// The call's legal basis, checked: only [`Justified::consent`] makes one,
/// and delivery requires one.
#[derive(Debug)]
pub struct Consented<'a> {
    grant: Grant<'a>,
    ground: Ground<'a>,
    justification: Option<&'a str>,
}

/// How the basis was met.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ground<'a> {
    /// The rule names this law (`law:<reference>`); no consent is needed.
    Law(&'a str),
    /// The citizen's consent `id` was checked; `counted` when it has a use
    /// limit and this call used one.
    Consent {
        /// The `jisr-consent` id.
        id: &'a str,
        /// Whether a use was counted (consents without a limit are not).
        counted: bool,
    },
}

impl<'a> Justified<'a> {
    /// Checks the terms of the grant's rule (`terms`, by rule index). A
    /// break-glass call without `jisr-justification` is refused; one with
    /// it is flagged for review in `trail`, its justification kept there
    /// (and only there). A rule deferring disclosure puts its date in
    /// `trail` first, so that even a refused attempt stays hidden from the
    /// citizen as long as the allowed exchanges.
    pub fn check(
        grant: Grant<'a>,
        terms: &[RuleTerms],
        metadata: &'a CallMetadata,
        trail: &mut Trail,
    ) -> Result<Self, Refusal> {
        let terms = terms.get(grant.rule());
        if let Some(at) = terms.and_then(|t| t.disclose_from) {
            trail.disclose_from_unix_micros = at;
        }
        let break_glass = terms.is_some_and(|t| t.break_glass);
        if !break_glass {
            return Ok(Self {
                grant,
                justification: None,
            });
        }
        let Some(why) = &metadata.justification else {
            return Err(Refusal::new(
                Reason::JustificationRequired,
                "this is an emergency (break-glass) access: say why in `jisr-justification`; the access is flagged for review",
            ));
        };
        trail.break_glass = true;
        trail.justification.clone_from(why);
        Ok(Self {
            grant,
            justification: Some(why),
        })
    }

    /// What the access check allowed.
    pub fn grant(&self) -> &Grant<'a> {
        &self.grant
    }

    /// Whether [`Justified::consent`] asks the consent store (the rule's
    /// basis is consent) rather than deciding on the spot.
    pub fn needs_consent(&self) -> bool {
        *self.grant.basis() == Basis::Consent
    }

    /// The consent check. A law basis needs none; a consent basis needs
    /// `jisr-consent` naming a consent of the request's `subject` for this
    /// consumer, `route`, purpose and procedure, and counts one use. The
    /// store may take its bound, never past the caller's `deadline`.
    pub async fn consent(
        self,
        subject: Option<&str>,
        route: &MethodRoute,
        metadata: &'a CallMetadata,
        consents: &Consents,
        deadline: Option<Instant>,
        trail: &mut Trail,
    ) -> Result<Consented<'a>, Refusal> {
        let Self {
            grant,
            justification,
        } = self;
        let (id, subject) = match grant.basis() {
            Basis::Law(reference) => {
                return Ok(Consented {
                    grant,
                    ground: Ground::Law(reference),
                    justification,
                })
            }
            Basis::Consent => claimed(metadata, subject, route)?,
        };
        // Recorded before the store answers: a refused consent is audited
        // under the id the caller named.
        trail.consent_id.clear();
        trail.consent_id.push_str(id);
        let claim = Claim {
            consent_id: id,
            subject,
            consumer: grant.consumer(),
            route,
            purpose: grant.purpose(),
            procedure: metadata.procedure.as_deref(),
            now: consents.clock.unix_micros(),
        };
        // The store may take its bound (the configured one for Redis, a
        // stuck disk's for the embedded store), but never past the caller's
        // deadline.
        let own = consents.store.answer_bound(consents.timeout);
        let bound = match deadline {
            Some(at) => own.min(at.saturating_duration_since(Instant::now())),
            None => own,
        };
        let stored = check::check(consents.store.as_ref(), claim, bound).await?;
        Ok(Consented {
            grant,
            ground: Ground::Consent {
                id,
                counted: stored.consent.max_uses != 0,
            },
            justification,
        })
    }
}

/// The consent id a consent-based call names and the citizen it is about,
/// once the call names one and its contract marks the citizen.
fn claimed<'a, 's>(
    metadata: &'a CallMetadata,
    subject: Option<&'s str>,
    route: &MethodRoute,
) -> Result<(&'a str, &'s str), Refusal> {
    let Some(id) = &metadata.consent else {
        return Err(Refusal::new(
            Reason::ConsentRequired,
            format!("`{}` needs the citizen's consent: send its id in `jisr-consent` (the portal returns it when the citizen consents)", route.qualified()),
        ));
    };
    let Some(subject) = subject.filter(|s| !s.is_empty()) else {
        return Err(Refusal::new(
            Reason::ConsentRequired,
            "this method's contract marks no citizen (jisr.subject), so a consent cannot apply to it; ask the operator to fix the rule",
        ));
    };
    Ok((id, subject))
}

impl<'a> Consented<'a> {
    /// What the access check allowed.
    pub fn grant(&self) -> &Grant<'a> {
        &self.grant
    }

    /// How the basis was met: a law, or a checked consent.
    pub fn ground(&self) -> Ground<'a> {
        self.ground
    }

    /// The break-glass justification, when the rule is break-glass.
    pub fn justification(&self) -> Option<&'a str> {
        self.justification
    }
}

#[cfg(test)]
mod tests;
