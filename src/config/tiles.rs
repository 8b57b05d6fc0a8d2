//! `[audit.tiles]`: the log served read-only in the C2SP tlog-tiles layout
//! on its own HTTPS listener, off unless the table is present. Tiles are
//! public by design (anyone may check the log), so the listener asks for no
//! client certificate: plain server-authenticated TLS.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use super::sections::non_empty_path;
use super::table::{Ctx, Section};
use crate::tls::TlsFiles;

pub(super) const TILES_KEYS: &[&str] = &["listen", "cert", "key"];

/// `[audit.tiles]`: where the tiles are served and the certificate shown.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TilesConfig {
    /// The HTTPS address (`127.0.0.1:0` picks a port, logged at start).
    pub listen: SocketAddr,
    /// The certificate (chain) clients are shown; default the node's `tls.cert`.
    pub cert: PathBuf,
    /// Its private key; default the node's `tls.key`.
    pub key: PathBuf,
}

/// The optional `tiles` table of `[audit]`: `None` when wrong (and
/// reported), `Some(None)` when absent.
// The three states are real: wrong, absent (not served), set.
#[allow(clippy::option_option)]
pub(super) fn read(
    ctx: &mut Ctx,
    audit: Option<&Section<'_, '_>>,
    base: &Path,
    node_tls: Option<&TlsFiles>,
) -> Option<Option<TilesConfig>> {
    let Some(value) = audit.and_then(|s| s.table.get("tiles")) else {
        return Some(None);
    };
    let s = Section::new("[audit.tiles]", value, TILES_KEYS, ctx)?;
    let listen = s.req_str(ctx, "listen", "\"0.0.0.0:8446\"");
    let listen = listen.and_then(|v| match v.get_ref().parse::<SocketAddr>() {
        Ok(addr) => Some(addr),
        Err(e) => {
            ctx.error(
                &v.span(),
                format!("`listen` in [audit.tiles] is not an address: {e}"),
                "write `host:port`, e.g. `listen = \"0.0.0.0:8446\"` (port 0 picks one)",
            );
            None
        }
    });
    let mut file = |key: &str, default: Option<PathBuf>| -> Option<PathBuf> {
        match (s.table.get(key), default) {
            (Some(_), _) | (None, None) => {
                let value = s.req_str(ctx, key, "\"pki/tiles.crt\"")?;
                non_empty_path(ctx, &s, key, &value, base)
            }
            (None, Some(default)) => Some(default),
        }
    };
    let cert = file("cert", node_tls.map(|t| t.cert.clone()));
    let key = file("key", node_tls.map(|t| t.key.clone()));
    Some(Some(TilesConfig {
        listen: listen?,
        cert: cert?,
        key: key?,
    }))
}
