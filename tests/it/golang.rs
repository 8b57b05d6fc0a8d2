//! An agency written in Go, as docs/stacks.md shows it: the fund's back-end
//! and the ministry's consumer are grpc-go programs (`tests/it/go/`) built
//! from stubs that protoc-gen-go and protoc-gen-go-grpc generate from the
//! contract of `docs/onboarding.md`. The call goes through a real gateway
//! over mutual TLS on both legs, and the back-end refuses a caller that is
//! not the gateway (the ministry's certificate connecting to it directly).
//!
//! Everything comes from Debian 12 packages, offline (`scripts/test.sh`
//! installs golang-go, golang-google-grpc-dev, golang-google-protobuf-dev,
//! protobuf-compiler, protoc-gen-go and protoc-gen-go-grpc): the programs
//! build in GOPATH mode against /usr/share/gocode, with the build cache in
//! `target/go-cache` so grpc-go compiles once.

use crate::docs::repo;
use crate::support::onboard::onboard_fund;
use crate::support::proc::Proc;
use crate::support::*;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The import path the generated stubs get (the contract has no go_package).
const STUBS: &str = "interop.gov.ma/socialsecurity/v1;socialsecurityv1";

pub(crate) fn tool(name: &str) -> Command {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {name}")])
        .output()
        .is_ok_and(|out| out.status.success());
    assert!(
        found,
        "`{name}` is missing: run the test command, scripts/test.sh (README), which installs \
         golang-go, golang-google-grpc-dev, golang-google-protobuf-dev, protobuf-compiler, \
         protoc-gen-go and protoc-gen-go-grpc from Debian"
    );
    Command::new(name)
}

pub(crate) fn check(what: &str, cmd: &mut Command) {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{what}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Generates the stubs into a GOPATH under `root` and builds the consumer
/// and the provider there; returns their two executables.
fn build(root: &Path) -> (PathBuf, PathBuf) {
    let src = root.join("gopath/src");
    std::fs::create_dir_all(&src).unwrap();
    let mapping = [
        format!("Magencies/socialsecurity/v1/coverage.proto={STUBS}"),
        "Mjisr/annotations.proto=interop.gov.ma/jisr;jisr".to_owned(),
    ];
    let mut protoc = tool("protoc");
    protoc
        .arg("-I")
        .arg(root.join("contracts"))
        .arg("-I")
        .arg(proto_dir())
        .arg(format!("--go_out={}", src.display()))
        .arg(format!("--go-grpc_out={}", src.display()));
    for m in &mapping {
        protoc.arg(format!("--go_opt={m}"));
        protoc.arg(format!("--go-grpc_opt={m}"));
    }
    protoc.args([
        "agencies/socialsecurity/v1/coverage.proto",
        "jisr/annotations.proto",
    ]);
    check("protoc", &mut protoc);

    let gopath = format!("{}:/usr/share/gocode", root.join("gopath").display());
    let mut built = Vec::new();
    for program in ["consumer", "provider"] {
        let dir = src.join("jisr-go").join(program);
        std::fs::create_dir_all(&dir).unwrap();
        let main = repo().join("tests/it/go").join(program).join("main.go");
        std::fs::copy(main, dir.join("main.go")).unwrap();
        let exe = root.join(format!("go-{program}"));
        check(
            &format!("go build {program}"),
            tool("go")
                .args(["build", "-o"])
                .arg(&exe)
                .arg(format!("jisr-go/{program}"))
                .env("GO111MODULE", "off")
                .env("GOPATH", &gopath)
                .env("GOCACHE", repo().join("target/go-cache"))
                .env("GOFLAGS", ""),
        );
        built.push(exe);
    }
    (built.remove(0), built.remove(0))
}

/// Runs the Go consumer against `address`; the JSON object it prints.
async fn consume(consumer: &Path, pki: &Pki, address: &str, name: &str) -> serde_json::Value {
    let out = tokio::process::Command::new(consumer)
        .arg(&pki.dir)
        .args([address, name])
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_go_provider_and_consumer_call_through_the_gateway_and_the_provider_lets_only_it_in() {
    let pki = Pki::new();
    let (config, upstream) = onboard_fund(&pki);
    let (consumer, provider) = build(pki.root());
    let backend = Proc::spawn(
        "go-provider",
        Command::new(&provider)
            .arg(&pki.dir)
            .args([upstream.as_str(), DOMAIN]),
    );
    backend.wait_log("listening");

    let gateway = Gateway::start("gateway", &config);

    // Through the gateway: answered by the Go back-end, for the ministry.
    let call = consume(&consumer, &pki, &gateway.addr, "localhost").await;
    assert_eq!(call["covered"], true, "{call}");
    assert_eq!(call["scheme"], "AMO for education", "{call}");
    assert_eq!(call["valid_until"], "AB123456:2027-12-31", "{call}");
    assert_eq!(call["basis"], serde_json::json!(["law:65-00"]), "{call}");

    // Straight to the back-end with a valid agency certificate: refused by
    // the Go provider itself, since the caller is not the gateway.
    let call = consume(&consumer, &pki, &upstream, "localhost").await;
    assert_eq!(call["code"], "PermissionDenied", "{call}");
    assert_eq!(call["message"], "not the gateway", "{call}");
}
