//! The bus on Redis when Redis misbehaves or idles, against a real
//! redis-server: Redis coming back empty (the groups are made again, nothing
//! answered OK goes undelivered, a key published before the loss can be
//! published again), Redis gone (a publish is refused, never OK), idle
//! Subscribe streams blocking in Redis instead of polling, and an event
//! published through one gateway reaching a stream blocked on another.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use crate::bus::{next, subscribe};
use crate::support::bus::{client, decode_death, publish_death, pull, BusNet, BIRTHS, DEATHS};
use crate::support::client::reason;
use crate::support::redis_server::Redis;
use crate::support::start_gateway;
use tonic::Code;

/// Runs one command on `redis` (from the test, not through a gateway).
pub(crate) fn command<T: redis::FromRedisValue>(redis: &Redis, args: &[&str]) -> T {
    let client = redis::Client::open(redis.url()).unwrap();
    let mut conn = client.get_connection().unwrap();
    let mut cmd = redis::cmd(args[0]);
    for a in &args[1..] {
        cmd.arg(*a);
    }
    cmd.query(&mut conn).unwrap()
}

/// A field of `INFO <section>`.
fn info(redis: &Redis, section: &str, field: &str) -> String {
    let text: String = command(redis, &["INFO", section]);
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .unwrap_or_else(|| panic!("no `{field}` in INFO {section}: {text}"))
        .trim()
        .to_owned()
}

