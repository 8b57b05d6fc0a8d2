//! `[telemetry]`: where traces and metrics go, the admin listener and the
//! log format. Every key is optional; without the section the node exports
//! nothing over OTLP, serves `/metrics` on a loopback port picked by the
//! system and logs text.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use super::table::{Ctx, Section};

pub(super) const TELEMETRY_KEYS: &[&str] = &[
    "otlp_endpoint",
    "otlp_ca",
    "otlp_cert",
    "otlp_key",
    "admin_listen",
    "log_format",
];

/// Default of `telemetry.admin_listen`: loopback, a port picked by the system
/// (logged, and written by `serve --admin-addr-file`).
const DEFAULT_ADMIN_LISTEN: &str = "127.0.0.1:0";

/// How log lines are written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// `[telemetry]`: traces, metrics, the admin listener, logs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TelemetryConfig {
    /// The OTLP/gRPC collector (`http://host:4317` plaintext, or
    /// `https://host:4317` over TLS); `None` exports nothing and does no
    /// span work on the exchange path.
    pub otlp_endpoint: Option<String>,
    /// TLS towards the collector, for an `https://` endpoint.
    pub otlp_tls: Option<OtlpTls>,
    /// Where the plain-HTTP admin listener (`/metrics`, `/healthz`,
    /// `/readyz`) listens (default `127.0.0.1:0`).
    pub admin_listen: SocketAddr,
    /// Log format (the `--log-format` flag overrides it).
    pub log_format: LogFormat,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        Self {
            otlp_endpoint: None,
            otlp_tls: None,
            // A literal that parses: cannot fail.
            admin_listen: DEFAULT_ADMIN_LISTEN.parse().expect("valid default address"),
            log_format: LogFormat::Text,
        }
    }
}

/// TLS towards the OTLP collector. The files were read and checked when
/// the configuration was loaded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OtlpTls {
    /// CA bundle the collector's certificate must chain to (`otlp_ca`;
    /// default: the node's `[tls] ca`).
    pub ca: PathBuf,
    /// Certificate (chain) and private key presented to a collector that
    /// asks for a client certificate (`otlp_cert`, `otlp_key`).
    pub client: Option<(PathBuf, PathBuf)>,
}

/// `[telemetry]`, or its defaults when the section is absent. `node_ca` is
/// the node's `[tls] ca`, the default CA of an `https://` collector.
pub(super) fn telemetry(
    ctx: &mut Ctx,
    s: Option<&Section<'_, '_>>,
    base: &Path,
    node_ca: Option<&Path>,
) -> Option<TelemetryConfig> {
    let Some(s) = s else {
        return Some(TelemetryConfig::default());
    };
    let mut config = TelemetryConfig::default();
    let mut ok = true;
    // Whether the endpoint is `https://`; `None` when there is no valid endpoint.
    let mut https = None;
    if let Some(url) = s.opt_str(ctx, "otlp_endpoint", "\"http://127.0.0.1:4317\"") {
        let text = url.get_ref();
        let rest = text
            .strip_prefix("http://")
            .or_else(|| text.strip_prefix("https://"));
        match rest {
            Some(rest) if !rest.is_empty() && !rest.starts_with('/') => {
                config.otlp_endpoint = Some(text.clone());
                https = Some(text.starts_with("https://"));
            }
            _ => {
                ctx.error(
                    &url.span(),
                    format!("`otlp_endpoint` `{text}` is not an OTLP/gRPC collector URL"),
                    "write `http://host:4317` (the collector's OTLP gRPC port; `https://host:4317` for TLS), or remove the key to export nothing",
                );
                ok = false;
            }
        }
    } else if s.table.get("otlp_endpoint").is_some() {
        ok = false;
    }
    let endpoint_given = s.table.get("otlp_endpoint").is_some();
    match otlp_tls(ctx, s, base, https, endpoint_given, node_ca) {
        Ok(tls) => config.otlp_tls = tls,
        Err(()) => ok = false,
    }
    if let Some(addr) = s.opt_str(ctx, "admin_listen", "\"127.0.0.1:9464\"") {
        match addr.get_ref().parse::<SocketAddr>() {
            Ok(a) => config.admin_listen = a,
            Err(_) => {
                ctx.error(
                    &addr.span(),
                    format!(
                        "`admin_listen` in [telemetry] is not an IP address and port: `{}`",
                        addr.get_ref()
                    ),
                    "write it as `admin_listen = \"127.0.0.1:9464\"` (port 0 lets the system pick one); keep it on loopback or a management network",
                );
                ok = false;
            }
        }
    } else if s.table.get("admin_listen").is_some() {
        ok = false;
    }
    if let Some(format) = s.opt_str(ctx, "log_format", "\"json\"") {
        match format.get_ref().as_str() {
            "text" => config.log_format = LogFormat::Text,
            "json" => config.log_format = LogFormat::Json,
            other => {
                ctx.error(
                    &format.span(),
                    format!("`log_format` `{other}` is not a log format"),
                    "use `log_format = \"text\"` (human-readable lines) or `\"json\"` (one JSON object per line)",
                );
                ok = false;
            }
        }
    } else if s.table.get("log_format").is_some() {
        ok = false;
    }
    ok.then_some(config)
}

