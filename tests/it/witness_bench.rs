//! `jisr witness bench` at a tiny size (3 logs × 15 checkpoints, then a
//! few seconds of exchanges through a gateway with two witnesses), so the
//! benchmark's path cannot rot: real `jisr witness` processes, a real
//! gateway under load, every cosignature verified by the bench against the
//! witness's key, and every figure reported well-formed. No timing
//! assertions: a benchmark is not a timed test.

use crate::support::*;

#[test]
fn the_witness_bench_verifies_every_cosignature_it_counts() {
    let doc = json_output(
        jisr()
            .env("RUST_LOG", "warn")
            .args(["witness", "bench", "--logs", "3", "--checkpoints", "15"])
            .args(["--entries-per-checkpoint", "7", "--duration", "3s"])
            .args(["--checkpoint-interval-ms", "200", "--quorum", "2"])
            .args(["--connections", "2", "--in-flight", "4", "--json"]),
    );
    assert!(doc["cpu"].as_str().is_some_and(|c| c.contains("cores")));
    assert!(doc["debug_build"].is_boolean(), "{doc:#}");

    let cosign = &doc["cosign"];
    // Every checkpoint of every log cosigned, and each cosignature verified.
    assert_eq!(cosign["logs"], 3, "{doc:#}");
    assert_eq!(cosign["cosigned"], 45, "{doc:#}");
    assert_eq!(cosign["failures"], 0, "{doc:#}");
    assert!(cosign["per_second"].as_f64().unwrap() > 0.0, "{doc:#}");
    let [p50, p99, max] = ["p50_us", "p99_us", "max_us"].map(|k| cosign[k].as_u64().unwrap());
    assert!(0 < p50 && p50 <= p99 && p99 <= max, "{doc:#}");

    let lag = &doc["lag"];
    assert_eq!(lag["witnesses"], 2, "{doc:#}");
    assert_eq!(lag["quorum"], 2, "{doc:#}");
    assert!(lag["exchanges"].as_u64().unwrap() > 0, "{doc:#}");
    assert_eq!(lag["exchange_errors"], 0, "{doc:#}");
    assert_eq!(lag["failures"], 0, "{doc:#}");
    let witnessed = lag["checkpoints_witnessed"].as_u64().unwrap();
    assert!(witnessed > 0, "{doc:#}");
    // Each witnessed note seen carries both witnesses' cosignatures.
    assert!(
        lag["cosignatures_verified"].as_u64().unwrap() >= 2 * witnessed,
        "{doc:#}"
    );
    let signed = lag["checkpoints_signed"].as_u64().unwrap();
    let superseded = lag["checkpoints_superseded"].as_u64().unwrap();
    assert!(witnessed + superseded <= signed, "{doc:#}");
    let [p50, p99, max] = ["p50_ms", "p99_ms", "max_ms"].map(|k| lag[k].as_f64().unwrap());
    assert!(0.0 < p50 && p50 <= p99 && p99 <= max, "{doc:#}");
}
