//! `[[audit.witness]]` and `[audit] witness_quorum`: the witnesses the
//! node pushes its checkpoints to (C2SP tlog-witness), and how many of
//! them must cosign a checkpoint for it to count as witnessed.
//!
//! The verifier key is checked here as far as its text goes (name, key id,
//! algorithm byte, length, and that the key id is the one its name and key
//! give), so that a mistyped key is reported at its line; the audit part
//! parses it again into a verifier when the gateway starts.

use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use sha2::{Digest as _, Sha256};
use toml::Spanned;

use super::sections::{in_range, non_empty_path};
use super::table::{Ctx, Section};

pub(super) const WITNESS_KEYS: &[&str] = &["name", "url", "verifier_key", "ca"];

/// Default of `audit.witness_retry_max_ms`: the longest wait between two
/// tries of a witness that does not answer.
const DEFAULT_RETRY_MAX_MS: i64 = 30_000;
/// The algorithm byte of a cosignature/v1 key (c2sp.org/tlog-cosignature).
const ALG_COSIGNATURE_V1: u8 = 0x04;

/// One `[[audit.witness]]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WitnessConfig {
    /// A short label for metrics and logs (`cndp`), unique in the file.
    pub name: String,
    /// The witness's submission prefix, `https://host[:port][/prefix]`;
    /// the gateway posts to `<url>/add-checkpoint`.
    pub url: String,
    /// The witness's cosignature verifier key,
    /// `<name>+<key id>+base64(0x04 ‖ public key)` (what
    /// `jisr witness verifier` prints).
    pub verifier_key: String,
    /// The CA certificate(s) the witness's HTTPS certificate chains to.
    pub ca: PathBuf,
}

/// The witnesses, the quorum and the retry bound, from `[audit]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Witnessing {
    /// The witnesses, in file order.
    pub witnesses: Vec<WitnessConfig>,
    /// How many distinct witnesses must cosign a checkpoint for it to
    /// count as witnessed (default: all of them).
    pub quorum: usize,
    /// The longest wait between two tries of one witness (default 30 s).
    pub retry_max: Duration,
}

/// Reads the witnesses of `[audit]` (`s`), or none when it is absent.
pub(super) fn read(ctx: &mut Ctx, s: Option<&Section<'_, '_>>, base: &Path) -> Option<Witnessing> {
    let Some(s) = s else {
        return Some(Witnessing {
            witnesses: Vec::new(),
            quorum: 0,
            retry_max: Duration::from_millis(DEFAULT_RETRY_MAX_MS as u64),
        });
    };
    let sections = list(ctx, s);
    let mut ok = true;
    let mut witnesses = Vec::new();
    let mut seen: Vec<(String, usize)> = Vec::new();
    for w in &sections {
        match witness(ctx, w, base) {
            Some((config, span)) => {
                let line = ctx.at(&span).line;
                if let Some((_, first)) = seen.iter().find(|(n, _)| *n == config.name) {
                    ctx.error(
                        &span,
                        format!(
                            "witness `{}` is declared twice (first at line {first})",
                            config.name
                        ),
                        "give each [[audit.witness]] its own `name`",
                    );
                    ok = false;
                }
                seen.push((config.name.clone(), line));
                witnesses.push(config);
            }
            None => ok = false,
        }
    }
    let n = witnesses.len();
    let quorum = quorum(ctx, s, n)?;
    let retry_max = in_range(
        ctx,
        s,
        "witness_retry_max_ms",
        (100, 600_000),
        ("30000", "30000"),
    )?
    .unwrap_or(DEFAULT_RETRY_MAX_MS);
    ok.then_some(Witnessing {
        witnesses,
        quorum,
        // In 100..=600000 (checked by `in_range`), so the cast is lossless.
        retry_max: Duration::from_millis(retry_max as u64),
    })
}

/// `witness_quorum`: 1 to the number of witnesses, all of them by default.
fn quorum(ctx: &mut Ctx, s: &Section<'_, '_>, n: usize) -> Option<usize> {
    let Some(value) = s.opt_int(ctx, "witness_quorum", "2") else {
        return s.table.get("witness_quorum").is_none().then_some(n);
    };
    let k = *value.get_ref();
    if n == 0 {
        ctx.error(
            &value.span(),
            "`witness_quorum` in [audit] is set but no [[audit.witness]] is declared",
            "declare the witnesses under [[audit.witness]], or remove `witness_quorum`",
        );
        return None;
    }
    match usize::try_from(k) {
        Ok(k) if (1..=n).contains(&k) => Some(k),
        _ => {
            ctx.error(
                &value.span(),
                format!("`witness_quorum` = {k} in [audit] is out of range"),
                format!("use a value from 1 to {n} (the witnesses declared), or remove the key: all {n} must cosign by default"),
            );
            None
        }
    }
}

