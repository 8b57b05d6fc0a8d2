#!/usr/bin/env bash
# Runs Jisr's whole test suite: unit, property and black-box tests.
# Works on a fresh Debian machine with only the Rust toolchain; servers the
# tests need beyond Jisr's own processes are installed here when
# missing (redis-server for the consent store tests), and the tests start
# their own instances on free loopback ports.
set -euo pipefail
cd "$(dirname "$0")/.."

# apt-get update runs once, before the first install of this run (a
# fresh machine installs some 30 packages; one update serves them all).
APT_UPDATED=
apt_install() { # apt_install PACKAGE...
  if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
  if [ -z "$APT_UPDATED" ]; then
    $SUDO apt-get update -qq
    APT_UPDATED=1
  fi
  $SUDO apt-get install -y -qq "$@" >/dev/null
}

need_pkg() { # need_pkg COMMAND PACKAGE
  command -v "$1" >/dev/null 2>&1 && return 0
  echo "test.sh: installing $2 (needed by the tests)" >&2
  apt_install "$2"
}

# The consent store tests start their own redis-server (and a cluster with
# redis-cli, which the same package installs).
need_pkg redis-server redis-server
# The load-balanced replica tests (tests/it/replicas_lb.rs) put their own
# haproxy, in TCP mode, in front of three `jisr serve` processes.
need_pkg haproxy haproxy
# The certificate tests make RSA-1024 and SHA-1 client certificates, which
# Jisr's own PKI tool refuses to issue.
need_pkg openssl openssl
# (nginx joins here with the benchmark work.)
# The web console's tests drive headless Chromium over WebDriver
# (tests/it/support/browser.rs).
need_pkg chromium chromium
need_pkg chromedriver chromium-driver
# The citizen page (tests/it/citizen.rs) must render Tifinagh (U+2D30…) as
# glyphs: DejaVu Sans covers it and Arabic, and the page's CSS names it.
if ! fc-list ':charset=2d30' 2>/dev/null | grep -q .; then
  echo "test.sh: installing fonts-dejavu-core (Tifinagh glyphs for the citizen page)" >&2
  apt_install fonts-dejavu-core fontconfig
fi

# The tlog-tiles test (tests/it/tiles.rs) checks the tiles with an
# independent implementation, Go's golang.org/x/mod/sumdb/tlog, built in
# GOPATH mode from Debian's packages (nothing is downloaded).
need_pkg go golang-go
if [ ! -d /usr/share/gocode/src/golang.org/x/mod/sumdb/tlog ]; then
  echo "test.sh: installing golang-golang-x-mod-dev (Go's sumdb/tlog, for the tiles test)" >&2
  apt_install golang-golang-x-mod-dev
fi
# The Kubernetes manifests are checked against the API's schemas
# (tests/it/deploy.rs) by kubernetes-validate from PyPI, in a venv under
# target/ so nothing is installed system-wide.
need_pkg python3 python3
VENV=target/venv
if [ ! -x "$VENV/bin/kubernetes-validate" ]; then
  if ! python3 -m venv --help >/dev/null 2>&1 || ! python3 -c 'import ensurepip' 2>/dev/null; then
    echo "test.sh: installing python3-venv (needed by the tests)" >&2
    apt_install python3-venv
  fi
  echo "test.sh: installing kubernetes-validate into $VENV (needed by the tests)" >&2
  python3 -m venv "$VENV"
  # Pinned: the tests name a Kubernetes version whose schemas it ships.
  "$VENV/bin/pip" install --quiet kubernetes-validate==1.37.0
fi
# The Python agency of the onboarding test (tests/it/python.rs): grpcio,
# and grpcio-tools to generate its stubs from the contract.
if ! "$VENV/bin/python" -c 'import grpc, grpc_tools' 2>/dev/null; then
  echo "test.sh: installing grpcio and grpcio-tools into $VENV (needed by the tests)" >&2
  "$VENV/bin/pip" install --quiet grpcio==1.85.4 grpcio-tools==1.85.4
