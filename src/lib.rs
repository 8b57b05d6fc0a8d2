//! Jisr (جسر, "bridge"): the interoperability gateway between administrations.
//!
//! Agency back-office systems call each other's gRPC services through a Jisr
//! node with their ordinary generated stubs. The node checks each call,
//! forwards it over mutual TLS, and records it in a tamper-evident audit log
//! before any data leaves: no audit, no data.
//!
//! # The flow of a unary call
//!
//! 1. [`gateway::server`] accepts the TLS connection and reads the caller's
//!    [`identity::AgencyId`] from its certificate, once ([`tls`]); the
//!    connection is served on one of the [`gateway::lanes`].
//! 2. [`gateway::Gateway`] dispatches by path: Jisr's own APIs (audit,
//!    consents, bus, health) or an exchange, looked up in the current
//!    [`gateway::Routing`] (contracts from the [`catalogue`]).
//! 3. [`gateway::metadata`] reads the `jisr-*` metadata.
//! 4. [`policy`] checks the access rules and yields a [`policy::Grant`].
//! 5. `gateway::layers::stack` assembles the provider leg, one tower layer
//!    per concern: rate limit, shedding, breaker, reading and walking the
//!    body for the citizen id, the consent check (which yields the permit
//!    delivery requires), the route timeout, delivery.
//! 6. [`audit::record`] builds the exchange's record; [`audit::log`] makes it
//!    durable; only then does the answer leave ([`gateway::exchange`]).
//! 7. [`telemetry`] counts it; a refusal at any step is one
//!    [`refusal::Reason`], mapped to a gRPC status in one place
//!    ([`refusal`]).
//!
//! # The layers of the crate
//!
//! Dependencies point one way: tools → gateway → parts → foundations.
//!
//! - Foundations: [`identity`], [`refusal`], [`config`], [`tls`],
//!   [`catalogue`], [`redis`] (the shared connection), [`clock`], [`proto`].
//! - Parts: [`policy`] (rules and field release), [`audit`], [`consent`],
//!   [`bus`], [`telemetry`], [`cluster`] (the replicas' registry).
//! - The gateway: [`gateway`] (server, lanes, routing, reload, the exchange
//!   and its layers).
//! - Tools: [`tools`] (the `jisr` command, benchmarks, the demo, sample
//!   providers, the development PKI).
//!
//! `docs/ARCHITECTURE.md` has the map and says where to add a check on the
//! provider leg, a storage backend, a gateway API or a CLI command.

pub mod audit;
pub mod bus;
pub mod catalogue;
pub mod clock;
pub mod cluster;
pub mod config;
pub mod consent;
pub mod console;
pub mod embedded;
pub mod gateway;
pub mod identity;
pub mod policy;
pub mod proto;
pub mod redis;
pub mod refusal;
pub mod telemetry;
pub mod tls;
pub mod tools;
pub mod witness;

#[cfg(test)]
mod layering;
