//! The admin listener: plain HTTP/1.1 on a loopback (or management) address,
//! for Prometheus and orchestrators. `/metrics` (Prometheus text),
//! `/healthz` (the process answers), `/readyz` (ready for traffic, see
//! [`Readiness`](super::ready::Readiness)).

use super::Telemetry;
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

/// Serves the admin endpoints on `listener` until the gateway closes.
pub async fn serve(telemetry: Arc<Telemetry>, listener: TcpListener) {
    let mut stop = telemetry.stopped();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stop.wait_for(|s| *s) => break,
        };
        let (tcp, _) = match accepted {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(error = %e, "admin listener: accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let telemetry = telemetry.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let telemetry = telemetry.clone();
                async move { Ok::<_, Infallible>(answer(&telemetry, request).await) }
            });
            let connection = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(tcp), service);
            // Scrapes are small: a connection that stalls is dropped.
            let _ = tokio::time::timeout(Duration::from_secs(30), connection).await;
        });
    }
}

async fn answer(telemetry: &Telemetry, request: Request<Incoming>) -> Response<Full<Bytes>> {
    if request.method() != Method::GET && request.method() != Method::HEAD {
        return text(
            StatusCode::METHOD_NOT_ALLOWED,
            "use GET on /metrics, /healthz or /readyz\n".into(),
        );
    }
    match request.uri().path() {
        "/healthz" => text(StatusCode::OK, "ok\n".into()),
        "/readyz" => {
            let checks = telemetry.ready().check();
            let ready = super::ready::is_ready(&checks);
            let mut body = String::from(if ready { "ready\n" } else { "not ready\n" });
            for c in &checks {
                // DOWN: a check the node stays ready without, which only
                // narrows what it serves (the detail says what).
                let mark = match (c.ok, c.needed) {
                    (true, _) => "ok  ",
                    (false, true) => "FAIL",
                    (false, false) => "DOWN",
                };
                body.push_str(&format!("{mark} {}: {}\n", c.name, c.detail));
            }
            let status = if ready {
                StatusCode::OK
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            };
            text(status, body)
        }
        "/metrics" => {
            let checks = telemetry.ready().check();
            let body = telemetry.prometheus(&checks);
            let mut response = text(StatusCode::OK, body);
            response.headers_mut().insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            );
            response
        }
        other => text(
            StatusCode::NOT_FOUND,
            format!(
                "no `{other}` here: the admin listener serves /metrics, /healthz and /readyz\n"
            ),
        ),
    }
}

fn text(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}
