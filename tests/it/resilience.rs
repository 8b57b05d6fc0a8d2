//! Resilience: a hung provider trips its route timeout and its breaker while
//! the routes to other providers stay fast; calls over a provider's
//! in-flight limit or a consumer's rate are refused at once with a retry
//! hint; a dead instance of a provider is ejected and the others serve.

use crate::support::client::reason;
use crate::support::echo::Echo;
use crate::support::*;
use std::time::{Duration, Instant};
use tonic::transport::Channel;
use tonic::Code;
use tonic_types::StatusExt as _;

/// Adds `keys` to the `[[agency]]` whose upstream is `addr`.
fn with_agency_keys(config: &str, addr: &str, keys: &str) -> String {
    let line = format!("upstream = \"{addr}\"");
    assert!(config.contains(&line), "test bug: no upstream {addr}");
    config.replacen(&line, &format!("{line}\n{keys}"), 1)
}

/// `n` sequential calls on the healthy route, each of which must answer.
/// (How fast they stay while another route hangs is measured by the
/// benchmarks, not asserted here: a loaded machine would fail any bound.)
async fn healthy_calls(channel: &Channel, n: usize) {
    for i in 0..n {
        call_raw(
            channel,
            RawCall::new(BIRTH, birth(CITIZEN), "bac-candidature"),
        )
        .await
        .unwrap_or_else(|e| panic!("the healthy route must answer (call {i}): {e:?}"));
    }
}

