//! `[telemetry]`: where traces and metrics go, the admin listener and the
//! log format. Every key is optional; without the section the node exports
//! nothing over OTLP, serves `/metrics` on a loopback port picked by the
//! system and logs text.

use std::net::SocketAddr;
use std::ops::Range;
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
    match otlp_endpoint(ctx, s) {
        Ok(Some(endpoint)) => {
            https = Some(endpoint.starts_with("https://"));
            config.otlp_endpoint = Some(endpoint);
        }
        Ok(None) => {}
        Err(()) => ok = false,
    }
    let endpoint_given = s.table.get("otlp_endpoint").is_some();
    match otlp_tls(ctx, s, base, https, endpoint_given, node_ca) {
        Ok(tls) => config.otlp_tls = tls,
        Err(()) => ok = false,
    }
    match admin_listen(ctx, s) {
        Ok(Some(addr)) => config.admin_listen = addr,
        Ok(None) => {}
        Err(()) => ok = false,
    }
    match log_format(ctx, s) {
        Ok(Some(format)) => config.log_format = format,
        Ok(None) => {}
        Err(()) => ok = false,
    }
    ok.then_some(config)
}

/// An optional key that `opt_str` found no valid string for: absent (the
/// default applies) or of the wrong type (already reported).
fn absent<T>(s: &Section<'_, '_>, key: &str) -> Result<Option<T>, ()> {
    match s.table.get(key) {
        Some(_) => Err(()),
        None => Ok(None),
    }
}

fn otlp_endpoint(ctx: &mut Ctx, s: &Section<'_, '_>) -> Result<Option<String>, ()> {
    let Some(url) = s.opt_str(ctx, "otlp_endpoint", "\"http://127.0.0.1:4317\"") else {
        return absent(s, "otlp_endpoint");
    };
    let text = url.get_ref();
    let rest = text
        .strip_prefix("http://")
        .or_else(|| text.strip_prefix("https://"));
    match rest {
        Some(rest) if !rest.is_empty() && !rest.starts_with('/') => Ok(Some(text.clone())),
        _ => {
            ctx.error(
                &url.span(),
                format!("`otlp_endpoint` `{text}` is not an OTLP/gRPC collector URL"),
                "write `http://host:4317` (the collector's OTLP gRPC port; `https://host:4317` for TLS), or remove the key to export nothing",
            );
            Err(())
        }
    }
}

fn admin_listen(ctx: &mut Ctx, s: &Section<'_, '_>) -> Result<Option<SocketAddr>, ()> {
    let Some(addr) = s.opt_str(ctx, "admin_listen", "\"127.0.0.1:9464\"") else {
        return absent(s, "admin_listen");
    };
    match addr.get_ref().parse::<SocketAddr>() {
        Ok(a) => Ok(Some(a)),
        Err(_) => {
            ctx.error(
                &addr.span(),
                format!(
                    "`admin_listen` in [telemetry] is not an IP address and port: `{}`",
                    addr.get_ref()
                ),
                "write it as `admin_listen = \"127.0.0.1:9464\"` (port 0 lets the system pick one); keep it on loopback or a management network",
            );
            Err(())
        }
    }
}

fn log_format(ctx: &mut Ctx, s: &Section<'_, '_>) -> Result<Option<LogFormat>, ()> {
    let Some(format) = s.opt_str(ctx, "log_format", "\"json\"") else {
        return absent(s, "log_format");
    };
    match format.get_ref().as_str() {
        "text" => Ok(Some(LogFormat::Text)),
        "json" => Ok(Some(LogFormat::Json)),
        other => {
            ctx.error(
                &format.span(),
                format!("`log_format` `{other}` is not a log format"),
                "use `log_format = \"text\"` (human-readable lines) or `\"json\"` (one JSON object per line)",
            );
            Err(())
        }
    }
}

/// The TLS keys that need an `https://` endpoint.
const TLS_KEYS: [&str; 3] = ["otlp_ca", "otlp_cert", "otlp_key"];

/// A TLS key's file, resolved, with where the key is in the file.
type TlsFile = (&'static str, PathBuf, Range<usize>);

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
    let (files, mut ok) = tls_files(ctx, s, base);
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
    let ca = match files.iter().find(|(key, _, _)| *key == "otlp_ca") {
        Some((_, path, span)) => {
            ok &= pem::check_ca(ctx, path, span);
            path.clone()
        }
        // `[tls]`'s own checks cover it; without it the file is invalid anyway.
        None => node_ca.ok_or(())?.to_owned(),
    };
    let client = client_identity(ctx, &files, &mut ok)?;
    ok.then_some(Some(OtlpTls { ca, client })).ok_or(())
}

/// The TLS keys given, with whether all of them are valid strings.
fn tls_files(ctx: &mut Ctx, s: &Section<'_, '_>, base: &Path) -> (Vec<TlsFile>, bool) {
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
    (files, ok)
}

/// The client certificate and key, which come as a pair or not at all;
/// clears `ok` when they do not belong together.
fn client_identity(
    ctx: &mut Ctx,
    files: &[TlsFile],
    ok: &mut bool,
) -> Result<Option<(PathBuf, PathBuf)>, ()> {
    let find = |name: &str| files.iter().find(|(key, _, _)| *key == name);
    match (find("otlp_cert"), find("otlp_key")) {
        (Some((_, cert, cert_span)), Some((_, key, key_span))) => {
            *ok &= pem::check_identity(ctx, (cert, cert_span), (key, key_span));
            Ok(Some((cert.clone(), key.clone())))
        }
        (None, None) => Ok(None),
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
            Err(())
        }
    }
}

mod pem;
