//! The tiles' HTTPS listener: `GET` (and `HEAD`) of the tlog-tiles paths,
//! server-authenticated TLS only. Tiles are public by design, anyone may
//! check the log, so no client certificate is asked for.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{header, Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::{Resource, TileError, Tiles};

type Reply = Response<Full<Bytes>>;

/// Serves `tiles` on `listener` with `tls` until `stop` turns true, then
/// lets open requests finish within `drain`.
pub async fn serve(
    tiles: Tiles,
    tls: Arc<rustls::ServerConfig>,
    listener: TcpListener,
    mut stop: watch::Receiver<bool>,
    drain: Duration,
) {
    let stopped = async move {
        let _ = stop.wait_for(|s| *s).await;
    };
    crate::tls::https::serve_http1("tiles", tls, listener, stopped, drain, move |request| {
        answer(tiles.clone(), request)
    })
    .await;
}

/// Answers one request.
async fn answer(tiles: Tiles, request: Request<Incoming>) -> Reply {
    let head = match *request.method() {
        Method::GET => false,
        Method::HEAD => true,
        _ => {
            return text(
                StatusCode::METHOD_NOT_ALLOWED,
                "the tiles are read-only: use GET\n",
            )
        }
    };
    let Some(resource) = Resource::parse(request.uri().path()) else {
        return text(
            StatusCode::NOT_FOUND,
            "not a tlog-tiles path: /checkpoint, /tile/<L>/<N>[.p/<W>] or /tile/entries/<N>[.p/<W>] (c2sp.org/tlog-tiles)\n",
        );
    };
    // Tiles and bundles are read from the log's files.
    let got = tokio::task::spawn_blocking(move || tiles.get(resource)).await;
    let served = match got {
        Ok(Ok(served)) => served,
        Ok(Err(TileError::NotFound(why))) => return text(StatusCode::NOT_FOUND, &why),
        Ok(Err(TileError::NotYet(why))) => {
            let mut reply = text(StatusCode::SERVICE_UNAVAILABLE, &why);
            reply
                .headers_mut()
                .insert(header::RETRY_AFTER, http::HeaderValue::from_static("5"));
            return reply;
        }
        Ok(Err(TileError::Failed(why))) => {
            tracing::error!(path = %resource.path(), error = %why, "tiles: cannot read the log");
            return text(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the log could not be read; the node's log says why\n",
            );
        }
        Err(e) => {
            tracing::error!(error = %e, "tiles: the read task failed");
            return text(StatusCode::INTERNAL_SERVER_ERROR, "internal error\n");
        }
    };
    let length = served.body.len();
    let body = if head { Vec::new() } else { served.body };
    let mut reply = Response::new(Full::new(Bytes::from(body)));
    let headers = reply.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static(served.content_type),
    );
    headers.insert(
        header::CACHE_CONTROL,
        http::HeaderValue::from_static(served.cache),
    );
    headers.insert(header::CONTENT_LENGTH, http::HeaderValue::from(length));
    reply
}

/// A plain-text answer saying what is wrong.
fn text(status: StatusCode, message: &str) -> Reply {
    let mut body = message.to_owned();
    if !body.ends_with('\n') {
        body.push('\n');
    }
    let mut reply = Response::new(Full::new(Bytes::from(body)));
    *reply.status_mut() = status;
    reply.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    reply.headers_mut().insert(
        header::CACHE_CONTROL,
        http::HeaderValue::from_static("no-store"),
    );
    reply
}
