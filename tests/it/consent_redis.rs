//! The consent store on Redis as a gateway uses it: a frozen Redis refuses
//! consent calls within the store timeout while law-based calls flow, and
//! nothing in Redis names a citizen, in clear or as a plain hash.

use crate::consent::{call, grant, portal, reason_of, CONSENT_RULES};
use crate::routing::echo_network;
use crate::support::redis_server::Redis;
use crate::support::*;
use jisr::proto::jisr::consent::v1 as pb;
use sha2::{Digest, Sha256};
use std::process::Command;
use std::time::{Duration, Instant};
use tonic::Code;

/// The store bound the gateways of these tests run with.
pub(crate) const STORE_TIMEOUT: Duration = Duration::from_millis(200);

/// A gateway with the consent rules, its consent store in the Redis at
/// `url`, and echo upstreams.
pub(crate) async fn consent_gateway(
    url: &str,
) -> (Pki, Gateway, String, Vec<crate::support::echo::Echo>) {
    echo_network(
        "",
        &format!(
            "{CONSENT_RULES}\n[consent]\nredis_url = \"{url}\"\ntimeout_ms = {}\n",
            STORE_TIMEOUT.as_millis()
        ),
    )
    .await
}

/// A call on a legal basis (no consent needed).
pub(crate) fn law_based<'a>() -> RawCall<'a> {
    RawCall::new(BIRTH, birth("AB123456"), "bac-candidature")
}

/// A redis-server stopped with SIGSTOP: it keeps its connections open but
/// answers nothing. Continued (SIGCONT) on drop, even if the test failed.
struct Frozen(u32);

impl Frozen {
    fn freeze(redis: &Redis) -> Self {
        signal("-STOP", redis.pid());
        Self(redis.pid())
    }
}

impl Drop for Frozen {
    fn drop(&mut self) {
        signal("-CONT", self.0);
    }
}

