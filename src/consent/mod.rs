//! Consent and legal-basis enforcement: consent artefacts, their lifecycle
//! and the stores that hold them.

pub mod artefact;
pub mod bench;
pub mod check;
pub mod embedded;
pub mod minimise;
pub mod redis_store;
pub mod service;
pub mod store;

pub use store::{ConsentStore, StoreError, StoredConsent, UseOutcome};
