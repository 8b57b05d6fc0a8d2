//! The innermost service of the provider leg: sends a [`Prepared`] call on
//! one of its instance's HTTP/2 connections and reads the answer — a unary
//! answer whole, within the size limit and minimised if the rule says so;
//! a stream's head. It takes only a [`Prepared`] call, which holds the
//! call's [`Consented`](super::consent::Consented) permit: nothing reaches a
//! provider unchecked.

use super::stack::{Answer, Prepared};
use crate::catalogue::{MethodRoute, Streaming};
use crate::gateway::body::{Passthrough, PREFIX};
use crate::gateway::metadata;
use crate::gateway::upstream::RecvBody;
use crate::policy::release::Release;
use crate::refusal::{Reason, Refusal};
use bytes::{Bytes, BytesMut};
use http::{HeaderMap, Response, StatusCode};
use http_body_util::BodyExt as _;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use tonic::body::Body;
use tower::Service;

/// Sends the call and reads the answer; see the module docs.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Deliver;

/// The provider's answer, awaited: boxed once per call, as the answer's
/// future borrows the call.
type Leg<'a> = Pin<Box<dyn Future<Output = Result<Answer, Refusal>> + Send + 'a>>;

impl<'a> Service<Prepared<'a>> for Deliver {
    type Response = Answer;
    type Error = Refusal;
    type Future = Leg<'a>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Refusal>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, prepared: Prepared<'a>) -> Self::Future {
        Box::pin(answer(prepared))
    }
}

/// Sends a prepared request to its instance and reads the answer.
async fn answer(prepared: Prepared<'_>) -> Result<Answer, Refusal> {
    let Prepared {
        exchange,
        permit,
        cx,
        deadline,
        place: _place,
        target,
        request,
    } = prepared;
    let route = &exchange.route;
    let response = target.send(request).await.map_err(|e| {
        tracing::warn!(request_id = cx.request_id, provider = %route.provider, error = %e, "provider unreachable");
        Refusal::new(
            Reason::ProviderUnavailable,
            format!("the `{}` service is unreachable right now; retry later, and if it lasts tell the platform operator", route.provider),
        )
    })?;
    let (mut parts, body) = response.into_parts();
    if parts.status != StatusCode::OK {
        tracing::warn!(request_id = cx.request_id, provider = %route.provider, status = %parts.status, "provider answered with a non-gRPC HTTP status");
        return Err(Refusal::new(
            Reason::ProviderUnavailable,
            format!(
                "the `{}` service did not answer as a gRPC service; tell the platform operator",
                route.provider
            ),
        ));
    }
    let grant = permit.grant();
    parts.headers.insert(
        metadata::REQUEST_ID,
        metadata::request_id_header(cx.request_id),
    );
    // Built at load for each rule; formatted here only for a rule the
    // exchange was built without (none in practice).
    let basis = exchange.bases.get(&grant.rule()).cloned();
    parts.headers.insert(
        metadata::BASIS,
        basis.unwrap_or_else(|| metadata::header(&grant.basis().to_string())),
    );
    let release = exchange.releases.get(&grant.rule());
    if route.streaming == Streaming::Server && release.is_none() {
        let body = Passthrough::new(body, deadline, route.provider.to_string());
        return Ok(Answer::Stream(Response::from_parts(parts, Body::new(body))));
    }
    read_unary(
        route,
        parts,
        body,
        release.map(AsRef::as_ref),
        cx.request_id,
        cx.max_message,
    )
    .await
}

