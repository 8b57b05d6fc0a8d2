//! The benchmark's browser-less client of the console: HTTP/1.1 over TLS
//! (trusting the network's CA), one kept-alive connection per signed-in
//! agency, so a timed request is the server's time plus a loopback round
//! trip, without a handshake. Signs in as a browser does: the link's page,
//! then the form it posts, then the session cookie.

use anyhow::{bail, Context as _};
use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt as _, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use rustls_pki_types::pem::PemObject as _;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

/// The longest a request may take before the benchmark gives up.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(120);

/// An answer, and how long it took (request sent → body read).
#[derive(Debug)]
pub(super) struct Answer {
    pub(super) status: StatusCode,
    pub(super) headers: http::HeaderMap,
    pub(super) body: String,
    pub(super) micros: u64,
}

/// Sends `request` on `sender` and reads the whole answer.
pub(super) async fn send(
    sender: &mut SendRequest<Full<Bytes>>,
    request: Request<Full<Bytes>>,
) -> anyhow::Result<Answer> {
    let started = Instant::now();
    let exchange = async {
        sender.ready().await?;
        let response = sender.send_request(request).await?;
        let (parts, body) = response.into_parts();
        let body = body.collect().await?.to_bytes();
        Ok::<_, hyper::Error>((parts, body))
    };
    let (parts, body) = tokio::time::timeout(ANSWER_TIMEOUT, exchange)
        .await
        .context("no answer within 120 s")??;
    Ok(Answer {
        status: parts.status,
        headers: parts.headers,
        body: String::from_utf8_lossy(&body).into_owned(),
        micros: u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
    })
}

/// An HTTP/1.1 connection over `io`, driven by a task of its own.
pub(super) async fn handshake<S>(io: S) -> anyhow::Result<SendRequest<Full<Bytes>>>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(io)).await?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(error = %e, "bench: connection ended with an error");
        }
    });
    Ok(sender)
}

/// A signed-in agency's connection to the console.
pub(super) struct Session {
    addr: String,
    sender: SendRequest<Full<Bytes>>,
    cookie: String,
    /// The session's CSRF token, for the forms it posts.
    pub(super) csrf: String,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl Session {
    /// Opens a connection to the console at `addr` and signs in with the
    /// single-use link token `token`; `landing` is a page that shows the
    /// session's CSRF token (every signed-in page does, in its header).
    pub(super) async fn sign_in(
        addr: &str,
        ca: &Path,
        token: &str,
        landing: &str,
    ) -> anyhow::Result<Self> {
        let tls = connect(addr, ca).await?;
        let mut session = Self {
            addr: addr.to_owned(),
            sender: handshake(tls).await?,
            cookie: String::new(),
            csrf: String::new(),
        };
        let form = format!("t={token}");
        let page = session.get(&format!("/signin?{form}")).await?;
        expect(&page, StatusCode::OK, "the sign-in link's page")?;
        let signed_in = session.post("/signin", &form).await?;
        expect(&signed_in, StatusCode::SEE_OTHER, "the sign-in")?;
        let cookie = signed_in
            .headers
            .get(http::header::SET_COOKIE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .context("the sign-in set no session cookie")?;
        session.cookie = cookie.to_owned();
        let page = session.get(landing).await?;
        expect(&page, StatusCode::OK, landing)?;
        session.csrf = csrf_of(&page.body).context("the page shows no CSRF token")?;
        Ok(session)
    }

    /// GET `path`.
    pub(super) async fn get(&mut self, path: &str) -> anyhow::Result<Answer> {
        self.request(Method::GET, path, String::new()).await
    }

    /// POST the form `body` (URL-encoded) to `path`.
    pub(super) async fn post(&mut self, path: &str, body: &str) -> anyhow::Result<Answer> {
        self.request(Method::POST, path, body.to_owned()).await
    }

    async fn request(
        &mut self,
        method: Method,
        path: &str,
        body: String,
    ) -> anyhow::Result<Answer> {
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header(http::header::HOST, &self.addr)
            .header(http::header::ACCEPT_LANGUAGE, "fr-MA,fr;q=0.9")
            .header(
                http::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            );
        if !self.cookie.is_empty() {
            request = request.header(http::header::COOKIE, &self.cookie);
        }
        let request = request.body(Full::new(Bytes::from(body)))?;
        send(&mut self.sender, request)
            .await
            .with_context(|| path.to_owned())
    }
}

/// Fails unless `answer` has `status`, quoting the page.
pub(super) fn expect(answer: &Answer, status: StatusCode, what: &str) -> anyhow::Result<()> {
    if answer.status != status {
        let start: String = answer.body.chars().take(600).collect();
        bail!(
            "{what}: answered {} (expected {status}): {start}",
            answer.status
        );
    }
    Ok(())
}

/// The value of the first `csrf` hidden field in `page`.
fn csrf_of(page: &str) -> Option<String> {
    let rest = page.split("name=\"csrf\" value=\"").nth(1)?;
    Some(rest.split('"').next()?.to_owned())
}

/// A TLS connection to `addr` (the console's certificate names
/// `localhost`), trusting the CA certificates in `ca`.
async fn connect(
    addr: &str,
    ca: &Path,
) -> anyhow::Result<tokio_rustls::client::TlsStream<TcpStream>> {
    let mut roots = rustls::RootCertStore::empty();
    let pem = std::fs::read(ca).with_context(|| format!("reading {}", ca.display()))?;
    for cert in rustls_pki_types::CertificateDer::pem_slice_iter(&pem) {
        roots.add(cert?)?;
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(roots)
    .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = TcpStream::connect(addr).await?;
    tcp.set_nodelay(true)?;
    let name = rustls_pki_types::ServerName::try_from("localhost")?;
    Ok(connector.connect(name, tcp).await?)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_csrf_token_is_read_from_the_form() {
        let page = "<form><input type=\"hidden\" name=\"csrf\" value=\"ab12\"></form>";
        assert_eq!(super::csrf_of(page).as_deref(), Some("ab12"));
        assert_eq!(super::csrf_of("<p>none</p>"), None);
    }
}
