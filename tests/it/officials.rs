//! `jisr-official` is the consumer's own assertion: accepted only within
//! the consumer's namespace (`<agency>.…`, or its configured
//! `official_prefix`), otherwise `INVALID_REQUEST` saying the expected form.

use crate::routing::echo_network;
use crate::support::echo::Echo;
use crate::support::*;
use tonic::Code;

fn birth_call(official: &str) -> RawCall<'static> {
    let body = birth(CITIZEN);
    RawCall::new(BIRTH, body, "bac-candidature").with("jisr-official", official)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_official_of_another_agency_is_refused_and_ones_own_is_carried() {
    let (pki, _gw, addr, _echos) = echo_network("", "").await;
    let education = channel(&addr, &pki.files("education")).await.unwrap();
    let status = call_raw(&education, birth_call("tax.inspector-007"))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(
        status.message().contains("`education.…`"),
        "the refusal says the expected form: {}",
        status.message()
    );
    // A bare name, and the prefix with nothing after it, are outside too.
    for outside in ["inspector-007", "education.", "educationx.agent-1"] {
        let status = call_raw(&education, birth_call(outside)).await.unwrap_err();
        assert_eq!(
            status.code(),
            Code::InvalidArgument,
            "{outside}: {status:?}"
        );
    }
    let (_, md) = call_raw(&education, birth_call("education.agent-7"))
        .await
        .unwrap();
    assert_eq!(md.get("x-echo-jisr-official").unwrap(), "education.agent-7");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_configured_prefix_replaces_the_default_namespace() {
    let pki = Pki::new();
    let cs = Echo::start(&pki.dir, "civil-status").await;
    let tax = Echo::start(&pki.dir, "tax").await;
    let health = Echo::start(&pki.dir, "health").await;
    let up = Upstreams::echoes(&cs, &tax, &health);
    let config = gateway_config(&pki, &up, "", "").replacen(
        "id = \"education\"\n",
        "id = \"education\"\nofficial_prefix = \"men:\"\n",
        1,
    );
    assert!(
        config.contains("official_prefix"),
        "test bug: no education agency"
    );
    let (_gw, addr) = start_gateway(&pki, "gateway", &config);
    let education = channel(&addr, &pki.files("education")).await.unwrap();
    let (_, md) = call_raw(&education, birth_call("men:agent-7"))
        .await
        .unwrap();
    assert_eq!(md.get("x-echo-jisr-official").unwrap(), "men:agent-7");
    let status = call_raw(&education, birth_call("education.agent-7"))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(status.message().contains("`men:…`"), "{}", status.message());
}
