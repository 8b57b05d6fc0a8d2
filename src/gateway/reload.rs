//! Hot reload: on SIGHUP, or when the configuration file, the TLS files or
//! a contract changes (checked every `node.reload_poll_ms`), the gateway
//! reads its configuration again, builds a whole new [`Routing`] beside the
//! current one and swaps it in. Calls in flight keep the state they started
//! with. A configuration that does not load, compile or pass the TLS checks
//! is rejected: the current state stays, the reason is logged at `error` and
//! kept in [`ReloadStatus`].

use super::{Gateway, Routing, StartError};
use crate::config::Config;
use sha2::{Digest as _, Sha256};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// How reloads went, for operators and metrics.
#[derive(Debug, Default)]
pub struct ReloadStatus {
    reloads: AtomicU64,
    failures: AtomicU64,
    last_error: Mutex<Option<String>>,
}

impl ReloadStatus {
    /// Successful reloads since start.
    pub fn reloads(&self) -> u64 {
        self.reloads.load(Ordering::Relaxed)
    }

    /// Rejected reloads since start.
    pub fn failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }

    /// Why the last reload was rejected; `None` once a reload succeeds.
    pub fn last_error(&self) -> Option<String> {
        self.last_error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn succeeded(&self) {
        self.reloads.fetch_add(1, Ordering::Relaxed);
        *self.last_error.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }

    fn failed(&self, why: &str) {
        self.failures.fetch_add(1, Ordering::Relaxed);
        *self.last_error.lock().unwrap_or_else(|e| e.into_inner()) = Some(why.to_owned());
    }
}

/// Why a new configuration was rejected.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// It does not load, compile or pass the TLS checks.
    #[error("{0}")]
    Invalid(#[from] StartError),
    /// It changes settings that only a restart applies.
    #[error("{0}")]
    RestartOnly(String),
}

impl Gateway {
    /// Reads the configuration file again and, if it is valid, swaps in the
    /// new routing state. On error the current state stays.
    pub async fn reload(&self) -> Result<(), ReloadError> {
        let _one = self.reloading.lock().await;
        let current = self.routing.load_full();
        let apis = self.apis.clone();
        let telemetry = self.telemetry.clone();
        let built =
            tokio::task::spawn_blocking(move || rebuild(&current, &apis, telemetry.metrics()))
                .await
                .unwrap_or_else(|e| {
                    Err(ReloadError::RestartOnly(format!(
                        "the reload task failed: {e}"
                    )))
                });
        match built {
            Ok(routing) => {
                let methods = routing.methods();
                self.telemetry
                    .ready()
                    .update(&routing.config.tls.cert, methods);
                let labels = routing.labels.clone();
                self.routing.store(Arc::new(routing));
                self.telemetry.metrics().use_labels(labels);
                self.reload.succeeded();
                tracing::info!(methods, "configuration reloaded");
                Ok(())
            }
            Err(e) => {
                let why = e.to_string();
                self.reload.failed(&why);
                tracing::error!(reason = %why, failures = self.reload.failures(), "configuration reload rejected; the previous configuration stays in force");
                Err(e)
            }
        }
    }
}

fn rebuild(
    current: &Routing,
    apis: &super::routing::Apis,
    metrics: &crate::telemetry::Metrics,
) -> Result<Routing, ReloadError> {
    let config = Config::load(&current.config.path).map_err(StartError::Config)?;
    restart_only(&current.config, &config)?;
    Ok(Routing::prepare(&config, Some(current), metrics, &apis.clock)?.finish(apis)?)
}