/// The TLS keys that need an `https://` endpoint.
const TLS_KEYS: [&str; 3] = ["otlp_ca", "otlp_cert", "otlp_key"];

/// `otlp_ca`, `otlp_cert` and `otlp_key`. The files are read and checked
/// here, so a missing file, a bad PEM or a key that does not match its
/// certificate is reported at its key by `jisr check-config`, not at the
/// first export.
fn otlp_tls(
    ctx: &mut Ctx,
    s: &Section<'_, '_>,
    base: &Path,
    https: Option<bool>,
    endpoint_given: bool,
    node_ca: Option<&Path>,
) -> Result<Option<OtlpTls>, ()> {
    let mut files = Vec::new();
    let mut ok = true;
    for key in TLS_KEYS {
        match s.opt_str(ctx, key, &format!("\"pki/{key}.pem\"")) {
            Some(v) if v.get_ref().trim().is_empty() => {
                ctx.error(
                    &v.span(),
                    format!("`{key}` in [telemetry] is an empty path"),
                    "give a path, relative to the directory of this configuration file",
                );
                ok = false;
            }
            Some(v) => files.push((key, super::sections::resolve(base, v.get_ref()), v.span())),
            None => ok &= s.table.get(key).is_none(),
        }
    }
    // Without an `https://` endpoint the TLS files have nothing to apply to.
    let unused = match https {
        Some(true) => None,
        Some(false) => Some((
            "applies only to an `https://` `otlp_endpoint`",
            "write the endpoint as `https://host:4317` to export over TLS, or remove the key",
        )),
        // The endpoint's own error is reported already.
        None if endpoint_given => return Err(()),
        None => Some((
            "is set but [telemetry] has no `otlp_endpoint`",
            "add `otlp_endpoint = \"https://host:4317\"` to export over TLS, or remove the key",
        )),
    };
    if let Some((what, fix)) = unused {
        for (key, _, span) in &files {
            ctx.error(span, format!("`{key}` {what}"), fix);
        }
        return if files.is_empty() && ok {
            Ok(None)
        } else {
            Err(())
        };
    }
    let find = |name: &str| files.iter().find(|(key, _, _)| *key == name);
    let ca = match find("otlp_ca") {
        Some((_, path, span)) => {
            ok &= pem::check_ca(ctx, path, span);
            path.clone()
        }
        // `[tls]`'s own checks cover it; without it the file is invalid anyway.
        None => node_ca.ok_or(())?.to_owned(),
    };
    let client = match (find("otlp_cert"), find("otlp_key")) {
        (Some((_, cert, cert_span)), Some((_, key, key_span))) => {
            ok &= pem::check_identity(ctx, (cert, cert_span), (key, key_span));
            Some((cert.clone(), key.clone()))
        }
        (None, None) => None,
        (Some((have, _, span)), None) | (None, Some((have, _, span))) => {
            let missing = if *have == "otlp_cert" {
                "otlp_key"
            } else {
                "otlp_cert"
            };
            ctx.error(
                span,
                format!("`{have}` is set without `{missing}`"),
                format!("a client certificate needs both: add `{missing}`, or remove `{have}` if the collector does not ask for a client certificate"),
            );
            return Err(());
        }
    };
    ok.then_some(Some(OtlpTls { ca, client })).ok_or(())
}

