//! The replicas of one deployment, as seen through the Redis they share:
//! a small registry where each live node holds `jisr:node:{<node-id>}`
//! (its instance, the address peers should dial, its audit verifier key,
//! when it started), so that a second replica started with a node id that
//! is already live refuses to start, naming the other, and so that the
//! replicas can find each other ([`Registry::list`]).
//!
//! An entry lives as long as its heartbeat: it is set with a TTL
//! (`[node] registration_ttl_ms`) that the holder renews every third of it,
//! and removed at a clean shutdown. A node killed outright holds its id for
//! at most one TTL more, except to itself: a replica restarted with the
//! same audit log (the same [`token`]) takes its registration back at once,
//! so an orchestrator restarting a crashed replica does not crash-loop it
//! for a TTL. Redis being down never stops a node from starting: it logs a
//! warning and registers as soon as Redis answers.

mod registry;
pub mod token;

pub use registry::{NodeEntry, Registration, Registry, RegistryError};
