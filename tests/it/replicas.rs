//! One identity per replica: the node id from `JISR_NODE_ID`, a
//! per-replica certificate from `jisr pki issue --gateway-node`, and the
//! registry in the shared Redis that refuses a second live replica with
//! the same node id (real `jisr serve` processes, a real redis-server, real
//! mutual TLS).

use std::process::{Command, ExitStatus};
use std::time::{Duration, Instant};

use crate::support::proc::{jisr, Proc};
use crate::support::redis_server::Redis;
use crate::support::replicas::TTL_MS;
use crate::support::{self, client, Pki, Upstreams};

fn upstreams() -> Upstreams {
    // Nothing is called through them: the tests only start gateways.
    Upstreams {
        civil_status: "127.0.0.1:9".into(),
        tax: "127.0.0.1:9".into(),
        health: "127.0.0.1:9".into(),
    }
}

/// The standard config on a shared Redis, with `node` lines in `[node]`.
fn config(pki: &Pki, redis: &Redis, name: &str, node: &str) -> String {
    let node = format!("{node}\nregistration_ttl_ms = {TTL_MS}");
    let consent = format!(
        "\n[consent]\nredis_url = \"{}\"\npath = \"{name}-consents.redb\"\n",
        redis.url()
    );
    support::gateway_config(pki, &upstreams(), &node, &consent)
}

/// Runs `jisr serve` on `config` and waits (bounded) for it to exit.
fn serve_until_exit(pki: &Pki, name: &str, config: &str) -> (ExitStatus, String) {
    let path = pki.root().join(format!("{name}.toml"));
    let config =
        format!("{config}\n[audit]\ndir = \"{name}-audit\"\nsigning_key = \"{name}-audit.key\"\n");
    std::fs::write(&path, config).unwrap();
    let mut proc = Proc::spawn(name, jisr().arg("serve").arg("--config").arg(&path));
    let child = proc.child.as_mut().unwrap();
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return (status, proc.logs());
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "{name} kept running; log:\n{}",
            proc.logs()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn registration(redis: &Redis, node: &str) -> Option<String> {
    let client = redis::Client::open(redis.url()).unwrap();
    let mut conn = client.get_connection().unwrap();
    redis::cmd("GET")
        .arg(format!("jisr:node:{{{node}}}"))
        .query(&mut conn)
        .unwrap()
}

#[test]
fn a_second_replica_with_a_live_node_id_refuses_to_start_naming_the_first() {
    let pki = Pki::new();
    let redis = Redis::start();
    let (mut first, first_addr) =
        support::spawn_gateway(&pki, "first", &config(&pki, &redis, "first", ""));
    first.wait_log("gateway listening");

    let (status, logs) = serve_until_exit(&pki, "second", &config(&pki, &redis, "second", ""));
    assert!(!status.success(), "{logs}");
    assert!(
        logs.contains("node id `gw-1` is already live in this deployment"),
        "{logs}"
    );
    // It names the first by the address it listens on, and says what to do.
    assert!(
        logs.contains(&format!("at {first_addr} started ")),
        "{logs}"
    );
    assert!(logs.contains("give each replica its own node id"), "{logs}");
    assert!(logs.contains("wait up to 2 s"), "{logs}");

    // A clean stop leaves the registry at once: the second starts.
    assert!(first.terminate().success(), "{}", first.logs());
    assert_eq!(registration(&redis, "gw-1"), None);
    let (second, _) = support::spawn_gateway(&pki, "second", &config(&pki, &redis, "second", ""));
    second.wait_log("gateway listening");
    let entry = registration(&redis, "gw-1").expect("the second registered");
    assert!(!entry.contains(&first_addr), "{entry}");
}

/// A replica SIGKILLed and restarted at once with its own audit log (its
/// instance token) takes its registration back without waiting for the
/// TTL; another log under the same node id is still refused.
#[test]
fn a_killed_replica_restarted_with_its_own_log_takes_its_registration_back_at_once() {
    let pki = Pki::new();
    let redis = Redis::start();
    // A TTL far longer than the test: only the takeover can let it start.
    let config = |name: &str| {
        config(&pki, &redis, name, "").replace(
            &format!("registration_ttl_ms = {TTL_MS}"),
            "registration_ttl_ms = 600000",
        )
    };
    let (mut first, first_addr) = support::spawn_gateway(&pki, "own", &config("own"));
    first.wait_log("gateway listening");
    let token = pki.root().join("own-audit").join("instance.token");
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&token).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600, "{}", token.display());
    first.kill();
    let left = registration(&redis, "gw-1").expect("a SIGKILL leaves the registration");
    assert!(left.contains(&first_addr), "{left}");

    // Another replica (its own log) with the same id: refused, as before.
    let (status, logs) = serve_until_exit(&pki, "stranger", &config("stranger"));
    assert!(!status.success(), "{logs}");
    assert!(
        logs.contains("node id `gw-1` is already live in this deployment"),
        "{logs}"
    );
    assert!(
        logs.contains(&format!("at {first_addr} started ")),
        "{logs}"
    );

    // The same replica (same log dir), restarted at once: it starts.
    let (again, again_addr) = support::spawn_gateway(&pki, "own", &config("own"));
    let logs = again.wait_log("gateway listening");
    assert!(
        logs.contains("took over this replica's own registration"),
        "{logs}"
    );
    let entry = registration(&redis, "gw-1").expect("registered again");
    let start = Instant::now();
    let mut entry = entry;
    // The bound address is written just after the takeover.
    while !entry.contains(&again_addr) {
        assert!(start.elapsed() < Duration::from_secs(10), "{entry}");
        std::thread::sleep(Duration::from_millis(20));
        entry = registration(&redis, "gw-1").expect("registered again");
    }
}

