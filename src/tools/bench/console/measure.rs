//! The pages timed, and what each must answer: a benchmark of pages that
//! came back empty or refused would measure nothing, so every answer is
//! checked (status, rows, receipts) and a wrong one stops the run.

use super::fill::Data;
use super::https::{expect, Answer, Session};
use anyhow::{bail, ensure, Context as _};
use hdrhistogram::Histogram;
use http::StatusCode;

/// Rows of an Exchanges page (`console::exchanges`' page size).
const SEARCH_PAGE: usize = 25;
/// Lines of a citizen's page (`console::citizen`'s page size): the newest.
const CITIZEN_PAGE: u64 = 200;

/// One page's figures.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Figure {
    /// Short name (the JSON key).
    pub name: &'static str,
    /// What was asked.
    pub what: String,
    /// Measured requests.
    pub iterations: u64,
    /// Server time p50, µs (request sent → whole answer read, on a kept-alive
    /// connection).
    pub p50_us: u64,
    /// p99, µs.
    pub p99_us: u64,
    /// Max, µs.
    pub max_us: u64,
    /// Mean answer size, bytes.
    pub mean_bytes: u64,
    /// Rows (search), lines (citizen page) or proof hashes (entry) in each answer.
    pub rows: u64,
}

/// A page the benchmark asks for.
#[derive(Debug, Clone)]
pub(super) enum Page {
    /// GET /exchanges?`query` as the auditor; every row shows `marker`.
    Search {
        name: &'static str,
        what: String,
        query: String,
        marker: Option<&'static str>,
    },
    /// GET /exchanges/entry for an entry spread over the log.
    Entry,
    /// POST /citizen or /citizen.json (`json`) for the frequent citizen.
    Citizen { json: bool },
}

/// The signed-in agencies.
#[derive(Debug)]
pub(super) struct Sessions {
    pub(super) auditor: Session,
    pub(super) portal: Session,
}

/// The pages measured for `data`.
pub(super) fn pages(data: &Data) -> Vec<Page> {
    // An hour in the middle of the log: about 1,200 entries, 30 refused.
    let middle = Data::time(data.entries / 2);
    let hour = |micros: i64| {
        let format = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]");
        time::OffsetDateTime::from_unix_timestamp(micros / 1_000_000)
            .ok()
            .and_then(|t| t.format(format).ok())
            .unwrap_or_default()
    };
    let (from, to) = (hour(middle), hour(middle + 3_600_000_000));
    vec![
        Page::Search {
            name: "search_newest",
            what: "Exchanges search: newest page, no filter".into(),
            query: String::new(),
            marker: None,
        },
        Page::Search {
            name: "search_agency_purpose",
            what: "Exchanges search: consumer `tax`, purpose `tax-household`".into(),
            query: "agency=tax&side=consumer&purpose=tax-household".into(),
            marker: Some("<td data-label=\"Purpose\">tax-household</td>"),
        },
        Page::Search {
            name: "search_refused_hour",
            what: format!("Exchanges search: refused, one hour mid-log ({from} to {to} UTC)"),
            query: format!("outcome=refused&from={from}&to={to}"),
            marker: Some("<td data-label=\"Outcome\">REFUSED (CONSENT_REQUIRED)"),
        },
        Page::Entry,
        Page::Citizen { json: false },
        Page::Citizen { json: true },
    ]
}

impl Page {
    fn name(&self) -> &'static str {
        match self {
            Self::Search { name, .. } => name,
            Self::Entry => "entry",
            Self::Citizen { json: false } => "citizen_html",
            Self::Citizen { json: true } => "citizen_json",
        }
    }

    fn what(&self, data: &Data) -> String {
        let shown = data.frequent.min(CITIZEN_PAGE);
        match self {
            Self::Search { what, .. } => what.clone(),
            Self::Entry => "An entry with its inclusion proof (auditor)".into(),
            Self::Citizen { json } => format!(
                "Citizen page{} for a citizen with {} exchanges ({shown} newest shown, each with its receipt)",
                if *json { ", JSON" } else { ", HTML" },
                data.frequent
            ),
        }
    }

    /// Asks once (the `k`-th time) and checks the answer; returns it with
    /// its row count.
    async fn ask(&self, s: &mut Sessions, data: &Data, k: u64) -> anyhow::Result<(Answer, u64)> {
        match self {
            Self::Search { query, marker, .. } => {
                let answer = s.auditor.get(&format!("/exchanges?{query}")).await?;
                expect(&answer, StatusCode::OK, "the Exchanges search")?;
                let rows = answer.body.matches("<tr><td data-label=\"When\">").count();
                let marked = marker.map_or(rows, |m| answer.body.matches(m).count());
                ensure!(
                    (1..=SEARCH_PAGE).contains(&rows) && marked == rows,
                    "the search `{query}` showed {rows} rows, {marked} of them matching"
                );
                if marker.is_none() {
                    ensure!(rows == SEARCH_PAGE, "the newest page showed {rows} rows");
                }
                Ok((answer, rows as u64))
            }
            Self::Entry => {
                // Entries spread over the whole log, a different one each time.
                let index = (k * 104_729) % data.entries;
                let answer = s
                    .auditor
                    .get(&format!("/exchanges/entry?node=gw-1&index={index}"))
                    .await?;
                expect(&answer, StatusCode::OK, "an entry's page")?;
                let hashes = proof_hashes(&answer.body, index)?;
                Ok((answer, hashes))
            }
            Self::Citizen { json } => {
                let path = if *json { "/citizen.json" } else { "/citizen" };
                let form = format!("csrf={}&citizen={}", s.portal.csrf, data.frequent_citizen());
                let answer = s.portal.post(path, &form).await?;
                expect(&answer, StatusCode::OK, "the citizen page")?;
                let want = data.frequent.min(CITIZEN_PAGE);
                let lines = if *json {
                    json_lines(&answer.body, data.frequent > CITIZEN_PAGE)?
                } else {
                    html_lines(&answer.body)?
                };
                ensure!(
                    lines == want,
                    "the citizen page listed {lines} lines, not {want}"
                );
                Ok((answer, lines))
            }
        }
    }
}

