//! `[telemetry]`: where traces and metrics go, the admin listener and the
//! log format. Every key is optional; without the section the node exports
//! nothing over OTLP, serves `/metrics` on a loopback port picked by the
//! system and logs text.

use std::net::SocketAddr;

use super::table::{Ctx, Section};

pub(super) const TELEMETRY_KEYS: &[&str] = &["otlp_endpoint", "admin_listen", "log_format"];

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
    /// The OTLP/gRPC collector (`http://host:4317`, plaintext); `None` exports nothing
    /// and does no span work on the exchange path.
    pub otlp_endpoint: Option<String>,
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
            // A literal that parses: cannot fail.
            admin_listen: DEFAULT_ADMIN_LISTEN.parse().expect("valid default address"),
            log_format: LogFormat::Text,
        }
    }
}

/// `[telemetry]`, or its defaults when the section is absent.
pub(super) fn telemetry(ctx: &mut Ctx, s: Option<&Section<'_, '_>>) -> Option<TelemetryConfig> {
    let Some(s) = s else {
        return Some(TelemetryConfig::default());
    };
    let mut config = TelemetryConfig::default();
    let mut ok = true;
    if let Some(url) = s.opt_str(ctx, "otlp_endpoint", "\"http://127.0.0.1:4317\"") {
        let text = url.get_ref();
        match text.strip_prefix("http://") {
            Some(rest) if !rest.is_empty() && !rest.starts_with('/') => {
                config.otlp_endpoint = Some(text.clone());
            }
            _ if text.starts_with("https://") => {
                ctx.error(
                    &url.span(),
                    format!("`otlp_endpoint` `{text}`: TLS to the collector is not supported"),
                    "export to a collector or agent on this host or a management network over `http://host:4317`, and let it forward over TLS",
                );
                ok = false;
            }
            _ => {
                ctx.error(
                    &url.span(),
                    format!("`otlp_endpoint` `{text}` is not an OTLP/gRPC collector URL"),
                    "write `http://host:4317` (the collector's OTLP gRPC port), or remove the key to export nothing",
                );
                ok = false;
            }
        }
    } else if s.table.get("otlp_endpoint").is_some() {
        ok = false;
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
