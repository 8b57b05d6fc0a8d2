//! `jisr console bench`: the web console's and the citizen page's server
//! time over a large log (issues 17 and 18), and the browser's time to
//! verify one inclusion proof.
//!
//! - `fill`: the log (a million entries by default, one citizen with a
//!   thousand exchanges), written through the log writer and indexed before
//!   the gateway starts;
//! - then the demo's network starts in this process with its console
//!   (`jisr demo --serve`'s, over the filled log): the real gateway, its
//!   real HTTPS console listener;
//! - `https`: the auditor (`cndp`) and the portal sign in with links minted
//!   by the console's key, as `jisr console login` does;
//! - `measure`: the Exchanges search, an entry with its proof and the
//!   citizen page (HTML and JSON), interleaved, every answer checked;
//! - `browser`: headless Chromium over WebDriver times the entry page's
//!   own verification script.

mod browser;
mod fill;
mod https;
mod measure;

use crate::identity::AgencyId;
use crate::tls;
use crate::tools::demo::Network;
use anyhow::{ensure, Context as _};
pub use browser::BrowserFigure;
use fill::Data;
pub use measure::Figure;
use std::path::PathBuf;

/// What to measure.
#[derive(Debug, Clone, clap::Args)]
pub struct ConsoleBenchArgs {
    /// Entries written to the log before the gateway starts (at least 100).
    #[arg(long, default_value_t = 1_000_000)]
    pub entries: u64,
    /// Exchanges about the citizen whose page is asked for, spread evenly
    /// through the log.
    #[arg(long, default_value_t = 1_000)]
    pub citizen_exchanges: u64,
    /// Citizens the other entries are spread over.
    #[arg(long, default_value_t = 100_000)]
    pub citizens: u64,
    /// Timed requests of each page (after a tenth as many unmeasured).
    #[arg(long, default_value_t = 1_000)]
    pub iterations: u64,
    /// Timed checks of one proof in the browser.
    #[arg(long, default_value_t = 200)]
    pub browser_iterations: u64,
    /// Leave the browser figure out (no Chromium needed).
    #[arg(long)]
    pub no_browser: bool,
    /// Where to write the log (default: a temporary directory).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// The run.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ConsoleRun {
    /// Entries written before the gateway started.
    pub entries: u64,
    /// Exchanges about the citizen whose page was asked for.
    pub citizen_exchanges: u64,
    /// Citizens the other entries are spread over.
    pub citizens: u64,
    /// Seconds to write the log, and to index it.
    pub fill_s: f64,
    /// Seconds to index it.
    pub index_s: f64,
    /// The machine's CPU (`/proc/cpuinfo`).
    pub cpu: Option<String>,
    /// Each page's server time.
    pub pages: Vec<Figure>,
    /// The browser's check of one proof; `None` with --no-browser.
    pub browser: Option<BrowserFigure>,
}

/// Fills the log, starts the network with its console, measures, stops it.
pub async fn run(args: &ConsoleBenchArgs) -> anyhow::Result<ConsoleRun> {
    ensure!(
        args.entries >= 100,
        "--entries must be at least 100 (a page of search results, and room for the citizen's exchanges)"
    );
    ensure!(
        (1..=args.entries / 2).contains(&args.citizen_exchanges),
        "--citizen-exchanges must be between 1 and half of --entries"
    );
    ensure!(args.citizens >= 1, "--citizens must be at least 1");
    ensure!(args.iterations >= 1, "--iterations must be at least 1");
    tls::install_crypto_provider();
    let temp = tempfile::Builder::new()
        .prefix("jisr-console-bench-")
        .tempdir_in(args.dir.clone().unwrap_or_else(std::env::temp_dir))?;
    let dir = temp.path();
    let data = Data {
        entries: args.entries,
        citizens: args.citizens,
        frequent: args.citizen_exchanges,
    };
    eprintln!(
        "bench: writing and indexing {} entries ({} about one citizen)...",
        data.entries, data.frequent
    );
    let took = fill::write(dir, data).await?;
    eprintln!(
        "bench: written in {:.0} s, indexed in {:.0} s; starting the gateway and its console",
        took.fill_s, took.index_s
    );
    let network = Network::start_with(dir, true).await?;
    let measured = measure(&network, &data, args).await;
    network.stop().await;
    let (pages, browser) = measured?;
    Ok(ConsoleRun {
        entries: args.entries,
        citizen_exchanges: args.citizen_exchanges,
        citizens: args.citizens,
        fill_s: took.fill_s,
        index_s: took.index_s,
        cpu: super::args::cpu_model(),
        pages,
        browser,
    })
}

