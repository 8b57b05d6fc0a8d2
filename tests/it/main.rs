//! Black-box tests: real `jisr` processes on loopback ports, called over real
//! mutual TLS. One binary, a module per feature (see STYLE.md).

// Items here are `pub` for sibling modules of this test binary only.
#![allow(unreachable_pub)]

mod audit;
mod bench;
mod bus;
mod certificates;
mod cli;
mod consent;
mod consent_cli;
mod consent_store;
mod lifecycle;
mod refusals;
mod reload;
mod resilience;
mod routing;
mod support;
mod telemetry;