/// Waits (up to 10 s) until `n` clients are blocked in Redis.
pub(crate) async fn until_blocked(redis: &Redis, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let blocked: usize = info(redis, "clients", "blocked_clients").parse().unwrap();
        if blocked == n {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{blocked} clients blocked in Redis, not {n}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Pulls `topic` as `agency` until the acts in `want` came (within 10 s),
/// acknowledging them; returns every act received.
async fn pull_acts(
    net_addr: &str,
    net: &BusNet,
    agency: &str,
    purpose: &str,
    want: &[&str],
) -> BTreeSet<String> {
    let mut bus = client(net_addr, &net.pki, agency).await;
    let mut got = BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !want.iter().all(|a| got.contains(*a)) {
        assert!(
            Instant::now() < deadline,
            "{agency} received {got:?}, not all of {want:?}"
        );
        let batch = pull(&mut bus, DEATHS, purpose, 100, 500).await;
        let ids = batch.iter().map(|d| d.id.clone()).collect();
        got.extend(batch.iter().map(|d| decode_death(d).act_number));
        crate::support::bus::ack(&mut bus, DEATHS, ids).await;
    }
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bus_recovers_when_redis_comes_back_empty() {
    let redis = Redis::with_aof();
    let net = BusNet::start(&format!("redis_url = \"{}\"\n", redis.url()));
    let mut publisher = net.client("civil-status").await;
    let mut health = net.client("health").await;
    let mut stream = subscribe(&mut health, DEATHS, "civil-event").await;
    publish_death(&mut publisher, "CIN-1", "A-1").await.unwrap();
    assert_eq!(decode_death(&next(&mut stream, 10).await).act_number, "A-1");
    pull_acts(&net.addr, &net, "tax", "tax-household", &["A-1"]).await;

    // Redis loses everything (as a restart without persistence would).
    let () = command(&redis, &["FLUSHALL"]);

    // Pull finds no group: it makes it again rather than fail.
    let mut tax = net.client("tax").await;
    tax.pull(jisr::proto::jisr::bus::v1::PullRequest {
        topic: DEATHS.into(),
        purpose: "tax-household".into(),
        max_events: 10,
        wait_ms: 0,
    })
    .await
    .expect("a pull after Redis lost its data is answered, not NOGROUP");

    // What is answered OK after the loss is delivered, to the open stream
    // and to pulls; A-1's key is gone with its event, so publishing it
    // again is a new event, delivered again.
    for act in ["A-2", "A-1"] {
        let r = publish_death(&mut publisher, "CIN-2", act).await.unwrap();
        assert!(!r.duplicate, "{act}: {r:?}");
    }
    let mut streamed = BTreeSet::new();
    while streamed.len() < 2 {
        streamed.insert(decode_death(&next(&mut stream, 10).await).act_number);
    }
    assert_eq!(streamed, BTreeSet::from(["A-1".into(), "A-2".into()]));
    pull_acts(&net.addr, &net, "tax", "tax-household", &["A-1", "A-2"]).await;

    // Lost again, one publish, then a replica starts (creating its groups
    // from "now"): the publish made the groups first, so it still arrives.
    let () = command(&redis, &["FLUSHALL"]);
    publish_death(&mut publisher, "CIN-3", "A-3").await.unwrap();
    let (_second, second) = start_gateway(&net.pki, "gateway-2", &net.config);
    pull_acts(&second, &net, "tax", "tax-household", &["A-3"]).await;
    assert_eq!(decode_death(&next(&mut stream, 10).await).act_number, "A-3");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publish_while_redis_is_down_is_refused_never_ok() {
    // B-1 was acknowledged before the kill and must survive it.
    let mut redis = Redis::with_aof_always();
    let net = BusNet::start(&format!(
        "redis_url = \"{}\"\ntimeout_ms = 300\n",
        redis.url()
    ));
    let mut publisher = net.client("civil-status").await;
    publish_death(&mut publisher, "CIN-1", "B-1").await.unwrap();
    redis.kill();
    let status = publish_death(&mut publisher, "CIN-2", "B-2")
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert_eq!(reason(&status), "BUS_UNAVAILABLE", "{status:?}");
    assert!(
        status.message().contains("not published")
            && status.message().contains("same idempotency key"),
        "{status:?}"
    );
    // Back with its data (AOF): the retry is published and delivered, and
    // what was acknowledged before is still there.
    redis.restart();
    let deadline = Instant::now() + Duration::from_secs(10);
    while let Err(status) = publish_death(&mut publisher, "CIN-2", "B-2").await {
        assert_eq!(reason(&status), "BUS_UNAVAILABLE", "{status:?}");
        assert!(
            Instant::now() < deadline,
            "publish still refused: {status:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    pull_acts(&net.addr, &net, "tax", "tax-household", &["B-1", "B-2"]).await;
}

/// An idle turn costs five commands (see `bus/store/redis/block.rs`) and
/// lasts the block time (1 s with the default 30 s ack deadline), so an
/// idle stream costs about five commands a second; polling every 100 ms
/// cost about 49. Ten per stream per second leaves room for the first
/// turn's connection set-up and for a turn that straddles the window,
/// and fails for any polling faster than twice a second.
const IDLE_COMMANDS_PER_STREAM_PER_SECOND: f64 = 10.0;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_subscriptions_block_in_redis_instead_of_polling() {
    let redis = Redis::with_aof();
    let net = BusNet::start(&format!("redis_url = \"{}\"\n", redis.url()));
    let mut tax = net.client("tax").await;
    let mut health = net.client("health").await;
    // The gateway's shared connection, and the one this reading opens.
    let before: usize = info(&redis, "clients", "connected_clients")
        .parse()
        .unwrap();
    let streams = [
        subscribe(&mut tax, DEATHS, "tax-household").await,
        subscribe(&mut tax, DEATHS, "tax-household").await,
        subscribe(&mut health, DEATHS, "civil-event").await,
        subscribe(&mut health, BIRTHS, "civil-event").await,
    ];
    until_blocked(&redis, 4).await;
    let () = command(&redis, &["CONFIG", "RESETSTAT"]);
    let window = Duration::from_secs(2);
    tokio::time::sleep(window).await;
    let stats: String = command(&redis, &["INFO", "commandstats"]);
    let calls: u64 = stats
        .lines()
        .filter(|l| !l.starts_with("cmdstat_info:") && !l.starts_with("cmdstat_config|"))
        .filter_map(|l| {
            l.split_once("calls=")?
                .1
                .split(',')
                .next()?
                .parse::<u64>()
                .ok()
        })
        .sum();
    let rate = calls as f64 / 4.0 / window.as_secs_f64();
    assert!(
        rate < IDLE_COMMANDS_PER_STREAM_PER_SECOND,
        "{rate:.1} commands per idle stream per second:\n{stats}"
    );
    // Still waiting in Redis, not gone.
    until_blocked(&redis, 4).await;
    // Each stream's own connection closes when the stream ends.
    drop(streams);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let now: usize = info(&redis, "clients", "connected_clients")
            .parse()
            .unwrap();
        if now == before {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{now} clients connected, {before} before the streams"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_published_through_one_gateway_wakes_a_stream_blocked_on_another() {
    let redis = Redis::with_aof();
    let net = BusNet::start(&format!("redis_url = \"{}\"\n", redis.url()));
    let (_second, second) = start_gateway(&net.pki, "gateway-2", &net.config);
    let mut tax = client(&second, &net.pki, "tax").await;
    let mut stream = subscribe(&mut tax, DEATHS, "tax-household").await;
    until_blocked(&redis, 1).await;
    let mut publisher = net.client("civil-status").await;
    publish_death(&mut publisher, "CIN-1", "C-1").await.unwrap();
    assert_eq!(decode_death(&next(&mut stream, 10).await).act_number, "C-1");
}
