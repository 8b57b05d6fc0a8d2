//! `jisr witness`: a C2SP tlog-witness another institution runs (the CNDP,
//! the Court of Accounts) so that the operator of Jisr cannot show one
//! history to some and another to others. It cosigns a log's checkpoint
//! only if it is consistent with the last one it cosigned for that log, and
//! makes that new state durable before it answers.
//!
//! - [`config`]: the witness's file (name, key, state, TLS, logs).
//! - `check`: one `add-checkpoint` request, checked and answered.
//! - `state`: the durable record of each log's latest cosigned checkpoint.
//! - `server`: HTTPS (HTTP/1.1) in front of it.
//!
//! The witness depends on the audit part for notes, checkpoints and
//! proofs, and on nothing of the gateway: it runs on another institution's
//! machine.

mod check;
pub mod config;
mod key;
mod server;
mod state;
#[cfg(test)]
mod tests;

use std::path::PathBuf;

pub use check::{Verdict, Witness};
pub use config::{KnownLog, WitnessConfig};
pub use key::load_or_create_cosigner;
pub use server::serve;

/// Why the witness could not start.
#[derive(Debug, thiserror::Error)]
pub enum WitnessError {
    /// The configuration file is wrong.
    #[error("witness config {path}: {what}")]
    Config {
        /// The file.
        path: PathBuf,
        /// What is wrong and what to do.
        what: String,
    },
    /// The cosigning key file is wrong.
    #[error("witness key {path}: {what}")]
    Key {
        /// The file.
        path: PathBuf,
        /// What is wrong and what to do.
        what: String,
    },
    /// A recorded state file does not parse.
    #[error("witness state {path} is damaged: {what}; restore it from a backup (never delete it: the witness would then cosign a rolled-back log)")]
    State {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        what: String,
    },
    /// A file operation failed.
    #[error("cannot {action} {path}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The TLS files do not load.
    #[error("witness TLS: {0}")]
    Tls(#[from] crate::tls::TlsError),
}
