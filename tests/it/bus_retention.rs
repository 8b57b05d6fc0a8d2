//! Bus retention, against gateways and a real redis-server (and a 3-master
//! Cluster): a long run of published and acknowledged events leaves the
//! stream empty and small once the retention passed; what a subscription still owes,
//! dead letters within their retention, and events for a subscriber added
//! later by another replica's configuration are not trimmed; and Redis
//! coming back empty is told by `/readyz` and `/metrics` while the node
//! stays ready. A gateway on the embedded store trims in the background
//! too; that store's bound (rows and file size) is tested on a set clock in
//! `src/bus/store/embedded/retention_tests.rs`.

use std::time::{Duration, Instant};

use crate::bus_redis::command;
use crate::support::admin;
use crate::support::bus::{ack, decode_death, publish_death, pull, BusNet, DEATHS};
use crate::support::redis_server::Redis;
use crate::support::start_gateway;

const STREAM: &str = "jisr:bus:{civil-status.death-registered}:events";

/// The value of the metric line starting with `prefix` (0 when absent).
async fn metric(admin_addr: &str, prefix: &str) -> f64 {
    let (_, text) = admin::get(admin_addr, "/metrics").await;
    text.lines()
        .find_map(|l| l.strip_prefix(prefix))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

/// Polls `probe` every 50 ms until it holds, for at most `secs`.
async fn until<F, Fut>(secs: u64, what: &str, mut probe: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !probe().await {
        assert!(Instant::now() < deadline, "not within {secs} s: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn xlen(redis: &Redis) -> u64 {
    command(redis, &["XLEN", STREAM])
}

/// Pulls and acknowledges as `agency` until `n` deliveries came.
async fn drain(net: &BusNet, agency: &str, purpose: &str, n: usize) {
    let mut bus = net.client(agency).await;
    let mut got = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    while got < n {
        assert!(Instant::now() < deadline, "{agency} received {got} of {n}");
        let batch = pull(&mut bus, DEATHS, purpose, 1000, 500).await;
        got += batch.len();
        ack(&mut bus, DEATHS, batch.into_iter().map(|d| d.id).collect()).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_run_on_redis_leaves_the_stream_bounded_by_the_retention() {
    let redis = Redis::with_aof();
    let net = BusNet::start(&format!(
        "redis_url = \"{}\"\nidempotency_window_ms = 1000\nretention_ms = 1000\n",
        redis.url()
    ));
    let publisher = net.client("civil-status").await;
    let (rounds, per_round) = (20, 100);
    for round in 0..rounds {
        let published = futures_util::future::join_all((0..per_round).map(|i| {
            let mut p = publisher.clone();
            async move { publish_death(&mut p, "CIN-1", &format!("R-{round}-{i}")).await }
        }))
        .await;
        assert!(published.iter().all(Result::is_ok), "{published:?}");
        drain(&net, "tax", "tax-household", per_round).await;
        drain(&net, "health", "civil-event", per_round).await;
    }
    let total = (rounds * per_round) as f64;
    // Every event was acknowledged by both subscriptions: once the
    // retention passed, the trimmer leaves nothing (what the retention
    // holds), however many were published.
    let r = &redis;
    until(
        30,
        "the stream trimmed to what the retention holds",
        move || async move { xlen(r) == 0 },
    )
    .await;
    let memory: u64 = command(&redis, &["MEMORY", "USAGE", STREAM]);
    assert!(
        memory < 16 * 1024,
        "the empty stream still uses {memory} bytes"
    );
    // The idempotency keys expire with their window.
    until(30, "the idempotency keys expired", move || async move {
        let keys: Vec<String> = command(r, &["KEYS", "jisr:bus:*:idem:*"]);
        keys.is_empty()
    })
    .await;
    let admin_addr = net.gateway.admin.clone();
    let a = admin_addr.as_str();
    until(30, "the metrics to show the trim", move || async move {
        metric(
            a,
            "jisr_bus_stream_length{topic=\"civil-status.death-registered\"}",
        )
        .await
            == 0.0
    })
    .await;
    assert_eq!(
        metric(&admin_addr, "jisr_bus_trimmed_events_total").await,
        total
    );
    let tax = "{topic=\"civil-status.death-registered\",subscriber=\"tax\"}";
    assert_eq!(
        metric(&admin_addr, &format!("jisr_bus_deliveries_total{tax}")).await,
        total
    );
    assert_eq!(
        metric(&admin_addr, &format!("jisr_bus_redeliveries_total{tax}")).await,
        0.0
    );
    assert_eq!(
        metric(
            &admin_addr,
            &format!("jisr_bus_oldest_unacknowledged_age_seconds{tax}")
        )
        .await,
        0.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn owed_events_and_dead_letters_stay_and_a_later_subscriber_loses_nothing() {
    let redis = Redis::with_aof();
    let net = BusNet::start(&format!(
        "redis_url = \"{}\"\nidempotency_window_ms = 1000\nretention_ms = 1000\n\
         ack_deadline_ms = 100\nmax_attempts = 1\n",
        redis.url()
    ));
    let admin_addr = net.gateway.admin.clone();
    let (a, r) = (admin_addr.as_str(), &redis);
    let mut publisher = net.client("civil-status").await;
    for act in ["A-1", "A-2", "A-3"] {
        publish_death(&mut publisher, "CIN-1", act).await.unwrap();
    }
    drain(&net, "tax", "tax-household", 3).await;
    // Health is handed but acknowledges only A-1; A-3 it was
    // never sent.
    let mut health = net.client("health").await;
    let got = pull(&mut health, DEATHS, "civil-event", 2, 500).await;
    assert_eq!(got.len(), 2);
    assert_eq!(decode_death(&got[0]).act_number, "A-1");
    ack(&mut health, DEATHS, vec![got[0].id.clone()]).await;

    // Only A-1 goes: A-2 is in flight, A-3 owed. The trimmer runs every
    // 250 ms and never goes past either, so the stream keeps both.
    until(10, "A-1 trimmed", move || async move {
        metric(a, "jisr_bus_trimmed_events_total").await == 1.0
    })
    .await;
    assert_eq!(xlen(&redis), 2);
    let health_labels = "{topic=\"civil-status.death-registered\",subscriber=\"health\"}";
    assert!(
        metric(
            &admin_addr,
            &format!("jisr_bus_oldest_unacknowledged_age_seconds{health_labels}")
        )
        .await
            > 0.0
    );

    // A-2's one attempt expired: a dead letter; A-3 is delivered.
    let got = pull(&mut health, DEATHS, "civil-event", 10, 500).await;
    assert_eq!(
        got.iter()
            .map(|d| decode_death(d).act_number)
            .collect::<Vec<_>>(),
        ["A-3"]
    );
    ack(&mut health, DEATHS, vec![got[0].id.clone()]).await;
    until(
        10,
        "the stream emptied",
        move || async move { xlen(r) == 0 },
    )
    .await;
    // The dead letter keeps its event (a copy) within its own retention.
    let dead = health
        .list_dead_letters(jisr::proto::jisr::bus::v1::ListDeadLettersRequest {
            topic: DEATHS.into(),
            subscriber: "health".into(),
            limit: 10,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(dead.dead_letters.len(), 1, "{dead:?}");
    until(10, "the dead letter counted", move || async move {
        metric(a, &format!("jisr_bus_dead_letters{health_labels}")).await == 1.0
    })
    .await;

    // Another replica's configuration adds education as a subscriber: it
    // receives what is published from then on, even through this replica
    // (which does not know it), and retention waits for it.
    let config = net.config.replacen(
        "[[topic]]\nname = \"civil-status.birth-registered\"",
        "[[topic.subscriber]]\nagency = \"education\"\npurposes = [\"bac-candidature\"]\nbasis = \"law:01-00\"\n\n[[topic]]\nname = \"civil-status.birth-registered\"",
        1,
    );
    assert_ne!(config, net.config, "the education subscriber was added");
    let (second_gw, second) = start_gateway(&net.pki, "gateway-2", &config);
    publish_death(&mut publisher, "CIN-2", "A-4").await.unwrap();
    drain(&net, "tax", "tax-household", 1).await;
    drain(&net, "health", "civil-event", 1).await;
    // Past the retention (education's backlog is 2 s old as the second
    // replica's trimmer saw it), both trimmers left A-4 alone.
    let a2 = second_gw.admin.as_str();
    let education_labels = "{topic=\"civil-status.death-registered\",subscriber=\"education\"}";
    until(
        10,
        "education's backlog older than the retention",
        move || async move {
            metric(
                a2,
                &format!("jisr_bus_oldest_unacknowledged_age_seconds{education_labels}"),
            )
            .await
                > 2.0
        },
    )
    .await;
    assert_eq!(xlen(&redis), 1, "A-4 waits for education");
    let mut education = crate::support::bus::client(&second, &net.pki, "education").await;
    let got = pull(&mut education, DEATHS, "bac-candidature", 10, 2000).await;
    assert_eq!(
        got.iter()
            .map(|d| decode_death(d).act_number)
            .collect::<Vec<_>>(),
        ["A-4"]
    );
    ack(&mut education, DEATHS, vec![got[0].id.clone()]).await;
    until(
        10,
        "A-4 trimmed once education acknowledged",
        move || async move { xlen(r) == 0 },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_go_past_their_retention_and_redis_data_loss_is_reported_not_unready() {
    let redis = Redis::with_aof();
    let net = BusNet::start(&format!(
        "redis_url = \"{}\"\nidempotency_window_ms = 1000\nretention_ms = 1000\n\
         dead_letter_retention_ms = 1000\nack_deadline_ms = 100\nmax_attempts = 1\n",
        redis.url()
    ));
    let admin_addr = net.gateway.admin.clone();
    let (a, r) = (admin_addr.as_str(), &redis);
    let mut publisher = net.client("civil-status").await;
    publish_death(&mut publisher, "CIN-1", "D-1").await.unwrap();
    let mut tax = net.client("tax").await;
    assert_eq!(
        pull(&mut tax, DEATHS, "tax-household", 10, 500).await.len(),
        1
    );
    // Not acknowledged: the next pull past the deadline buries it.
    until(10, "D-1 a dead letter", || {
        let mut tax = tax.clone();
        async move {
            pull(&mut tax, DEATHS, "tax-household", 10, 0).await;
            let dead: u64 = command(
                r,
                &["XLEN", "jisr:bus:{civil-status.death-registered}:dead:tax"],
            );
            dead == 1
        }
    })
    .await;
    until(
        10,
        "the dead letter removed past its retention",
        move || async move { metric(a, "jisr_bus_trimmed_dead_letters_total").await == 1.0 },
    )
    .await;
    let dead: u64 = command(
        &redis,
        &["XLEN", "jisr:bus:{civil-status.death-registered}:dead:tax"],
    );
    assert_eq!(dead, 0);

    // Redis loses everything: the trimmer finds the groups gone, makes
    // them again, and says so; the node stays ready.
    assert_eq!(metric(&admin_addr, "jisr_bus_data_lost").await, 0.0);
    let () = command(&redis, &["FLUSHALL"]);
    until(10, "the loss reported", move || async move {
        // Both topics' groups: tax and health, health and education.
        metric(a, "jisr_bus_data_lost").await == 4.0
    })
    .await;
    let (status, body) = admin::get(&admin_addr, "/readyz").await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains("DOWN bus data: Redis lost the bus's data"),
        "{body}"
    );
    assert!(body.contains("civil-status.death-registered/tax"), "{body}");
    publish_death(&mut publisher, "CIN-2", "D-2").await.unwrap();
    let got = pull(&mut tax, DEATHS, "tax-household", 10, 2000).await;
    assert_eq!(
        got.iter()
            .map(|d| decode_death(d).act_number)
            .collect::<Vec<_>>(),
        ["D-2"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_runs_on_a_redis_cluster() {
    let cluster = crate::support::redis_server::Cluster::start();
    let net = BusNet::start(&format!(
        "redis_url = \"{}\"\nidempotency_window_ms = 1000\nretention_ms = 1000\n",
        cluster.url()
    ));
    let a = net.gateway.admin.as_str();
    let mut publisher = net.client("civil-status").await;
    for act in ["C-1", "C-2"] {
        publish_death(&mut publisher, "CIN-1", act).await.unwrap();
    }
    drain(&net, "tax", "tax-household", 2).await;
    drain(&net, "health", "civil-event", 2).await;
    // The script's keys share the topic's slot: it runs, and trims both.
    until(
        10,
        "both events trimmed on the cluster",
        move || async move { metric(a, "jisr_bus_trimmed_events_total").await == 2.0 },
    )
    .await;
    assert_eq!(
        metric(
            a,
            "jisr_bus_stream_length{topic=\"civil-status.death-registered\"}"
        )
        .await,
        0.0
    );
    assert_eq!(metric(a, "jisr_bus_data_lost").await, 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_on_the_embedded_store_trims_in_the_background() {
    let net = BusNet::start("idempotency_window_ms = 1000\nretention_ms = 1000\n");
    let a = net.gateway.admin.as_str();
    let mut publisher = net.client("civil-status").await;
    for act in ["E-1", "E-2", "E-3"] {
        publish_death(&mut publisher, "CIN-1", act).await.unwrap();
    }
    drain(&net, "tax", "tax-household", 3).await;
    // Health has not acknowledged anything yet: nothing goes.
    let health = "{topic=\"civil-status.death-registered\",subscriber=\"health\"}";
    until(
        10,
        "health's backlog older than the retention",
        move || async move {
            metric(
                a,
                &format!("jisr_bus_oldest_unacknowledged_age_seconds{health}"),
            )
            .await
                > 1.5
        },
    )
    .await;
    assert_eq!(metric(a, "jisr_bus_trimmed_events_total").await, 0.0);
    drain(&net, "health", "civil-event", 3).await;
    until(
        10,
        "the events trimmed once health acknowledged",
        move || async move {
            metric(
                a,
                "jisr_bus_stream_length{topic=\"civil-status.death-registered\"}",
            )
            .await
                == 0.0
        },
    )
    .await;
    assert_eq!(metric(a, "jisr_bus_trimmed_events_total").await, 3.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_trim_removes_a_backlog_larger_than_a_script_call_takes() {
    use jisr::bus::store::{redis::RedisBusStore, BusStore, Limits, Retention, StoredEvent};
    let redis = Redis::start();
    let limits = Limits {
        ack_deadline: Duration::from_secs(30),
        max_attempts: 5,
        max_in_flight: 10_000,
        idempotency_window: Duration::from_secs(1),
    };
    let store = RedisBusStore::connect(
        &redis.url(),
        limits,
        Duration::from_secs(2),
        ("gw-1", jisr::audit::keys::Pseudonymizer::new(&[9; 32])),
        std::sync::Arc::new(jisr::bus::Figures::default()),
    )
    .await
    .unwrap();
    let (topic, subs) = ("t", vec!["tax".to_owned()]);
    store
        .prepare(&[(topic.into(), "tax".into())])
        .await
        .unwrap();
    let n = 1_200;
    for i in 0..n {
        let event = StoredEvent {
            type_url: "type.googleapis.com/x.Y".into(),
            payload: vec![1; 64],
            idempotency_key: format!("k{i}"),
            ..StoredEvent::default()
        };
        store.publish(topic, &subs, event).await.unwrap();
    }
    // Retention of 1 ms: everything acknowledged is due.
    let retention = Retention {
        events: Duration::from_millis(1),
        dead_letters: Duration::from_secs(60),
    };
    let got = store.fetch(topic, "tax", n, 0).await.unwrap();
    let owed = store.trim(topic, &subs, retention, 0).await.unwrap();
    assert_eq!(
        (owed.trimmed, owed.length),
        (0, u64::from(n)),
        "all are in flight"
    );
    let ids: Vec<String> = got.into_iter().map(|p| p.id).collect();
    assert_eq!(store.ack(topic, "tax", &ids).await.unwrap(), n);
    // Each script call removes at most 500; one trim loops until done.
    let state = store.trim(topic, &subs, retention, 0).await.unwrap();
    assert_eq!((state.trimmed, state.length), (u64::from(n), 0));
    assert_eq!(xlen_of(&redis, "jisr:bus:{t}:events"), 0);
}

fn xlen_of(redis: &Redis, key: &str) -> u64 {
    command(redis, &["XLEN", key])
}
