//! The HTTP/1.1-over-TLS listener loop the node's small web servers share
//! (the console, the tiles, the witness): accept, a bounded TLS handshake,
//! keep-alive connections served by a handler, and on shutdown a bounded
//! drain of the open requests. Each server keeps its own routes and
//! answers; only the loop is here.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

/// A client has this long to complete its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves `handler` on `listener` with `tls` until `shutdown` resolves,
/// then lets open requests finish within `drain`. `server` names the
/// server in its log lines (`console`, `tiles`, `witness`).
pub async fn serve_http1<H, F>(
    server: &'static str,
    tls: Arc<rustls::ServerConfig>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
    drain: Duration,
    handler: H,
) where
    H: Fn(Request<Incoming>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<Full<Bytes>>> + Send + 'static,
{
    let graceful = GracefulShutdown::new();
    let acceptor = TlsAcceptor::from(tls);
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        let (tcp, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(server, error = %e, "accept failed");
                // Out of descriptors and the like: back off, don't spin.
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let watcher = graceful.watcher();
        let (handler, acceptor) = (handler.clone(), acceptor.clone());
        tokio::spawn(async move {
            let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(tls)) => tls,
                Ok(Err(e)) => {
                    return tracing::debug!(server, %peer, error = %e, "TLS handshake failed")
                }
                Err(_) => return tracing::debug!(server, %peer, "TLS handshake timed out"),
            };
            let service = service_fn(move |request| {
                let answer = handler(request);
                async move { Ok::<_, Infallible>(answer.await) }
            });
            let connection = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(tls), service);
            if let Err(e) = watcher.watch(connection).await {
                tracing::debug!(server, error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(drain, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(server, "drain timed out; closing the remaining connections");
    }
}
