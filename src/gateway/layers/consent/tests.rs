//! The permits are made by their checks only: a law basis is consented on
//! the spot, a consent basis without `jisr-consent` is refused before the
//! store is asked, and a break-glass rule without a justification yields
//! no permit at all.

use super::*;
use crate::catalogue::Catalogue;
use crate::config::{Config, Location, MethodPattern, RuleConfig};
use crate::consent::store::StoreFuture;
use crate::consent::{ConsentStore, StoredConsent, UseOutcome};
use crate::identity::AgencyId;
use crate::policy::Policy;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

const METHOD: &str = "ma.civilstatus.v1.CivilStatus/GetBirthRecord";
const PATH: &str = "/ma.civilstatus.v1.CivilStatus/GetBirthRecord";
/// The terms of rule 0, the only rule.
const NONE: &[RuleTerms] = &[RuleTerms {
    break_glass: false,
    disclose_from: None,
}];
const BREAK_GLASS: &[RuleTerms] = &[RuleTerms {
    break_glass: true,
    disclose_from: None,
}];

/// A store that fails the test if the check asks it anything.
#[derive(Debug)]
struct Untouched;

impl ConsentStore for Untouched {
    fn put(&self, _: StoredConsent) -> StoreFuture<'_, ()> {
        panic!("the check wrote a consent")
    }
    fn get<'a>(&'a self, _: &'a str) -> StoreFuture<'a, Option<StoredConsent>> {
        panic!("the check asked the store")
    }
    fn revoke<'a>(&'a self, _: &'a str, _: i64) -> StoreFuture<'a, Option<StoredConsent>> {
        panic!("the check revoked a consent")
    }
    fn use_once<'a>(&'a self, _: &'a str) -> StoreFuture<'a, UseOutcome> {
        panic!("the check counted a use")
    }
    fn list_by_subject<'a>(&'a self, _: &'a str) -> StoreFuture<'a, Vec<StoredConsent>> {
        panic!("the check listed consents")
    }
}

fn route() -> Arc<MethodRoute> {
    let proto = Path::new(env!("CARGO_MANIFEST_DIR")).join("proto");
    let text = format!(
        r#"[node]
id = "gw-1"
trust_domain = "interop.gov.ma"
listen = "127.0.0.1:8443"

[tls]
ca = "pki/ca.crt"
cert = "pki/gw.crt"
key = "pki/gw.key"

[catalogue]
include = [{:?}]

[[agency]]
id = "civil-status"
upstream = "127.0.0.1:9001"
contracts = ["agencies/civilstatus/v1/civilstatus.proto"]

[[agency]]
id = "education"
"#,
        proto.display().to_string()
    );
    let config = Config::from_toml(&text, Path::new("/etc/jisr/jisr.toml")).unwrap();
    let catalogue = Catalogue::load(&config).unwrap_or_else(|e| panic!("{e}"));
    catalogue.get(PATH).unwrap().clone()
}

fn policy(basis: Basis, break_glass: bool) -> Policy {
    let at = Location {
        file: "test.toml".into(),
        line: 1,
        column: 1,
    };
    let rule = RuleConfig {
        consumer: AgencyId::parse("education").unwrap(),
        methods: vec![MethodPattern::parse(METHOD).unwrap()],
        purposes: vec!["bac-candidature".into()],
        basis,
        at: at.clone(),
        methods_at: vec![at],
        release: None,
        break_glass,
        disclose_from: None,
    };
    let (policy, conflicts) = Policy::build(
        &[rule],
        &[("ma.civilstatus.v1.CivilStatus", "GetBirthRecord")],
    );
    assert!(conflicts.is_empty());
    policy
}

fn metadata(consent: Option<&str>, justification: Option<&str>) -> CallMetadata {
    CallMetadata {
        purpose: "bac-candidature".into(),
        procedure: None,
        official: None,
        consent: consent.map(str::to_owned),
        justification: justification.map(str::to_owned),
    }
}

fn consents() -> Consents {
    Consents {
        store: Arc::new(Untouched),
        timeout: Duration::from_secs(1),
        clock: Arc::default(),
    }
}

fn trail() -> Trail {
    Trail::start("req-1", "education", PATH, &http::HeaderMap::new())
}