/// Reads a unary answer (or a stream to minimise) whole and minimises it
/// when `release` says so.
async fn read_unary(
    route: &MethodRoute,
    mut parts: http::response::Parts,
    body: RecvBody,
    release: Option<&Release>,
    request_id: &str,
    limit: usize,
) -> Result<Answer, Refusal> {
    // A minimised answer is read whole (a stream too, within the size
    // limit): fields are cleared message by message before anything leaves.
    let (body, trailers) = collect(route, body, limit).await?;
    let body = match release {
        None => body,
        Some(release) => release.apply(&body).map_err(|e| {
            tracing::warn!(request_id = request_id, provider = %route.provider, error = %e, "answer could not be minimised");
            Refusal::new(
                Reason::ProviderUnavailable,
                format!("the `{}` service's answer does not decode as its contract says, so it cannot be minimised and is withheld; tell the platform operator", route.provider),
            )
        })?,
    };
    if release.is_some() {
        // The length changed.
        parts.headers.remove(http::header::CONTENT_LENGTH);
    }
    let grpc_status = trailers
        .as_ref()
        .and_then(status_of)
        .or_else(|| status_of(&parts.headers))
        .unwrap_or(tonic::Code::Unknown as i32);
    Ok(Answer::Unary {
        parts,
        body,
        trailers,
        grpc_status,
    })
}

/// Reads a whole unary answer, bounded like requests are. An answer that
/// came in one DATA frame (the usual unary answer) is kept as received,
/// not copied; more frames are joined.
async fn collect(
    route: &MethodRoute,
    mut body: RecvBody,
    limit: usize,
) -> Result<(Bytes, Option<HeaderMap>), Refusal> {
    let mut data = Joined::default();
    let mut trailers = None;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| {
            tracing::warn!(provider = %route.provider, error = %e, "provider answer broke off");
            Refusal::new(
                Reason::ProviderUnavailable,
                format!(
                    "the `{}` service stopped in the middle of its answer; retry the call",
                    route.provider
                ),
            )
        })?;
        match frame.into_data() {
            Ok(chunk) => {
                if data.len() + chunk.len() > limit + PREFIX {
                    return Err(Refusal::new(
                        Reason::ProviderUnavailable,
                        format!("the `{}` service answered with more than {limit} bytes, more than this gateway carries; tell the platform operator", route.provider),
                    ));
                }
                data.push(chunk);
            }
            Err(frame) => trailers = frame.into_trailers().ok(),
        }
    }
    Ok((data.into_bytes(), trailers))
}

/// An answer's bytes as they arrive: the first chunk as it came, joined
/// into one buffer only when a second one follows.
#[derive(Default)]
struct Joined {
    first: Bytes,
    more: Option<BytesMut>,
}

impl Joined {
    fn len(&self) -> usize {
        self.more.as_ref().map_or(self.first.len(), BytesMut::len)
    }

    fn push(&mut self, chunk: Bytes) {
        match &mut self.more {
            Some(more) => more.extend_from_slice(&chunk),
            None if self.first.is_empty() => self.first = chunk,
            None => {
                let mut more = BytesMut::with_capacity(self.first.len() + chunk.len());
                more.extend_from_slice(&self.first);
                more.extend_from_slice(&chunk);
                self.more = Some(more);
            }
        }
    }

    fn into_bytes(self) -> Bytes {
        self.more.map_or(self.first, BytesMut::freeze)
    }
}

/// The `grpc-status` in a header map.
fn status_of(headers: &HeaderMap) -> Option<i32> {
    headers.get("grpc-status")?.to_str().ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_chunk_is_kept_as_received_and_more_are_joined_in_order() {
        let only = Bytes::from_static(b"\0\0\0\0\x03abc");
        let mut one = Joined::default();
        one.push(only.clone());
        assert_eq!(one.len(), 8);
        let kept = one.into_bytes();
        assert_eq!(kept, only);
        assert_eq!(kept.as_ptr(), only.as_ptr(), "one chunk is not copied");

        let mut three = Joined::default();
        for part in [&b"\0\0\0"[..], b"\0\x03a", b"bc"] {
            three.push(Bytes::copy_from_slice(part));
        }
        assert_eq!(three.len(), 8);
        assert_eq!(three.into_bytes(), only);

        let mut none = Joined::default();
        none.push(Bytes::new());
        assert!(none.into_bytes().is_empty());
    }
}
