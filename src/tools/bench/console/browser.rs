//! The browser-side figure: headless Chromium, driven over WebDriver by
//! chromedriver (Debian `chromium` and `chromium-driver`), signs in to the
//! console as the auditor, opens an entry's page, waits for the page's own
//! script to verify the receipt, then times that script's check
//! (`window.jisrCheckReceipt`, from `verify.js`: the RFC 6962 path with
//! SubtleCrypto SHA-256 and the checkpoint's Ed25519 signature with
//! WebCrypto) with `performance.now()` in the page, many times.

use super::https::{handshake, send};
use anyhow::{bail, ensure, Context as _};
use bytes::Bytes;
use http::{Method, Request};
use http_body_util::Full;
use serde_json::{json, Value};
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::process::{Child, Command};

/// The W3C WebDriver key of an element reference.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// How long chromedriver, the sign-in and the first verdict may take.
const READY_WITHIN: Duration = Duration::from_secs(60);

/// The browser-side figure, ms as `performance.now()` gives them
/// (Chromium coarsens them to 0.1 ms without cross-origin isolation).
#[derive(Debug, Clone, serde::Serialize)]
pub struct BrowserFigure {
    /// The browser.
    pub browser: String,
    /// The entry checked.
    pub index: u64,
    /// Hashes in its inclusion path.
    pub proof_hashes: u64,
    /// The page's own verdict, before the timed runs (`verified`).
    pub verdict: String,
    /// Timed checks (after one untimed).
    pub iterations: u64,
    /// Check time p50, ms.
    pub p50_ms: f64,
    /// p99, ms.
    pub p99_ms: f64,
    /// Max, ms.
    pub max_ms: f64,
}

/// The timed loop, run in the page: the page's own check of the page's own
/// receipt, `arguments[0]` times after one untimed call.
const TIMED: &str = r#"
const done = arguments[arguments.length - 1];
const n = arguments[0];
(async () => {
  const receipt = JSON.parse(document.getElementById("receipt").textContent);
  await window.jisrCheckReceipt(receipt, () => {});
  const times = [];
  for (let i = 0; i < n; i++) {
    const started = performance.now();
    await window.jisrCheckReceipt(receipt, () => {});
    times.push(performance.now() - started);
  }
  return { times, proof: receipt.proof.length };
})().then(done, (e) => done({ error: String(e && e.message || e) }));
"#;

/// A chromedriver process and its browser session.
struct Driver {
    child: Child,
    addr: String,
    session: String,
}

