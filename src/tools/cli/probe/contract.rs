//! The provider probe's last step: if the back-end offers gRPC server
//! reflection (`grpc.reflection.v1`), every service and method of its
//! contract in the gateway's configuration must be among those it offers.
//! A method the back-end lacks would be routed by the gateway and answered
//! UNIMPLEMENTED by the provider at the first call; this says so now.

use super::{Report, STEP_TIMEOUT};
use crate::catalogue::Catalogue;
use crate::identity::AgencyId;
use prost::Message as _;
use std::collections::{BTreeMap, BTreeSet};
use tonic_reflection::pb::v1::{
    server_reflection_client::ServerReflectionClient, server_reflection_request::MessageRequest,
    server_reflection_response::MessageResponse, ServerReflectionRequest,
};

/// The services of an agency's contract, each with its methods' names.
pub(super) struct Contract(BTreeMap<String, BTreeSet<String>>);

impl Contract {
    /// What the gateway routes to `agency`, as loaded from its contracts.
    pub(super) fn of(catalogue: &Catalogue, agency: &AgencyId) -> Self {
        let mut services: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for m in catalogue.methods().iter().filter(|m| &m.provider == agency) {
            services
                .entry(m.service.clone())
                .or_default()
                .insert(m.method.clone());
        }
        Self(services)
    }
}

/// Why reflection gave no answer to use.
enum Asked {
    /// The back-end does not offer reflection.
    NotOffered,
    /// It failed; the reason.
    Failed(String),
}

/// Compares the back-end's reflection with `contract`.
pub(super) async fn contract(
    report: &mut Report,
    channel: tonic::transport::Channel,
    contract: &Contract,
) {
    let step = "contract";
    let mut client = ServerReflectionClient::new(channel);
    let offered = match ask(&mut client, MessageRequest::ListServices(String::new())).await {
        Ok(MessageResponse::ListServicesResponse(list)) => {
            list.service.into_iter().map(|s| s.name).collect::<BTreeSet<_>>()
        }
        Ok(_) => return report.fail(step, "server reflection answered the list of services with something else", "see the back-end's reflection service"),
        Err(Asked::NotOffered) => return report.warn(step, "the provider offers no gRPC server reflection (grpc.reflection.v1): its methods were not compared with the contract"),
        Err(Asked::Failed(why)) => return report.fail(step, &format!("server reflection failed: {why}"), "see the back-end's log, or turn its reflection off"),
    };
    let mut missing = Vec::new();
    for (service, methods) in &contract.0 {
        if !offered.contains(service) {
            let list: Vec<&str> = offered.iter().map(String::as_str).collect();
            report.fail(step, &format!("the provider does not offer service `{service}` of its contract (its reflection lists: {})", list.join(", ")), "deploy the back-end that implements the contract named in the configuration, or fix the agency's `contracts`");
            continue;
        }
        match service_methods(&mut client, service).await {
            Ok(found) => missing.extend(
                methods
                    .iter()
                    .filter(|m| !found.contains(*m))
                    .map(|m| format!("{service}/{m}")),
            ),
            Err(why) => report.fail(
                step,
                &format!("server reflection did not describe `{service}`: {why}"),
                "see the back-end's reflection service",
            ),
        }
    }
    for method in &missing {
        report.fail(step, &format!("the provider does not implement `{method}` of its contract"), "deploy the back-end version that implements the contract in the configuration (calls to that method would fail UNIMPLEMENTED), or remove the method from the contract if it was withdrawn");
    }
    if missing.is_empty() && !report.failed {
        let count: usize = contract.0.values().map(BTreeSet::len).sum();
        let services: Vec<&str> = contract.0.keys().map(String::as_str).collect();
        report.ok(
            step,
            &format!(
                "server reflection offers the contract's {count} method(s) of {}",
                services.join(", ")
            ),
        );
    }
}

/// The method names of `service`, from the file that declares it.
async fn service_methods(
    client: &mut ServerReflectionClient<tonic::transport::Channel>,
    service: &str,
) -> Result<BTreeSet<String>, String> {
    let answer = ask(
        client,
        MessageRequest::FileContainingSymbol(service.to_owned()),
    )
    .await;
    let files = match answer {
        Ok(MessageResponse::FileDescriptorResponse(files)) => files.file_descriptor_proto,
        Ok(MessageResponse::ErrorResponse(e)) => return Err(e.error_message),
        Ok(_) => return Err("an answer of another kind".into()),
        Err(Asked::NotOffered) => return Err("UNIMPLEMENTED".into()),
        Err(Asked::Failed(why)) => return Err(why),
    };
    for bytes in files {
        let file = prost_types::FileDescriptorProto::decode(bytes.as_slice())
            .map_err(|e| format!("a file descriptor that does not decode: {e}"))?;
        let package = file.package();
        for s in &file.service {
            let name = match package {
                "" => s.name().to_owned(),
                package => format!("{package}.{}", s.name()),
            };
            if name == service {
                return Ok(s.method.iter().map(|m| m.name().to_owned()).collect());
            }
        }
    }
    Err(format!("no file it sent declares `{service}`"))
}

/// One request on the reflection stream, and its answer.
async fn ask(
    client: &mut ServerReflectionClient<tonic::transport::Channel>,
    request: MessageRequest,
) -> Result<MessageResponse, Asked> {
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(request),
    };
    let call = async {
        let mut answers = client
            .server_reflection_info(tokio_stream::once(request))
            .await?
            .into_inner();
        answers.message().await
    };
    match tokio::time::timeout(STEP_TIMEOUT, call).await {
        Ok(Ok(Some(answer))) => answer
            .message_response
            .ok_or_else(|| Asked::Failed("an empty answer".into())),
        Ok(Ok(None)) => Err(Asked::Failed("the stream ended without an answer".into())),
        Ok(Err(status)) if status.code() == tonic::Code::Unimplemented => Err(Asked::NotOffered),
        Ok(Err(status)) => Err(Asked::Failed(format!(
            "{:?}: {}",
            status.code(),
            status.message()
        ))),
        Err(_) => Err(Asked::Failed("no answer in time".into())),
    }
}
