//! The message bus through a real gateway over mutual TLS: delivery to every
//! subscriber with minimisation and audit entries, refusals, redelivery after
//! a disconnect, the dead-letter path, a stalled subscriber that does not
//! hold up another, and no acknowledged publish lost across a SIGKILL on
//! both backends (embedded and Redis Streams, against a real redis-server);
//! two replicas sharing one subscription through Redis.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use crate::support::bus::{ack, client, decode_death, publish_death, pull, BusNet, BIRTHS, DEATHS};
use crate::support::client::reason;
use crate::support::redis_server::Redis;
use jisr::proto::jisr::audit::v1::{audit_client::AuditClient, Kind, QueryRequest};
use jisr::proto::jisr::bus::v1 as pb;
use tokio_stream::StreamExt as _;
use tonic::Code;

/// Next item of a subscription stream, within `secs`.
pub(crate) async fn next(stream: &mut tonic::Streaming<pb::Delivery>, secs: u64) -> pb::Delivery {
    tokio::time::timeout(Duration::from_secs(secs), stream.next())
        .await
        .expect("a delivery in time")
        .expect("the stream is open")
        .expect("a delivery, not an error")
}

pub(crate) async fn subscribe(
    bus: &mut pb::bus_client::BusClient<tonic::transport::Channel>,
    topic: &str,
    purpose: &str,
) -> tonic::Streaming<pb::Delivery> {
    bus.subscribe(pb::SubscribeRequest {
        topic: topic.into(),
        purpose: purpose.into(),
    })
    .await
    .unwrap()
    .into_inner()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_death_reaches_tax_and_health_once_minimised_and_audited() {
    let net = BusNet::start("");
    let mut tax = net.client("tax").await;
    let mut health = net.client("health").await;
    let mut tax_stream = subscribe(&mut tax, DEATHS, "tax-household").await;
    let mut health_stream = subscribe(&mut health, DEATHS, "civil-event").await;
    let mut cs = net.client("civil-status").await;
    let first = publish_death(&mut cs, "C-1001", "ACT-1").await.unwrap();
    assert!(!first.duplicate);
    let again = publish_death(&mut cs, "C-1001", "ACT-1").await.unwrap();
    assert!(again.duplicate, "the same idempotency key is one event");
    assert_eq!(again.event_id, first.event_id);

    let to_tax = next(&mut tax_stream, 10).await;
    let to_health = next(&mut health_stream, 10).await;
    for d in [&to_tax, &to_health] {
        assert_eq!(d.event_id, first.event_id);
        assert_eq!(d.subject, "C-1001");
        assert_eq!(d.publisher, "civil-status");
        assert_eq!(d.attempt, 1);
    }
    let (t, h) = (decode_death(&to_tax), decode_death(&to_health));
    assert_eq!(t.death_date, "2026-11-20");
    assert_eq!(t.cause, "", "tax's rule does not release the cause");
    assert_eq!(t.death_place, "");
    assert_eq!(h.cause, "confidential", "health receives the whole event");
    assert_eq!(ack(&mut tax, DEATHS, vec![to_tax.id.clone()]).await, 1);
    assert_eq!(
        ack(&mut health, DEATHS, vec![to_health.id.clone()]).await,
        1
    );
    // The duplicate publish delivered nothing more: the next delivery on
    // each stream (in publish order) is a later event's, not the first's
    // again. A marker event, rather than a wait that sees nothing.
    let marker = publish_death(&mut cs, "C-1002", "ACT-2").await.unwrap();
    for stream in [&mut tax_stream, &mut health_stream] {
        let more = next(stream, 10).await;
        assert_eq!(
            more.event_id, marker.event_id,
            "no second delivery of the first"
        );
    }

    // The audit log has the publish (and its duplicate) and both deliveries
    // (and the marker's publish and deliveries).
    let kinds = audit_kinds(&net, DEATHS, 9).await;
    let count = |k: Kind, reason: &str| {
        kinds
            .iter()
            .filter(|(kind, r, _)| *kind == k as i32 && r == reason)
            .count()
    };
    assert_eq!(count(Kind::EventPublished, ""), 2, "{kinds:?}");
    assert_eq!(count(Kind::EventPublished, "DUPLICATE"), 1, "{kinds:?}");
    assert_eq!(count(Kind::EventDelivered, ""), 4, "{kinds:?}");
    assert_eq!(count(Kind::Subscribed, ""), 2, "{kinds:?}");
    let delivered_to: BTreeSet<_> = kinds
        .iter()
        .filter(|(k, _, _)| *k == Kind::EventDelivered as i32)
        .map(|(_, _, consumer)| consumer.as_str())
        .collect();
    assert_eq!(delivered_to, BTreeSet::from(["health", "tax"]));
}

/// (kind, reason, consumer) of the audit entries about `topic`, once there
/// are at least `want` (or after 5 s).
async fn audit_kinds(net: &BusNet, topic: &str, want: usize) -> Vec<(i32, String, String)> {
    let channel = crate::support::channel(&net.addr, &net.pki.files("cndp"))
        .await
        .unwrap();
    let mut audit = AuditClient::new(channel);
    // Entries become queryable once indexed, just after they are durable.
    let start = Instant::now();
    loop {
        let entries = audit
            .query(QueryRequest {
                page_size: 500,
                ..QueryRequest::default()
            })
            .await
            .unwrap()
            .into_inner()
            .entries;
        let found: Vec<_> = entries
            .into_iter()
            .filter_map(|e| e.record)
            .filter(|r| r.topic == topic)
            .map(|r| (r.kind, r.reason, r.consumer))
            .collect();
        if found.len() >= want || start.elapsed() > Duration::from_secs(5) {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_by_a_non_owner_and_subscribe_without_a_rule_are_refused() {
    let net = BusNet::start("");
    let mut tax = net.client("tax").await;
    let refused = publish_death(&mut tax, "C-1", "ACT-X").await.unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied);
    assert_eq!(reason(&refused), "ACCESS_DENIED");
    assert!(
        refused.message().contains("only `civil-status` publishes"),
        "{}",
        refused.message()
    );

    let mut education = net.client("education").await;
    let refused = education
        .subscribe(pb::SubscribeRequest {
            topic: DEATHS.into(),
            purpose: "bac-candidature".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied);
    assert_eq!(reason(&refused), "ACCESS_DENIED");
    let refused = education
        .pull(pb::PullRequest {
            topic: DEATHS.into(),
            purpose: "bac-candidature".into(),
            max_events: 1,
            wait_ms: 0,
        })
        .await
        .unwrap_err();
    assert_eq!(reason(&refused), "ACCESS_DENIED");

    let refused = tax
        .subscribe(pb::SubscribeRequest {
            topic: DEATHS.into(),
            purpose: "bac-candidature".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(reason(&refused), "PURPOSE_NOT_ALLOWED");
    assert!(
        refused.message().contains("tax-household"),
        "{}",
        refused.message()
    );

    let mut cs = net.client("civil-status").await;
    let wrong_type = cs
        .publish(pb::PublishRequest {
            topic: BIRTHS.into(),
            event: Some(crate::support::bus::death("C-1", "ACT-Y")),
            idempotency_key: "ACT-Y".into(),
            subject: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(wrong_type.code(), Code::InvalidArgument);
    assert!(
        wrong_type.message().contains("BirthRegistered"),
        "{}",
        wrong_type.message()
    );
    let mismatch = cs
        .publish(pb::PublishRequest {
            topic: DEATHS.into(),
            event: Some(crate::support::bus::death("C-1", "ACT-M")),
            idempotency_key: "ACT-M".into(),
            subject: "C-2".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(reason(&mismatch), "SUBJECT_MISMATCH");
    let no_key = cs
        .publish(pb::PublishRequest {
            topic: DEATHS.into(),
            event: Some(crate::support::bus::death("C-1", "ACT-N")),
            idempotency_key: String::new(),
            subject: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(no_key.code(), Code::InvalidArgument);
    assert!(
        no_key.message().contains("idempotency_key"),
        "{}",
        no_key.message()
    );
    let unknown = publish_death(&mut cs, "C-1", "ACT-Z").await.map(drop);
    assert!(unknown.is_ok());
    let no_topic = cs
        .publish(pb::PublishRequest {
            topic: "nope".into(),
            ..pb::PublishRequest::default()
        })
        .await
        .unwrap_err();
    assert_eq!(no_topic.code(), Code::NotFound);
    assert!(
        no_topic.message().contains(DEATHS),
        "the message lists the topics: {}",
        no_topic.message()
    );
    // Refusals are recorded too.
    let kinds = audit_kinds(&net, DEATHS, 5).await;
    let refused_publish = kinds
        .iter()
        .filter(|(k, r, c)| *k == Kind::EventPublished as i32 && r == "ACCESS_DENIED" && c == "tax")
        .count();
    assert_eq!(refused_publish, 1, "{kinds:?}");
    assert!(
        kinds.iter().any(|(k, r, c)| *k == Kind::Subscribed as i32
            && r == "ACCESS_DENIED"
            && c == "education"),
        "{kinds:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_not_acknowledged_before_a_disconnect_is_delivered_again() {
    redelivery_after_disconnect("").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_not_acknowledged_before_a_disconnect_is_delivered_again_redis() {
    let redis = Redis::with_aof();
    redelivery_after_disconnect(&format!("redis_url = \"{}\"\n", redis.url())).await;
}

async fn redelivery_after_disconnect(bus: &str) {
    let net = BusNet::start(&format!("{bus}ack_deadline_ms = 60000"));
    let mut cs = net.client("civil-status").await;
    {
        let mut tax = net.client("tax").await;
        let mut stream = subscribe(&mut tax, DEATHS, "tax-household").await;
        publish_death(&mut cs, "C-7", "ACT-7").await.unwrap();
        let first = next(&mut stream, 10).await;
        assert_eq!(first.attempt, 1);
        // The subscriber goes away without acknowledging.
    }
    let mut tax = net.client("tax").await;
    let mut stream = subscribe(&mut tax, DEATHS, "tax-household").await;
    // Released when the stream closed: no need to wait for the 60 s deadline.
    let again = next(&mut stream, 10).await;
    assert_eq!(decode_death(&again).act_number, "ACT-7");
    assert_eq!(again.attempt, 2);
    assert_eq!(ack(&mut tax, DEATHS, vec![again.id]).await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_never_acknowledged_becomes_a_dead_letter_and_can_be_replayed() {
    dead_letter_path("").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_never_acknowledged_becomes_a_dead_letter_and_can_be_replayed_redis() {
    let redis = Redis::with_aof();
    dead_letter_path(&format!("redis_url = \"{}\"\n", redis.url())).await;
}

async fn dead_letter_path(bus: &str) {
    let net = BusNet::start(&format!("{bus}ack_deadline_ms = 300\nmax_attempts = 2"));
    let mut cs = net.client("civil-status").await;
    let published = publish_death(&mut cs, "C-9", "ACT-9").await.unwrap();
    let mut tax = net.client("tax").await;
    let first = pull(&mut tax, DEATHS, "tax-household", 10, 5000).await;
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].attempt, 1);
    // Not acknowledged: after the deadline it comes again.
    let second = pull(&mut tax, DEATHS, "tax-household", 10, 5000).await;
    assert_eq!(second.len(), 1, "redelivered after the ack deadline");
    assert_eq!(second[0].attempt, 2);
    // After two attempts, the third due delivery is a dead letter instead.
    let start = Instant::now();
    let dead = loop {
        assert!(pull(&mut tax, DEATHS, "tax-household", 10, 400)
            .await
            .is_empty());
        let dead = tax
            .list_dead_letters(pb::ListDeadLettersRequest {
                topic: DEATHS.into(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .dead_letters;
        if !dead.is_empty() || start.elapsed() > Duration::from_secs(10) {
            break dead;
        }
    };
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].event_id, published.event_id);
    assert_eq!(dead[0].attempts, 2);
    assert_eq!(dead[0].reason, "not acknowledged after 2 attempts");
    assert_eq!(dead[0].event_type, "ma.civilstatus.v1.DeathRegistered");
    // Health's subscription is its own: its copy is still there.
    let mut health = net.client("health").await;
    let theirs = pull(&mut health, DEATHS, "civil-event", 10, 0).await;
    assert_eq!(theirs.len(), 1);
    // Another agency may not see tax's dead letters; an auditor may.
    let refused = health
        .list_dead_letters(pb::ListDeadLettersRequest {
            topic: DEATHS.into(),
            subscriber: "tax".into(),
            limit: 0,
        })
        .await
        .unwrap_err();
    assert_eq!(reason(&refused), "ACCESS_DENIED");
    let mut cndp = net.client("cndp").await;
    let seen = cndp
        .list_dead_letters(pb::ListDeadLettersRequest {
            topic: DEATHS.into(),
            subscriber: "tax".into(),
            limit: 0,
        })
        .await
        .unwrap()
        .into_inner()
        .dead_letters;
    assert_eq!(seen.len(), 1);
    let replayed = tax
        .replay(pb::ReplayRequest {
            topic: DEATHS.into(),
            subscriber: String::new(),
            event_ids: vec![],
        })
        .await
        .unwrap()
        .into_inner()
        .replayed;
    assert_eq!(replayed, 1);
    let back = pull(&mut tax, DEATHS, "tax-household", 10, 5000).await;
    assert_eq!(back.len(), 1);
    assert_eq!(back[0].event_id, published.event_id);
    assert_eq!(back[0].attempt, 1, "a replay starts with fresh attempts");
    assert_eq!(ack(&mut tax, DEATHS, vec![back[0].id.clone()]).await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_subscriber_does_not_delay_another() {
    stalled_subscriber("").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_subscriber_does_not_delay_another_redis() {
    let redis = Redis::with_aof();
    stalled_subscriber(&format!("redis_url = \"{}\"\n", redis.url())).await;
}

async fn stalled_subscriber(bus: &str) {
    let net = BusNet::start(&format!("{bus}max_in_flight = 8"));
    let mut health = net.client("health").await;
    // Health subscribes and never reads its stream.
    let _stalled = subscribe(&mut health, DEATHS, "civil-event").await;
    let mut tax = net.client("tax").await;
    let mut stream = subscribe(&mut tax, DEATHS, "tax-household").await;
    let mut cs = net.client("civil-status").await;
    let n = 60;
    let start = Instant::now();
    let mut worst_publish = Duration::ZERO;
    let mut worst_delivery = Duration::ZERO;
    for i in 0..n {
        let t = Instant::now();
        publish_death(&mut cs, &format!("C-{i}"), &format!("ACT-S-{i}"))
            .await
            .unwrap();
        worst_publish = worst_publish.max(t.elapsed());
        let d = next(&mut stream, 10).await;
        worst_delivery = worst_delivery.max(t.elapsed());
        assert_eq!(
            decode_death(&d).act_number,
            format!("ACT-S-{i}"),
            "in publish order"
        );
        ack(&mut tax, DEATHS, vec![d.id]).await;
    }
    eprintln!(
        "{n} events delivered to tax in {:?} while health stalls (worst publish {worst_publish:?}, worst publish→delivery {worst_delivery:?})",
        start.elapsed()
    );
    // (How fast each delivery stays while health stalls is for the
    // benchmarks; here, every one arrived in order.)
    // Health's backlog waits for it, bounded by its in-flight limit.
    let pending = pull(&mut health, DEATHS, "civil-event", 100, 0).await;
    assert!(
        pending.is_empty(),
        "health already has max_in_flight deliveries outstanding"
    );
}

/// Publishes numbered deaths until the gateway dies; returns the keys whose
/// publish was acknowledged, and counts them in `progress` as they are.
async fn publish_until_killed(
    addr: String,
    files: jisr::tls::TlsFiles,
    progress: std::sync::Arc<std::sync::atomic::AtomicUsize>,
) -> Vec<String> {
    let channel = crate::support::channel(&addr, &files).await.unwrap();
    let mut cs = pb::bus_client::BusClient::new(channel);
    let mut acked = Vec::new();
    for i in 0..100_000 {
        let key = format!("ACT-K-{i}");
        match publish_death(&mut cs, &format!("C-{i}"), &key).await {
            Ok(_) => {
                acked.push(key);
                progress.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
            Err(_) => break,
        }
    }
    acked
}

async fn sigkill_loses_no_acknowledged_publish(bus: &str) {
    let mut net = BusNet::spawn(bus);
    let progress = std::sync::Arc::default();
    let publisher = tokio::spawn(publish_until_killed(
        net.addr.clone(),
        net.pki.files("civil-status"),
        std::sync::Arc::clone(&progress),
    ));
    // Killed once the publisher is well under way (not after a fixed time).
    let deadline = Instant::now() + Duration::from_secs(20);
    while progress.load(std::sync::atomic::Ordering::SeqCst) < 10 {
        assert!(Instant::now() < deadline, "no 10 publishes in 20 s");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    net.gateway.kill();
    let acked = tokio::time::timeout(Duration::from_secs(20), publisher)
        .await
        .unwrap()
        .unwrap();
    assert!(
        acked.len() > 5,
        "the publisher made progress before the kill: {}",
        acked.len()
    );
    net.restart();
    let mut tax = net.client("tax").await;
    let mut got = BTreeSet::new();
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(30) {
        let batch = pull(&mut tax, DEATHS, "tax-household", 1000, 500).await;
        if batch.is_empty() && got.len() >= acked.len() {
            break;
        }
        let ids = batch.iter().map(|d| d.id.clone()).collect();
        got.extend(batch.iter().map(|d| decode_death(d).act_number));
        ack(&mut tax, DEATHS, ids).await;
    }
    let lost: Vec<_> = acked.iter().filter(|k| !got.contains(*k)).collect();
    eprintln!(
        "{} acknowledged publishes before SIGKILL, {} events after restart, lost {}",
        acked.len(),
        got.len(),
        lost.len()
    );
    assert!(lost.is_empty(), "acknowledged publishes lost: {lost:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_acknowledged_publish_is_lost_across_sigkill_embedded() {
    sigkill_loses_no_acknowledged_publish("").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_acknowledged_publish_is_lost_across_sigkill_redis() {
    let redis = Redis::with_aof();
    sigkill_loses_no_acknowledged_publish(&format!("redis_url = \"{}\"", redis.url())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_share_a_subscription_through_redis() {
    let redis = Redis::with_aof();
    let net = BusNet::start(&format!(
        "redis_url = \"{}\"\nack_deadline_ms = 1000",
        redis.url()
    ));
    // Spawned: replica B dies by SIGKILL, leaving its deliveries unreleased.
    let (mut other, other_addr) = net.spawn_another("replica");
    let mut cs = net.client("civil-status").await;
    let n = 40;
    for i in 0..n {
        publish_death(&mut cs, &format!("C-{i}"), &format!("ACT-R-{i}"))
            .await
            .unwrap();
    }
    // Tax pulls through both replicas: every event exactly once.
    let mut tax_a = net.client("tax").await;
    let mut tax_b = client(&other_addr, &net.pki, "tax").await;
    let b = pull(&mut tax_b, DEATHS, "tax-household", n / 2, 2000).await;
    let a = pull(&mut tax_a, DEATHS, "tax-household", n, 2000).await;
    let keys: BTreeSet<_> = a
        .iter()
        .chain(&b)
        .map(|d| decode_death(d).act_number)
        .collect();
    assert_eq!(
        (a.len(), b.len()),
        ((n / 2) as usize, (n / 2) as usize),
        "no event handed out twice"
    );
    assert_eq!(keys.len(), n as usize);
    ack(&mut tax_a, DEATHS, a.iter().map(|d| d.id.clone()).collect()).await;
    // What replica B handed out but was never acknowledged before B died is
    // claimed through replica A once the ack deadline passes.
    other.kill();
    let start = Instant::now();
    let mut again = Vec::new();
    while again.len() < (n / 2) as usize && start.elapsed() < Duration::from_secs(15) {
        again.extend(pull(&mut tax_a, DEATHS, "tax-household", n, 1500).await);
    }
    let again_keys: BTreeSet<_> = again.iter().map(|d| decode_death(d).act_number).collect();
    let b_keys: BTreeSet<_> = b.iter().map(|d| decode_death(d).act_number).collect();
    assert_eq!(
        again_keys, b_keys,
        "B's unacknowledged half comes again through A"
    );
    assert!(again.iter().all(|d| d.attempt == 2));
    ack(
        &mut tax_a,
        DEATHS,
        again.iter().map(|d| d.id.clone()).collect(),
    )
    .await;
    assert!(pull(&mut tax_a, DEATHS, "tax-household", n, 1500)
        .await
        .is_empty());
}

fn birth(citizen: &str, act: &str) -> pb::PublishRequest {
    use prost::Message as _;
    let event = jisr::proto::ma::civilstatus::v1::BirthRegistered {
        citizen_id: citizen.into(),
        first_name: "Yasmine".into(),
        act_number: act.into(),
        ..Default::default()
    };
    pb::PublishRequest {
        topic: BIRTHS.into(),
        event: Some(prost_types::Any {
            type_url: "type.googleapis.com/ma.civilstatus.v1.BirthRegistered".into(),
            value: event.encode_to_vec(),
        }),
        idempotency_key: act.into(),
        subject: String::new(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consent_based_subscriber_receives_only_the_events_of_citizens_who_consented() {
    use jisr::proto::jisr::consent::v1 as cpb;
    let net = BusNet::start("");
    let channel = crate::support::channel(&net.addr, &net.pki.files("portal"))
        .await
        .unwrap();
    let mut portal = cpb::consents_client::ConsentsClient::new(channel);
    let now = jisr::consent::artefact::now_micros();
    portal
        .grant(cpb::GrantRequest {
            consent: Some(cpb::Consent {
                subject: "C-YES".into(),
                consumer: "education".into(),
                categories: vec!["civil".into()],
                purpose: "bac-candidature".into(),
                not_after_unix_micros: now + 3_600_000_000,
                ..Default::default()
            }),
        })
        .await
        .unwrap();
    let mut cs = net.client("civil-status").await;
    cs.publish(birth("C-NO", "B-1")).await.unwrap();
    cs.publish(birth("C-YES", "B-2")).await.unwrap();
    let mut education = net.client("education").await;
    let got = pull(&mut education, BIRTHS, "bac-candidature", 10, 3000).await;
    let subjects: Vec<_> = got.iter().map(|d| d.subject.as_str()).collect();
    assert_eq!(subjects, ["C-YES"], "only the consenting citizen's birth");
    ack(
        &mut education,
        BIRTHS,
        got.iter().map(|d| d.id.clone()).collect(),
    )
    .await;
    // The refused one is settled (not retried) and recorded as refused.
    assert!(pull(&mut education, BIRTHS, "bac-candidature", 10, 500)
        .await
        .is_empty());
    let kinds = audit_kinds(&net, BIRTHS, 4).await;
    assert!(
        kinds
            .iter()
            .any(|(k, r, c)| *k == Kind::EventDelivered as i32
                && r == "CONSENT_REQUIRED"
                && c == "education"),
        "{kinds:?}"
    );
    // Health, on a legal basis, receives both.
    let mut health = net.client("health").await;
    assert_eq!(
        pull(&mut health, BIRTHS, "civil-event", 10, 3000)
            .await
            .len(),
        2
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jisr_bus_dlq_lists_and_replays_dead_letters() {
    let net = BusNet::start("ack_deadline_ms = 200\nmax_attempts = 1");
    let mut cs = net.client("civil-status").await;
    let published = publish_death(&mut cs, "C-5", "ACT-5").await.unwrap();
    let mut tax = net.client("tax").await;
    assert_eq!(
        pull(&mut tax, DEATHS, "tax-household", 10, 3000)
            .await
            .len(),
        1
    );
    // A fetch past its deadline finds no attempt left and makes it a dead
    // letter; until then it is in flight. Polled: a loaded machine makes
    // that later, never different.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        assert!(pull(&mut tax, DEATHS, "tax-household", 10, 0)
            .await
            .is_empty());
        let dead = tax
            .list_dead_letters(pb::ListDeadLettersRequest {
                topic: DEATHS.into(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .dead_letters;
        if !dead.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "no dead letter after 10 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let pki = net.pki.dir.to_str().unwrap().to_owned();
    let cli = |args: &[&str]| {
        let out = crate::support::jisr()
            .args(["bus", "dlq"])
            .args(args)
            .args(["--gateway", &net.addr, "--pki", &pki, "--topic", DEATHS])
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (ok, stdout, stderr) = cli(&["list", "--as", "tax"]);
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains(&format!("event {}", published.event_id)),
        "{stdout}"
    );
    assert!(
        stdout.contains("not acknowledged after 1 attempts"),
        "{stdout}"
    );
    assert!(
        stdout.contains("ma.civilstatus.v1.DeathRegistered"),
        "{stdout}"
    );
    // The auditor sees it too; another subscriber may not.
    let (ok, stdout, _) = cli(&["list", "--as", "cndp", "--subscriber", "tax"]);
    assert!(ok && stdout.contains("subscriber=tax"), "{stdout}");
    let (ok, _, stderr) = cli(&["list", "--as", "health", "--subscriber", "tax"]);
    assert!(!ok && stderr.contains("ACCESS_DENIED"), "{stderr}");
    let (ok, _, stderr) = cli(&["replay", "--as", "tax"]);
    assert!(
        !ok && stderr.contains("--all"),
        "replay without a choice says how: {stderr}"
    );
    let (ok, stdout, stderr) = cli(&["replay", "--as", "tax", "--all"]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("1 dead letter(s)"), "{stdout}");
    let (_, stdout, _) = cli(&["list", "--as", "tax"]);
    assert!(stdout.contains("no dead letters"), "{stdout}");
    let back = pull(&mut tax, DEATHS, "tax-household", 10, 3000).await;
    assert_eq!(back.len(), 1);
    assert_eq!(back[0].event_id, published.event_id);
}

#[test]
fn the_demo_registers_one_death_and_notifies_tax_and_health() {
    let out = crate::support::jisr().arg("demo").output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for expected in [
        "duplicate of event 1",
        "tax notified: event 1 (attempt 1)",
        "cause (withheld)",
        "health notified: event 1 (attempt 1)",
        "cause cardiac arrest",
        "EVENT_PUBLISHED civil-status.death-registered event 1",
        "EVENT_DELIVERED civil-status.death-registered event 1",
        "Audit log verified offline",
    ] {
        assert!(
            stdout.contains(expected),
            "missing {expected:?} in:\n{stdout}"
        );
    }
    assert_eq!(stdout.matches("EVENT_DELIVERED").count(), 2, "{stdout}");
}

#[test]
fn check_config_locates_topics_whose_event_or_release_does_not_fit_the_contracts() {
    let pki = crate::support::Pki::new();
    let up = crate::support::Upstreams {
        civil_status: "127.0.0.1:9".into(),
        tax: "127.0.0.1:9".into(),
        health: "127.0.0.1:9".into(),
    };
    let topics = crate::support::bus::topics("")
        .replace(
            "event = \"ma.civilstatus.v1.BirthRegistered\"",
            "event = \"ma.tax.v1.GetTaxStatusRequest\"",
        )
        .replace("\"death_date\", \"act_number\"]", "\"death_day\"]")
        .replace(
            "basis = \"law:65-00\"\n",
            "basis = \"law:65-00\"\nrelease = [\"citizen_id\"]\n",
        );
    let config = crate::support::gateway_config(&pki, &up, "", &topics);
    let path = pki.root().join("bad.toml");
    std::fs::write(&path, config).unwrap();
    let out = crate::support::jisr()
        .arg("check-config")
        .arg(&path)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(64), "{stdout}");
    assert!(stdout.contains("declared in `agencies/tax/v1/tax.proto`, which is not a contract of owner `civil-status`"), "{stdout}");
    assert!(
        stdout.contains("`release` of `tax` on topic `civil-status.death-registered`"),
        "{stdout}"
    );
    assert!(stdout.contains("death_day"), "{stdout}");
    assert!(stdout.contains("bad.toml:"), "errors are located: {stdout}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_subscription_does_not_hold_the_shutdown_for_the_drain_timeout() {
    open_subscription_and_drain("", None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_subscription_blocked_in_redis_does_not_hold_the_shutdown() {
    let redis = Redis::with_aof();
    open_subscription_and_drain(&format!("redis_url = \"{}\"\n", redis.url()), Some(&redis)).await;
}

async fn open_subscription_and_drain(bus: &str, redis: Option<&Redis>) {
    // The test config drains for up to 5 s. Spawned: SIGTERM, as an
    // orchestrator stops the node.
    let mut net = BusNet::spawn(bus);
    let mut tax = net.client("tax").await;
    let mut stream = subscribe(&mut tax, DEATHS, "tax-household").await;
    if let Some(redis) = redis {
        // Drained while waiting in a blocked read, not between polls.
        crate::bus_redis::until_blocked(redis, 1).await;
    }
    let status = net.gateway.terminate();
    let logs = net.gateway.logs();
    assert!(status.success(), "{status:?}\n{logs}");
    // The gateway says whether the drain finished or timed out.
    assert!(
        logs.contains("drained; gateway stopped") && !logs.contains("drain timed out"),
        "the drain waited for the open stream until its timeout:\n{logs}"
    );
    // The stream ended cleanly rather than being cut.
    let end = tokio::time::timeout(Duration::from_secs(5), stream.next())
        .await
        .unwrap();
    assert!(matches!(end, None | Some(Err(_))), "{end:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consent_based_delivery_waits_while_the_consent_store_is_down() {
    use jisr::proto::jisr::consent::v1 as cpb;
    let mut redis = Redis::start();
    let consent = format!("[consent]\nredis_url = \"{}\"\n", redis.url());
    let net = BusNet::start_with("max_attempts = 2", &consent);
    let grant = |portal: &mut cpb::consents_client::ConsentsClient<tonic::transport::Channel>| {
        let now = jisr::consent::artefact::now_micros();
        let request = cpb::GrantRequest {
            consent: Some(cpb::Consent {
                subject: "C-WAIT".into(),
                consumer: "education".into(),
                categories: vec!["civil".into()],
                purpose: "bac-candidature".into(),
                not_after_unix_micros: now + 3_600_000_000,
                ..Default::default()
            }),
        };
        let mut portal = portal.clone();
        async move { portal.grant(request).await.unwrap() }
    };
    let channel = crate::support::channel(&net.addr, &net.pki.files("portal"))
        .await
        .unwrap();
    let mut portal = cpb::consents_client::ConsentsClient::new(channel);
    redis.kill();
    let mut cs = net.client("civil-status").await;
    cs.publish(birth("C-WAIT", "B-W")).await.unwrap();
    let mut education = net.client("education").await;
    // Fail closed: nothing is delivered while consent cannot be checked,
    // across many more fetches than max_attempts…
    assert!(pull(&mut education, BIRTHS, "bac-candidature", 10, 1500)
        .await
        .is_empty());
    // …and the event was neither refused nor set aside.
    let dead = education
        .list_dead_letters(pb::ListDeadLettersRequest {
            topic: BIRTHS.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .dead_letters;
    assert!(
        dead.is_empty(),
        "an outage does not make dead letters: {dead:?}"
    );
    redis.restart();
    grant(&mut portal).await;
    let start = Instant::now();
    let mut got = Vec::new();
    while got.is_empty() && start.elapsed() < Duration::from_secs(10) {
        got = pull(&mut education, BIRTHS, "bac-candidature", 10, 1000).await;
    }
    assert_eq!(got.len(), 1, "delivered once consent can be checked");
    assert_eq!(got[0].subject, "C-WAIT");
    assert_eq!(got[0].attempt, 1, "the outage used no attempt");
}
