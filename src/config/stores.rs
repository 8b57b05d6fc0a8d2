//! The stores' sections, `[audit]` and `[consent]`: where their files live
//! (defaults beside the configuration file) and, for consents, Redis.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::sections::{bounded, non_empty_path, resolve};
use super::table::{Ctx, Section};
use super::{AuditConfig, ConsentConfig};

pub(super) const AUDIT_KEYS: &[&str] = &[
    "dir",
    "signing_key",
    "pseudonym_key",
    "checkpoint_interval_ms",
    "archive_dir",
    "witness",
    "witness_quorum",
    "witness_retry_max_ms",
    "tiles",
];
pub(super) const CONSENT_KEYS: &[&str] = &["path", "signing_key", "redis_url", "timeout_ms"];

/// Default of `audit.checkpoint_interval_ms`.
const DEFAULT_CHECKPOINT_INTERVAL_MS: i64 = 1000;

/// A file named by `key` in section `s`, relative to `base`, or `default`
/// there when the section or the key is absent.
fn file_or_default(
    ctx: &mut Ctx,
    s: Option<&Section<'_, '_>>,
    base: &Path,
    key: &str,
    default: &str,
) -> Option<PathBuf> {
    match s {
        Some(s) if s.table.get(key).is_some() => {
            let value = s.req_str(ctx, key, &format!("\"{default}\""))?;
            non_empty_path(ctx, s, key, &value, base)
        }
        _ => Some(resolve(base, default)),
    }
}

/// `[audit]`, or its defaults when the section is absent.
pub(super) fn audit(
    ctx: &mut Ctx,
    s: Option<&Section<'_, '_>>,
    base: &Path,
    node_tls: Option<&crate::tls::TlsFiles>,
) -> Option<AuditConfig> {
    let mut file = |key: &str, default: &str| file_or_default(ctx, s, base, key, default);
    let dir = file("dir", "audit");
    let signing_key = file("signing_key", "audit-signing.key");
    let pseudonym_key = file("pseudonym_key", "pseudonym.key");
    let interval = match s {
        Some(s) => bounded(
            ctx,
            s,
            "checkpoint_interval_ms",
            (10, 60_000, DEFAULT_CHECKPOINT_INTERVAL_MS),
        ),
        None => Some(DEFAULT_CHECKPOINT_INTERVAL_MS),
    };
    let archive_dir = match s {
        Some(s) => archive_dir(ctx, s, base, dir.as_deref()),
        None => Some(None),
    };
    let witnessing = super::witness::read(ctx, s, base);
    let tiles = super::tiles::read(ctx, s, base, node_tls);
    Some(AuditConfig {
        tiles: tiles?,
        witnessing: witnessing?,
        archive_dir: archive_dir?,
        dir: dir?,
        signing_key: signing_key?,
        pseudonym_key: pseudonym_key?,
        // In 10..=60000 (checked by `bounded`), so the cast is lossless.
        checkpoint_interval: Duration::from_millis(interval? as u64),
    })
}

/// The optional `archive_dir`: `None` when wrong (and reported),
/// `Some(None)` when absent.
// The three states are real: wrong, absent (no archive), set.
#[allow(clippy::option_option)]
fn archive_dir(
    ctx: &mut Ctx,
    s: &Section<'_, '_>,
    base: &Path,
    dir: Option<&Path>,
) -> Option<Option<PathBuf>> {
    if s.table.get("archive_dir").is_none() {
        return Some(None);
    }
    let value = s.req_str(ctx, "archive_dir", "\"/mnt/audit-archive/gw-1\"")?;
    let path = non_empty_path(ctx, s, "archive_dir", &value, base)?;
    if Some(path.as_path()) == dir {
        ctx.error(
            &value.span(),
            format!("`archive_dir` in {} is the log directory itself", s.name),
            "name a directory on another volume (or network storage), one per node",
        );
        return None;
    }
    Some(Some(path))
}

/// `[consent]`, or its defaults when the section is absent.
pub(super) fn consent(
    ctx: &mut Ctx,
    s: Option<&Section<'_, '_>>,
    base: &Path,
) -> Option<ConsentConfig> {
    let mut file = |key: &str, default: &str| file_or_default(ctx, s, base, key, default);
    let path = file("path", "consents.redb");
    let signing_key = file("signing_key", "consent-signing.key");
    let redis_url = match s {
        Some(s) => redis_url(ctx, s),
        None => Some(None),
    };
    let timeout = match s {
        Some(s) => bounded(ctx, s, "timeout_ms", (10, 10_000, 250)),
        None => Some(250),
    };
    Some(ConsentConfig {
        path: path?,
        signing_key: signing_key?,
        redis_url: redis_url?,
        // In 10..=10000 (checked by `bounded`), so the cast is lossless.
        timeout: Duration::from_millis(timeout? as u64),
    })
}

/// An optional `redis_url` key (`[consent]`, `[bus]`): `None` when wrong
/// (and reported), `Some(None)` when absent.
// The three states are real: wrong, absent (no Redis), set.
#[allow(clippy::option_option)]
pub(super) fn redis_url(ctx: &mut Ctx, s: &Section<'_, '_>) -> Option<Option<String>> {
    match s.opt_str(ctx, "redis_url", "\"redis://127.0.0.1:6379\"") {
        Some(url) => {
            let text = url.get_ref();
            if text.starts_with("redis://")
                || text.starts_with("rediss://")
                || text.starts_with("redis+cluster://")
            {
                Some(Some(url.into_inner()))
            } else {
                ctx.error(
                    &url.span(),
                    format!("`redis_url` `{text}` is not a Redis URL"),
                    "write `redis://host:port` for one server, or `redis+cluster://h1:p1,h2:p2` for a cluster",
                );
                None
            }
        }
        None => s.table.get("redis_url").is_none().then_some(None),
    }
}
