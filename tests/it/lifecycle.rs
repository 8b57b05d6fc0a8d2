//! Start and stop: SIGTERM drains in-flight calls and exits 0.

use crate::routing::spawned_echo_network;
use crate::support::*;

/// A `GetBirthRecord` call, and its request bytes (which the echo
/// provider sends back).
fn birth_call() -> (Vec<u8>, RawCall<'static>) {
    let body = birth(CITIZEN);
    let call = RawCall::new(BIRTH, body.clone(), "bac-candidature");
    (body.to_vec(), call)
}

// Multi-threaded: the client's connection must keep answering HTTP/2 pings
// while the test thread blocks waiting for the process to exit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_in_flight_calls_finish_and_exits_zero() {
    let (pki, mut gw, addr, echos) = spawned_echo_network("", "").await;
    let client = channel(&addr, &pki.files("education")).await.unwrap();
    let (body, call) = birth_call();
    let slow = call.with("x-echo-delay-ms", "800");
    let in_flight = tokio::spawn({
        let client = client.clone();
        async move { call_raw(&client, slow).await }
    });
    // SIGTERM once the call is in flight: the provider holds it.
    echos[0].wait_received(1).await;
    let pid = gw.child.as_ref().unwrap().id().to_string();
    std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    let (echoed, _) = in_flight
        .await
        .unwrap()
        .expect("the in-flight call must complete");
    assert_eq!(&echoed[..], &body[..]);
    let status = gw.terminate();
    assert!(status.success(), "{status:?}");
    let logs = gw.logs();
    assert!(logs.contains("draining"), "{logs}");
    // No new connections after the drain.
    assert!(channel(&addr, &pki.files("education")).await.is_err());
}

#[test]
fn serve_refuses_to_start_on_a_broken_config_and_says_why() {
    let pki = Pki::new();
    let path = pki.root().join("broken.toml");
    std::fs::write(&path, "[node]\nid = \"gw-1\"\n").unwrap();
    let out = jisr()
        .arg("serve")
        .arg("--config")
        .arg(&path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("broken.toml") && stderr.contains("trust_domain"),
        "{stderr}"
    );
}

#[tokio::test]
async fn connections_are_served_on_the_configured_number_of_lanes() {
    // Spawned: the lanes are counted in the log and in /proc.
    let (pki, gw, addr, _echos) = spawned_echo_network("lanes = 3\n", "").await;
    gw.wait_log("serving connections on one thread per lane lanes=3");
    // Four connections over three lanes, each carrying calls.
    let mut clients = Vec::new();
    for _ in 0..4 {
        let client = channel(&addr, &pki.files("education")).await.unwrap();
        let (body, call) = birth_call();
        let (echoed, _) = call_raw(&client, call).await.expect("the call is carried");
        assert_eq!(&echoed[..], &body[..]);
        clients.push(client);
    }
    // The lane with the fewest open connections takes the next: 2, 1, 1.
    let admin = admin_addr(&pki, "gateway", &gw);
    let (_, metrics) = admin::get(&admin, "/metrics").await;
    let mut open: Vec<u32> = metrics
        .lines()
        .filter(|l| l.starts_with("jisr_lane_connections{"))
        .map(|l| l.rsplit(' ').next().unwrap().parse().unwrap())
        .collect();
    open.sort_unstable();
    assert_eq!(open, [1, 1, 2], "{metrics}");
    let pid = gw.child.as_ref().unwrap().id();
    let mut threads: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
        .map(|name| name.trim().to_owned())
        .filter(|name| name.starts_with("jisr-lane-"))
        .collect();
    threads.sort();
    assert_eq!(threads, ["jisr-lane-0", "jisr-lane-1", "jisr-lane-2"]);
}
