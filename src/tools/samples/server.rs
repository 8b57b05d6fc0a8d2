//! Serving a sample agency over TLS: an accept loop that runs each handshake
//! in its own task (a slow or hostile client must not hold up the others) and
//! hands finished TLS streams to tonic through a channel.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Server;

use super::{CivilStatusSample, HealthSample, SampleAgency, TaxSample};
use crate::proto::ma::civilstatus::v1::civil_status_server::CivilStatusServer;
use crate::proto::ma::health::v1::health_records_server::HealthRecordsServer;
use crate::proto::ma::tax::v1::tax_records_server::TaxRecordsServer;

/// How long a client may take to complete its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Finished handshakes waiting for tonic to pick them up.
const PENDING_CONNECTIONS: usize = 64;
/// Pause after a failed `accept` (e.g. out of file descriptors) before retrying.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

type Incoming = Result<TlsStream<TcpStream>, std::io::Error>;

/// Serves `agency`'s contract on `listener` until `shutdown` resolves, then
/// drains the calls in flight.
///
/// `tls` is the agency's server configuration (normally TLS 1.3, ALPN `h2` and
/// a client certificate required). A failed handshake is logged and the
/// server goes on.
pub async fn serve(
    agency: SampleAgency,
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    serve_answering(agency, listener, tls, shutdown, Answers::Always).await
}

/// Whether a sample answers its contract's calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answers {
    /// As a working back-end does.
    Always,
    /// Never: TLS and HTTP/2 work, each call is accepted and left waiting
    /// (grpc.health and reflection too), as a back-end stuck on its own
    /// database does; for `jisr bench --faults`.
    Never,
}

/// [`serve`], answering the contract's calls or leaving them hanging.
pub async fn serve_answering(
    agency: SampleAgency,
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    shutdown: impl Future<Output = ()> + Send + 'static,
    answers: Answers,
) -> anyhow::Result<()> {
    let local = listener.local_addr().ok();
    if answers == Answers::Never {
        tracing::info!(agency = agency.id(), address = ?local, "sample agency listening, never answering");
        return serve_never_answering(listener, tls, shutdown).await;
    }
    let (tx, rx) = mpsc::channel::<Incoming>(PENDING_CONNECTIONS);
    let accept = tokio::spawn(accept_loop(listener, TlsAcceptor::from(tls), tx));
    // Like a well-kept back-end, each sample answers grpc.health (the whole
    // server SERVING) and server reflection of its contract: what
    // `jisr probe --provider` checks from the gateway's side.
    let (_reporter, health) = tonic_health::server::health_reporter();
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(crate::proto::SAMPLES_FILE_DESCRIPTOR_SET)
        .build_v1()
        .context("cannot set up the sample's server reflection")?;
    let mut builder = Server::builder();
    let router = match agency {
        SampleAgency::CivilStatus => builder.add_service(CivilStatusServer::new(CivilStatusSample)),
        SampleAgency::Tax => builder.add_service(TaxRecordsServer::new(TaxSample)),
        SampleAgency::Health => builder.add_service(HealthRecordsServer::new(HealthSample)),
    }
    .add_service(health)
    .add_service(reflection);
    tracing::info!(agency = agency.id(), address = ?local, "sample agency listening");
    let result = router
        .serve_with_incoming_shutdown(ReceiverStream::new(rx), shutdown)
        .await;
    // Stops accepting and drops the listener; handshakes in flight find the
    // channel closed and drop their connection.
    accept.abort();
    tracing::info!(agency = agency.id(), "sample agency stopped");
    result.with_context(|| format!("sample agency `{agency}` failed"))
}

/// Serves HTTP/2 on each connection `listener` accepts and answers no call
/// (without tonic, whose server would end a call at its `grpc-timeout`
/// with CANCELLED: a stuck back-end does not).
async fn serve_never_answering(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let (tx, mut rx) = mpsc::channel::<Incoming>(PENDING_CONNECTIONS);
    let accept = tokio::spawn(accept_loop(listener, TlsAcceptor::from(tls), tx));
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            stream = rx.recv() => match stream {
                Some(Ok(stream)) => drop(tokio::spawn(hold(stream))),
                Some(Err(_)) => {}
                None => break,
            },
        }
    }
    accept.abort();
    Ok(())
}

/// Accepts calls on one connection and leaves each waiting; a call's wait
/// ends when its caller resets it or the connection closes.
async fn hold(stream: TlsStream<TcpStream>) {
    let service = hyper::service::service_fn(|_: http::Request<hyper::body::Incoming>| {
        std::future::pending::<Result<http::Response<tonic::body::Body>, std::convert::Infallible>>(
        )
    });
    let served = hyper::server::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
        .await;
    if let Err(e) = served {
        tracing::debug!(error = %e, "sample agency (never answering): connection ended");
    }
}

/// Accepts TCP connections until tonic drops the receiving end.
async fn accept_loop(listener: TcpListener, acceptor: TlsAcceptor, tx: mpsc::Sender<Incoming>) {
    loop {
        let (tcp, peer) = tokio::select! {
            () = tx.closed() => return,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::warn!(error = %e, "sample agency: accept failed");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
        };
        tokio::spawn(handshake(tcp, peer, acceptor.clone(), tx.clone()));
    }
}

async fn handshake(
    tcp: TcpStream,
    peer: SocketAddr,
    acceptor: TlsAcceptor,
    tx: mpsc::Sender<Incoming>,
) {
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
        Ok(Ok(stream)) => {
            // An error here means the server is shutting down: drop the stream.
            let _ = tx.send(Ok(stream)).await;
        }
        Ok(Err(e)) => tracing::warn!(%peer, error = %e, "sample agency: TLS handshake failed"),
        Err(_) => tracing::warn!(%peer, "sample agency: TLS handshake timed out"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::ma::civilstatus::v1::civil_status_client::CivilStatusClient;
    use crate::proto::ma::civilstatus::v1::GetBirthRecordRequest;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tonic::transport::{Certificate, ClientTlsConfig, Endpoint};

    /// A server-only TLS configuration: client authentication is not what is
    /// tested here.
    fn tls() -> (Arc<rustls::ServerConfig>, String) {
        let key = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
        let der = PrivatePkcs8KeyDer::from(key.signing_key.serialize_der());
        let mut config = rustls::ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(
                vec![CertificateDer::from(key.cert.der().to_vec())],
                PrivateKeyDer::Pkcs8(der),
            )
            .unwrap();
        config.alpn_protocols = vec![b"h2".to_vec()];
        (Arc::new(config), key.cert.pem())
    }

    #[tokio::test]
    async fn serves_over_tls_despite_bad_and_stalled_handshakes() {
        let (config, ca) = tls();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve(SampleAgency::CivilStatus, listener, config, async {
            let _ = stopped.await;
        }));

        // A client that never speaks TLS, and one that never finishes.
        let _stalled = TcpStream::connect(addr).await.unwrap();
        let mut garbage = TcpStream::connect(addr).await.unwrap();
        garbage.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
        let mut sink = Vec::new();
        let _ = garbage.read_to_end(&mut sink).await;

        let tls = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(ca))
            .domain_name("localhost");
        let channel = Endpoint::from_shared(format!("https://{addr}"))
            .unwrap()
            .tls_config(tls)
            .unwrap()
            .connect()
            .await
            .unwrap();
        let mut client = CivilStatusClient::new(channel);
        let record = client
            .get_birth_record(GetBirthRecordRequest {
                citizen_id: "AB123456".to_owned(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(record.first_name, "Salma");
        drop(client);

        stop.send(()).unwrap();
        tokio::time::timeout(Duration::from_secs(5), server)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
    }
}