/// The entry page's receipt: its proof's length, checked to be the
/// receipt of entry `index` in a tree that holds it.
fn proof_hashes(page: &str, index: u64) -> anyhow::Result<u64> {
    let json = page
        .split("<script type=\"application/json\" id=\"receipt\">")
        .nth(1)
        .and_then(|rest| rest.split("</script>").next())
        .context("the entry page has no receipt")?;
    let receipt: serde_json::Value = serde_json::from_str(json)?;
    let size = receipt["tree_size"].as_u64().unwrap_or(0);
    let proof = receipt["proof"].as_array().map_or(0, Vec::len) as u64;
    ensure!(
        receipt["index"].as_u64() == Some(index)
            && size > index
            && receipt["checkpoint"]
                .as_str()
                .is_some_and(|c| !c.is_empty())
            && (size == 1 || proof > 0),
        "entry {index}'s receipt is incomplete: {receipt}"
    );
    Ok(proof)
}

/// The lines of the citizen page, each of which must offer a receipt. A
/// line for the console's own read of one of the citizen's entries (an
/// auditor opening it: "who watched the watchers", kind `CONSOLE_READ`) is
/// not one of the exchanges measured, and may still wait for its checkpoint.
fn html_lines(page: &str) -> anyhow::Result<u64> {
    let table = page
        .split("<table id=\"history\"")
        .nth(1)
        .context("the citizen page has no history table")?;
    let rows: Vec<&str> = table
        .split("<tr data-kind=")
        .skip(1)
        .filter(|row| !row.starts_with("\"CONSOLE_READ\""))
        .collect();
    let bare: Vec<&&str> = rows
        .iter()
        .filter(|row| !row.contains("class=\"receipt-data\""))
        .collect();
    ensure!(
        bare.is_empty(),
        "{} of the citizen page's {} lines have no receipt: {bare:?}",
        bare.len(),
        rows.len()
    );
    Ok(rows.len() as u64)
}

/// The entries of the citizen page's JSON, each with a receipt; `more`
/// must say whether older ones were left out.
fn json_lines(body: &str, more: bool) -> anyhow::Result<u64> {
    let doc: serde_json::Value = serde_json::from_str(body).context("the JSON page")?;
    let Some(entries) = doc["entries"].as_array() else {
        bail!("the JSON page has no entries: {body}");
    };
    // As in the HTML, the console's own reads are not the exchanges measured.
    let entries: Vec<&serde_json::Value> = entries
        .iter()
        .filter(|e| e["kind"].as_str() != Some("CONSOLE_READ"))
        .collect();
    let receipts = entries.iter().filter(|e| e["receipt"].is_object()).count();
    ensure!(
        receipts == entries.len() && doc["more"].as_bool() == Some(more),
        "{receipts} of {} JSON entries have a receipt; more = {}",
        entries.len(),
        doc["more"]
    );
    Ok(entries.len() as u64)
}

/// Asks every page `warmup + iterations` times, interleaved (so none is
/// always asked on a warm cache), and times the last `iterations`.
pub(super) async fn run(
    s: &mut Sessions,
    data: &Data,
    warmup: u64,
    iterations: u64,
) -> anyhow::Result<Vec<Figure>> {
    let pages = pages(data);
    let mut times: Vec<(Histogram<u64>, u64, u64)> = pages
        .iter()
        .map(|_| Histogram::new_with_bounds(1, 600_000_000, 3).map(|h| (h, 0, 0)))
        .collect::<Result<_, _>>()?;
    for k in 0..warmup + iterations {
        for (page, (hist, bytes, rows)) in pages.iter().zip(&mut times) {
            let (answer, n) = page
                .ask(s, data, k)
                .await
                .with_context(|| page.what(data))?;
            if k >= warmup {
                hist.record(answer.micros.max(1))?;
                *bytes += answer.body.len() as u64;
                *rows = n;
            }
        }
        if (k + 1) % 100 == 0 {
            eprintln!("bench: {} of {} rounds", k + 1, warmup + iterations);
        }
    }
    Ok(pages
        .iter()
        .zip(times)
        .map(|(page, (h, bytes, rows))| Figure {
            name: page.name(),
            what: page.what(data),
            iterations,
            p50_us: h.value_at_quantile(0.5),
            p99_us: h.value_at_quantile(0.99),
            max_us: h.max(),
            mean_bytes: bytes / iterations.max(1),
            rows,
        })
        .collect())
}