/// The `[[audit.witness]]` tables.
fn list<'a, 'i>(ctx: &mut Ctx, s: &Section<'a, 'i>) -> Vec<Section<'a, 'i>> {
    let Some(value) = s.table.get("witness") else {
        return Vec::new();
    };
    let Some(items) = value.get_ref().as_array() else {
        ctx.error(
            &value.span(),
            format!(
                "`witness` in [audit] must be an array of tables, found a {}",
                value.get_ref().type_str()
            ),
            "write each witness under its own `[[audit.witness]]` header (double brackets)",
        );
        return Vec::new();
    };
    items
        .iter()
        .filter_map(|item| Section::new("[[audit.witness]]", item, WITNESS_KEYS, ctx))
        .collect()
}

/// One witness and the span of its `name`.
fn witness(
    ctx: &mut Ctx,
    s: &Section<'_, '_>,
    base: &Path,
) -> Option<(WitnessConfig, std::ops::Range<usize>)> {
    let name = s
        .req_str(ctx, "name", "\"cndp\"")
        .and_then(|n| label(ctx, &n));
    let url = s
        .req_str(ctx, "url", "\"https://witness.cndp.ma/jisr\"")
        .and_then(|u| url(ctx, &u));
    let key = s
        .req_str(ctx, "verifier_key", "\"witness.cndp.ma/jisr+0123abcd+BA…\"")
        .and_then(|k| verifier_key(ctx, &k));
    let ca = s
        .req_str(ctx, "ca", "\"pki/cndp-ca.crt\"")
        .and_then(|v| non_empty_path(ctx, s, "ca", &v, base));
    let (name, span) = name?;
    Some((
        WitnessConfig {
            name,
            url: url?,
            verifier_key: key?,
            ca: ca?,
        },
        span,
    ))
}

fn label(ctx: &mut Ctx, value: &Spanned<String>) -> Option<(String, std::ops::Range<usize>)> {
    let text = value.get_ref();
    let good = (1..=63).contains(&text.len())
        && text.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && text
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if good {
        return Some((text.clone(), value.span()));
    }
    ctx.error(
        &value.span(),
        format!("witness name `{text}` in [[audit.witness]] is not a short label"),
        "use 1 to 63 lowercase letters, digits and dashes, e.g. `name = \"cndp\"` (it names the witness in metrics and logs)",
    );
    None
}

fn url(ctx: &mut Ctx, value: &Spanned<String>) -> Option<String> {
    let text = value.get_ref();
    let parsed: Option<http::Uri> = text.parse().ok();
    let good = parsed.is_some_and(|u| {
        u.scheme_str() == Some("https")
            && u.host().is_some_and(|h| !h.is_empty())
            && u.query().is_none()
    });
    if good {
        return Some(text.clone());
    }
    ctx.error(
        &value.span(),
        format!("witness `url` `{text}` is not an https:// URL"),
        "write the witness's submission prefix, e.g. `url = \"https://witness.cndp.ma/jisr\"` (no query; the gateway posts to <url>/add-checkpoint)",
    );
    None
}

/// Checks `<name>+<hex8 key id>+base64(0x04 ‖ 32 bytes)` and its key id.
fn verifier_key(ctx: &mut Ctx, value: &Spanned<String>) -> Option<String> {
    let text = value.get_ref();
    match key_problem(text) {
        None => Some(text.clone()),
        Some(why) => {
            ctx.error(
                &value.span(),
                format!("witness `verifier_key` is not a cosignature verifier key: {why}"),
                "paste the line `jisr witness verifier` prints at the witness (`<name>+<key id>+<base64 key>`), as its operator published it",
            );
            None
        }
    }
}

fn key_problem(text: &str) -> Option<&'static str> {
    let mut parts = text.splitn(3, '+');
    let (Some(name), Some(id), Some(key)) = (parts.next(), parts.next(), parts.next()) else {
        return Some("expected <name>+<key id>+<key>");
    };
    if name.is_empty() || name.chars().any(|c| c.is_whitespace() || c == '+') {
        return Some("the name is empty or holds a space or `+`");
    }
    let Some(stated) = (id.len() == 8)
        .then(|| u32::from_str_radix(id, 16).ok())
        .flatten()
    else {
        return Some("the key id is not 8 hexadecimal digits");
    };
    let blob = match B64.decode(key) {
        Ok(b) if b.len() == 33 && b[0] == ALG_COSIGNATURE_V1 => b,
        Ok(b) if b.first() == Some(&0x01) => {
            return Some("this is a log's (note) key, algorithm 0x01; a witness's key has 0x04")
        }
        _ => return Some("the key is not base64 of 0x04 and 32 bytes"),
    };
    let digest = Sha256::new()
        .chain_update(name.as_bytes())
        .chain_update(b"\n")
        .chain_update(&blob)
        .finalize();
    let computed = u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]]);
    (computed != stated).then_some("its key id does not match its name and key (a copying error?)")
}
