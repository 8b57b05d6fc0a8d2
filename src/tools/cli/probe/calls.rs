//! The steps of `jisr probe` that are gRPC calls to the gateway: its
//! health check and its probe service (the rules, the providers).

use super::{Report, STEP_TIMEOUT};
use crate::proto::jisr::probe::v1::CheckResponse;
use std::sync::Arc;
use tokio::net::TcpStream;

/// Step 4: a harmless call, the gateway's own health check.
pub(super) async fn health(report: &mut Report, channel: tonic::transport::Channel) -> bool {
    use tonic_health::pb::{
        health_check_response::ServingStatus, health_client::HealthClient, HealthCheckRequest,
    };
    let mut client = HealthClient::new(channel);
    let call = client.check(HealthCheckRequest {
        service: String::new(),
    });
    match tokio::time::timeout(STEP_TIMEOUT, call).await {
        Ok(Ok(answer)) if answer.get_ref().status == ServingStatus::Serving as i32 => {
            report.ok("call", "grpc.health.v1.Health/Check: SERVING");
            true
        }
        Ok(Ok(answer)) => {
            report.fail("call", &format!("the gateway is not serving (status {})", answer.get_ref().status), "the node is starting or draining: retry in a moment; if it lasts, ask its operator (its /readyz)");
            false
        }
        Ok(Err(status)) => {
            report.fail(
                "call",
                &format!(
                    "grpc.health.v1.Health/Check failed: {:?}: {}",
                    status.code(),
                    status.message()
                ),
                "retry; if it lasts, ask the gateway's operator",
            );
            false
        }
        Err(_) => {
            report.fail(
                "call",
                "grpc.health.v1.Health/Check: no answer in time",
                "retry; if it lasts, ask the gateway's operator",
            );
            false
        }
    }
}

/// Steps 5 and 6: what the rules allow, and the providers behind it.
pub(super) fn rules(report: &mut Report, answer: &CheckResponse) {
    if answer.allowed.is_empty() {
        report.fail("rules", &format!("no rule on node {} lets `{}` call anything", answer.node, answer.agency), &format!("ask the node's operator for a [[rule]] with consumer = \"{}\", the methods, the purposes and the legal basis (law or consent)", answer.agency));
        return;
    }
    report.ok(
        "rules",
        &format!(
            "node {} lets `{}` call {} method(s):",
            answer.node,
            answer.agency,
            answer.allowed.len()
        ),
    );
    for a in &answer.allowed {
        let mut needs = format!("jisr-purpose: {}", a.purposes.join(" | "));
        if a.basis == "consent" {
            needs.push_str(", jisr-consent");
        }
        if a.break_glass {
            needs.push_str(", jisr-justification (break-glass)");
        }
        println!(
            "        {}  (provider {}, basis {}; send {needs})",
            a.method, a.provider, a.basis
        );
    }
    for provider in &answer.providers {
        let step = "provider";
        for i in &provider.instances {
            if i.reachable {
                report.ok(
                    step,
                    &format!(
                        "`{}` at {}: the gateway reaches it",
                        provider.agency, i.address
                    ),
                );
            } else {
                report.fail(step, &format!("`{}` at {}: the gateway cannot reach it: {}", provider.agency, i.address, i.error), &format!("calls to it fail with PROVIDER_UNAVAILABLE until it answers: tell `{}`'s operators (their back-end must be up and accept the gateway's certificate) and the node's operator", provider.agency));
            }
        }
    }
}

/// A lazily connected channel to the gateway over `config`.
pub(super) fn channel(addr: &str, config: Arc<rustls::ClientConfig>) -> tonic::transport::Channel {
    let addr = addr.to_owned();
    let connector = tower::service_fn(move |_uri: http::Uri| {
        let (addr, config) = (addr.clone(), config.clone());
        async move {
            let tcp = TcpStream::connect(&addr).await?;
            // Not checked: the verifier compares the SPIFFE id instead.
            let name = rustls::pki_types::ServerName::try_from("jisr-gateway")
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
            let stream = tokio_rustls::TlsConnector::from(config)
                .connect(name, tcp)
                .await?;
            Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(stream))
        }
    });
    tonic::transport::Endpoint::from_static("http://jisr-gateway")
        .connect_timeout(STEP_TIMEOUT)
        .connect_with_connector_lazy(connector)
}
