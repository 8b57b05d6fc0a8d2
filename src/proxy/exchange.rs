//! One exchange: the unary (or server-streaming) path of DESIGN.md, from the
//! routed request to the provider's answer.
//!
//! Order matters and is cheap-first: route lookup, metadata, the access
//! check (no body read for a call that is not allowed), then the body is read
//! within its size limit, walked against the contract, and forwarded as the
//! bytes that arrived.

use super::body::{read_message, Passthrough, PREFIX};
use super::metadata::{self, CallMetadata};
use super::refusal::{Reason, Refusal};
use super::upstream::Upstream;
use crate::catalogue::MethodRoute;
use crate::identity::AgencyId;
use crate::policy::{Denial, Grant, MethodAccess};
use http::header::{CONTENT_TYPE, HOST};
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use std::sync::Arc;
use std::time::Instant as StdInstant;
use tokio::time::Instant;
use tonic::body::Body;

/// Everything one method needs at call time, resolved at load.
#[derive(Debug)]
pub struct Exchange {
    /// The method as the catalogue knows it.
    pub route: Arc<MethodRoute>,
    /// Its access rules.
    pub access: MethodAccess,
    /// Its provider's connection pool.
    pub upstream: Arc<Upstream>,
}

/// What the log line of an exchange says about it.
struct Outcome<'a> {
    consumer: &'a AgencyId,
    exchange: Option<&'a Exchange>,
    metadata: Option<&'a CallMetadata>,
    basis: Option<String>,
}

impl Exchange {
    /// Carries one call for `consumer`. Never fails: a refusal is a gRPC
    /// status response.
    pub async fn handle(
        &self,
        request: Request<Incoming>,
        consumer: &AgencyId,
        request_id: &str,
        max_message: usize,
    ) -> Response<Body> {
        let started = StdInstant::now();
        let mut outcome = Outcome {
            consumer,
            exchange: Some(self),
            metadata: None,
            basis: None,
        };
        let metadata = match metadata::call_metadata(request.headers()) {
            Ok(m) => m,
            Err(refusal) => return refuse(refusal, request_id, &outcome, started),
        };
        outcome.metadata = Some(&metadata);
        let result = self
            .checked(
                request,
                consumer,
                &metadata,
                request_id,
                max_message,
                &mut outcome.basis,
            )
            .await;
        match result {
            Ok(response) => {
                log_forwarded(request_id, &outcome, started, response.status());
                response
            }
            Err(refusal) => refuse(refusal, request_id, &outcome, started),
        }
    }

    async fn checked(
        &self,
        request: Request<Incoming>,
        consumer: &AgencyId,
        metadata: &CallMetadata,
        request_id: &str,
        max_message: usize,
        basis: &mut Option<String>,
    ) -> Result<Response<Body>, Refusal> {
        let route = &self.route;
        if !route.streaming.is_supported() {
            return Err(Refusal::new(
                Reason::UnsupportedStreaming,
                format!("`{}` streams requests, which this gateway does not carry; use a unary or server-streaming method", route.qualified()),
            ));
        }
        let is_grpc = request
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/grpc"));
        if !is_grpc {
            return Err(Refusal::new(
                Reason::InvalidRequest,
                "content-type must be application/grpc; call the gateway with a gRPC client",
            ));
        }
        let timeout = metadata::grpc_timeout(request.headers())?;
        let deadline = timeout.map(|t| Instant::now() + t);
        let grant = self
            .access
            .check(consumer, &metadata.purpose)
            .map_err(|d| self.denied(consumer, metadata, d))?;
        *basis = Some(grant.basis.to_string());
        let work = self.forward(request, &grant, request_id, max_message, deadline);
        match deadline {
            Some(at) => tokio::time::timeout_at(at, work).await.unwrap_or_else(|_| {
                Err(Refusal::new(
                    Reason::DeadlineExceeded,
                    format!("the deadline set by the caller passed before `{}` answered; retry with a longer deadline", route.provider),
                ))
            }),
            None => work.await,
        }
    }

    fn denied(&self, consumer: &AgencyId, metadata: &CallMetadata, denial: Denial) -> Refusal {
        let method = self.route.qualified();
        match denial {
            Denial::NoRule => Refusal::new(
                Reason::AccessDenied,
                format!("agency `{consumer}` may not call `{method}`: no access rule allows it; if your procedure needs this data, ask the platform operator for a rule naming the purpose and its legal basis"),
            ),
            Denial::PurposeNotAllowed { allowed } => Refusal::new(
                Reason::PurposeNotAllowed,
                format!(
                    "agency `{consumer}` may call `{method}` only for purpose(s) {}, not `{}`; send the purpose of your procedure in `jisr-purpose`, or ask the operator for a rule",
                    allowed.iter().map(|p| format!("`{p}`")).collect::<Vec<_>>().join(", "),
                    metadata.purpose
                ),
            ),
        }
    }

