//! `jisr console bench` at a tiny size (2,000 entries, 20 about the
//! citizen asked for, 5 requests of each page, 5 browser checks), so the
//! benchmark's path cannot rot: the real gateway's HTTPS console, the pages
//! answered with the expected content, a real headless Chromium verifying
//! a proof, and every figure reported well-formed. No timing assertions: a
//! benchmark is not a timed test.

use crate::support::*;

/// Each page the bench measures and the rows it must report at this size.
fn expected_rows(name: &str, rows: u64) -> bool {
    match name {
        // A full first page of 25.
        "search_newest" | "search_agency_purpose" => rows == 25,
        // One hour mid-log holds 25 refused entries; a page may stop short.
        "search_refused_hour" => (1..=25).contains(&rows),
        // The proof of an entry in a tree of more than 1,024 entries.
        "entry" => rows >= 10,
        // The citizen's 20 exchanges, each a line with its receipt.
        "citizen_html" | "citizen_json" => rows == 20,
        _ => false,
    }
}

#[test]
fn the_console_bench_measures_every_page_and_a_browser_check() {
    let doc = json_output(
        jisr()
            .env("RUST_LOG", "warn")
            .args(["console", "bench", "--entries", "2000"])
            .args(["--citizen-exchanges", "20", "--citizens", "100"])
            .args(["--iterations", "5", "--browser-iterations", "5", "--json"]),
    );
    assert_eq!(doc["entries"], 2000, "{doc:#}");
    assert_eq!(doc["citizen_exchanges"], 20, "{doc:#}");
    assert!(doc["cpu"].as_str().is_some_and(|c| c.contains("cores")));
    let pages = doc["pages"].as_array().expect("pages");
    let names: Vec<&str> = pages.iter().filter_map(|p| p["name"].as_str()).collect();
    assert_eq!(
        names,
        [
            "search_newest",
            "search_agency_purpose",
            "search_refused_hour",
            "entry",
            "citizen_html",
            "citizen_json"
        ],
        "{doc:#}"
    );
    for page in pages {
        let [p50, p99, max] = ["p50_us", "p99_us", "max_us"].map(|k| page[k].as_u64().unwrap());
        assert!(0 < p50 && p50 <= p99 && p99 <= max, "{page}");
        assert_eq!(page["iterations"], 5, "{page}");
        assert!(page["mean_bytes"].as_u64().unwrap() > 500, "{page}");
        let name = page["name"].as_str().unwrap();
        let rows = page["rows"].as_u64().unwrap();
        assert!(expected_rows(name, rows), "{name}: {rows} rows\n{doc:#}");
        assert!(!page["what"].as_str().unwrap().is_empty(), "{page}");
    }
    let browser = &doc["browser"];
    assert_eq!(browser["verdict"], "verified", "{doc:#}");
    assert_eq!(browser["iterations"], 5, "{doc:#}");
    assert!(browser["proof_hashes"].as_u64().unwrap() >= 10, "{doc:#}");
    assert!(browser["browser"].as_str().unwrap().contains("Chrome/"));
    let [p50, p99, max] = ["p50_ms", "p99_ms", "max_ms"].map(|k| browser[k].as_f64().unwrap());
    assert!(0.0 <= p50 && p50 <= p99 && p99 <= max, "{doc:#}");
}

#[test]
fn the_console_bench_refuses_a_log_too_small_to_measure() {
    let out = jisr()
        .args(["console", "bench", "--entries", "50", "--no-browser"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--entries must be at least 100"),
        "{stderr}"
    );
}
