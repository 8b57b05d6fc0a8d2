//! The witness's configuration file: its name, key and state, the HTTPS
//! listener, and the logs it witnesses (origin and verifier key each).
//! Relative paths are read against the file's own directory, so a unit or
//! a container can move the whole set together.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::WitnessError;
use crate::audit::note::NoteVerifier;

/// A loaded, checked witness configuration.
#[derive(Debug, Clone)]
pub struct WitnessConfig {
    /// The cosigner name, e.g. `witness.cndp.ma/jisr` (a schema-less URL by
    /// convention); it names the witness's key.
    pub name: String,
    /// Where to listen for HTTPS.
    pub listen: SocketAddr,
    /// The cosigning key file (created at first start, mode 0600).
    pub key: PathBuf,
    /// Where the latest cosigned checkpoint of each log is kept.
    pub state_dir: PathBuf,
    /// The server certificate (PEM chain) presented to logs.
    pub tls_cert: PathBuf,
    /// Its private key (PEM).
    pub tls_key: PathBuf,
    /// The logs witnessed.
    pub logs: Vec<KnownLog>,
}

/// One witnessed log.
#[derive(Debug, Clone)]
pub struct KnownLog {
    /// The checkpoint origin line that names the log.
    pub origin: String,
    /// The log's checkpoint verifier key.
    pub verifier: NoteVerifier,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    name: String,
    listen: SocketAddr,
    key: PathBuf,
    state_dir: PathBuf,
    tls: Tls,
    #[serde(default, rename = "log")]
    logs: Vec<Log>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Tls {
    cert: PathBuf,
    key: PathBuf,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Log {
    origin: Option<String>,
    verifier: String,
}

impl WitnessConfig {
    /// Reads and checks the file at `path`.
    pub fn load(path: &Path) -> Result<Self, WitnessError> {
        let text = std::fs::read_to_string(path).map_err(|e| WitnessError::Config {
            path: path.to_owned(),
            what: format!("cannot read it: {e}"),
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        Self::parse(&text, base).map_err(|what| WitnessError::Config {
            path: path.to_owned(),
            what,
        })
    }

    /// Parses configuration text, resolving relative paths against `base`.
    pub fn parse(text: &str, base: &Path) -> Result<Self, String> {
        let file: File = toml::from_str(text).map_err(|e| e.to_string())?;
        let at = |p: PathBuf| if p.is_absolute() { p } else { base.join(p) };
        crate::audit::note::Cosigner::generate(&file.name).map_err(|e| {
            format!("`name`: {e}; use a schema-less URL such as witness.cndp.ma/jisr")
        })?;
        if file.logs.is_empty() {
            return Err("no [[log]]: add one per log (replica) to witness, with its `verifier` key (`jisr audit` prints it; a node writes it to <log dir>/verifier.key)".into());
        }
        let mut logs: Vec<KnownLog> = Vec::with_capacity(file.logs.len());
        for (n, log) in file.logs.into_iter().enumerate() {
            let verifier = NoteVerifier::from_text(log.verifier.trim()).map_err(|e| {
                format!("[[log]] {}: `verifier` is not a log verifier key ({e}); copy the log's verifier.key", n + 1)
            })?;
            let origin = log.origin.unwrap_or_else(|| verifier.name().to_owned());
            if origin.is_empty() || origin.contains('\n') {
                return Err(format!(
                    "[[log]] {}: `origin` must be one non-empty line",
                    n + 1
                ));
            }
            if logs.iter().any(|l| l.origin == origin) {
                return Err(format!(
                    "[[log]] {}: origin `{origin}` is listed twice; each log once",
                    n + 1
                ));
            }
            logs.push(KnownLog { origin, verifier });
        }
        Ok(WitnessConfig {
            name: file.name,
            listen: file.listen,
            key: at(file.key),
            state_dir: at(file.state_dir),
            tls_cert: at(file.tls.cert),
            tls_key: at(file.tls.key),
            logs,
        })
    }
}