fi
# The Go agency (tests/it/golang.rs): Debian's Go, grpc-go and protobuf
# sources (GOPATH mode, nothing fetched from the Go proxy), protoc and the
# Go generators. github.com/golang/protobuf must be the 1.5 package (it
# replaces the 1.3 one, which cannot decode today's generated messages).
need_pkg go golang-go
need_pkg protoc protobuf-compiler
need_pkg protoc-gen-go protoc-gen-go
need_pkg protoc-gen-go-grpc protoc-gen-go-grpc
need_file() { # need_file PATH PACKAGE
  [ -e "$1" ] && return 0
  echo "test.sh: installing $2 (needed by the tests)" >&2
  apt_install "$2"
}
need_file /usr/share/gocode/src/google.golang.org/grpc/server.go golang-google-grpc-dev
need_file /usr/share/gocode/src/google.golang.org/protobuf/proto/decode.go golang-google-protobuf-dev
need_file /usr/share/gocode/src/github.com/golang/protobuf/proto/registry.go golang-github-golang-protobuf-1-5-dev
# The Java agency (tests/it/java.rs): a JDK, grpc-java over Netty and
# their jars in /usr/share/java, netty-tcnative (Debian's Netty has no JDK
# ALPN, so TLS goes through OpenSSL), and the grpc-java generator.
need_pkg javac default-jdk-headless
need_pkg grpc_java_plugin protobuf-compiler-grpc-java-plugin
need_file /usr/share/java/grpc-netty.jar libgrpc-java
need_file /usr/share/java/netty-codec-http2.jar libnetty-java
need_file /usr/share/java/protobuf.jar libprotobuf-java
need_file /usr/share/java/perfmark-api.jar libperfmark-java
need_file /usr/share/java/geronimo-annotation-1.3-spec.jar libgeronimo-annotation-1.3-spec-java
need_file /usr/share/java/netty-tcnative.jar libnetty-tcnative-java
need_file /usr/share/java/guava.jar libguava-java
need_file /usr/share/java/jsr305.jar libjsr305-java
need_file /usr/share/java/opencensus-api.jar libopencensus-java
need_file /usr/lib/x86_64-linux-gnu/jni/libnetty-tcnative.so libnetty-tcnative-jni

# Tests that need root (a real tmpfs filled up, a loop device) are
# `#[ignore]`d and named `…_as_root`; as root, a second pass runs them, so
# they never pass unrun. Without root they are listed as ignored, and the
# same claims are proven through the audit writer's fault hook.
AS_ROOT='test(/_as_root$/)'
if [ "$(id -u)" -eq 0 ]; then ROOT=1; else ROOT=; fi

if command -v cargo-nextest >/dev/null 2>&1; then
  # In CI (the CI variable set): the `ci` profile of .config/nextest.toml,
  # with per-test timeouts, no retries and a JUnit report in
  # target/nextest/ci/junit.xml (the root pass's in target/nextest/ci-root/).
  if [ -n "${CI:-}" ]; then PROFILE=ci; ROOT_PROFILE=ci-root; else PROFILE=default; ROOT_PROFILE=default; fi
  status=0
  # One build, tests in parallel across binaries and within them.
  cargo nextest run --profile "$PROFILE" --no-fail-fast "$@" || status=$?
  if [ -n "$ROOT" ]; then
    cargo nextest run --profile "$ROOT_PROFILE" --no-fail-fast --run-ignored only -E "$AS_ROOT" "$@" || status=$?
  fi
  # nextest does not run doctests.
  cargo test --doc --quiet || status=$?
  exit "$status"
else
  status=0
  cargo test --no-fail-fast "$@" || status=$?
  if [ -n "$ROOT" ]; then
    cargo test --no-fail-fast "$@" -- --ignored _as_root || status=$?
  fi
  exit "$status"
fi
