//! Consent enforcement, black-box: every reason code, the portal's role,
//! receipts, persistence across a restart, and two gateways sharing Redis.

use crate::routing::echo_network;
use crate::support::client::reason;
use crate::support::redis_server::Redis;
use crate::support::*;
use jisr::proto::jisr::consent::v1 as pb;
use pb::consents_client::ConsentsClient;
use prost::Message as _;
use std::time::Duration;
use tonic::Code;

/// Purposes whose rules rest on consent.
pub(crate) const CONSENT_RULES: &str = r#"
[[purpose]]
code = "school-enrolment"
description = "Enrolment in a public school"

[[purpose]]
code = "school-grant"
description = "School grant"

[[rule]]
consumer = "education"
methods = ["ma.civilstatus.v1.CivilStatus/GetBirthRecord"]
purposes = ["school-enrolment", "school-grant"]
basis = "consent"
"#;

fn now() -> i64 {
    jisr::consent::artefact::now_micros()
}

/// Two gateways with the consent rules, sharing the consent store in the
/// Redis at `url` (store bound `timeout_ms`), each with its own audit log.
struct Replicas {
    pki: Pki,
    addr1: String,
    addr2: String,
    _gateways: (Gateway, Gateway, Vec<crate::support::echo::Echo>),
}

impl Replicas {
    async fn start(url: &str, timeout_ms: u64) -> Self {
        let (pki, gw1, addr1, echos) = echo_network(
            "",
            &format!(
                "{CONSENT_RULES}\n[consent]\nredis_url = \"{url}\"\ntimeout_ms = {timeout_ms}\n"
            ),
        )
        .await;
        let config = std::fs::read_to_string(pki.root().join("gateway.toml"))
            .unwrap()
            .replace("gateway-audit", "gateway2-audit");
        // Each replica has its own node id (issue 16).
        let config = crate::support::replica_config(&pki, &config, "gw-2");
        let (gw2, addr2) = start_gateway(&pki, "gateway2", &config);
        Self {
            pki,
            addr1,
            addr2,
            _gateways: (gw1, gw2, echos),
        }
    }
}

pub(crate) async fn portal(addr: &str, pki: &Pki) -> ConsentsClient<tonic::transport::Channel> {
    ConsentsClient::new(channel(addr, &pki.files("portal")).await.unwrap())
}

