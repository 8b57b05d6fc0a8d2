//! The bus and Redis faults behind haproxy, with three `jisr serve`
//! processes: a subscription read through haproxy loses no event when the
//! replica serving one of its streams is SIGKILLed mid-stream; with Redis
//! killed, law-based calls keep flowing through haproxy (every replica stays
//! in the rotation, `/readyz` says what it can still do) and a publish is
//! refused, never answered OK; with Redis back empty, every publish answered
//! OK is delivered.

use crate::support::admin;
use crate::support::bus::{decode_death, pull, topics, DEATHS};
use crate::support::client::reason;
use crate::support::fleet::Fleet;
use crate::support::redis_server::Redis;
use crate::support::{birth, BIRTH, CITIZEN};
use crate::support::{call_raw, channel, RawCall};
use jisr::proto::jisr::bus::v1 as pb;
use pb::bus_client::BusClient;
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tonic::transport::Channel;

/// The bus on `redis`, with a short ack deadline so that what a killed
/// replica handed out comes again soon.
fn bus_on(redis: &Redis) -> String {
    topics(&format!(
        "redis_url = \"{}\"\nack_deadline_ms = 1000\ntimeout_ms = 300",
        redis.url()
    ))
}

async fn bus(f: &Fleet, agency: &str) -> BusClient<Channel> {
    BusClient::new(f.channel(&f.lb.addr, agency).await)
}

/// Publishes `act` through haproxy as civil status.
async fn publish(f: &Fleet, act: &str) -> Result<pb::PublishResponse, tonic::Status> {
    crate::support::bus::publish_death(&mut bus(f, "civil-status").await, "CIN-9", act).await
}

/// What the consumers received, and how many of their streams broke.
#[derive(Default)]
struct Seen {
    acts: Mutex<BTreeSet<String>>,
    broken: AtomicUsize,
}

impl Seen {
    fn acts(&self) -> BTreeSet<String> {
        self.acts.lock().unwrap().clone()
    }
}

