//! Jisr (جسر, "bridge"): the interoperability gateway between administrations.
//!
//! Agency back-office systems call each other's gRPC services through a Jisr
//! node with their ordinary generated stubs. For every call the node:
//!
//! 1. authenticates the caller by mutual TLS and reads its [`identity::AgencyId`]
//!    from the certificate's SPIFFE URI, once per connection ([`tls`]);
//! 2. looks the gRPC path up in the [`catalogue`] (contracts loaded at runtime
//!    from `.proto` files) to find the provider agency and its upstream;
//! 3. reads the `jisr-*` metadata and checks the access rules ([`policy`]),
//!    which yield a [`policy::Grant`] naming the legal basis;
//! 4. walks the request's protobuf wire format to validate it and find the
//!    citizen identifier (the field marked `(jisr.subject)`);
//! 5. forwards the original bytes to the provider over mutual TLS and streams
//!    the answer back unchanged ([`proxy`]).
//!
//! Every refusal is a gRPC status with a stable reason in
//! `google.rpc.ErrorInfo` (domain `jisr`), built in one place
//! ([`proxy::refusal`]).
//!
//! The [`cli`] module holds the `jisr` command; [`samples`] holds the sample
//! agency back-ends used by the demo, the tests and the benchmarks.

pub mod audit;
pub mod bus;
pub mod catalogue;
pub mod clock;
pub mod config;
pub mod consent;
pub mod gateway;
pub mod identity;
pub mod policy;
pub mod proto;
pub mod redis;
pub mod refusal;
pub mod telemetry;
pub mod tls;
pub mod tools;
