//! One entry of the log: who, official, what, why, basis, consent, outcome,
//! digests, trace id; and its receipt (the entry's bytes, its inclusion
//! proof, the latest signed checkpoint and the node's verifier key) in a
//! JSON data block that `assets/verify.js` checks in the browser.
//!
//! The browser checks that the bytes are in the signed tree; the fields
//! above are the server's decoding of the same bytes.

use super::{as_caller, outcome, refused, when};
use crate::console::html::{self, esc, Reply};
use crate::console::record::{self, Read};
use crate::console::routes::{parse, value, Who};
use crate::console::Console;
use crate::proto::jisr::audit::v1 as pb;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use pb::audit_server::Audit as _;
use std::fmt::Write as _;

/// GET /exchanges/entry?node=…&index=….
pub(in crate::console) async fn entry(console: &Console, who: &Who, query: &str) -> Reply {
    let pairs = parse(query);
    let node = value(&pairs, "node").unwrap_or_default();
    let Some(index) = value(&pairs, "index").and_then(|i| i.parse::<u64>().ok()) else {
        return html::refused(
            http::StatusCode::BAD_REQUEST,
            "Refused",
            "`index` must be an entry's number in the log.",
            "Open entries from the Exchanges page.",
        );
    };
    let (entry, verifier_key) = match fetch(console, who, index, node).await {
        Ok(found) => found,
        Err(status) => return refused(&status),
    };
    let record = entry.record.clone().unwrap_or_default();
    let read = Read {
        page: "console:/exchanges/entry",
        provider: &record.provider,
        subject: &record.subject,
    };
    if let Err(reply) = record::reading(&console.recorder, &who.session.agency, read).await {
        return reply;
    }
    let roles = who.role_names();
    let title = format!("Entry {} of {}", entry.index, entry.node);
    let main = format!(
        "{VERDICT}{}{}<p><a href=\"/exchanges\">Back to the search</a></p>",
        fields(&record),
        receipt_section(&entry, &verifier_key),
    );
    html::reply(
        http::StatusCode::OK,
        html::page(&title, Some(who.header(&roles)), &main, &["verify.js"]),
    )
}

/// The entry with its proof in the latest checkpoint, and the verifier
/// key of the node that wrote it, read as the signed-in agency.
async fn fetch(
    console: &Console,
    who: &Who,
    index: u64,
    node: String,
) -> Result<(pb::Entry, String), tonic::Status> {
    let audit = console.backend.audit();
    let request = as_caller(
        who,
        pb::GetEntryRequest {
            index,
            tree_size: 0,
            node,
            ..Default::default()
        },
    );
    let entry = audit.get_entry(request).await?.into_inner();
    let request = as_caller(who, pb::ListCheckpointsRequest::default());
    let verifier_key = audit
        .list_checkpoints(request)
        .await?
        .into_inner()
        .checkpoints
        .into_iter()
        .find(|c| c.node == entry.node)
        .map(|c| c.verifier_key)
        .unwrap_or_default();
    Ok((entry, verifier_key))
}

fn fields(r: &pb::AuditRecord) -> String {
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    let kind = pb::Kind::try_from(r.kind).map_or("UNKNOWN", |k| k.as_str_name());
    let rows: [(&str, String); 17] = [
        ("When", when(r.time_unix_micros)),
        ("Kind", kind.to_owned()),
        ("Consumer (who)", r.consumer.clone()),
        ("Official", r.official.clone()),
        ("Provider", r.provider.clone()),
        ("Method (what)", r.method.clone()),
        ("Purpose (why)", r.purpose.clone()),
        ("Procedure", r.procedure.clone()),
        ("Basis", r.basis.clone()),
        ("Consent", r.consent_id.clone()),
        ("Outcome", outcome(r)),
        (
            "Break-glass",
            if r.break_glass {
                format!("yes: {}", r.justification)
            } else {
                "no".into()
            },
        ),
        (
            "Deferred disclosure",
            if r.disclose_from_unix_micros == 0 {
                "no".into()
            } else {
                format!(
                    "hidden from the citizen until {}",
                    when(r.disclose_from_unix_micros)
                )
            },
        ),
        ("Citizen (pseudonym)", hex(&r.subject)),
        ("Request digest", hex(&r.request_digest)),
        ("Response digest", hex(&r.response_digest)),
        ("Trace id", r.trace_id.clone()),
    ];
    let mut out = String::from("<dl class=\"fields\" id=\"fields\">");
    for (name, v) in rows {
        let v = if v.is_empty() { "—".to_owned() } else { v };
        let _ = write!(out, "<dt>{}</dt><dd>{}</dd>", esc(name), esc(&v));
    }
    out.push_str("</dl>");
    out
}

/// Where the browser's verdict goes, at the top of the page.
const VERDICT: &str = "<section class=\"proof\" aria-labelledby=\"proof-title\">\
    <h2 id=\"proof-title\">Proof, checked in your browser</h2>\
    <p id=\"verdict\" data-state=\"checking\" role=\"status\">Checking…</p><ol id=\"steps\"></ol>\
    <button type=\"button\" id=\"recheck\">Check again</button></section>";

/// The receipt the browser checks: the signed checkpoint, the verifier key
/// and (in a JSON data block) the entry's bytes and inclusion path.
fn receipt_section(entry: &pb::Entry, verifier_key: &str) -> String {
    let data = serde_json::json!({
        "index": entry.index,
        "tree_size": entry.tree_size,
        "record": B64.encode(&entry.record_bytes),
        "proof": entry.inclusion_proof.iter().map(|h| B64.encode(h)).collect::<Vec<_>>(),
        "checkpoint": entry.checkpoint_note,
        "verifier_key": verifier_key,
    });
    // `<` escaped so that no value can end the data block early.
    let json = data.to_string().replace('<', "\\u003c");
    let mut out = String::from(
        "<section class=\"receipt\" aria-labelledby=\"receipt-title\"><h2 id=\"receipt-title\">Receipt</h2>",
    );
    let _ = write!(
        out,
        "<h3>Signed checkpoint</h3><pre id=\"checkpoint\">{}</pre>\
         <h3>Node's verifier key</h3><p class=\"hint\">Compare it with the key the platform publishes.</p>\
         <pre id=\"verifier-key\">{}</pre>\
         <script type=\"application/json\" id=\"receipt\">{json}</script></section>",
        esc(&entry.checkpoint_note),
        esc(verifier_key),
    );
    out
}