/// Reads `stream` as tax, acknowledging each delivery; when the stream
/// breaks (its replica died), subscribes again through haproxy `lb`.
/// Runs until aborted.
async fn consume(
    mut bus: BusClient<Channel>,
    mut stream: tonic::Streaming<pb::Delivery>,
    lb: String,
    files: jisr::tls::TlsFiles,
    seen: Arc<Seen>,
) {
    loop {
        if let Ok(Some(d)) = stream.message().await {
            seen.acts
                .lock()
                .unwrap()
                .insert(decode_death(&d).act_number);
            let ack = pb::AckRequest {
                topic: DEATHS.into(),
                ids: vec![d.id],
            };
            // Unacknowledged, it comes again after the ack deadline.
            let _ = bus.ack(ack).await;
            continue;
        }
        seen.broken.fetch_add(1, Ordering::Relaxed);
        loop {
            if let Ok(ch) = channel(&lb, &files).await {
                bus = BusClient::new(ch);
                if let Ok(s) = bus.subscribe(subscription()).await {
                    stream = s.into_inner();
                    break;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn subscription() -> pb::SubscribeRequest {
    pb::SubscribeRequest {
        topic: DEATHS.into(),
        purpose: "tax-household".into(),
    }
}

/// Waits (up to `secs`) until `seen` holds every act of `want`.
async fn until_seen(seen: &Seen, want: &BTreeSet<String>, secs: u64) {
    let start = Instant::now();
    while !want.is_subset(&seen.acts()) {
        assert!(
            start.elapsed() < Duration::from_secs(secs),
            "lost: {:?}",
            want.difference(&seen.acts()).collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_haproxy_a_subscription_loses_no_event_when_a_replica_dies_mid_stream() {
    let redis = Redis::with_aof();
    let mut f = Fleet::start(&redis.url(), &bus_on(&redis)).await;
    // Three streams of tax's subscription through haproxy: round robin
    // puts one on each replica.
    let seen = Arc::new(Seen::default());
    let mut consumers = Vec::new();
    for _ in 0..3 {
        let mut tax = bus(&f, "tax").await;
        let stream = tax.subscribe(subscription()).await.unwrap().into_inner();
        let (lb, files) = (f.lb.addr.clone(), f.pki.files("tax"));
        consumers.push(tokio::spawn(consume(tax, stream, lb, files, seen.clone())));
    }
    let act = |i: usize| format!("K-{i}");
    let mut published = BTreeSet::new();
    for i in 0..20 {
        publish(&f, &act(i)).await.unwrap();
        published.insert(act(i));
    }
    // Mid-stream: some delivered, gw-2 killed with its stream open.
    let start = Instant::now();
    while seen.acts().len() < 5 {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "nothing delivered"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    f.kill(1);
    for i in 20..40 {
        publish(&f, &act(i)).await.unwrap();
        published.insert(act(i));
    }
    until_seen(&seen, &published, 20).await;
    assert!(
        seen.broken.load(Ordering::Relaxed) >= 1,
        "no stream was on the killed replica: the kill was not mid-stream"
    );
    for c in consumers {
        c.abort();
    }
}

/// Waits (up to 10 s) until every replica's `/readyz` answers 200 with a
/// consent store line starting with `state` (`ok` or `DOWN`); returns the
/// bodies.
async fn ready_with_store(f: &Fleet, state: &str) -> Vec<String> {
    let mut bodies = Vec::new();
    for r in &f.replicas {
        let start = Instant::now();
        loop {
            let (code, body) = admin::get(&r.admin, "/readyz").await;
            let line = body.lines().find(|l| l.contains("consent store"));
            if line.is_some_and(|l| l.starts_with(state)) {
                assert_eq!(code, 200, "{}: {body}", r.name);
                bodies.push(body);
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "{}'s /readyz never said `{state} consent store`: {code} {body}",
                r.name
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    bodies
}

/// Pulls through haproxy (a new connection each time, so every replica
/// serves some) as `agency` until every act of `want` came, acknowledging.
async fn pull_through_lb(f: &Fleet, agency: &str, purpose: &str, want: &BTreeSet<String>) {
    let mut got = BTreeSet::new();
    let start = Instant::now();
    while !want.is_subset(&got) {
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "{agency} lost publishes answered OK: {:?}",
            want.difference(&got).collect::<Vec<_>>()
        );
        let mut client = bus(f, agency).await;
        let batch = pull(&mut client, DEATHS, purpose, 100, 300).await;
        got.extend(batch.iter().map(|d| decode_death(d).act_number));
        let ids = batch.into_iter().map(|d| d.id).collect();
        crate::support::bus::ack(&mut client, DEATHS, ids).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_haproxy_law_based_calls_flow_without_redis_and_the_bus_recovers_it_empty() {
    // No persistence: a restart comes back empty.
    let mut redis = Redis::start();
    let f = Fleet::start(&redis.url(), &bus_on(&redis)).await;
    let mut answered_ok = BTreeSet::from(["E-0".to_owned()]);
    publish(&f, "E-0").await.unwrap();
    pull_through_lb(&f, "tax", "tax-household", &answered_ok).await;

    redis.kill();
    let bodies = ready_with_store(&f, "DOWN").await;
    for body in &bodies {
        assert!(body.starts_with("ready"), "{body}");
        assert!(body.contains("law-based exchanges are served"), "{body}");
    }
    // A publish is refused, never answered OK.
    let refused = publish(&f, "E-lost").await.unwrap_err();
    assert_eq!(reason(&refused), "BUS_UNAVAILABLE", "{refused:?}");
    // Law-based calls keep flowing through haproxy for a second (ten of
    // its health checks): no replica is taken out.
    let start = Instant::now();
    let mut calls = 0;
    while calls < 6 || start.elapsed() < Duration::from_secs(1) {
        let education = f.channel(&f.lb.addr, "education").await;
        call_raw(
            &education,
            RawCall::new(BIRTH, birth(CITIZEN), "bac-candidature"),
        )
        .await
        .unwrap_or_else(|s| panic!("call {calls} without Redis: {s:?}"));
        calls += 1;
    }
    for s in f.lb.servers() {
        assert_eq!((s.status.as_str(), s.downs), ("UP", 0), "{s:?}");
    }

    // Back, empty: a publish is answered OK only once it can be delivered.
    redis.restart();
    let start = Instant::now();
    for i in 1..=5 {
        let act = format!("E-{i}");
        while let Err(status) = publish(&f, &act).await {
            assert_eq!(reason(&status), "BUS_UNAVAILABLE", "{status:?}");
            assert!(start.elapsed() < Duration::from_secs(10), "{status:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        answered_ok.insert(act);
    }
    answered_ok.remove("E-0");
    pull_through_lb(&f, "tax", "tax-household", &answered_ok).await;
    pull_through_lb(&f, "health", "civil-event", &answered_ok).await;
    ready_with_store(&f, "ok").await;
}