#[tokio::test]
async fn a_law_basis_is_consented_without_asking_the_store() {
    let (route, consents, mut trail) = (route(), consents(), trail());
    let policy = policy(Basis::Law("55-19".into()), false);
    let consumer = AgencyId::parse("education").unwrap();
    let md = metadata(None, None);
    let grant = policy
        .access(PATH)
        .unwrap()
        .check(&consumer, &md.purpose)
        .unwrap();
    let justified = Justified::check(grant, NONE, &md, &mut trail).unwrap();
    assert!(!justified.needs_consent());
    let consented = justified
        .consent(Some("AB123456"), &route, &md, &consents, None, &mut trail)
        .await
        .unwrap();
    assert_eq!(consented.ground(), Ground::Law("55-19"));
    assert_eq!(consented.justification(), None);
    assert!(trail.consent_id.is_empty());
}

#[tokio::test]
async fn a_consent_basis_without_a_consent_id_gets_no_permit() {
    let (route, consents, mut trail) = (route(), consents(), trail());
    let policy = policy(Basis::Consent, false);
    let consumer = AgencyId::parse("education").unwrap();
    let md = metadata(None, None);
    let grant = policy
        .access(PATH)
        .unwrap()
        .check(&consumer, &md.purpose)
        .unwrap();
    let justified = Justified::check(grant, NONE, &md, &mut trail).unwrap();
    assert!(justified.needs_consent());
    let refusal = justified
        .consent(Some("AB123456"), &route, &md, &consents, None, &mut trail)
        .await
        .unwrap_err();
    assert_eq!(refusal.reason, Reason::ConsentRequired);
    assert!(trail.consent_id.is_empty());
}

#[tokio::test]
async fn a_consent_basis_needs_the_citizen_the_contract_marks() {
    let (route, consents, mut trail) = (route(), consents(), trail());
    let policy = policy(Basis::Consent, false);
    let consumer = AgencyId::parse("education").unwrap();
    let md = metadata(Some("c-1"), None);
    let grant = policy
        .access(PATH)
        .unwrap()
        .check(&consumer, &md.purpose)
        .unwrap();
    let justified = Justified::check(grant, NONE, &md, &mut trail).unwrap();
    let refusal = justified
        .consent(Some(""), &route, &md, &consents, None, &mut trail)
        .await
        .unwrap_err();
    assert_eq!(refusal.reason, Reason::ConsentRequired);
}

#[tokio::test]
async fn break_glass_needs_a_justification_and_carries_it_in_the_permit() {
    let (route, consents, mut trail) = (route(), consents(), trail());
    let policy = policy(Basis::Law("emergency-act".into()), true);
    let consumer = AgencyId::parse("education").unwrap();
    let access = policy.access(PATH).unwrap();

    let silent = metadata(None, None);
    let grant = access.check(&consumer, &silent.purpose).unwrap();
    let refusal = Justified::check(grant, BREAK_GLASS, &silent, &mut trail).unwrap_err();
    assert_eq!(refusal.reason, Reason::JustificationRequired);
    assert!(!trail.break_glass);

    let said = metadata(None, Some("patient unconscious"));
    let grant = access.check(&consumer, &said.purpose).unwrap();
    let justified = Justified::check(grant, BREAK_GLASS, &said, &mut trail).unwrap();
    assert!(trail.break_glass);
    assert_eq!(trail.justification, "patient unconscious");
    let consented = justified
        .consent(Some("AB123456"), &route, &said, &consents, None, &mut trail)
        .await
        .unwrap();
    assert_eq!(consented.justification(), Some("patient unconscious"));
    assert_eq!(consented.ground(), Ground::Law("emergency-act"));
}

#[test]
fn a_deferring_rule_puts_its_date_in_the_trail_even_of_a_refused_call() {
    const DATE: i64 = 1_893_456_000_000_000;
    let consumer = AgencyId::parse("education").unwrap();
    for (break_glass, justification) in [(false, None), (true, None), (true, Some("why"))] {
        let policy = policy(Basis::Law("cgi-art-213".into()), break_glass);
        let terms = [RuleTerms {
            break_glass,
            disclose_from: Some(DATE),
        }];
        let md = metadata(None, justification);
        let grant = policy
            .access(PATH)
            .unwrap()
            .check(&consumer, &md.purpose)
            .unwrap();
        let mut trail = trail();
        let checked = Justified::check(grant, &terms, &md, &mut trail);
        assert_eq!(checked.is_ok(), !break_glass || justification.is_some());
        assert_eq!(
            trail.disclose_from_unix_micros, DATE,
            "{break_glass} {justification:?}"
        );
    }
    let mut trail = trail();
    let md = metadata(None, None);
    let policy = policy(Basis::Law("55-19".into()), false);
    let grant = policy
        .access(PATH)
        .unwrap()
        .check(&consumer, &md.purpose)
        .unwrap();
    Justified::check(grant, NONE, &md, &mut trail).unwrap();
    assert_eq!(trail.disclose_from_unix_micros, 0, "shown at once");
}