/// Settings a running node cannot change: its identity, its port, its audit
/// log, its consent store, its bus, its telemetry and its console.
fn restart_only(old: &Config, new: &Config) -> Result<(), ReloadError> {
    let changed: Vec<&str> = [
        ("`[node] id`", old.node.id != new.node.id),
        (
            "`[node] trust_domain`",
            old.node.trust_domain != new.node.trust_domain,
        ),
        ("`[node] listen`", old.node.listen != new.node.listen),
        // Written in the replica registry once, at start.
        (
            "`[node] advertise` or `registration_ttl_ms`",
            old.node.advertise != new.node.advertise
                || old.node.registration_ttl != new.node.registration_ttl,
        ),
        (
            "`[node] drain_timeout_ms`",
            old.node.drain_timeout != new.node.drain_timeout,
        ),
        (
            "`[node] first_request_timeout_ms`, `idle_timeout_ms` or `max_connections`",
            old.node.connections != new.node.connections,
        ),
        // The own services' buckets and the refusal budget are made at start.
        (
            "`[node] own_calls_per_second`, `own_calls_burst`, `refusals_recorded` or `refusal_window_ms`",
            old.node.flood != new.node.flood,
        ),
        // Lanes are threads started with the listener.
        ("`[node] lanes`", old.node.lanes != new.node.lanes),
        ("[audit]", old.audit != new.audit),
        ("[consent]", old.consent != new.consent),
        // The bus's subscriptions and stores are built once, at start.
        ("[bus]", old.bus != new.bus),
        ("[[topic]]", old.topics != new.topics),
        // The exporters, the admin listener and the log format are set up
        // once, at start.
        ("[telemetry]", old.telemetry != new.telemetry),
        // The console's listener, certificate and sign-in key are set up
        // once, at start (its roles follow reloads).
        ("[console]", old.console != new.console),
    ]
    .into_iter()
    .filter_map(|(name, changed)| changed.then_some(name))
    .collect();
    if changed.is_empty() {
        return Ok(());
    }
    Err(ReloadError::RestartOnly(format!(
        "{} changed, which only a restart applies: restart the node to apply it, or put the old value back to reload the rest",
        changed.join(", ")
    )))
}

/// A digest of the configuration file and every file it names that a reload
/// reads (TLS files, contracts); a file that cannot be read counts as empty.
fn fingerprint(config: &Config) -> [u8; 32] {
    let mut files: Vec<PathBuf> = vec![
        config.path.clone(),
        config.tls.ca.clone(),
        config.tls.cert.clone(),
        config.tls.key.clone(),
    ];
    files.extend(config.tls.crls.iter().cloned());
    for contract in config.agencies.iter().flat_map(|a| &a.contracts) {
        if let Some(found) = config
            .catalogue
            .include
            .iter()
            .map(|dir| dir.join(contract))
            .find(|p| p.exists())
        {
            files.push(found);
        }
    }
    let mut hash = Sha256::new();
    for file in files {
        hash.update(std::fs::read(&file).unwrap_or_default());
        hash.update(file.as_os_str().as_encoded_bytes());
    }
    hash.finalize().into()
}

/// The fingerprint of what a reload would read now: the configuration file
/// on disk and the files *it* names, or the running configuration's files
/// while the file on disk does not parse.
fn on_disk(running: &Config) -> [u8; 32] {
    match Config::load(&running.path) {
        Ok(config) => fingerprint(&config),
        Err(_) => fingerprint(running),
    }
}

async fn disk_fingerprint(gateway: &Gateway) -> [u8; 32] {
    let routing = gateway.routing();
    tokio::task::spawn_blocking(move || on_disk(&routing.config))
        .await
        .unwrap_or_default()
}