fn signal(which: &str, pid: u32) {
    let status = Command::new("kill")
        .args([which, &pid.to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill {which} {pid} failed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_redis_refuses_consent_calls_in_time_and_law_based_calls_flow() {
    let redis = Redis::start();
    let (pki, gw, addr, _echos) = consent_gateway(&redis.url()).await;
    let education = channel(&addr, &pki.files("education")).await.unwrap();
    let mut portal = portal(&addr, &pki).await;
    let hour = Duration::from_secs(3600);
    let id = grant(&mut portal, "AB123456", "school-enrolment", 0, hour).await;
    call_raw(&education, call("school-enrolment", "AB123456", Some(&id)))
        .await
        .expect("a consent call while Redis answers");

    let frozen = Frozen::freeze(&redis);
    for _ in 0..3 {
        // Refused while Redis is still frozen: a call waiting on it would
        // wait as long as it stays frozen, which is until this test ends
        // (so 30 s tells a hang from a slow machine; how soon the store
        // bound answers is measured by the benchmarks).
        let refused = tokio::time::timeout(
            Duration::from_secs(30),
            reason_of(&education, call("school-enrolment", "AB123456", Some(&id))),
        )
        .await
        .expect("the consent call hung on the frozen Redis");
        assert_eq!(refused, (Code::Unavailable, "CONSENT_UNAVAILABLE".into()));
        call_raw(&education, law_based())
            .await
            .expect("a law-based call while Redis is frozen");
    }
    // Polled: readiness shows the background probe's last answer (changed
    // in issue 16: the first /readyz after the freeze used to say DOWN).
    let (status, body) =
        crate::support::admin::wait_readyz(&gw.admin, "DOWN consent store: ").await;
    assert_eq!(status, 200, "{body}");
    drop(frozen);

    // Continued: the same consent serves again, without a restart.
    let deadline = Instant::now() + Duration::from_secs(10);
    while call_raw(&education, call("school-enrolment", "AB123456", Some(&id)))
        .await
        .is_err()
    {
        assert!(Instant::now() < deadline, "no consent call after SIGCONT");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `/readyz` never waits on Redis: with a frozen Redis and the longest
/// store bound (10 s), `/readyz` shows the store DOWN (the background
/// probe's answer) while the node stays ready. Before issue 16 each
/// `/readyz` pinged Redis and waited the whole store bound, past this
/// poll's deadline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_answers_while_redis_is_frozen_showing_the_store_down() {
    let redis = Redis::start();
    let (_pki, gw, _addr, _echos) = echo_network(
        "",
        &format!(
            "{CONSENT_RULES}\n[consent]\nredis_url = \"{}\"\ntimeout_ms = 10000\n",
            redis.url()
        ),
    )
    .await;
    crate::support::admin::wait_readyz(&gw.admin, "ok   consent store: answers").await;

    let frozen = Frozen::freeze(&redis);
    let deadline = Instant::now() + Duration::from_secs(8);
    let (status, body) = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let (status, body) =
            tokio::time::timeout(left, crate::support::admin::get(&gw.admin, "/readyz"))
                .await
                .expect("no /readyz answer showing the store DOWN before the deadline");
        if body.contains("DOWN consent store: ") {
            break (status, body);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(status, 200, "{body}");
    assert!(body.starts_with("ready\n"), "{body}");
    assert!(
        body.contains("Redis did not answer a PING within 1000 ms"),
        "{body}"
    );
    // Asked again while still frozen: answered again, still DOWN.
    let (status, body) = crate::support::admin::get(&gw.admin, "/readyz").await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("DOWN consent store: "), "{body}");

    drop(frozen);
    crate::support::admin::wait_readyz(&gw.admin, "ok   consent store: answers").await;
}

/// Fails naming the form when `citizen`'s id is in any blob: in clear, or
/// as its plain SHA-256 (hex either case, or raw).
pub(crate) fn assert_no_citizen_id(blobs: &[Vec<u8>], citizen: &str) {
    let digest = Sha256::digest(citizen.as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    let needles: [(&str, Vec<u8>); 4] = [
        ("in clear", citizen.as_bytes().to_vec()),
        ("as sha256 hex", hex.clone().into_bytes()),
        ("as SHA256 HEX", hex.to_uppercase().into_bytes()),
        ("as raw sha256", digest.to_vec()),
    ];
    for blob in blobs {
        for (what, needle) in &needles {
            assert!(
                !contains(blob, needle),
                "citizen {citizen} is in Redis {what}: {}",
                String::from_utf8_lossy(blob)
            );
        }
    }
}

/// Every key of the Redis at `url`, with every byte it holds: the key
/// names, their `DUMP` and their values read by type.
pub(crate) async fn everything_in(url: &str) -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
    let client = redis::Client::open(url).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let mut keys: Vec<Vec<u8>> = Vec::new();
    let mut cursor = 0u64;
    for _ in 0..10_000 {
        let (next, batch): (u64, Vec<Vec<u8>>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("COUNT")
            .arg(100)
            .query_async(&mut conn)
            .await
            .unwrap();
        keys.extend(batch);
        cursor = next;
        if cursor == 0 {
            break;
        }
    }
    assert_eq!(cursor, 0, "SCAN did not finish");
    let mut blobs = keys.clone();
    for key in &keys {
        let kind: String = redis::cmd("TYPE")
            .arg(key)
            .query_async(&mut conn)
            .await
            .unwrap();
        let read = match kind.as_str() {
            "string" => redis::cmd("GET").arg(key).clone(),
            "hash" => redis::cmd("HGETALL").arg(key).clone(),
            "zset" => redis::cmd("ZRANGE")
                .arg(key)
                .arg(0)
                .arg(-1)
                .arg("WITHSCORES")
                .clone(),
            "set" => redis::cmd("SMEMBERS").arg(key).clone(),
            "list" => redis::cmd("LRANGE").arg(key).arg(0).arg(-1).clone(),
            "stream" => redis::cmd("XRANGE").arg(key).arg("-").arg("+").clone(),
            other => panic!("a key of type {other}: read it here too"),
        };
        for cmd in [read, redis::cmd("DUMP").arg(key).clone()] {
            let value: redis::Value = cmd.query_async(&mut conn).await.unwrap();
            flatten(value, &mut blobs);
        }
    }
    (keys, blobs)
}

fn flatten(value: redis::Value, out: &mut Vec<Vec<u8>>) {
    match value {
        redis::Value::BulkString(bytes) => out.push(bytes),
        redis::Value::SimpleString(s) => out.push(s.into_bytes()),
        redis::Value::Array(items) | redis::Value::Set(items) => {
            items.into_iter().for_each(|v| flatten(v, out));
        }
        redis::Value::Map(pairs) => pairs.into_iter().for_each(|(k, v)| {
            flatten(k, out);
            flatten(v, out);
        }),
        other => out.push(format!("{other:?}").into_bytes()),
    }
}

pub(crate) fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_holds_no_citizen_id_in_clear_or_as_a_plain_hash() {
    let redis = Redis::start();
    let (pki, _gw, addr, _echos) = consent_gateway(&redis.url()).await;
    let education = channel(&addr, &pki.files("education")).await.unwrap();
    let mut portal = portal(&addr, &pki).await;
    let hour = Duration::from_secs(3600);
    let citizens = ["AB123456", "CD234567"];
    let once = grant(&mut portal, citizens[0], "school-enrolment", 1, hour).await;
    let open = grant(&mut portal, citizens[0], "school-grant", 0, hour).await;
    let other = grant(&mut portal, citizens[1], "school-enrolment", 0, hour).await;

    // Checks, max_uses and revocation behave on the sealed consents.
    call_raw(
        &education,
        call("school-enrolment", citizens[0], Some(&once)),
    )
    .await
    .expect("the first use");
    assert_eq!(
        reason_of(
            &education,
            call("school-enrolment", citizens[0], Some(&once))
        )
        .await,
        (Code::PermissionDenied, "CONSENT_EXPIRED".into())
    );
    call_raw(&education, call("school-grant", citizens[0], Some(&open)))
        .await
        .expect("an unlimited consent");
    portal
        .revoke(pb::RevokeRequest { id: open.clone() })
        .await
        .unwrap();
    assert_eq!(
        reason_of(&education, call("school-grant", citizens[0], Some(&open))).await,
        (Code::PermissionDenied, "CONSENT_REVOKED".into())
    );
    call_raw(
        &education,
        call("school-enrolment", citizens[1], Some(&other)),
    )
    .await
    .expect("another citizen's consent");
    let listed = portal
        .list_by_subject(pb::ListBySubjectRequest {
            subject: citizens[0].into(),
        })
        .await
        .unwrap()
        .into_inner()
        .consents;
    assert_eq!(listed.len(), 2, "the citizen lists both consents");

    let (keys, blobs) = everything_in(&redis.url()).await;
    // The scan saw the consents (their ids are in the keys) and the indexes.
    for id in [&once, &open, &other] {
        assert!(
            keys.iter().any(|k| contains(k, id.as_bytes())),
            "no key for consent {id}: {keys:?}"
        );
    }
    let indexes = keys
        .iter()
        .filter(|k| k.starts_with(b"jisr:subject:"))
        .count();
    assert_eq!(indexes, 2, "{keys:?}");
    for citizen in citizens {
        assert_no_citizen_id(&blobs, citizen);
    }
}
