//! Black-box tests: real gateways on loopback ports, called over real mutual
//! TLS. Each runs in this process (`support::Gateway`, the `run` that
//! `jisr serve` runs) unless the test needs a `jisr` process (signals, its
//! log, its exit status; see `support/gateway.rs`). One binary, a module
//! per feature (see STYLE.md).

// Items here are `pub` for sibling modules of this test binary only.
#![allow(unreachable_pub)]

mod agency_ca;
mod archive;
mod audit;
mod audit_faults;
mod bench;
mod bus;
mod bus_ack;
mod bus_redis;
mod bus_redis_sealed;
mod bus_retention;
mod certificates;
mod citizen;
mod citizen_deferred;
mod citizen_receipts;
mod citizen_witnesses;
mod cli;
mod connections;
mod consent;
mod consent_cli;
mod consent_redis;
mod consent_store;
mod console;
mod console_bench;
mod console_certificates;
mod console_integrity;
mod console_keyboard;
mod console_pages;
mod console_replicas;
mod deploy;
mod docs;
mod drain;
mod faults;
mod flood;
mod golang;
mod java;
mod lifecycle;
mod officials;
mod onboard;
mod probe;
mod probe_provider;
mod python;
mod recover;
mod recover_segments;
mod refusals;
mod reload;
mod replicas;
mod replicas_audit;
mod replicas_lb;
mod replicas_lb_bus;
mod replicas_registry;
mod replicas_verify;
mod resilience;
mod routing;
mod serve_signals;
mod support;
mod telemetry;
mod tiles;
mod tlog_proof;
mod witness;
mod witness_bench;
mod witnessing;
