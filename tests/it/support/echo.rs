//! An echo provider: a real HTTP/2 server over mutual TLS (with an agency's
//! certificate) that answers every call with the exact message bytes it
//! received, and reports in response headers what the gateway sent it.

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, Response};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use jisr::identity::TrustDomain;
use jisr::tls::{self, Accept, TlsFiles};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

type EchoBody =
    StreamBody<futures_util::stream::Iter<std::vec::IntoIter<Result<Frame<Bytes>, Infallible>>>>;

/// A running echo provider; stops when dropped.
pub struct Echo {
    /// Its address.
    pub addr: SocketAddr,
    /// Calls answered so far (counted before the answer is sent).
    answered: Arc<AtomicU64>,
    /// Calls received so far (counted as their headers arrive).
    received: watch::Sender<u64>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Echo {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Headers echoed back, as `x-echo-<name>`.
const ECHOED: [&str; 6] = [
    "jisr-consumer",
    "jisr-request-id",
    "jisr-purpose",
    "grpc-timeout",
    "jisr-official",
    "traceparent",
];

impl Echo {
    /// How many calls this provider has answered: a test proving that an
    /// answer was withheld checks first that there was one.
    pub fn answered(&self) -> u64 {
        self.answered.load(Ordering::SeqCst)
    }

    /// How many calls this provider has received.
    pub fn received(&self) -> u64 {
        *self.received.borrow()
    }

    /// Waits (up to 10 s, then fails) until this provider has received `n`
    /// calls: a test acts on a call in flight once it is, not after a sleep.
    pub async fn wait_received(&self, n: u64) {
        let mut received = self.received.subscribe();
        let reached = received.wait_for(|&got| got >= n);
        let waited = tokio::time::timeout(Duration::from_secs(10), reached)
            .await
            .is_ok_and(|r| r.is_ok());
        assert!(
            waited,
            "the echo provider received {} calls in 10 s, not {n}",
            self.received()
        );
    }

    /// Starts an echo provider with `agency`'s certificate from `pki`.
    pub async fn start(pki: &Path, agency: &str) -> Self {
        Self::start_with(pki, agency, false).await
    }

    /// A provider that completes TLS and HTTP/2, reads each request and
    /// never answers: a hung back-end.
    pub async fn hanging(pki: &Path, agency: &str) -> Self {
        Self::start_with(pki, agency, true).await
    }

    /// An echo provider on a given address (a provider coming back).
    pub async fn start_at(pki: &Path, agency: &str, addr: &str) -> Self {
        Self::serve(pki, agency, false, addr).await
    }

    async fn start_with(pki: &Path, agency: &str, hang: bool) -> Self {
        Self::serve(pki, agency, hang, "127.0.0.1:0").await
    }

    /// An echo provider on a listener bound beforehand (its address was
    /// needed before its certificate existed).
    pub async fn start_on(pki: &Path, agency: &str, listener: TcpListener) -> Self {
        Self::serve_on(pki, agency, false, listener)
    }

    async fn serve(pki: &Path, agency: &str, hang: bool, addr: &str) -> Self {
        let listener = TcpListener::bind(addr).await.unwrap();
        Self::serve_on(pki, agency, hang, listener)
    }

    fn serve_on(pki: &Path, agency: &str, hang: bool, listener: TcpListener) -> Self {
        tls::install_crypto_provider();
        let domain = TrustDomain::parse(super::DOMAIN).unwrap();
        let server_tls = tls::server_config(
            &TlsFiles::for_agency(pki, agency),
            &domain,
            Accept::Gateways,
        )
        .unwrap();
        let acceptor = TlsAcceptor::from(server_tls);
        let addr = listener.local_addr().unwrap();
        let answered = Arc::new(AtomicU64::new(0));
        let counter = answered.clone();
        let received = watch::Sender::new(0);
        let arrivals = received.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let acceptor = acceptor.clone();
                let counter = counter.clone();
                let arrivals = arrivals.clone();
                tokio::spawn(async move {
                    let Ok(stream) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let service = service_fn(move |request: Request<Incoming>| {
                        let counter = counter.clone();
                        arrivals.send_modify(|n| *n += 1);
                        async move {
                            if hang {
                                let _ = request.into_body().collect().await;
                                return std::future::pending().await;
                            }
                            let response = answer(request).await;
                            counter.fetch_add(1, Ordering::SeqCst);
                            response
                        }
                    });
                    let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self {
            addr,
            answered,
            received,
            task,
        }
    }
}

async fn answer(request: Request<Incoming>) -> Result<Response<EchoBody>, Infallible> {
    let (parts, body) = request.into_parts();
    let delay = parts
        .headers
        .get("x-echo-delay-ms")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let received = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    if let Some(answer) = own_service(parts.uri.path()) {
        return Ok(answer);
    }
    if let Some(ms) = delay {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    let mut response = Response::new(StreamBody::new(futures_util::stream::iter(vec![
        Ok(Frame::data(received)),
        Ok(Frame::trailers(ok_trailers())),
    ])));
    let headers = response.headers_mut();
    headers.insert("content-type", HeaderValue::from_static("application/grpc"));
    headers.insert(
        "x-echo-path",
        HeaderValue::from_str(parts.uri.path()).unwrap(),
    );
    for name in ECHOED {
        if let Some(value) = parts.headers.get(name) {
            headers.insert(
                format!("x-echo-{name}")
                    .parse::<http::HeaderName>()
                    .unwrap(),
                value.clone(),
            );
        }
    }
    Ok(response)
}

/// Like most back-ends, it answers `grpc.health.v1.Health/Check` (SERVING:
/// `jisr probe --provider` asks) and offers no server reflection
/// (UNIMPLEMENTED, a trailers-only answer); every other path is echoed.
fn own_service(path: &str) -> Option<Response<EchoBody>> {
    let (frames, status) = match path {
        // A gRPC message: uncompressed, 2 bytes, `status = SERVING (1)`.
        "/grpc.health.v1.Health/Check" => {
            (vec![Bytes::from_static(&[0, 0, 0, 0, 2, 0x08, 0x01])], "0")
        }
        p if p.starts_with("/grpc.reflection.") => (Vec::new(), "12"),
        _ => return None,
    };
    let mut trailers = HeaderMap::new();
    trailers.insert("grpc-status", HeaderValue::from_static(status));
    let mut body: Vec<Result<Frame<Bytes>, Infallible>> =
        frames.into_iter().map(|f| Ok(Frame::data(f))).collect();
    body.push(Ok(Frame::trailers(trailers)));
    let mut response = Response::new(StreamBody::new(futures_util::stream::iter(body)));
    response
        .headers_mut()
        .insert("content-type", HeaderValue::from_static("application/grpc"));
    Some(response)
}

fn ok_trailers() -> HeaderMap {
    let mut trailers = HeaderMap::new();
    trailers.insert("grpc-status", HeaderValue::from_static("0"));
    trailers
}
