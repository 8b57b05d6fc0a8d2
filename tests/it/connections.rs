//! Bounds on client connections (issue 19): a connection that sends no
//! request within `first_request_timeout_ms` is closed, an idle one is sent
//! GOAWAY and closed after `idle_timeout_ms`, and the node holds at most
//! `max_connections`.

use crate::routing::echo_network;
use crate::support::*;
use jisr::identity::{AgencyId, PeerIdentity, TrustDomain};
use std::time::Duration;
use tokio::io::AsyncReadExt as _;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

/// Longest a test waits for the server to act; the configured times are
/// well under it.
const BOUND: Duration = Duration::from_secs(30);

async fn tls(addr: &str, pki: &Pki, agency: &str) -> std::io::Result<TlsStream<TcpStream>> {
    let domain = TrustDomain::parse(DOMAIN).unwrap();
    let gateway = PeerIdentity::Gateway(AgencyId::parse("gw-1").unwrap());
    let config = jisr::tls::client_config(&pki.files(agency), &domain, gateway).unwrap();
    let tcp = TcpStream::connect(addr).await?;
    let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
    tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await
}

/// Reads until the server closes the connection (EOF or reset), within
/// [`BOUND`]; whatever the server sent before (its HTTP/2 SETTINGS) is skipped.
async fn closed_by_server(stream: &mut TlsStream<TcpStream>) -> bool {
    let mut buf = [0u8; 1024];
    let read_to_end = async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    };
    tokio::time::timeout(BOUND, read_to_end).await.is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_that_never_sends_the_preface_is_closed() {
    let (pki, _gw, addr, _echos) = echo_network("first_request_timeout_ms = 300", "").await;
    let mut silent = tls(&addr, &pki, "education").await.unwrap();
    assert!(
        closed_by_server(&mut silent).await,
        "a TLS connection with no HTTP/2 preface must be closed by the server"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_connection_is_sent_goaway_and_closed() {
    use http_body_util::Empty;
    use hyper_util::rt::{TokioExecutor, TokioIo};
    let (pki, _gw, addr, _echos) = echo_network("idle_timeout_ms = 300", "").await;
    let stream = tls(&addr, &pki, "education").await.unwrap();
    let (mut sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .unwrap();
    let connection = tokio::spawn(connection);
    let request = http::Request::post(format!("https://{addr}/no.such.Service/Method"))
        .header("content-type", "application/grpc")
        .body(Empty::<bytes::Bytes>::new())
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    assert_eq!(response.headers()["grpc-status"], "12", "{response:?}");
    drop(response);
    let ended = tokio::time::timeout(BOUND, connection).await;
    let ended = ended.expect("the idle connection must be closed by the server");
    assert!(
        ended.unwrap().is_ok(),
        "the client sees the connection end without an error"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_connection_over_the_cap_is_refused() {
    let (pki, _gw, addr, _echos) = echo_network("max_connections = 2", "").await;
    let first = tls(&addr, &pki, "education").await.unwrap();
    let mut second = tls(&addr, &pki, "education").await.unwrap();
    let third = match tls(&addr, &pki, "education").await {
        // TLS 1.3: the client may finish before the server has read its
        // Finished; the server's close then shows on the first read.
        Ok(mut third) => closed_by_server(&mut third).await,
        Err(_) => true,
    };
    assert!(third, "the third connection must be refused");
    // A place given back is taken again.
    drop(first);
    let deadline = tokio::time::Instant::now() + BOUND;
    let mut admitted = false;
    while tokio::time::Instant::now() < deadline && !admitted {
        if let Ok(mut next) = tls(&addr, &pki, "education").await {
            let mut buf = [0u8; 64];
            // Admitted: the server sends its HTTP/2 SETTINGS; refused: EOF.
            admitted = matches!(
                tokio::time::timeout(BOUND, next.read(&mut buf)).await,
                Ok(Ok(n)) if n > 0
            );
        }
    }
    assert!(admitted, "a place given back must admit a new connection");
    assert!(!closed_by_server_now(&mut second).await);
}

/// Whether the server has closed `stream` already (nothing pending and no
/// EOF means open).
async fn closed_by_server_now(stream: &mut TlsStream<TcpStream>) -> bool {
    let mut buf = [0u8; 1024];
    loop {
        match tokio::time::timeout(Duration::from_millis(200), stream.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0) | Err(_)) => return true,
            Ok(Ok(_)) => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agency_the_configuration_does_not_declare_is_refused_and_counted() {
    let (pki, gw, addr, _echos) = echo_network("", "").await;
    let domain = TrustDomain::parse(DOMAIN).unwrap();
    let ghost = AgencyId::parse("ghost").unwrap();
    jisr::tools::pki::issue_agency(&pki.dir, Some(&domain), &ghost).unwrap();
    let entries = || async {
        let (_, text) = admin::get(&gw.admin, "/metrics").await;
        text.lines()
            .find(|l| l.starts_with("jisr_audit_entries_total "))
            .map(str::to_owned)
    };
    let before = entries().await;
    assert!(before.is_some(), "test bug: no audit entry count");
    let mut stream = tls(&addr, &pki, "ghost").await.unwrap();
    assert!(
        closed_by_server(&mut stream).await,
        "an undeclared agency's connection must be closed before any request"
    );
    let (_, metrics) = admin::get(&gw.admin, "/metrics").await;
    assert!(
        metrics.contains("jisr_tls_handshake_failures_total{reason=\"undeclared_agency\"} 1"),
        "{metrics}"
    );
    assert_eq!(entries().await, before, "nothing is added to the log");
    // A declared agency of the same CA is served.
    let education = channel(&addr, &pki.files("education")).await.unwrap();
    let status = call_raw(&education, RawCall::new("/no.Such/Method", Vec::new(), "x"))
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unimplemented, "{status:?}");
}
