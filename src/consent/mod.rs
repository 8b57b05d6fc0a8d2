//! Consent and legal-basis enforcement: consent artefacts, their lifecycle
//! and the stores that hold them.

pub mod artefact;
pub mod check;
pub mod service;
pub mod store;

pub use store::{ConsentStore, StoreError, StoredConsent, UseOutcome};