/// A use-limited consent of the demo citizen to education for `METHOD`.
fn limited_consent(id: &str) -> StoredConsent {
    use prost::Message as _;
    let consent = crate::proto::jisr::consent::v1::Consent {
        id: id.into(),
        subject: "AB123456".into(),
        consumer: "education".into(),
        methods: vec![METHOD.into()],
        purpose: "bac-candidature".into(),
        not_before_unix_micros: 1,
        not_after_unix_micros: i64::MAX,
        max_uses: 5,
        recorded_by: "portal".into(),
        recorded_unix_micros: 1,
        ..Default::default()
    };
    StoredConsent {
        encoded: consent.encode_to_vec(),
        signature: vec![7; 64],
        consent,
        revoked_unix_micros: 0,
        uses: 0,
    }
}

/// The embedded store's answer is bounded against a stuck disk, not by
/// `[consent] timeout_ms` (a Redis round trip's bound): a loaded machine
/// once queued its redb write past 250 ms and refused two calls with
/// `CONSENT_UNAVAILABLE`. Here its changes stall well past a 10 ms
/// configured bound and the check still counts its use once they resume.
#[tokio::test]
async fn the_embedded_store_is_not_held_to_the_redis_round_trip_bound() {
    use crate::consent::store::embedded::EmbeddedConsentStore;
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(EmbeddedConsentStore::open(&dir.path().join("consents.redb")).unwrap());
    store.put(limited_consent("c-1")).await.unwrap();
    let consents = Consents {
        store: store.clone(),
        timeout: Duration::from_millis(10),
        clock: Arc::default(),
    };
    let (route, mut trail) = (route(), trail());
    let policy = policy(Basis::Consent, false);
    let consumer = AgencyId::parse("education").unwrap();
    let md = metadata(Some("c-1"), None);
    let grant = policy
        .access(PATH)
        .unwrap()
        .check(&consumer, &md.purpose)
        .unwrap();
    let justified = Justified::check(grant, NONE, &md, &mut trail).unwrap();
    let stall = store.stall_changes();
    let check = justified.consent(Some("AB123456"), &route, &md, &consents, None, &mut trail);
    tokio::pin!(check);
    // Thirty times the configured bound: a check held to it would have
    // ended by now with a refusal (its own timer fires first, and is
    // polled first), whatever the machine's load.
    let early = tokio::time::timeout(Duration::from_millis(300), &mut check).await;
    assert!(
        early.is_err(),
        "the check ended while the store was still working: {:?}",
        early.map(|r| r.map(|c| c.ground()))
    );
    drop(stall);
    let consented = check.await.expect("the store answered: the call goes on");
    assert_eq!(
        consented.ground(),
        Ground::Consent {
            id: "c-1",
            counted: true
        }
    );
    let stored = store.get("c-1").await.unwrap().unwrap();
    assert_eq!(stored.uses, 1, "the use was counted once");
}

#[test]
fn only_a_store_on_this_nodes_disk_widens_the_configured_bound() {
    use crate::consent::store::embedded::{EmbeddedConsentStore, LOCAL_DISK_BOUND};
    let dir = tempfile::tempdir().unwrap();
    let embedded = EmbeddedConsentStore::open(&dir.path().join("consents.redb")).unwrap();
    let configured = Duration::from_millis(250);
    assert_eq!(embedded.answer_bound(configured), LOCAL_DISK_BOUND);
    // A configured bound above the disk's is kept.
    let long = LOCAL_DISK_BOUND + Duration::from_secs(1);
    assert_eq!(embedded.answer_bound(long), long);
    // Any other store (Redis) keeps the configured one: fail closed fast.
    assert_eq!(Untouched.answer_bound(configured), configured);
}