fn retry_delay(status: &tonic::Status) -> Duration {
    status
        .get_details_retry_info()
        .and_then(|r| r.retry_delay)
        .unwrap_or_else(|| panic!("no RetryInfo in {status:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_provider_trips_its_timeout_and_breaker_while_another_route_stays_fast() {
    let pki = Pki::new();
    let cs = Echo::start(&pki.dir, "civil-status").await;
    let hung = Echo::hanging(&pki.dir, "tax").await;
    let health = Echo::start(&pki.dir, "health").await;
    let up = Upstreams::echoes(&cs, &hung, &health);
    let config = with_agency_keys(
        &gateway_config(&pki, &up, "", ""),
        &up.tax,
        "timeout_ms = 300\nbreaker_failures = 3\nbreaker_cooldown_ms = 60000",
    );
    let (gw, addr) = spawn_gateway(&pki, "gateway", &config);
    let education = channel(&addr, &pki.files("education")).await.unwrap();

    healthy_calls(&education, 5).await;

    // Twenty calls into the hung provider, with no deadline of their own.
    let hanging: Vec<_> = (0..20)
        .map(|_| {
            let ch = education.clone();
            tokio::spawn(async move {
                let started = Instant::now();
                let result = call_raw(
                    &ch,
                    RawCall::new(TAX, tax(CITIZEN, 2025), "bac-candidature"),
                )
                .await;
                (started.elapsed(), result)
            })
        })
        .collect();
    // Once all twenty hang at the provider, the route to civil-status still
    // answers.
    hung.wait_received(20).await;
    healthy_calls(&education, 20).await;

    for task in hanging {
        // The calls carry no deadline: only the route's timeout ends them
        // (30 s here tells a timeout that never fires from a slow one).
        let (took, result) = tokio::time::timeout(Duration::from_secs(30), task)
            .await
            .expect("the route timeout never fired")
            .unwrap();
        let status = result.expect_err("a hung provider cannot answer");
        assert_eq!(status.code(), Code::Unavailable, "{status:?}");
        assert_eq!(reason(&status), "PROVIDER_TIMEOUT");
        assert!(status.message().contains("300 ms"), "{status:?}");
        // Not before the timeout (a lower bound holds on any machine).
        assert!(
            took >= Duration::from_millis(300),
            "the route timeout is 300 ms, the call ended after {took:?}"
        );
    }
    gw.wait_log("provider instance ejected");

    // The breaker is open: the next call is refused without reaching the
    // provider, with a hint.
    let reached = hung.received();
    let status = call_raw(
        &education,
        RawCall::new(TAX, tax(CITIZEN, 2025), "bac-candidature"),
    )
    .await
    .expect_err("the breaker is open");
    assert_eq!(hung.received(), reached, "the call reached the provider");
    assert_eq!(status.code(), Code::Unavailable);
    assert_eq!(reason(&status), "PROVIDER_UNAVAILABLE");
    let wait = retry_delay(&status);
    assert!(
        wait > Duration::from_secs(50) && wait <= Duration::from_secs(60),
        "{wait:?}"
    );
    // The delay is in the text too, for clients that do not decode details.
    let said = jisr::refusal::retry_in(wait);
    assert!(status.message().contains(&said), "{status:?}");
    // The healthy route was never affected.
    healthy_calls(&education, 5).await;
    let logs = gw.logs();
    assert!(logs.contains("reason=PROVIDER_TIMEOUT"), "{logs}");
    // The metrics tell the same story.
    let admin = admin_addr(&pki, "gateway", &gw);
    let timeouts = admin::wait_metric(
        &admin,
        "jisr_exchanges_total{consumer=\"education\",provider=\"tax\",method=\"ma.tax.v1.TaxRecords/GetTaxStatus\",outcome=\"failed\",reason=\"PROVIDER_TIMEOUT\"}",
    )
    .await;
    assert!(timeouts.ends_with(" 20"), "{timeouts}");
    let ejected = admin::wait_metric(
        &admin,
        &format!(
            "jisr_upstream_instance_ejected{{provider=\"tax\",instance=\"{}\",state=\"open\"}}",
            up.tax
        ),
    )
    .await;
    assert!(ejected.ends_with(" 1"), "{ejected}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_over_a_providers_in_flight_limit_are_shed_with_a_retry_hint() {
    let pki = Pki::new();
    let cs = Echo::start(&pki.dir, "civil-status").await;
    let tax_echo = Echo::start(&pki.dir, "tax").await;
    let health = Echo::start(&pki.dir, "health").await;
    let up = Upstreams::echoes(&cs, &tax_echo, &health);
    let config = with_agency_keys(
        &gateway_config(&pki, &up, "", ""),
        &up.health,
        "max_in_flight = 2",
    );
    let (_gw, addr) = start_gateway(&pki, "gateway", &config);
    let education = channel(&addr, &pki.files("education")).await.unwrap();
    let slow: Vec<_> = (0..2)
        .map(|_| {
            let ch = education.clone();
            tokio::spawn(async move {
                let call = RawCall::new(VACCINATION, vaccination(CITIZEN), "bac-candidature")
                    .with("x-echo-delay-ms", "4000");
                call_raw(&ch, call).await
            })
        })
        .collect();
    // Once both are at the provider (held 4 s there), the third is over
    // the limit: shed, never sent to the provider.
    health.wait_received(2).await;
    let status = call_raw(
        &education,
        RawCall::new(VACCINATION, vaccination(CITIZEN), "bac-candidature"),
    )
    .await
    .expect_err("two slow calls are in flight: the third is shed");
    assert_eq!(health.received(), 2, "the shed call reached the provider");
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert_eq!(reason(&status), "OVERLOADED");
    assert!(status.message().contains("2 calls in flight"), "{status:?}");
    assert_eq!(retry_delay(&status), Duration::from_millis(200));
    assert!(status.message().contains("retry in 200 ms"), "{status:?}");
    // Other providers are not limited by health's limit.
    call_raw(
        &education,
        RawCall::new(BIRTH, birth(CITIZEN), "bac-candidature"),
    )
    .await
    .unwrap();
    for task in slow {
        task.await.unwrap().expect("admitted calls complete");
    }
    // Once they are done, calls are admitted again.
    call_raw(
        &education,
        RawCall::new(VACCINATION, vaccination(CITIZEN), "bac-candidature"),
    )
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_over_its_rate_is_refused_with_a_retry_hint() {
    let extra = "\n[[rate_limit]]\nconsumer = \"education\"\nper_second = 2\nburst = 3\n";
    let (pki, gw, addr, _echos) = crate::routing::echo_network("", extra).await;
    let education = channel(&addr, &pki.files("education")).await.unwrap();
    let tax = channel(&addr, &pki.files("tax")).await.unwrap();
    for _ in 0..3 {
        call_raw(
            &education,
            RawCall::new(BIRTH, birth(CITIZEN), "bac-candidature"),
        )
        .await
        .expect("within the burst");
    }
    let status = call_raw(
        &education,
        RawCall::new(BIRTH, birth(CITIZEN), "bac-candidature"),
    )
    .await
    .expect_err("over the rate");
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert_eq!(reason(&status), "RATE_LIMITED");
    assert!(
        status.message().contains("2 calls per second"),
        "{status:?}"
    );
    let wait = retry_delay(&status);
    assert!(
        wait > Duration::ZERO && wait <= Duration::from_millis(500),
        "{wait:?}"
    );
    let said = jisr::refusal::retry_in(wait);
    assert!(status.message().contains(&said), "{status:?}");
    // Another consumer has no limit.
    let family = family(CITIZEN);
    for _ in 0..5 {
        call_raw(&tax, RawCall::new(FAMILY, family.clone(), "tax-household"))
            .await
            .unwrap();
    }
    // After the hinted delay, education may call again: the gateway's
    // clock is moved past it rather than waited for.
    gw.clock.advance(wait);
    call_raw(
        &education,
        RawCall::new(BIRTH, birth(CITIZEN), "bac-candidature"),
    )
    .await
    .expect("the bucket refilled");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_instance_is_ejected_and_the_other_instance_serves() {
    let pki = Pki::new();
    let cs = Echo::start(&pki.dir, "civil-status").await;
    let tax_echo = Echo::start(&pki.dir, "tax").await;
    let health = Echo::start(&pki.dir, "health").await;
    // A port nobody listens on any more.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().to_string()
    };
    let up = Upstreams::echoes(&cs, &tax_echo, &health);
    let config = gateway_config(&pki, &up, "", "").replacen(
        &format!("upstream = \"{}\"", up.civil_status),
        &format!(
            "upstream = [\"{dead}\", \"{}\"]\nbreaker_failures = 1\nbreaker_cooldown_ms = 60000",
            up.civil_status
        ),
        1,
    );
    let (gw, addr) = spawn_gateway(&pki, "gateway", &config);
    let education = channel(&addr, &pki.files("education")).await.unwrap();
    let mut failures = 0;
    for _ in 0..20 {
        match call_raw(
            &education,
            RawCall::new(BIRTH, birth(CITIZEN), "bac-candidature"),
        )
        .await
        {
            Ok(_) => {}
            Err(status) => {
                assert_eq!(reason(&status), "PROVIDER_UNAVAILABLE");
                failures += 1;
            }
        }
    }
    assert!(
        failures <= 1,
        "only the call that found the dead instance may fail, {failures} did"
    );
    let logs = gw.wait_log("provider instance ejected");
    assert!(
        logs.contains(&dead),
        "the ejected instance is named: {logs}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shared_rate_limit_holds_across_two_gateways_through_redis() {
    let redis = crate::support::redis_server::Redis::start();
    let extra = format!(
        "\n[consent]\nredis_url = \"redis://127.0.0.1:{}\"\n\n[[rate_limit]]\nconsumer = \"education\"\nper_second = 1\nburst = 4\nshared = true\n",
        redis.port
    );
    let pki = Pki::new();
    let cs = Echo::start(&pki.dir, "civil-status").await;
    let tax_echo = Echo::start(&pki.dir, "tax").await;
    let health = Echo::start(&pki.dir, "health").await;
    let up = Upstreams::echoes(&cs, &tax_echo, &health);
    let config = gateway_config(&pki, &up, "", &extra);
    let (_a, addr_a) = start_gateway(&pki, "gw-a", &config);
    // Each replica has its own node id (issue 16).
    let config_b = crate::support::replica_config(&pki, &config, "gw-2");
    let (_b, addr_b) = start_gateway(&pki, "gw-b", &config_b);
    let a = channel(&addr_a, &pki.files("education")).await.unwrap();
    let b = channel(&addr_b, &pki.files("education")).await.unwrap();
    let mut passed = [0, 0];
    let mut refused = [0, 0];
    for i in 0..8 {
        let ch = if i % 2 == 0 { &a } else { &b };
        match call_raw(ch, RawCall::new(BIRTH, birth(CITIZEN), "bac-candidature")).await {
            Ok(_) => passed[i % 2] += 1,
            Err(status) => {
                assert_eq!(reason(&status), "RATE_LIMITED", "{status:?}");
                retry_delay(&status);
                refused[i % 2] += 1;
            }
        }
    }
    // One bucket of 4 for both nodes (plus at most one refill at 1/s while
    // the calls run); two per-node buckets would have let all 8 through.
    let total = passed[0] + passed[1];
    assert!((4..=5).contains(&total), "passed {passed:?}");
    assert!(refused[0] > 0 && refused[1] > 0, "refused {refused:?}");
}

/// With Redis gone, a shared limit is counted on the node's own bucket:
/// neither every call refused nor every call let through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shared_rate_limit_falls_back_to_the_nodes_own_bucket_when_redis_fails() {
    let mut redis = crate::support::redis_server::Redis::start();
    let extra = format!(
        "\n[consent]\nredis_url = \"redis://127.0.0.1:{}\"\n\n[[rate_limit]]\nconsumer = \"education\"\nper_second = 1\nburst = 3\nshared = true\n",
        redis.port
    );
    let (pki, gw, addr, _echos) = crate::routing::spawned_echo_network("", &extra).await;
    let education = channel(&addr, &pki.files("education")).await.unwrap();
    redis.kill();
    let mut answers = Vec::new();
    for _ in 0..10 {
        let answer = call_raw(
            &education,
            RawCall::new(BIRTH, birth(CITIZEN), "bac-candidature"),
        )
        .await;
        answers.push(answer.map(drop).map_err(|status| {
            assert_eq!(reason(&status), "RATE_LIMITED", "{status:?}");
            retry_delay(&status)
        }));
    }
    // The node's bucket of 3 lets the burst through, then refuses (a
    // refill of 1/s may let one more call through meanwhile).
    assert!(
        answers[..3].iter().all(Result::is_ok),
        "refused within the burst: {answers:?}"
    );
    let passed = answers.iter().filter(|a| a.is_ok()).count();
    assert!(
        (3..10).contains(&passed),
        "{passed} of 10 passed: {answers:?}"
    );
    gw.wait_log("shared rate limit unavailable: counting on this node");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ejected_provider_is_probed_after_its_cooldown_and_comes_back() {
    let pki = Pki::new();
    let tax_echo = Echo::start(&pki.dir, "tax").await;
    let health = Echo::start(&pki.dir, "health").await;
    let down = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().to_string()
    };
    let up = Upstreams {
        civil_status: down.clone(),
        tax: tax_echo.addr.to_string(),
        health: health.addr.to_string(),
    };
    let config = with_agency_keys(
        &gateway_config(&pki, &up, "", ""),
        &down,
        "breaker_failures = 1\nbreaker_cooldown_ms = 3600000",
    );
    let (gw, addr) = start_gateway(&pki, "gateway", &config);
    let education = channel(&addr, &pki.files("education")).await.unwrap();
    let call = || RawCall::new(BIRTH, birth(CITIZEN), "bac-candidature");
    // The first call finds the provider down and ejects its only instance.
    let status = call_raw(&education, call()).await.unwrap_err();
    assert_eq!(reason(&status), "PROVIDER_UNAVAILABLE");
    let ejected = |state: &str| {
        format!("jisr_upstream_instance_ejected{{provider=\"civil-status\",instance=\"{down}\",state=\"{state}\"}}")
    };
    let open = admin::wait_metric(&gw.admin, &ejected("open")).await;
    assert!(open.ends_with(" 1"), "{open}");
    // The next is refused without trying, with the cooldown left as hint.
    let status = call_raw(&education, call()).await.unwrap_err();
    assert_eq!(reason(&status), "PROVIDER_UNAVAILABLE");
    assert!(status.message().contains("set aside"), "{status:?}");
    let wait = retry_delay(&status);
    assert!(
        wait > Duration::from_secs(3500) && wait <= Duration::from_secs(3600),
        "{wait:?}"
    );
    // The provider comes back on the same address; an hour later on the
    // gateway's clock (advanced, not waited for) the probe call reaches it
    // and closes the breaker.
    let _back = Echo::start_at(&pki.dir, "civil-status", &down).await;
    let status = call_raw(&education, call()).await.unwrap_err();
    assert!(status.message().contains("set aside"), "still cooling down");
    gw.clock.advance(wait);
    call_raw(&education, call()).await.expect("the probe call");
    let closed = admin::wait_metric(&gw.admin, &ejected("closed")).await;
    assert!(closed.ends_with(" 0"), "back in service: {closed}");
    for _ in 0..5 {
        call_raw(&education, call()).await.unwrap();
    }
}