/// Signs in, times the pages, then the browser.
async fn measure(
    network: &Network,
    data: &Data,
    args: &ConsoleBenchArgs,
) -> anyhow::Result<(Vec<Figure>, Option<BrowserFigure>)> {
    let console = network
        .config
        .console
        .as_ref()
        .context("the demo network has no [console]")?;
    let addr = network
        .console
        .context("the console did not start")?
        .to_string();
    let key = crate::console::link::LinkKey::load_or_create(&console.signin_key)?;
    let token = |agency: &str| -> anyhow::Result<String> {
        Ok(key.mint_for(&AgencyId::parse(agency)?, console.link))
    };
    let ca = network.pki.join("ca.crt");
    let mut sessions = measure::Sessions {
        auditor: https::Session::sign_in(&addr, &ca, &token("cndp")?, "/exchanges").await?,
        portal: https::Session::sign_in(&addr, &ca, &token("portal")?, "/citizen").await?,
    };
    let warmup = args.iterations.div_ceil(10);
    let pages = measure::run(&mut sessions, data, warmup, args.iterations).await?;
    let browser = if args.no_browser {
        None
    } else {
        eprintln!("bench: the browser's check of one proof...");
        let link = format!("https://{addr}/signin?t={}", token("cndp")?);
        let index = data.entries / 2 + 1;
        Some(
            browser::measure(
                &format!("https://{addr}"),
                &link,
                index,
                args.browser_iterations,
            )
            .await?,
        )
    };
    Ok((pages, browser))
}

/// The report as Markdown tables.
pub fn render(run: &ConsoleRun) -> String {
    let mut out = format!(
        "{} entries in the log ({} about the citizen asked for, the rest over {} citizens); written in {:.0} s, indexed in {:.0} s; CPU: {}\n\n",
        run.entries,
        run.citizen_exchanges,
        run.citizens,
        run.fill_s,
        run.index_s,
        run.cpu.as_deref().unwrap_or("unknown")
    );
    out.push_str("| page (server time, HTTPS, kept-alive connection) | requests | p50 (ms) | p99 (ms) | max (ms) | rows | mean size (KiB) |\n|---|---:|---:|---:|---:|---:|---:|\n");
    let ms = |us: u64| us as f64 / 1000.0;
    for f in &run.pages {
        out.push_str(&format!(
            "| {} | {} | {:.2} | {:.2} | {:.2} | {} | {:.1} |\n",
            f.what,
            f.iterations,
            ms(f.p50_us),
            ms(f.p99_us),
            ms(f.max_us),
            f.rows,
            f.mean_bytes as f64 / 1024.0
        ));
    }
    if let Some(b) = &run.browser {
        out.push_str(&format!(
            "\n| browser check of one proof ({}) | entry | proof hashes | checks | p50 (ms) | p99 (ms) | max (ms) |\n|---|---:|---:|---:|---:|---:|---:|\n| `verify.js` in the entry page: Ed25519 checkpoint signature + RFC 6962 path | {} | {} | {} | {:.1} | {:.1} | {:.1} |\n",
            b.browser, b.index, b.proof_hashes, b.iterations, b.p50_ms, b.p99_ms, b.max_ms
        ));
    }
    out.push_str("\nRows: search results shown, citizen-page lines (each with its receipt), or the entry's proof hashes.\n");
    out
}
