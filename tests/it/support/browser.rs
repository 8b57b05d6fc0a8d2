//! A real browser for the console tests: headless Chromium driven over
//! WebDriver by chromedriver on a loopback port of its own, with a fresh
//! profile. Both are Debian packages `scripts/test.sh` installs.

use super::web::{plain, Answer};
use http::Method;
use serde_json::{json, Value};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The Tab and Enter keys, as WebDriver codes them.
pub const TAB: &str = "\u{E004}";
pub const ENTER: &str = "\u{E007}";

/// The W3C WebDriver key of an element reference.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A chromedriver process and one browser session; both end on drop.
pub struct Browser {
    driver: Child,
    addr: String,
    session: String,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Starts chromedriver and a headless Chromium at 1280×800 that
    /// accepts the tests' own loopback certificates.
    pub async fn start() -> Self {
        Self::start_in("en-US,en").await
    }

    /// [`Browser::start`] sending `accept_language` as `Accept-Language`.
    pub async fn start_in(accept_language: &str) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect(
                "chromedriver is installed (scripts/test.sh installs Debian's chromium-driver)",
            );
        let addr = format!("127.0.0.1:{port}");
        let profile = tempfile::tempdir().unwrap();
        let mut browser = Self {
            driver,
            addr,
            session: String::new(),
            _profile: profile,
        };
        browser.wait_ready().await;
        let args = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            "--window-size=1280,800",
            &format!("--user-data-dir={}", browser._profile.path().display()),
        ];
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "acceptInsecureCerts": true,
            "goog:chromeOptions": {"binary": "/usr/bin/chromium", "args": args,
                "prefs": {"intl.accept_languages": accept_language}},
        }}});
        let answer = browser
            .call(Method::POST, "/session", Some(capabilities))
            .await;
        browser.session = answer["sessionId"]
            .as_str()
            .expect("a session id")
            .to_owned();
        browser
    }

    async fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if tokio::net::TcpStream::connect(&self.addr).await.is_ok() {
                let status = plain(&self.addr, Method::GET, "/status", None).await;
                if status.body.contains("\"ready\":true") {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "chromedriver did not start within 30 s"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Value {
        let Answer {
            status, body: text, ..
        } = plain(&self.addr, method, path, body.map(|b| b.to_string())).await;
        let value: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        assert!(status.is_success(), "WebDriver {path}: {status} {text}");
        value["value"].clone()
    }

    fn at(&self, rest: &str) -> String {
        format!("/session/{}{rest}", self.session)
    }

    /// Opens `url` and waits for the page to load.
    pub async fn goto(&self, url: &str) {
        self.call(Method::POST, &self.at("/url"), Some(json!({"url": url})))
            .await;
    }

    /// The current URL.
    pub async fn url(&self) -> String {
        self.call(Method::GET, &self.at("/url"), None)
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// The element matching `css`, if any.
    pub async fn find(&self, css: &str) -> Option<String> {
        let (status, value) = self.try_find(css).await;
        status.then(|| value[ELEMENT].as_str().unwrap_or_default().to_owned())
    }

    async fn try_find(&self, css: &str) -> (bool, Value) {
        let body = json!({"using": "css selector", "value": css}).to_string();
        let answer = plain(&self.addr, Method::POST, &self.at("/element"), Some(body)).await;
        let value: Value = serde_json::from_str(&answer.body).unwrap_or(Value::Null);
        (answer.status.is_success(), value["value"].clone())
    }

    /// The visible text of the element matching `css` (which must exist).
    pub async fn text(&self, css: &str) -> String {
        let id = self
            .find(css)
            .await
            .unwrap_or_else(|| panic!("no `{css}` on the page"));
        let v = self
            .call(Method::GET, &self.at(&format!("/element/{id}/text")), None)
            .await;
        v.as_str().unwrap_or_default().to_owned()
    }

    /// Clicks the element matching `css` (which must exist).
    pub async fn click(&self, css: &str) {
        let id = self
            .find(css)
            .await
            .unwrap_or_else(|| panic!("no `{css}` on the page"));
        self.call(
            Method::POST,
            &self.at(&format!("/element/{id}/click")),
            Some(json!({})),
        )
        .await;
    }

    /// Clicks a link or submit button matching `css` and waits until the
    /// next page has loaded (a click returns before the navigation does).
    pub async fn follow(&self, css: &str) {
        self.execute("document.documentElement.dataset.left = 'yes'; return '';")
            .await;
        self.click(css).await;
        let loaded = "return !document.documentElement.dataset.left \
                      && document.readyState === 'complete' ? 'loaded' : '';";
        self.wait_for(&format!("the page after clicking `{css}`"), loaded)
            .await;
    }

    /// Types `text` into the field matching `css`.
    pub async fn type_into(&self, css: &str, text: &str) {
        let id = self
            .find(css)
            .await
            .unwrap_or_else(|| panic!("no `{css}` on the page"));
        let path = self.at(&format!("/element/{id}/value"));
        self.call(Method::POST, &path, Some(json!({"text": text})))
            .await;
    }

    /// Presses `keys` one after the other on the keyboard, as a person
    /// would, to whatever element has the focus (WebDriver key actions;
    /// `TAB` and `ENTER` are the W3C codes for those keys).
    pub async fn press(&self, keys: &str) {
        let actions: Vec<Value> = keys
            .chars()
            .flat_map(|c| {
                let key = c.to_string();
                [
                    json!({"type": "keyDown", "value": key}),
                    json!({"type": "keyUp", "value": key}),
                ]
            })
            .collect();
        let body = json!({"actions": [{"type": "key", "id": "keyboard", "actions": actions}]});
        self.call(Method::POST, &self.at("/actions"), Some(body))
            .await;
    }

    /// Runs `script` in the page and returns its result.
    pub async fn execute(&self, script: &str) -> Value {
        let body = json!({"script": script, "args": []});
        self.call(Method::POST, &self.at("/execute/sync"), Some(body))
            .await
    }

    /// Waits until `script` returns a non-empty string, which it returns.
    pub async fn wait_for(&self, what: &str, script: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(s) = self
                .execute(script)
                .await
                .as_str()
                .filter(|s| !s.is_empty())
            {
                return s.to_owned();
            }
            assert!(Instant::now() < deadline, "{what}: not within 20 s");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The verdict of a console page's own proof-checking script (its
    /// `#verdict` element's `data-state`), once it is no longer checking.
    pub async fn verdict(&self) -> String {
        let script = "const v = document.getElementById('verdict'); \
                      return v && v.dataset.state !== 'checking' ? v.dataset.state : '';";
        self.wait_for("the browser's verdict", script).await
    }

    /// Saves a PNG screenshot of the window to `target/console-shots/<name>.png`.
    pub async fn screenshot(&self, name: &str) {
        use base64::Engine as _;
        let v = self.call(Method::GET, &self.at("/screenshot"), None).await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(v.as_str().unwrap_or_default())
            .unwrap();
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/console-shots");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
    }

    /// Resizes the window (e.g. to a tablet's width).
    pub async fn resize(&self, width: u32, height: u32) {
        let body = json!({"width": width, "height": height});
        self.call(Method::POST, &self.at("/window/rect"), Some(body))
            .await;
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Ends Chromium first (chromedriver quits it on DELETE session), by
        // a blocking request: drop may run outside a runtime.
        if !self.session.is_empty() {
            if let Ok(mut tcp) = std::net::TcpStream::connect(&self.addr) {
                use std::io::{Read as _, Write as _};
                let request = format!(
                    "DELETE /session/{} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
                    self.session, self.addr
                );
                let _ = tcp.set_read_timeout(Some(Duration::from_secs(10)));
                let _ = tcp.write_all(request.as_bytes());
                let _ = tcp.read_to_end(&mut Vec::new());
            }
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
