//! A plain HTTP/1.0 GET against a gateway's admin listener.

use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// `GET path` on `addr`: the status code and the body.
pub async fn get(addr: &str, path: &str) -> (u16, String) {
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    tcp.write_all(format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), tcp.read_to_end(&mut raw))
        .await
        .expect("the admin listener answers within 10 s")
        .unwrap();
    let text = String::from_utf8(raw).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").expect("an HTTP answer");
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status code");
    (status, body.to_owned())
}

/// Polls `/readyz` (up to 10 s) until its body contains `needle`; returns
/// that answer. Readiness shows what a background probe last found, so a
/// change (Redis killed, frozen, back) shows within a probe or two.
pub async fn wait_readyz(addr: &str, needle: &str) -> (u16, String) {
    let start = Instant::now();
    loop {
        let (status, body) = get(addr, "/readyz").await;
        if body.contains(needle) {
            return (status, body);
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "/readyz never showed {needle:?}; last:\n{body}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Polls `/metrics` (up to 10 s) until a line starts with `line`; returns it.
pub async fn wait_metric(addr: &str, line: &str) -> String {
    let start = Instant::now();
    loop {
        let (_, body) = get(addr, "/metrics").await;
        if let Some(found) = body.lines().find(|l| l.starts_with(line)) {
            return found.to_owned();
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "no metric line starting with {line:?} in:\n{body}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
