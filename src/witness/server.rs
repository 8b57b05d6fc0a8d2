//! HTTPS in front of the witness: HTTP/1.1 with keep-alive (logs call
//! often), `POST /add-checkpoint` and nothing else. Requests carry no
//! client certificate: as the spec says, the log's signature on the
//! checkpoint is the only authentication a witness needs.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{header, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::body::Incoming;
use tokio::net::TcpListener;

use super::{Verdict, Witness};
use crate::audit::witnessing::request::MAX_BODY_BYTES;
use crate::audit::witnessing::SIZE_CONTENT_TYPE;

/// Open requests get this long to finish once shutdown starts.
const DRAIN: Duration = Duration::from_secs(10);

/// Serves `witness` on `listener` until `shutdown` resolves, then lets
/// open requests finish (each one is recorded before it is answered, so
/// an interrupted one loses nothing).
pub async fn serve(
    witness: Arc<Witness>,
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    shutdown: impl Future<Output = ()>,
) {
    crate::tls::https::serve_http1("witness", tls, listener, shutdown, DRAIN, move |request| {
        let witness = witness.clone();
        async move { answer(&witness, request).await }
    })
    .await;
}

async fn answer(witness: &Witness, request: Request<Incoming>) -> Response<Full<Bytes>> {
    if request.uri().path() != "/add-checkpoint" {
        return text(
            StatusCode::NOT_FOUND,
            "this witness serves POST /add-checkpoint only\n",
        );
    }
    if request.method() != Method::POST {
        return text(StatusCode::METHOD_NOT_ALLOWED, "use POST\n");
    }
    let body = match Limited::new(request.into_body(), MAX_BODY_BYTES)
        .collect()
        .await
    {
        Ok(body) => body.to_bytes(),
        Err(e) => {
            return text(
                StatusCode::BAD_REQUEST,
                &format!("cannot read the request body (at most {MAX_BODY_BYTES} bytes): {e}\n"),
            )
        }
    };
    let verdict = witness.add_checkpoint(&body).await;
    match verdict {
        Verdict::Cosigned(line) => text(StatusCode::OK, &line),
        Verdict::Conflict { known_size, why } => {
            tracing::info!(%why, "witness: 409");
            let mut response = text(StatusCode::CONFLICT, &format!("{known_size}\n"));
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                header::HeaderValue::from_static(SIZE_CONTENT_TYPE),
            );
            response
        }
        Verdict::BadRequest(why) => refused(StatusCode::BAD_REQUEST, &why),
        Verdict::Forbidden(why) => refused(StatusCode::FORBIDDEN, &why),
        Verdict::UnknownLog(why) => refused(StatusCode::NOT_FOUND, &why),
        Verdict::BadProof(why) => refused(StatusCode::UNPROCESSABLE_ENTITY, &why),
        Verdict::Failed(why) => refused(StatusCode::INTERNAL_SERVER_ERROR, &why),
    }
}

fn refused(status: StatusCode, why: &str) -> Response<Full<Bytes>> {
    tracing::info!(status = status.as_u16(), %why, "witness: refused a checkpoint");
    text(status, &format!("{why}\n"))
}

fn text(status: StatusCode, body: &str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_owned())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}