#[test]
fn the_heartbeat_keeps_the_registration_alive_and_it_expires_after_a_kill() {
    let pki = Pki::new();
    let redis = Redis::start();
    let (mut proc, addr) = support::spawn_gateway(&pki, "kept", &config(&pki, &redis, "kept", ""));
    proc.wait_log("gateway listening");

    // The registry lists it under the address it is bound to, with its
    // audit verifier key.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let shared = jisr::redis::Shared::new(&redis.url(), Duration::from_secs(1), "test");
    let registry = jisr::cluster::Registry::new(shared, Duration::from_millis(TTL_MS));
    let start = Instant::now();
    let nodes = loop {
        let nodes = rt.block_on(registry.list()).unwrap();
        if nodes.iter().any(|n| n.address == addr) || start.elapsed() > Duration::from_secs(5) {
            break nodes;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(nodes.len(), 1, "{nodes:?}");
    assert_eq!(nodes[0].node, "gw-1");
    assert_eq!(nodes[0].address, addr);
    assert!(
        nodes[0]
            .verifier_key
            .starts_with("interop.gov.ma/jisr/gw-1+"),
        "{nodes:?}"
    );

    // Three TTLs: without heartbeats the key would have expired twice over.
    let watched = Instant::now();
    while watched.elapsed() < Duration::from_millis(3 * TTL_MS) {
        assert!(
            registration(&redis, "gw-1").is_some(),
            "expired while the node ran; log:\n{}",
            proc.logs()
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    proc.kill();
    // Nothing refreshes it any more: Redis holds it for at most its TTL
    // (read from Redis, not timed here), then drops it. The deadline only
    // catches a key that never goes.
    let client = redis::Client::open(redis.url()).unwrap();
    let ttl: i64 = redis::cmd("PTTL")
        .arg("jisr:node:{gw-1}")
        .query(&mut client.get_connection().unwrap())
        .unwrap();
    // -2: already gone; -1 would be a key kept for ever.
    assert!(
        ttl == -2 || (0..=i64::try_from(TTL_MS).unwrap()).contains(&ttl),
        "the registration is kept for {ttl} ms, not within its TTL"
    );
    let killed = Instant::now();
    while registration(&redis, "gw-1").is_some() {
        assert!(
            killed.elapsed() < Duration::from_secs(20),
            "the registration outlived its TTL after a kill"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(rt.block_on(registry.list()).unwrap().is_empty());
}

fn check_config(path: &std::path::Path, node_id: Option<&str>) -> (bool, String) {
    let mut cmd = jisr();
    cmd.arg("check-config").arg(path).env_remove("JISR_NODE_ID");
    if let Some(id) = node_id {
        cmd.env("JISR_NODE_ID", id);
    }
    crate::support::outcome(&cmd.output().unwrap())
}

#[test]
fn a_replica_takes_its_node_id_from_jisr_node_id_and_its_own_certificate() {
    let pki = Pki::new();
    let out = Command::new(env!("CARGO_BIN_EXE_jisr"))
        .args(["pki", "issue", "--gateway-node", "gw-2", "--dir"])
        .arg(&pki.dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(pki.dir.join("gateway-gw-2.crt").exists());
    assert!(pki.dir.join("gateway-gw-2.key").exists());

    let redis = Redis::start();
    let text = config(&pki, &redis, "env", "")
        .replace("id = \"gw-1\"", "id_from = \"env\"")
        .replace("gateway.crt", "gateway-gw-2.crt")
        .replace("gateway.key", "gateway-gw-2.key");
    let path = pki.root().join("env-check.toml");
    std::fs::write(&path, &text).unwrap();

    let (ok, out) = check_config(&path, Some("gw-2"));
    assert!(ok, "{out}");
    assert!(
        out.contains("node gw-2 (from JISR_NODE_ID), audit log origin interop.gov.ma/jisr/gw-2"),
        "{out}"
    );
    let (ok, out) = check_config(&path, None);
    assert!(!ok && out.contains("JISR_NODE_ID"), "{out}");
    // gw-3 is not the node the certificate names.
    let (ok, out) = check_config(&path, Some("gw-3"));
    assert!(!ok && out.contains("gw-3"), "{out}");

    let (proc, addr) = support::spawn_gateway_env(&pki, "env", &text, &[("JISR_NODE_ID", "gw-2")]);
    proc.wait_log("gateway listening");
    let entry = registration(&redis, "gw-2").expect("registered as gw-2");
    assert!(entry.contains("interop.gov.ma/jisr/gw-2+"), "{entry}");

    // An agency calls it over mutual TLS: the node serves with gw-2's certificate.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let status = rt.block_on(async {
        let channel = client::channel(&addr, &pki.files("education"))
            .await
            .unwrap();
        let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
        health
            .check(tonic_health::pb::HealthCheckRequest::default())
            .await
            .unwrap()
            .into_inner()
            .status
    });
    assert_eq!(
        status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );
}

#[test]
fn a_replica_starts_while_redis_is_down_and_registers_once_it_answers() {
    let pki = Pki::new();
    let mut redis = Redis::start();
    redis.kill();
    let (proc, _addr) = support::spawn_gateway(&pki, "early", &config(&pki, &redis, "early", ""));
    proc.wait_log("gateway listening");
    proc.wait_log("starting anyway and registering when Redis answers");

    redis.restart();
    let start = Instant::now();
    while registration(&redis, "gw-1").is_none() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "never registered after Redis came back; log:\n{}",
            proc.logs()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    proc.wait_log("registered in the replica registry");
}
