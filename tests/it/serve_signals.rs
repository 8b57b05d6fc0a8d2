//! `jisr serve` and its signals: the address files say the node is up only
//! once it takes SIGHUP as a reload, so a supervisor that reloads as soon as
//! it sees them never kills the node (SIGHUP's default action) nor loses
//! the reload.

use std::time::{Duration, Instant};

use crate::support::proc::{jisr, Proc};
use crate::support::{self, Pki, Upstreams};

#[test]
fn a_sighup_sent_as_soon_as_the_address_file_appears_is_a_reload() {
    let pki = Pki::new();
    let upstreams = Upstreams {
        // Nothing is called through them: the test only reloads.
        civil_status: "127.0.0.1:9".into(),
        tax: "127.0.0.1:9".into(),
        health: "127.0.0.1:9".into(),
    };
    // No file polling: a reload can only come from the signal.
    let config = support::gateway_config(&pki, &upstreams, "reload_poll_ms = 0", "");
    let path = support::write_config(&pki, "hup", &config);
    let addr_file = pki.root().join("hup.addr");
    let mut proc = Proc::spawn(
        "hup",
        jisr()
            .arg("serve")
            .arg("--config")
            .arg(&path)
            .arg("--addr-file")
            .arg(&addr_file),
    );
    // Polled tightly, so the signal lands as close to the file as a
    // supervisor watching it would send it.
    let start = Instant::now();
    while !addr_file.exists() {
        let exited = proc.child.as_mut().unwrap().try_wait().unwrap();
        assert!(
            exited.is_none(),
            "exited before listening:\n{}",
            proc.logs()
        );
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "no address file; log:\n{}",
            proc.logs()
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    proc.hangup();

    let logs = proc.wait_log("configuration reloaded");
    assert!(
        logs.contains("SIGHUP: reloading the configuration"),
        "{logs}"
    );
    let exited = proc.child.as_mut().unwrap().try_wait().unwrap();
    assert!(exited.is_none(), "the SIGHUP ended it: {exited:?}\n{logs}");
    assert!(proc.terminate().success(), "{}", proc.logs());
}

/// The order itself, in this process (one process per test): a SIGHUP
/// that arrives after `gateway::listen` returned and before the gateway
/// serves is kept and applied once it serves. Were the handler installed
/// later, the signal's default action would end this test's process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sighup_between_listen_and_serve_is_kept_and_applied() {
    let pki = Pki::new();
    let upstreams = Upstreams {
        civil_status: "127.0.0.1:9".into(),
        tax: "127.0.0.1:9".into(),
        health: "127.0.0.1:9".into(),
    };
    let config = support::gateway_config(&pki, &upstreams, "reload_poll_ms = 0", "");
    let path = support::write_config(&pki, "held", &config);
    let config = jisr::config::Config::load(&path).unwrap();
    let (gateway, _) = jisr::gateway::Gateway::build(&config).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let listening = jisr::gateway::listen(gateway, listener, None).await;
    let status = listening.gateway().reload_status().clone();

    let pid = std::process::id().to_string();
    let sent = std::process::Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .unwrap();
    assert!(sent.success());
    assert_eq!(status.reloads(), 0, "reloaded before serving");

    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(listening.serve(async {
        let _ = stopped.await;
    }));
    let start = Instant::now();
    while status.reloads() == 0 {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the SIGHUP was not applied: {:?}",
            status.last_error()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(status.failures(), 0, "{:?}", status.last_error());
    let _ = stop.send(());
    serving.await.unwrap();
}

/// The shutdown signal is registered when `shutdown_signal()` is called,
/// not when the future is first polled: `jisr serve` calls it before it
/// writes its address files, so a SIGTERM sent as soon as they appear is a
/// drain. Were it registered lazily, SIGTERM's default action would end
/// this test's process (one process per test).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigterm_before_the_shutdown_future_is_polled_is_kept() {
    let shutdown = jisr::tools::cli::shutdown_signal();
    let pid = std::process::id().to_string();
    let sent = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(sent.success());
    tokio::time::timeout(Duration::from_secs(10), shutdown)
        .await
        .expect("the SIGTERM sent before the first poll resolves the future");
}