    async fn forward(
        &self,
        request: Request<Incoming>,
        grant: &Grant<'_>,
        request_id: &str,
        max_message: usize,
        deadline: Option<Instant>,
    ) -> Result<Response<Body>, Refusal> {
        let route = &self.route;
        let (mut parts, body) = request.into_parts();
        let message = read_message(body, max_message).await?;
        let subject = route.schema.walk(&message[PREFIX..]).map_err(|e| {
            Refusal::new(
                Reason::InvalidRequest,
                format!("the request does not decode as `{}`: {e}; build it with the published contract (`jisr catalog`)", route.request_type),
            )
        })?;
        if let Some(field) = &route.subject_field {
            if subject.is_none_or(str::is_empty) {
                return Err(Refusal::new(
                    Reason::InvalidRequest,
                    format!("the citizen identifier `{field}` is empty; set it to the citizen the call is about"),
                ));
            }
        }
        let upstream = self.upstream.as_ref();
        parts.uri = format!("https://{}{}", upstream.addr(), route.path)
            .parse()
            .map_err(|_| {
                Refusal::new(
                    Reason::ProviderUnavailable,
                    "the provider's address is invalid; tell the operator",
                )
            })?;
        let headers = &mut parts.headers;
        headers.remove(HOST);
        headers.remove(metadata::CONSUMER);
        headers.insert(metadata::CONSUMER, header(grant.consumer.as_str()));
        headers.insert(metadata::REQUEST_ID, header(request_id));
        if let Some(at) = deadline {
            let left = at.saturating_duration_since(Instant::now());
            headers.insert(
                metadata::GRPC_TIMEOUT,
                header(&metadata::format_timeout(left)),
            );
        }
        let upstream_request = Request::from_parts(parts, Full::new(message));
        let response = upstream.send(upstream_request).await.map_err(|e| {
            tracing::warn!(request_id, provider = %route.provider, error = %e, "provider unreachable");
            Refusal::new(
                Reason::ProviderUnavailable,
                format!("the `{}` service is unreachable right now; retry later, and if it lasts tell the platform operator", route.provider),
            )
        })?;
        let (mut parts, body) = response.into_parts();
        if parts.status != StatusCode::OK {
            tracing::warn!(request_id, provider = %route.provider, status = %parts.status, "provider answered with a non-gRPC HTTP status");
            return Err(Refusal::new(
                Reason::ProviderUnavailable,
                format!(
                    "the `{}` service did not answer as a gRPC service; tell the platform operator",
                    route.provider
                ),
            ));
        }
        parts
            .headers
            .insert(metadata::REQUEST_ID, header(request_id));
        parts
            .headers
            .insert(metadata::BASIS, header(&grant.basis.to_string()));
        let body = Passthrough::new(body, deadline, route.provider.to_string());
        Ok(Response::from_parts(parts, Body::new(body)))
    }
}

/// A header value from text the gateway produced or validated.
fn header(text: &str) -> HeaderValue {
    HeaderValue::from_str(text).unwrap_or_else(|_| HeaderValue::from_static("invalid"))
}

/// Refuses a call whose path is not in the catalogue.
pub fn unknown_method(path: &str, consumer: &AgencyId, request_id: &str) -> Response<Body> {
    let refusal = Refusal::new(
        Reason::UnknownMethod,
        format!("no onboarded contract provides `{path}`; check the service and method names, or ask the operator whether the agency is onboarded (`jisr catalog`)"),
    );
    let outcome = Outcome {
        consumer,
        exchange: None,
        metadata: None,
        basis: None,
    };
    refuse(refusal, request_id, &outcome, StdInstant::now())
}

fn refuse(
    refusal: Refusal,
    request_id: &str,
    o: &Outcome<'_>,
    started: StdInstant,
) -> Response<Body> {
    tracing::info!(
        request_id,
        consumer = %o.consumer,
        provider = o.exchange.map(|e| e.route.provider.as_str()).unwrap_or("-"),
        method = o.exchange.map(|e| e.route.path.as_str()).unwrap_or("-"),
        purpose = o.metadata.map(|m| m.purpose.as_str()).unwrap_or("-"),
        procedure = o.metadata.and_then(|m| m.procedure.as_deref()).unwrap_or("-"),
        basis = o.basis.as_deref().unwrap_or("-"),
        outcome = "refused",
        reason = refusal.reason.as_str(),
        micros = started.elapsed().as_micros() as u64,
        "exchange"
    );
    refusal.into_response(request_id)
}

fn log_forwarded(request_id: &str, o: &Outcome<'_>, started: StdInstant, status: StatusCode) {
    tracing::info!(
        request_id,
        consumer = %o.consumer,
        provider = o.exchange.map(|e| e.route.provider.as_str()).unwrap_or("-"),
        method = o.exchange.map(|e| e.route.path.as_str()).unwrap_or("-"),
        purpose = o.metadata.map(|m| m.purpose.as_str()).unwrap_or("-"),
        procedure = o.metadata.and_then(|m| m.procedure.as_deref()).unwrap_or("-"),
        official = o.metadata.and_then(|m| m.official.as_deref()).unwrap_or("-"),
        basis = o.basis.as_deref().unwrap_or("-"),
        outcome = "forwarded",
        http_status = status.as_u16(),
        micros = started.elapsed().as_micros() as u64,
        "exchange"
    );
}
