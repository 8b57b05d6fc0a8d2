//! The tools built on the gateway: the `jisr` command ([`cli`]), the
//! benchmarks ([`bench`](mod@bench)), the demo ([`demo`]), the sample agency back-ends
//! ([`samples`]) and the development PKI ([`pki`]).
//!
//! Nothing in the gateway or its parts imports from here (tests aside: unit
//! tests of the foundations use [`pki`] to make certificates).

pub mod bench;
pub mod cli;
pub mod demo;
pub mod pki;
pub mod samples;
