//! What the bus leaves in Redis about a citizen, against a real
//! redis-server: events delivered, pending, dead-lettered and replayed are
//! all stored sealed, idempotency keys appear only as keyed digests, and a
//! replica with another pseudonym key fails closed, naming the cause in
//! its log.

use std::time::{Duration, Instant};

use crate::consent_redis::{assert_no_citizen_id, contains, everything_in};
use crate::support::bus::{ack, death, decode_death, pull, BusNet, DEATHS};
use crate::support::client::reason;
use crate::support::redis_server::Redis;
use crate::support::spawn_gateway;
use jisr::proto::jisr::bus::v1 as pb;
use tonic::transport::Channel;

type BusClient = pb::bus_client::BusClient<Channel>;

/// Publishes a death of `citizen` with an idempotency key naming them (a
/// publisher may well do that).
async fn publish(bus: &mut BusClient, citizen: &str, act: &str) -> String {
    bus.publish(pb::PublishRequest {
        topic: DEATHS.into(),
        event: Some(death(citizen, act)),
        idempotency_key: format!("{citizen}/{act}"),
        subject: String::new(),
    })
    .await
    .unwrap()
    .into_inner()
    .event_id
}

async fn dead_letters(tax: &mut BusClient) -> Vec<pb::DeadLetter> {
    tax.list_dead_letters(pb::ListDeadLettersRequest {
        topic: DEATHS.into(),
        ..Default::default()
    })
    .await
    .unwrap()
    .into_inner()
    .dead_letters
}

/// Tax acknowledges `ACT-1`, lets `ACT-2` die and replays it (leaving the
/// replay pending); health never pulls, so every event waits for it.
async fn exercise(net: &BusNet) {
    let mut cs = net.client("civil-status").await;
    publish(&mut cs, "AB123456", "ACT-1").await;
    let doomed = publish(&mut cs, "AB123456", "ACT-2").await;
    publish(&mut cs, "CD234567", "ACT-3").await;
    let mut tax = net.client("tax").await;
    let first = pull(&mut tax, DEATHS, "tax-household", 10, 5000).await;
    assert_eq!(first.len(), 3, "{first:?}");
    for d in &first {
        // Opened and delivered as published.
        if decode_death(d).act_number != "ACT-2" {
            assert_eq!(ack(&mut tax, DEATHS, vec![d.id.clone()]).await, 1);
        }
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while dead_letters(&mut tax).await.is_empty() {
        assert!(
            Instant::now() < deadline,
            "ACT-2 never became a dead letter"
        );
        assert!(pull(&mut tax, DEATHS, "tax-household", 10, 200)
            .await
            .is_empty());
    }
    let dead = dead_letters(&mut tax).await;
    assert_eq!(dead[0].event_id, doomed);
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
    let event = decode_death(&back[0]);
    assert_eq!(
        (event.citizen_id.as_str(), back[0].event_id.as_str()),
        ("AB123456", doomed.as_str())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bus_leaves_no_citizen_id_in_redis_in_clear_or_as_a_plain_hash() {
    let redis = Redis::start();
    let net = BusNet::start(&format!(
        "redis_url = \"{}\"\nack_deadline_ms = 300\nmax_attempts = 1\n",
        redis.url()
    ));
    exercise(&net).await;
    // One more dead letter left in place (not replayed).
    let mut cs = net.client("civil-status").await;
    publish(&mut cs, "CD234567", "ACT-4").await;
    let mut tax = net.client("tax").await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while dead_letters(&mut tax).await.is_empty() {
        assert!(
            Instant::now() < deadline,
            "ACT-4 never became a dead letter"
        );
        pull(&mut tax, DEATHS, "tax-household", 10, 200).await;
    }

    let (keys, blobs) = everything_in(&redis.url()).await;
    // The scan saw the topic's streams and idempotency keys.
    for part in [":events", ":replay:tax", ":dead:tax", ":idem:"] {
        assert!(
            keys.iter().any(|k| contains(k, part.as_bytes())),
            "no key with {part}: {:?}",
            keys.iter()
                .map(|k| String::from_utf8_lossy(k))
                .collect::<Vec<_>>()
        );
    }
    for citizen in ["AB123456", "CD234567"] {
        assert_no_citizen_id(&blobs, citizen);
    }
    // Nor the event's other contents (the act numbers are in its message).
    for blob in &blobs {
        assert!(
            !contains(blob, b"ACT-"),
            "{}",
            String::from_utf8_lossy(blob)
        );
        assert!(!contains(blob, b"confidential"));
    }
}

/// A replica whose `[audit] pseudonym_key` differs reads nothing the others
/// sealed: its pull is refused as BUS_UNAVAILABLE naming the setting, it
/// delivers nothing, and the event stays for a replica with the right key
/// (which claims it once the ack deadline passed).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_with_another_pseudonym_key_fails_closed_on_the_bus() {
    let redis = Redis::start();
    let net = BusNet::start(&format!(
        "redis_url = \"{}\"\nack_deadline_ms = 300\n",
        redis.url()
    ));
    let stray_config = format!(
        "{}\n[audit]\ndir = \"stray-audit\"\nsigning_key = \"stray-audit.key\"\npseudonym_key = \"stray-pseudonym.key\"\n",
        net.config
    );
    let (stray_proc, stray_addr) = spawn_gateway(&net.pki, "stray", &stray_config);
    let mut cs = net.client("civil-status").await;
    let published = publish(&mut cs, "AB123456", "ACT-1").await;

    let mut stray = crate::support::bus::client(&stray_addr, &net.pki, "tax").await;
    let refused = stray
        .pull(pb::PullRequest {
            topic: DEATHS.into(),
            purpose: "tax-household".into(),
            max_events: 10,
            wait_ms: 0,
        })
        .await
        .unwrap_err();
    assert_eq!(reason(&refused), "BUS_UNAVAILABLE", "{refused:?}");
    // The caller is told to retry; the operator's log names the cause.
    let cause = "every replica must share `[audit] pseudonym_key`";
    let deadline = Instant::now() + Duration::from_secs(10);
    while !stray_proc.logs().contains(cause) {
        assert!(
            Instant::now() < deadline,
            "the stray replica's log does not name the cause: {}",
            stray_proc.logs()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The stray replica's read counted as a delivery: past the ack deadline
    // the replica with the shared key delivers it, as published.
    let mut tax = net.client("tax").await;
    let got = pull(&mut tax, DEATHS, "tax-household", 10, 5000).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].event_id, published);
    assert_eq!(got[0].attempt, 2);
    assert_eq!(decode_death(&got[0]).citizen_id, "AB123456");
}
