//! Witnessing in metrics and `/readyz`: how far the latest witnessed
//! checkpoint lags the latest signed one, each witness's last cosigned
//! size and failed pushes by reason. A witness that is down never makes
//! the node unready: the node keeps serving and keeps every checkpoint,
//! and the witnesses cosign them when they come back.

use std::fmt::Write as _;

use super::prometheus::{escape, header};
use super::ready::Check;
use crate::audit::witnessing::Overview;

/// The name of the witnesses' readiness check.
pub const WITNESSES: &str = "witnesses";

/// The Prometheus lines.
pub(super) fn lines(out: &mut String, o: &Overview) {
    header(
        out,
        "jisr_witness_lag_entries",
        "gauge",
        "Entries under the latest signed checkpoint but not under the latest witnessed one (cosigned by witness_quorum witnesses).",
    );
    let lag = o.checkpoint_size.saturating_sub(o.witnessed_size);
    let _ = writeln!(out, "jisr_witness_lag_entries {lag}");
    header(
        out,
        "jisr_witness_witnessed_size",
        "gauge",
        "Tree size of the latest witnessed checkpoint (0 before the first).",
    );
    let _ = writeln!(out, "jisr_witness_witnessed_size {}", o.witnessed_size);
    header(
        out,
        "jisr_witness_cosigned_size",
        "gauge",
        "Tree size of the latest checkpoint each witness cosigned.",
    );
    for w in &o.witnesses {
        let _ = writeln!(
            out,
            "jisr_witness_cosigned_size{{witness=\"{}\"}} {}",
            escape(&w.name),
            w.cosigned_size
        );
    }
    header(
        out,
        "jisr_witness_push_failures_total",
        "counter",
        "Failed checkpoint pushes by witness and reason (unreachable, witness_error, bad_cosignature, store, conflict: retried with backoff; split_view, bad_proof, witness_ahead, unknown_log, bad_signature, refused: reported and not retried for that checkpoint).",
    );
    for w in &o.witnesses {
        for (reason, n) in &w.failures {
            let _ = writeln!(
                out,
                "jisr_witness_push_failures_total{{witness=\"{}\",reason=\"{reason}\"}} {n}",
                escape(&w.name)
            );
        }
    }
}

/// The `/readyz` line: never needed, so a witness down shows as DOWN while
/// the node stays ready.
pub(super) fn check(o: &Overview) -> Check {
    let lag = o.checkpoint_size.saturating_sub(o.witnessed_size);
    let mut detail = format!(
        "latest checkpoint {} entries, witnessed ({} of {} cosign) up to {} — lag {lag} entries",
        o.checkpoint_size,
        o.quorum,
        o.witnesses.len(),
        o.witnessed_size
    );
    let mut ok = true;
    for w in &o.witnesses {
        match &w.last_error {
            None => {
                let _ = write!(detail, "; {}: cosigned {}", w.name, w.cosigned_size);
            }
            Some(why) => {
                ok = false;
                let _ = write!(
                    detail,
                    "; {}: cosigned {}, failing: {why}",
                    w.name, w.cosigned_size
                );
            }
        }
    }
    if !ok {
        detail.push_str(
            "; the node keeps serving and witnessing catches up when the witness answers",
        );
    }
    Check {
        name: WITNESSES,
        ok,
        needed: false,
        detail,
    }
}
