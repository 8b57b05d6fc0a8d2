//! The provider leg's tower layers, one concern per file, assembled in one
//! place (`stack`): per-consumer rate limits ([`rate`]), in-flight
//! shedding ([`shed`]), the upstream instances' breakers ([`breaker`]), the
//! exchange's own work (`prepare`) with the legal-basis permit it checks
//! ([`consent`]), the route's timeout (`timeout`) and delivery to the
//! provider (`deliver`).

pub mod breaker;
pub mod consent;
pub(crate) mod deliver;
pub(crate) mod prepare;
pub mod rate;
pub mod shed;
pub(crate) mod stack;
pub(crate) mod timeout;

use std::time::Duration;

/// The retry hint of a shed call or a provider timeout.
pub(crate) const OVERLOAD_RETRY: Duration = Duration::from_millis(200);
