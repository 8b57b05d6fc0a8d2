//! An agency written in Java, as docs/stacks.md shows it: the fund's
//! back-end and the ministry's consumer are grpc-java programs over Netty
//! (`tests/it/java/`) compiled with stubs that protoc and grpc_java_plugin
//! generate from the contract of `docs/onboarding.md`. The call goes
//! through a real gateway over mutual TLS on both legs, and the back-end
//! refuses a caller that is not the gateway.
//!
//! Everything comes from Debian 12 packages, offline (`scripts/test.sh`
//! installs default-jdk-headless, libgrpc-java, libnetty-java,
//! libnetty-tcnative-jni, libperfmark-java, libprotobuf-java,
//! libgeronimo-annotation-1.3-spec-java and
//! protobuf-compiler-grpc-java-plugin): the jars in /usr/share/java.

use crate::docs::repo;
use crate::golang::{check, tool};
use crate::support::onboard::onboard_fund;
use crate::support::proc::Proc;
use crate::support::*;
use std::path::{Path, PathBuf};

/// The jars the programs need, from /usr/share/java.
const JARS: [&str; 24] = [
    "grpc-api",
    "grpc-core",
    "grpc-netty",
    "grpc-protobuf",
    "grpc-protobuf-lite",
    "grpc-stub",
    "grpc-context",
    "protobuf",
    "guava",
    "jsr305",
    "netty-buffer",
    "netty-codec",
    "netty-codec-http",
    "netty-codec-http2",
    "netty-common",
    "netty-handler",
    "netty-resolver",
    "netty-transport",
    "netty-handler-proxy",
    "netty-codec-socks",
    "opencensus-api",
    "geronimo-annotation-1.3-spec",
    "netty-tcnative",
    "perfmark-api",
];

fn classpath(classes: &Path) -> String {
    let mut path: Vec<String> = JARS
        .iter()
        .map(|jar| format!("/usr/share/java/{jar}.jar"))
        .collect();
    for jar in &path {
        assert!(
            Path::new(jar).exists(),
            "{jar} is missing: run the test command, scripts/test.sh (README), which installs \
             libgrpc-java, libnetty-java, libnetty-tcnative-java, libperfmark-java, libprotobuf-java \
             and libgeronimo-annotation-1.3-spec-java"
        );
    }
    path.push(classes.display().to_string());
    path.join(":")
}

/// Debian's netty has no ALPN with the JDK's TLS (its JDK ALPN classes are
/// left out), and gRPC needs ALPN: TLS goes through OpenSSL with
/// netty-tcnative, whose library Debian installs as `libnetty-tcnative.so`
/// while netty 4.1.48 loads `libnetty_tcnative.so` (and checks the file
/// name it was loaded from, so a copy, not a link). Returns the directory
/// for `-Djava.library.path`.
fn tcnative(root: &Path) -> PathBuf {
    let debian = Path::new("/usr/lib/x86_64-linux-gnu/jni/libnetty-tcnative.so");
    assert!(
        debian.exists(),
        "{} is missing: run the test command, scripts/test.sh (README), which installs \
         libnetty-tcnative-jni",
        debian.display()
    );
    let dir = root.join("jni");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(debian, dir.join("libnetty_tcnative.so")).unwrap();
    dir
}

/// Generates the stubs and compiles them with the two programs; returns
/// the classpath to run them with.
fn build(root: &Path) -> String {
    let generated = root.join("java-generated");
    let classes = root.join("java-classes");
    std::fs::create_dir_all(&generated).unwrap();
    std::fs::create_dir_all(&classes).unwrap();
    check(
        "protoc",
        tool("protoc")
            .arg("-I")
            .arg(root.join("contracts"))
            .arg("-I")
            .arg(proto_dir())
            .arg(format!("--java_out={}", generated.display()))
            .arg("--plugin=protoc-gen-grpc-java=/usr/bin/grpc_java_plugin")
            .arg(format!("--grpc-java_out={}", generated.display()))
            .args([
                "agencies/socialsecurity/v1/coverage.proto",
                "jisr/annotations.proto",
            ]),
    );
    let mut sources: Vec<PathBuf> = ["Consumer.java", "Provider.java"]
        .iter()
        .map(|name| repo().join("tests/it/java").join(name))
        .collect();
    for dir in ["jisr", "ma/socialsecurity/v1"] {
        for entry in std::fs::read_dir(generated.join(dir)).unwrap() {
            sources.push(entry.unwrap().path());
        }
    }
    let path = classpath(&classes);
    check(
        "javac",
        tool("javac")
            .args(["-nowarn", "-d"])
            .arg(&classes)
            .args(["-cp", &path])
            .args(&sources),
    );
    path
}

/// Runs the Java consumer against `address`; the line it prints.
async fn consume(path: &str, jni: &Path, pki: &Pki, address: &str) -> String {
    let (host, port) = address.rsplit_once(':').unwrap();
    let out = tokio::process::Command::new("java")
        .arg(format!("-Djava.library.path={}", jni.display()))
        .args(["-cp", path, "Consumer"])
        .arg(&pki.dir)
        .args([host, port, "localhost"])
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}{stderr}");
    // What went wrong below gRPC (a TLS alert, say) is on stderr.
    if !stdout.starts_with("covered=") {
        eprintln!("the Java consumer, on {address}: {stderr}");
    }
    stdout
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_java_provider_and_consumer_call_through_the_gateway_and_the_provider_lets_only_it_in() {
    let pki = Pki::new();
    let (config, upstream) = onboard_fund(&pki);
    let path = build(pki.root());
    let jni = tcnative(pki.root());
    let (host, port) = upstream.rsplit_once(':').unwrap();
    let backend = Proc::spawn(
        "java-provider",
        tool("java")
            .arg(format!("-Djava.library.path={}", jni.display()))
            .args(["-cp", &path, "Provider"])
            .arg(&pki.dir)
            .args([host, port, DOMAIN]),
    );
    backend.wait_log("listening");
    let gateway = Gateway::start("gateway", &config);

    // Through the gateway: answered by the Java back-end, for the ministry.
    let call = consume(&path, &jni, &pki, &gateway.addr).await;
    assert_eq!(
        call,
        "covered=true scheme=AMO for education valid_until=AB123456:2027-12-31",
        "{}",
        backend.logs()
    );

    // Straight to the back-end with a valid agency certificate: refused by
    // the Java provider itself, since the caller is not the gateway.
    let call = consume(&path, &jni, &pki, &upstream).await;
    assert_eq!(call, "code=PERMISSION_DENIED message=not the gateway");
}