/// Reloads on SIGHUP and when the watched files change, until aborted.
/// `hangup` was installed by [`super::server::listen`] before the node said
/// it was up, so no SIGHUP falls between the two.
pub(super) fn spawn_watcher(
    gateway: Arc<Gateway>,
    mut hangup: Option<tokio::signal::unix::Signal>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut seen = disk_fingerprint(&gateway).await;
        loop {
            let poll = gateway.routing().config.node.reload_poll;
            let signalled = async {
                match hangup.as_mut() {
                    Some(s) => s.recv().await.is_some(),
                    None => std::future::pending().await,
                }
            };
            let tick = async {
                match poll {
                    Some(every) => tokio::time::sleep(every).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                got = signalled => {
                    if !got {
                        hangup = None;
                        continue;
                    }
                    seen = disk_fingerprint(&gateway).await;
                    tracing::info!("SIGHUP: reloading the configuration");
                }
                () = tick => {
                    let now = disk_fingerprint(&gateway).await;
                    if now == seen {
                        continue;
                    }
                    seen = now;
                    tracing::info!("configuration files changed: reloading");
                }
            }
            // What was seen is taken before the reload reads the files: a
            // change landing while it reloads differs from it, and is
            // reloaded at the next poll rather than missed (taken after, it
            // could already hold a change the reload never read). It is kept
            // even if the reload fails, so a broken file is reported once,
            // not at every poll. The outcome is logged and kept in the
            // status by `reload`.
            let _ = gateway.reload().await;
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = r#"[node]
id = "gw-1"
trust_domain = "interop.gov.ma"
listen = "127.0.0.1:8443"

[tls]
ca = "ca.crt"
cert = "gw.crt"
key = "gw.key"
"#;

    fn config(text: &str) -> Config {
        Config::from_toml(text, std::path::Path::new("/etc/jisr/jisr.toml")).unwrap()
    }

    #[test]
    fn restart_only_settings_are_named() {
        let old = config(BASE);
        assert!(restart_only(&old, &old).is_ok());
        let new = config(
            &BASE
                .replace("8443\"", "9443\"\nlanes = 1")
                .replace("[tls]", "[audit]\ndir = \"elsewhere\"\n\n[tls]")
                .replace("[tls]", "[telemetry]\nlog_format = \"json\"\n\n[tls]"),
        );
        let message = restart_only(&old, &new).unwrap_err().to_string();
        assert!(message.contains("`[node] listen`"), "{message}");
        assert!(message.contains("`[node] lanes`"), "{message}");
        assert!(message.contains("[audit]"), "{message}");
        assert!(message.contains("[telemetry]"), "{message}");
        assert!(!message.contains("trust_domain"), "{message}");
        assert!(message.contains("restart the node"), "{message}");
        // Reloadable settings are not restart-only.
        let new = config(&BASE.replace(
            "[tls]",
            "[[purpose]]\ncode = \"x\"\ndescription = \"x\"\n\n[tls]",
        ));
        assert!(restart_only(&old, &new).is_ok());
        let new = config(&BASE.replace("[tls]", "[console]\nlisten = \"127.0.0.1:8444\"\n\n[tls]"));
        let message = restart_only(&old, &new).unwrap_err().to_string();
        assert!(message.contains("[console]"), "{message}");
    }

    /// `BASE` written as `jisr.toml` in a new directory, and loaded.
    fn loaded() -> (tempfile::TempDir, std::path::PathBuf, Config) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("jisr.toml");
        std::fs::write(&path, BASE).unwrap();
        let config = Config::load(&path).unwrap();
        (dir, path, config)
    }

    #[test]
    fn the_fingerprint_follows_the_files_contents() {
        let (dir, path, c) = loaded();
        let before = fingerprint(&c);
        assert_eq!(before, fingerprint(&c));
        std::fs::write(dir.path().join("ca.crt"), "new CA").unwrap();
        let after = fingerprint(&c);
        assert_ne!(before, after);
        std::fs::write(&path, format!("{BASE}\n# a comment\n")).unwrap();
        assert_ne!(after, fingerprint(&c));
    }

    #[test]
    fn what_a_reload_would_read_follows_the_files_the_new_text_names() {
        let (dir, path, running) = loaded();
        // The file on disk now names a CRL the running configuration does
        // not: a change to it is a change of what a reload reads.
        std::fs::write(
            &path,
            BASE.replace("key = \"gw.key\"", "key = \"gw.key\"\ncrls = [\"ca.crl\"]"),
        )
        .unwrap();
        let named = on_disk(&running);
        let old_set = fingerprint(&running);
        assert_eq!(named, on_disk(&running));
        std::fs::write(dir.path().join("ca.crl"), "a CRL").unwrap();
        assert_ne!(named, on_disk(&running));
        // The running configuration's own files did not see it.
        assert_eq!(old_set, fingerprint(&running));
        // A file that does not parse: the running configuration's files and
        // the broken text, the same at every poll (reported once).
        std::fs::write(&path, "[node\n").unwrap();
        let broken = on_disk(&running);
        assert_eq!(broken, fingerprint(&running));
        assert_eq!(broken, on_disk(&running));
    }
}
