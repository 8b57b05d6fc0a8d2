//! Log integrity: this node's signed checkpoints over time (its
//! `checkpoints.log`), newest first, a page at a time; for each pair of
//! consecutive checkpoints, the consistency proof the audit API gives
//! (`GetConsistencyProof`, asked as the signed-in agency); and the node's
//! verifier key to copy. The page's own script (`assets/integrity.js`,
//! with `assets/verify.js`) checks every signature and every proof in the
//! browser, trusting only the verifier key.
//!
//! For auditors and operators, like the other pages about the node rather
//! than about exchanges. Checkpoints hold no personal data, so reading the
//! page is not an audit entry.

use super::exchanges::as_caller;
use super::html::{self, esc, Reply};
use super::routes::{parse, value, Who};
use super::Console;
use crate::config::Role;
use crate::proto::jisr::audit::v1 as pb;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use http::StatusCode;
use pb::audit_server::Audit as _;
use std::fmt::Write as _;

/// Checkpoints per page.
const PAGE: u64 = 25;

/// GET /integrity[?before=N].
pub(super) async fn show(console: &Console, who: &Who, query: &str) -> Reply {
    if !who
        .roles
        .iter()
        .any(|r| matches!(r, Role::Auditor | Role::Operator))
    {
        return html::refused(
            StatusCode::FORBIDDEN,
            "Refused",
            "Only auditors and operators read the log's integrity page.",
            "Sign in as an agency with the `auditor` or `operator` role.",
        );
    }
    let before = match value(&parse(query), "before").map(|b| b.parse::<u64>()) {
        None => None,
        Some(Ok(before)) => Some(before),
        Some(Err(_)) => {
            return html::refused(
                StatusCode::BAD_REQUEST,
                "Refused",
                "`before` must be a checkpoint's position in the history.",
                "Page through the history with the page's own links.",
            )
        }
    };
    let audit = console.backend.audit();
    // One more than shown: the oldest row's predecessor, for its proof.
    let history = match audit.checkpoint_history(before, PAGE + 1).await {
        Ok(history) => history,
        Err(refusal) => return super::exchanges::refused(&refusal.into()),
    };
    let mut proofs = Vec::new();
    for pair in history.notes.windows(2) {
        let (newer, older) = (size_of(&pair[0].1), size_of(&pair[1].1));
        proofs.push(proof(console, who, older, newer).await);
    }
    let shown = history.notes.len().min(PAGE as usize);
    let data = serde_json::json!({
        "node": history.node,
        "verifier_key": history.verifier_key,
        "checkpoints": history.notes.iter().map(|(position, note)| serde_json::json!({
            "position": position, "note": note,
        })).collect::<Vec<_>>(),
        "proofs": proofs,
    });
    // `<` escaped so that no value can end the data block early.
    let json = data.to_string().replace('<', "\\u003c");
    let mut main = format!(
        "<p class=\"hint\">The checkpoints node <strong>{}</strong> signed, newest first ({} in all). \
         Your browser checks each signature and each consistency proof: a log that was rewritten \
         or forked cannot pass.</p>{VERDICT}",
        esc(&history.node),
        history.total
    );
    main.push_str(&table(&history.notes[..shown]));
    main.push_str(&pages(before, &history.notes[..shown]));
    let _ = write!(
        main,
        "<h2>Node's verifier key</h2><p class=\"hint\">Compare it with the key the platform publishes; \
         the checks are only as good as that key.</p><pre id=\"verifier-key\">{}</pre>\
         <button type=\"button\" id=\"copy-key\">Copy the key</button> <span id=\"copy-state\" role=\"status\"></span>\
         <script type=\"application/json\" id=\"checkpoint-data\">{json}</script>",
        esc(&history.verifier_key)
    );
    let roles = who.role_names();
    html::reply(
        StatusCode::OK,
        html::page(
            "Log integrity",
            Some(who.header(&roles)),
            &main,
            &["verify.js", "integrity.js"],
        ),
    )
}

/// Where the browser's overall verdict goes.
const VERDICT: &str = "<section class=\"proof\" aria-labelledby=\"proof-title\">\
    <h2 id=\"proof-title\">Checked in your browser</h2>\
    <p id=\"verdict\" data-state=\"checking\" role=\"status\">Checking…</p>\
    <button type=\"button\" id=\"recheck\">Check again</button></section>";

/// A note's tree size (its second line); 0 when it has none, which the
/// browser then reports as a malformed checkpoint.
fn size_of(note: &str) -> u64 {
    note.lines()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// The consistency proof from `old` to `new` entries, as the audit API
/// gives it to the signed-in agency, or why it could not.
async fn proof(console: &Console, who: &Who, old: u64, new: u64) -> serde_json::Value {
    let ask = pb::GetConsistencyProofRequest {
        old_size: old,
        new_size: new,
        node: String::new(),
    };
    match console
        .backend
        .audit()
        .get_consistency_proof(as_caller(who, ask))
        .await
    {
        Ok(p) => {
            let p = p.into_inner();
            serde_json::json!({
                "old_size": p.old_size,
                "new_size": p.new_size,
                "hashes": p.hashes.iter().map(|h| B64.encode(h)).collect::<Vec<_>>(),
            })
        }
        Err(status) => serde_json::json!({
            "old_size": old, "new_size": new, "error": status.message(),
        }),
    }
}

fn table(notes: &[(u64, String)]) -> String {
    if notes.is_empty() {
        return "<p id=\"none\">No checkpoint signed yet.</p>".into();
    }
    let mut t = String::from(
        "<table id=\"checkpoints\"><thead><tr><th>#</th><th>Entries</th><th>Root hash</th>\
         <th>Signature</th><th>Consistent with the one before</th></tr></thead><tbody>",
    );
    for (row, (position, note)) in notes.iter().enumerate() {
        let root = note.lines().nth(2).unwrap_or_default();
        let _ = write!(
            t,
            "<tr><td data-label=\"#\">{position}</td><td data-label=\"Entries\">{}</td>\
             <td data-label=\"Root hash\" class=\"hash\">{}</td>\
             <td data-label=\"Signature\" class=\"sig\" id=\"sig-{row}\" data-state=\"checking\">…</td>\
             <td data-label=\"Consistent\" class=\"consistency\" id=\"cons-{row}\" data-state=\"checking\">…</td></tr>",
            size_of(note),
            esc(root),
        );
    }
    t.push_str("</tbody></table>");
    t
}

/// Links to newer and older pages; positions count from the oldest (0).
fn pages(before: Option<u64>, shown: &[(u64, String)]) -> String {
    let mut nav = String::from("<nav class=\"pages\" aria-label=\"Checkpoint pages\">");
    if before.is_some() {
        nav.push_str("<a href=\"/integrity\">Newest</a>");
    }
    if let Some((oldest, _)) = shown.last().filter(|(p, _)| *p > 0) {
        let _ = write!(
            nav,
            "<a id=\"older\" href=\"/integrity?before={oldest}\">Older checkpoints</a>"
        );
    }
    nav.push_str("</nav>");
    nav
}