pub(crate) async fn grant(
    client: &mut ConsentsClient<tonic::transport::Channel>,
    subject: &str,
    purpose: &str,
    max_uses: u32,
    valid: Duration,
) -> String {
    let consent = pb::Consent {
        subject: subject.into(),
        consumer: "education".into(),
        methods: vec!["ma.civilstatus.v1.CivilStatus/GetBirthRecord".into()],
        purpose: purpose.into(),
        max_uses,
        not_after_unix_micros: now() + valid.as_micros() as i64,
        ..Default::default()
    };
    let signed = client
        .grant(pb::GrantRequest {
            consent: Some(consent),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(signed.status, pb::Status::Active as i32);
    signed.decoded.unwrap().id
}

/// A consent's status as the portal reads it, and its end.
async fn status_of(portal: &mut ConsentsClient<tonic::transport::Channel>, id: &str) -> (i32, i64) {
    let signed = portal
        .get(pb::GetRequest { id: id.into() })
        .await
        .unwrap()
        .into_inner();
    (signed.status, signed.decoded.unwrap().not_after_unix_micros)
}

pub(crate) fn call<'a>(purpose: &str, citizen: &str, consent: Option<&str>) -> RawCall<'a> {
    let call = RawCall::new(BIRTH, birth(citizen), purpose);
    match consent {
        Some(id) => call.with("jisr-consent", id),
        None => call,
    }
}

pub(crate) async fn reason_of(
    client: &tonic::transport::Channel,
    c: RawCall<'_>,
) -> (Code, String) {
    let (code, reason, _) = framed_status(call_raw(client, c).await);
    (code, reason)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consent_rules_refuse_with_every_reason_and_allow_with_a_valid_consent() {
    let (pki, gw, addr, _echos) = echo_network("", CONSENT_RULES).await;
    let education = channel(&addr, &pki.files("education")).await.unwrap();
    let mut portal = portal(&addr, &pki).await;
    let id = grant(
        &mut portal,
        "AB123456",
        "school-enrolment",
        2,
        Duration::from_secs(3600),
    )
    .await;

    let denied = (Code::PermissionDenied, "CONSENT_REQUIRED".to_owned());
    assert_eq!(
        reason_of(&education, call("school-enrolment", "AB123456", None)).await,
        denied
    );
    assert_eq!(
        reason_of(
            &education,
            call("school-enrolment", "AB123456", Some("0000"))
        )
        .await,
        denied
    );
    assert_eq!(
        reason_of(&education, call("school-enrolment", "CD234567", Some(&id))).await,
        (Code::PermissionDenied, "SUBJECT_MISMATCH".into())
    );
    assert_eq!(
        reason_of(&education, call("school-grant", "AB123456", Some(&id))).await,
        (Code::PermissionDenied, "PURPOSE_MISMATCH".into())
    );
    // Allowed twice (max_uses 2), refused calls used nothing, then exhausted.
    for _ in 0..2 {
        let (_, md) = call_raw(&education, call("school-enrolment", "AB123456", Some(&id)))
            .await
            .unwrap();
        assert_eq!(md.get("jisr-basis").unwrap(), "consent");
    }
    assert_eq!(
        reason_of(&education, call("school-enrolment", "AB123456", Some(&id))).await,
        (Code::PermissionDenied, "CONSENT_EXPIRED".into())
    );

    // Expiry, on the gateway's clock pinned either side of the consent's
    // end (no wait, so no machine is too slow or too fast for it): allowed
    // on its last microsecond, refused from its end on, by the calls' check
    // and by the portal alike.
    let short = grant(
        &mut portal,
        "AB123456",
        "school-enrolment",
        0,
        Duration::from_secs(60),
    )
    .await;
    let not_after = status_of(&mut portal, &short).await.1;
    gw.clock.pin(not_after - 1);
    call_raw(
        &education,
        call("school-enrolment", "AB123456", Some(&short)),
    )
    .await
    .expect("allowed on the last microsecond of its validity");
    assert_eq!(
        status_of(&mut portal, &short).await.0,
        pb::Status::Active as i32
    );
    gw.clock.pin(not_after);
    assert_eq!(
        reason_of(
            &education,
            call("school-enrolment", "AB123456", Some(&short))
        )
        .await,
        (Code::PermissionDenied, "CONSENT_EXPIRED".into())
    );
    assert_eq!(
        status_of(&mut portal, &short).await.0,
        pb::Status::Expired as i32
    );
    gw.clock.release();

    // Revocation takes effect on the next call.
    let open = grant(
        &mut portal,
        "AB123456",
        "school-enrolment",
        0,
        Duration::from_secs(3600),
    )
    .await;
    call_raw(
        &education,
        call("school-enrolment", "AB123456", Some(&open)),
    )
    .await
    .unwrap();
    let revoked = portal
        .revoke(pb::RevokeRequest { id: open.clone() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(revoked.status, pb::Status::Revoked as i32);
    assert_eq!(
        reason_of(
            &education,
            call("school-enrolment", "AB123456", Some(&open))
        )
        .await,
        (Code::PermissionDenied, "CONSENT_REVOKED".into())
    );

    // Only the portal records consents.
    let mut as_education = ConsentsClient::new(education.clone());
    let status = as_education
        .grant(pb::GrantRequest {
            consent: Some(pb::Consent::default()),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);

    // Receipts verify; an altered one does not.
    let mut receipt = portal
        .get(pb::GetRequest { id: id.clone() })
        .await
        .unwrap()
        .into_inner();
    let checked = as_education
        .verify(pb::VerifyRequest {
            consent: Some(receipt.clone()),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(checked.signature_valid);
    assert_eq!(checked.status, pb::Status::Exhausted as i32);
    let mut forged = pb::Consent::decode(receipt.consent.as_slice()).unwrap();
    forged.subject = "CD234567".into();
    receipt.consent = forged.encode_to_vec();
    let checked = as_education
        .verify(pb::VerifyRequest {
            consent: Some(receipt),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!checked.signature_valid);

    // Grants and revocations are audit entries.
    let mut cndp = jisr::proto::jisr::audit::v1::audit_client::AuditClient::new(
        channel(&addr, &pki.files("cndp")).await.unwrap(),
    );
    let history = cndp
        .citizen_history(jisr::proto::jisr::audit::v1::CitizenHistoryRequest {
            citizen_id: "AB123456".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let kinds: Vec<i32> = history
        .entries
        .iter()
        .filter_map(|e| e.record.as_ref().map(|r| r.kind))
        .collect();
    use jisr::proto::jisr::audit::v1::Kind;
    assert_eq!(
        kinds
            .iter()
            .filter(|k| **k == Kind::ConsentGranted as i32)
            .count(),
        3
    );
    assert_eq!(
        kinds
            .iter()
            .filter(|k| **k == Kind::ConsentRevoked as i32)
            .count(),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consents_survive_a_restart_of_the_embedded_store() {
    let (pki, gw, addr, _echos) = echo_network("", CONSENT_RULES).await;
    let mut portal_client = portal(&addr, &pki).await;
    let id = grant(
        &mut portal_client,
        "AB123456",
        "school-enrolment",
        0,
        Duration::from_secs(3600),
    )
    .await;
    drop(portal_client);
    gw.stop();
    let config = std::fs::read_to_string(pki.root().join("gateway.toml")).unwrap();
    let (_gw, addr) = start_gateway(&pki, "gateway", &config);
    let education = channel(&addr, &pki.files("education")).await.unwrap();
    call_raw(&education, call("school-enrolment", "AB123456", Some(&id)))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_gateways_sharing_redis_see_a_revocation_at_once_and_fail_closed_without_it() {
    let mut redis = Redis::start();
    let url = format!("redis://127.0.0.1:{}", redis.port);
    let Replicas {
        pki,
        addr1,
        addr2,
        _gateways: _running,
    } = Replicas::start(&url, 200).await;
    let mut portal1 = portal(&addr1, &pki).await;
    let id = grant(
        &mut portal1,
        "AB123456",
        "school-enrolment",
        0,
        Duration::from_secs(3600),
    )
    .await;
    let on2 = channel(&addr2, &pki.files("education")).await.unwrap();
    call_raw(&on2, call("school-enrolment", "AB123456", Some(&id)))
        .await
        .unwrap();
    portal1
        .revoke(pb::RevokeRequest { id: id.clone() })
        .await
        .unwrap();
    assert_eq!(
        reason_of(&on2, call("school-enrolment", "AB123456", Some(&id))).await,
        (Code::PermissionDenied, "CONSENT_REVOKED".into())
    );

    // Redis gone: refused with CONSENT_UNAVAILABLE within the bound; back: works again.
    let fresh = grant(
        &mut portal1,
        "AB123456",
        "school-enrolment",
        0,
        Duration::from_secs(3600),
    )
    .await;
    redis.kill();
    // (A killed Redis refuses connections at once; a hung one, which
    // would not, is consent_redis.rs's frozen-Redis test.)
    assert_eq!(
        reason_of(&on2, call("school-enrolment", "AB123456", Some(&fresh))).await,
        (Code::Unavailable, "CONSENT_UNAVAILABLE".into())
    );
    redis.restart();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        match call_raw(&on2, call("school-enrolment", "AB123456", Some(&fresh))).await {
            // Redis restarted empty (no persistence in the test): the consent is gone.
            Err(status) if reason(&status) == "CONSENT_REQUIRED" => break,
            Ok(_) => break,
            Err(status) => assert!(
                std::time::Instant::now() < deadline,
                "the gateway did not recover: {status:?}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rule_releases_only_the_fields_its_purpose_needs() {
    let extra = r#"
[[purpose]]
code = "school-enrolment"
description = "Enrolment in a public school"

[[rule]]
consumer = "education"
methods = ["ma.civilstatus.v1.CivilStatus/GetBirthRecord"]
purposes = ["school-enrolment"]
basis = "law:school-code"
release = ["citizen_id", "first_name", "last_name", "birth_date", "birth_place"]
"#;
    let net = Network::start("", extra);
    let education = net.channel("education").await;
    let (minimised, _) = call_raw(
        &education,
        RawCall::new(BIRTH, birth("AB123456"), "school-enrolment"),
    )
    .await
    .unwrap();
    let record = jisr::proto::ma::civilstatus::v1::BirthRecord::decode(minimised).unwrap();
    assert_eq!(record.citizen_id, "AB123456");
    assert!(
        !record.first_name.is_empty()
            && !record.birth_place.is_empty()
            && !record.birth_date.is_empty()
    );
    assert!(
        record.father_name.is_empty()
            && record.mother_name.is_empty()
            && record.act_number.is_empty(),
        "{record:?}"
    );
    // The same method for a purpose whose rule releases everything.
    let (whole, _) = call_raw(
        &education,
        RawCall::new(BIRTH, birth("AB123456"), "bac-candidature"),
    )
    .await
    .unwrap();
    let record = jisr::proto::ma::civilstatus::v1::BirthRecord::decode(whole).unwrap();
    assert!(!record.father_name.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn break_glass_needs_a_justification_and_is_flagged_for_review() {
    let extra = r#"
[[purpose]]
code = "emergency"
description = "Emergency care"

[[rule]]
consumer = "education"
methods = ["ma.civilstatus.v1.CivilStatus/GetBirthRecord"]
purposes = ["emergency"]
basis = "law:emergency-care"
break_glass = true
"#;
    let (pki, _gw, addr, _echos) = echo_network("", extra).await;
    let education = channel(&addr, &pki.files("education")).await.unwrap();
    assert_eq!(
        reason_of(&education, call("emergency", "AB123456", None)).await,
        (Code::PermissionDenied, "JUSTIFICATION_REQUIRED".into())
    );
    let why = "pupil collapsed in class; identity needed for the ambulance";
    call_raw(
        &education,
        call("emergency", "AB123456", None).with("jisr-justification", why),
    )
    .await
    .unwrap();
    let pki_dir = pki.dir.to_str().unwrap().to_owned();
    let out = jisr()
        .args([
            "audit",
            "query",
            "--gateway",
            &addr,
            "--pki",
            &pki_dir,
            "--as",
            "cndp",
            "--break-glass",
            "--json",
        ])
        .output()
        .unwrap();
    let lines: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(
        lines.len(),
        1,
        "{lines:?} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(lines[0].contains("\"break_glass\":true"), "{}", lines[0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_started_while_redis_is_down_fails_closed_then_recovers() {
    let mut redis = Redis::start();
    redis.kill();
    let url = format!("redis://127.0.0.1:{}", redis.port);
    let (pki, _gw, addr, _echos) = echo_network(
        "",
        &format!("{CONSENT_RULES}\n[consent]\nredis_url = \"{url}\"\ntimeout_ms = 200\n"),
    )
    .await;
    let education = channel(&addr, &pki.files("education")).await.unwrap();

    // Calls on a legal basis need no consent store and are served meanwhile.
    call_raw(
        &education,
        RawCall::new(BIRTH, birth("AB123456"), "bac-candidature"),
    )
    .await
    .expect("a call on a legal basis while Redis is down");
    // A call resting on consent is refused, and so is a grant.
    assert_eq!(
        reason_of(
            &education,
            call("school-enrolment", "AB123456", Some("c-1"))
        )
        .await,
        (Code::Unavailable, "CONSENT_UNAVAILABLE".into())
    );
    let mut portal = portal(&addr, &pki).await;
    let request = || pb::GrantRequest {
        consent: Some(pb::Consent {
            subject: "AB123456".into(),
            consumer: "education".into(),
            methods: vec!["ma.civilstatus.v1.CivilStatus/GetBirthRecord".into()],
            purpose: "school-enrolment".into(),
            not_after_unix_micros: now() + 3_600_000_000,
            ..Default::default()
        }),
    };
    let refused = portal
        .grant(request())
        .await
        .expect_err("a grant while Redis is down");
    assert_eq!(refused.code(), Code::Unavailable, "{refused:?}");

    // Redis comes up: the same gateway, without a restart, grants and serves.
    redis.restart();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let id = loop {
        let attempt = portal.grant(request()).await;
        match attempt {
            Ok(signed) => break signed.into_inner().decoded.unwrap().id,
            Err(status) => assert!(
                std::time::Instant::now() < deadline,
                "the gateway did not connect to Redis once it came up: {status:?}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    call_raw(&education, call("school-enrolment", "AB123456", Some(&id)))
        .await
        .expect("a call on the new consent once Redis is up");
}

/// When a call started, and whether it got through (else its reason).
type CallOutcome = (std::time::Instant, Result<(), String>);

/// Waits (up to 20 s) until the callers' log satisfies `enough`.
async fn until_logged(
    log: &std::sync::Mutex<Vec<CallOutcome>>,
    enough: impl Fn(&[CallOutcome]) -> bool,
) {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !enough(&log.lock().unwrap()) {
        assert!(
            std::time::Instant::now() < deadline,
            "the callers made too few calls in 20 s"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Revocations race calls on another replica: once `Revoke` has returned on
/// one gateway, no call that starts afterwards on the other gets through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_call_gets_through_after_a_revocation_returned_on_another_replica() {
    use std::sync::{Arc, Mutex};
    use std::time::Instant;
    let redis = Redis::start();
    let url = format!("redis://127.0.0.1:{}", redis.port);
    let Replicas {
        pki,
        addr1,
        addr2,
        _gateways: _running,
    } = Replicas::start(&url, 500).await;
    let mut portal1 = portal(&addr1, &pki).await;
    let on2 = channel(&addr2, &pki.files("education")).await.unwrap();

    const ROUNDS: usize = 12;
    const CALLERS: usize = 4;
    let (mut allowed_before, mut refused_after) = (0, 0);
    for round in 0..ROUNDS {
        let id = grant(
            &mut portal1,
            "AB123456",
            "school-enrolment",
            0,
            Duration::from_secs(3600),
        )
        .await;
        // Each caller records (started, finished, outcome) of its calls.
        let log: Arc<Mutex<Vec<CallOutcome>>> = Arc::default();
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let callers: Vec<_> = (0..CALLERS)
            .map(|_| {
                let (on2, id, log, stop) = (on2.clone(), id.clone(), log.clone(), stop.clone());
                tokio::spawn(async move {
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        let started = Instant::now();
                        let outcome =
                            match call_raw(&on2, call("school-enrolment", "AB123456", Some(&id)))
                                .await
                            {
                                Ok(_) => Ok(()),
                                Err(status) => Err(reason(&status)),
                            };
                        log.lock().unwrap().push((started, outcome));
                    }
                })
            })
            .collect();
        // Let a number of calls through that varies by round (counted, not
        // timed: a loaded machine makes fewer calls in a given time), then
        // revoke, and go on until calls started after it have answered.
        until_logged(&log, |log| log.len() > round).await;
        portal1
            .revoke(pb::RevokeRequest { id: id.clone() })
            .await
            .unwrap();
        let revoked = Instant::now();
        until_logged(&log, |log| {
            log.iter().filter(|(started, _)| *started > revoked).count() >= CALLERS
        })
        .await;
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for caller in callers {
            caller.await.unwrap();
        }
        for (started, outcome) in log.lock().unwrap().iter() {
            match outcome {
                Ok(()) if *started > revoked => panic!(
                    "round {round}: a call started {:?} after the revocation returned got through",
                    *started - revoked
                ),
                Ok(()) => allowed_before += 1,
                Err(reason) if *started > revoked => {
                    assert_eq!(reason, "CONSENT_REVOKED", "round {round}");
                    refused_after += 1;
                }
                Err(reason) => assert_eq!(reason, "CONSENT_REVOKED", "round {round}"),
            }
        }
    }
    // The race was really run: calls went through before and were refused after.
    assert!(
        allowed_before > ROUNDS,
        "only {allowed_before} calls got through before revocations"
    );
    assert!(
        refused_after >= ROUNDS,
        "only {refused_after} calls started after revocations"
    );
}