/// Reading and checking the PEM files of the TLS keys.
mod pem {
    use super::Ctx;
    use rustls::pki_types::pem::{Error as PemError, PemObject as _};
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    use std::ops::Range;
    use std::path::Path;

    const READ_FIX: &str = "check the path (relative to the directory of this configuration file) and that the node's user may read the file";

    fn read(ctx: &mut Ctx, key: &str, path: &Path, span: &Range<usize>) -> Option<Vec<u8>> {
        match std::fs::read(path) {
            Ok(pem) => Some(pem),
            Err(e) => {
                ctx.error(
                    span,
                    format!("cannot read `{key}` file {}: {e}", path.display()),
                    READ_FIX,
                );
                None
            }
        }
    }

    fn certificates(
        ctx: &mut Ctx,
        key: &str,
        path: &Path,
        span: &Range<usize>,
        fix: &str,
    ) -> Option<Vec<CertificateDer<'static>>> {
        let pem = read(ctx, key, path, span)?;
        let message = match CertificateDer::pem_slice_iter(&pem).collect::<Result<Vec<_>, _>>() {
            Ok(certs) if !certs.is_empty() => return Some(certs),
            Ok(_) => format!("`{key}` file {} holds no PEM certificate", path.display()),
            Err(e) => format!("`{key}` file {} is not valid PEM ({e})", path.display()),
        };
        ctx.error(span, message, fix);
        None
    }

    /// The CA bundle: PEM certificates usable as trust anchors.
    pub(super) fn check_ca(ctx: &mut Ctx, path: &Path, span: &Range<usize>) -> bool {
        const FIX: &str = "give the PEM bundle of the CA that issued the collector's certificate";
        let Some(certs) = certificates(ctx, "otlp_ca", path, span, FIX) else {
            return false;
        };
        let mut roots = rustls::RootCertStore::empty();
        for cert in certs {
            if let Err(e) = roots.add(cert) {
                ctx.error(
                    span,
                    format!(
                        "`otlp_ca` file {} holds an unusable CA certificate ({e})",
                        path.display()
                    ),
                    FIX,
                );
                return false;
            }
        }
        true
    }

    /// The client certificate chain and its private key, which must match.
    pub(super) fn check_identity(
        ctx: &mut Ctx,
        (cert, cert_span): (&Path, &Range<usize>),
        (key, key_span): (&Path, &Range<usize>),
    ) -> bool {
        let chain = certificates(
            ctx,
            "otlp_cert",
            cert,
            cert_span,
            "give the PEM certificate (chain, leaf first) the collector accepts as a client",
        );
        let Some(pem) = read(ctx, "otlp_key", key, key_span) else {
            return false;
        };
        let private = match PrivateKeyDer::from_pem_slice(&pem) {
            Ok(private) => private,
            Err(e) => {
                let message = match e {
                    PemError::NoItemsFound => {
                        format!("`otlp_key` file {} holds no PEM private key", key.display())
                    }
                    e => format!("`otlp_key` file {} is not valid PEM ({e})", key.display()),
                };
                ctx.error(
                    key_span,
                    message,
                    "give the PEM private key of the certificate in `otlp_cert`",
                );
                return false;
            }
        };
        let Some(chain) = chain else {
            return false;
        };
        let provider = rustls::crypto::ring::default_provider();
        match rustls::sign::CertifiedKey::from_der(chain, private, &provider) {
            Ok(_) => true,
            Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) => {
                ctx.error(
                    key_span,
                    format!(
                        "the private key in `otlp_key` file {} does not match the certificate in `otlp_cert` file {}",
                        key.display(),
                        cert.display()
                    ),
                    "use the key file written together with that certificate",
                );
                false
            }
            Err(e) => {
                ctx.error(
                    key_span,
                    format!("`otlp_key` file {} cannot be used ({e})", key.display()),
                    "use a PKCS#8 ECDSA P-256/P-384, Ed25519 or RSA key",
                );
                false
            }
        }
    }
}