impl Driver {
    async fn start(profile: &std::path::Path) -> anyhow::Result<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let child = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .context("chromedriver did not start: install Debian's `chromium` and `chromium-driver` (scripts/test.sh does), or pass --no-browser")?;
        let mut driver = Self {
            child,
            addr: format!("127.0.0.1:{port}"),
            session: String::new(),
        };
        driver.wait_ready().await?;
        let args = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            "--window-size=1280,800",
            &format!("--user-data-dir={}", profile.display()),
        ];
        let mut options = json!({ "args": args });
        if std::path::Path::new("/usr/bin/chromium").exists() {
            options["binary"] = json!("/usr/bin/chromium");
        }
        // The console's certificate is the bench network's own CA's.
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome", "acceptInsecureCerts": true, "goog:chromeOptions": options,
        }}});
        let answer = driver
            .call(Method::POST, "/session", Some(capabilities))
            .await?;
        driver.session = answer["sessionId"]
            .as_str()
            .context("chromedriver gave no session id")?
            .to_owned();
        Ok(driver)
    }

    async fn wait_ready(&self) -> anyhow::Result<()> {
        let deadline = Instant::now() + READY_WITHIN;
        loop {
            if let Ok(status) = self.call(Method::GET, "/status", None).await {
                if status["ready"] == json!(true) {
                    return Ok(());
                }
            }
            ensure!(
                Instant::now() < deadline,
                "chromedriver was not ready within 60 s"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// A WebDriver command; its `value`.
    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> anyhow::Result<Value> {
        let tcp = tokio::net::TcpStream::connect(&self.addr).await?;
        let mut sender = handshake(tcp).await?;
        let request = Request::builder()
            .method(method)
            .uri(path)
            .header(http::header::HOST, &self.addr)
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(
                body.map(|b| b.to_string()).unwrap_or_default(),
            )))?;
        let answer = send(&mut sender, request).await?;
        let value: Value = serde_json::from_str(&answer.body).unwrap_or(Value::Null);
        if !answer.status.is_success() {
            bail!("WebDriver {path}: {} {}", answer.status, answer.body);
        }
        Ok(value["value"].clone())
    }

    fn at(&self, rest: &str) -> String {
        format!("/session/{}{rest}", self.session)
    }

    async fn goto(&self, url: &str) -> anyhow::Result<()> {
        self.call(Method::POST, &self.at("/url"), Some(json!({"url": url})))
            .await
            .map(drop)
    }

    async fn execute(
        &self,
        script: &str,
        args: Value,
        asynchronous: bool,
    ) -> anyhow::Result<Value> {
        let kind = if asynchronous { "async" } else { "sync" };
        let body = json!({"script": script, "args": args});
        self.call(
            Method::POST,
            &self.at(&format!("/execute/{kind}")),
            Some(body),
        )
        .await
    }

    /// Polls `script` until it returns a non-empty string.
    async fn wait_for(&self, what: &str, script: &str) -> anyhow::Result<String> {
        let deadline = Instant::now() + READY_WITHIN;
        loop {
            let value = self.execute(script, json!([]), false).await?;
            if let Some(s) = value.as_str().filter(|s| !s.is_empty()) {
                return Ok(s.to_owned());
            }
            ensure!(Instant::now() < deadline, "{what}: not within 60 s");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn close(mut self) {
        let path = self.at("");
        if let Err(e) = self.call(Method::DELETE, &path, None).await {
            tracing::debug!(error = %e, "bench: ending the browser session");
        }
        let _ = self.child.kill().await;
    }
}

/// Signs in with `link`, opens entry `index`'s page at `base` and times
/// `iterations` checks of its receipt by the page's own script.
pub(super) async fn measure(
    base: &str,
    link: &str,
    index: u64,
    iterations: u64,
) -> anyhow::Result<BrowserFigure> {
    let profile = tempfile::Builder::new()
        .prefix("jisr-bench-chromium-")
        .tempdir()?;
    let driver = Driver::start(profile.path()).await?;
    let figure = drive(&driver, base, link, index, iterations).await;
    driver.close().await;
    figure
}

async fn drive(
    driver: &Driver,
    base: &str,
    link: &str,
    index: u64,
    iterations: u64,
) -> anyhow::Result<BrowserFigure> {
    let version = driver
        .execute("return navigator.userAgent;", json!([]), false)
        .await?;
    driver.goto(link).await?;
    let button = driver
        .call(
            Method::POST,
            &driver.at("/element"),
            Some(json!({"using": "css selector", "value": "#signin"})),
        )
        .await?;
    let id = button[ELEMENT].as_str().context("no sign-in button")?;
    driver
        .call(
            Method::POST,
            &driver.at(&format!("/element/{id}/click")),
            Some(json!({})),
        )
        .await?;
    let signed_in = "return location.pathname === '/exchanges' && document.readyState === 'complete' ? 'yes' : '';";
    driver.wait_for("the sign-in", signed_in).await?;
    driver
        .goto(&format!("{base}/exchanges/entry?node=gw-1&index={index}"))
        .await?;
    let state = "const v = document.getElementById('verdict'); \
                 return v && v.dataset.state !== 'checking' ? v.dataset.state : '';";
    let verdict = driver.wait_for("the page's verdict", state).await?;
    ensure!(
        verdict == "verified",
        "the entry page's own script said `{verdict}`, not verified"
    );
    let timeouts = json!({"script": 600_000});
    driver
        .call(Method::POST, &driver.at("/timeouts"), Some(timeouts))
        .await?;
    let answer = driver.execute(TIMED, json!([iterations]), true).await?;
    if let Some(error) = answer["error"].as_str() {
        bail!("the page's check failed in the timed runs: {error}");
    }
    let mut times: Vec<f64> = answer["times"]
        .as_array()
        .context("the timed runs returned no times")?
        .iter()
        .filter_map(Value::as_f64)
        .collect();
    ensure!(
        times.len() as u64 == iterations,
        "{} timed checks of {iterations}",
        times.len()
    );
    times.sort_by(f64::total_cmp);
    Ok(BrowserFigure {
        browser: browser_name(version.as_str().unwrap_or_default()),
        index,
        proof_hashes: answer["proof"].as_u64().unwrap_or(0),
        verdict,
        iterations,
        p50_ms: quantile(&times, 0.5),
        p99_ms: quantile(&times, 0.99),
        max_ms: times.last().copied().unwrap_or(0.0),
    })
}

/// The value at quantile `q` of sorted `times` (nearest rank).
fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// `HeadlessChrome/120.0.6099.224` from a user agent string.
fn browser_name(agent: &str) -> String {
    agent
        .split_whitespace()
        .find(|w| w.contains("Chrome/"))
        .unwrap_or(agent)
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::{browser_name, quantile};

    #[test]
    fn quantiles_take_the_nearest_rank() {
        let times: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(quantile(&times, 0.5), 50.0);
        assert_eq!(quantile(&times, 0.99), 99.0);
        assert_eq!(quantile(&[3.0], 0.99), 3.0);
        assert_eq!(quantile(&[], 0.5), 0.0);
    }

    #[test]
    fn the_browser_is_named_from_its_user_agent() {
        let agent = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/120.0.6099.224 Safari/537.36";
        assert_eq!(browser_name(agent), "HeadlessChrome/120.0.6099.224");
    }
}
