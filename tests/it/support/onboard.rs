//! Onboarding the guide's new provider, the social-security fund, with
//! `jisr agency add`: the node that searches its contract, the command
//! itself, and the fund as `docs/onboarding.md` adds it (the Go, Java and
//! Python stacks' set-up; `onboard.rs` drives the command's other cases).

use super::proc::jisr;
use super::*;
use std::path::{Path, PathBuf};
use std::process::Output;

/// Runs `jisr ARGS`; its output and its stdout and stderr as one text.
pub fn run(args: &[&str]) -> (Output, String) {
    let out = jisr().args(args).output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out, text)
}

/// The standard test node, searching `contracts` too, with a purpose for
/// the new provider; returns the config file and the contract's path.
pub fn node(pki: &Pki, contract: &str) -> (PathBuf, PathBuf) {
    let contracts = pki.root().join("contracts");
    let file = contracts.join("agencies/socialsecurity/v1/coverage.proto");
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    std::fs::write(&file, contract).unwrap();
    let up = Upstreams {
        civil_status: "127.0.0.1:9".into(),
        tax: "127.0.0.1:9".into(),
        health: "127.0.0.1:9".into(),
    };
    let extra = "\n[[purpose]]\ncode = \"school-grant\"\ndescription = \"School grant\"\n";
    let proto = proto_dir().display().to_string();
    let config = gateway_config(pki, &up, "", extra).replace(
        &format!("include = [\"{proto}\"]"),
        &format!("include = [\"{proto}\", \"{}\"]", contracts.display()),
    );
    (write_config(pki, "gateway", &config), file)
}

pub fn arg(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// `jisr agency add social-security` for `contract` at `upstream`, on the
/// node `config`: what it printed; the caller judges success or failure.
pub fn add_fund(config: &Path, contract: &Path, upstream: &str) -> (Output, String) {
    run(&[
        "agency",
        "add",
        "social-security",
        "--config",
        arg(config),
        "--contract",
        arg(contract),
        "--upstream",
        upstream,
    ])
}

/// The guide's node with the fund added by `jisr agency add` at a free
/// port, and a rule letting the ministry check a coverage on a law; the
/// configuration and the fund's back-end address.
pub fn onboard_fund(pki: &Pki) -> (PathBuf, String) {
    use crate::docs::{block, blocks, read, repo};
    let guide = blocks(&read(&repo().join("docs/onboarding.md")));
    let (config, contract) = node(pki, block(&guide, "package ma.socialsecurity.v1;"));
    // A port no one listens on yet: the back-end binds it after the add.
    let upstream = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .to_string();
    let (out, text) = add_fund(&config, &contract, &upstream);
    assert!(out.status.success(), "{text}");
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str(
        "\n[[rule]]\nconsumer = \"education\"\nmethods = [\"ma.socialsecurity.v1.Coverage/GetCoverage\"]\n\
         purposes = [\"school-grant\"]\nbasis = \"law:65-00\"\n",
    );
    std::fs::write(&config, text).unwrap();
    (config, upstream)
}
