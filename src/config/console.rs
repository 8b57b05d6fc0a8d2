//! `[console]`: the operators' web console (its own HTTPS listener), off
//! unless the section is present.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::sections::{bounded, non_empty_path, resolve};
use super::table::{Ctx, Section};
use crate::tls::TlsFiles;

pub(super) const CONSOLE_KEYS: &[&str] = &[
    "listen",
    "cert",
    "key",
    "signin_key",
    "session_minutes",
    "link_minutes",
];

/// Default of `console.session_minutes`.
const DEFAULT_SESSION_MINUTES: i64 = 30;
/// Default of `console.link_minutes`.
const DEFAULT_LINK_MINUTES: i64 = 5;

/// `[console]`: where the console listens, the certificate it presents,
/// the key sign-in links are signed with, and how long things last.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsoleConfig {
    /// The HTTPS address (`127.0.0.1:0` picks a port, logged at start).
    pub listen: SocketAddr,
    /// The certificate (chain) browsers are shown; default the node's `tls.cert`.
    pub cert: PathBuf,
    /// Its private key; default the node's `tls.key`.
    pub key: PathBuf,
    /// The key (64 hex digits) that signs sign-in links, default
    /// `console-signin.key` beside the config; created if absent, and read
    /// by `jisr console login`, which mints links without the gateway.
    pub signin_key: PathBuf,
    /// How long a session lasts after sign-in (default 30 minutes).
    pub session: Duration,
    /// How long a sign-in link stays valid (default 5 minutes, at most 15).
    pub link: Duration,
}

/// `[console]`; the node's `tls` supplies the default certificate.
pub(super) fn console(
    ctx: &mut Ctx,
    s: &Section<'_, '_>,
    base: &Path,
    node_tls: Option<&TlsFiles>,
) -> Option<ConsoleConfig> {
    let listen = s.req_str(ctx, "listen", "\"127.0.0.1:8444\"");
    let listen = listen.and_then(|v| match v.get_ref().parse::<SocketAddr>() {
        Ok(addr) => Some(addr),
        Err(e) => {
            ctx.error(
                &v.span(),
                format!("`listen` in [console] is not an address: {e}"),
                "write `host:port`, e.g. `listen = \"127.0.0.1:8444\"` (port 0 picks one)",
            );
            None
        }
    });
    let mut file = |key: &str, default: Option<PathBuf>| -> Option<PathBuf> {
        match (s.table.get(key), default) {
            (Some(_), _) | (None, None) => {
                let value = s.req_str(ctx, key, "\"pki/console.crt\"")?;
                non_empty_path(ctx, s, key, &value, base)
            }
            (None, Some(default)) => Some(default),
        }
    };
    let cert = file("cert", node_tls.map(|t| t.cert.clone()));
    let key = file("key", node_tls.map(|t| t.key.clone()));
    let signin_key = file("signin_key", Some(resolve(base, "console-signin.key")));
    let session = bounded(ctx, s, "session_minutes", (1, 720, DEFAULT_SESSION_MINUTES));
    let link = bounded(ctx, s, "link_minutes", (1, 15, DEFAULT_LINK_MINUTES));
    Some(ConsoleConfig {
        listen: listen?,
        cert: cert?,
        key: key?,
        signin_key: signin_key?,
        // Both within their bounds (checked by `bounded`), so positive.
        session: Duration::from_secs(session? as u64 * 60),
        link: Duration::from_secs(link? as u64 * 60),
    })
}
