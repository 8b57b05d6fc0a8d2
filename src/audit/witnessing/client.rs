//! The client side of `add-checkpoint`: one HTTPS POST to a witness, its
//! answer sorted into what the log does next (keep the cosignature, retry
//! from the size the witness knows, or report a refusal).

use std::path::Path;
use std::time::Duration;

use http_body_util::{BodyExt as _, Full, Limited};
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;

use super::request::AddCheckpoint;

/// Longest wait for one witness answer, connection included.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest answer read (a few signature lines).
const MAX_ANSWER_BYTES: usize = 16 * 1024;
/// The media type of a 409 answer's body.
pub const SIZE_CONTENT_TYPE: &str = "text/x.tlog.size";

/// What a witness answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// 200: the cosignature lines (each ending in a newline).
    Cosigned(String),
    /// 409: the witness knows another size for this log (retry from it),
    /// or the same size with another root (a split view).
    Conflict {
        /// The size the witness last cosigned.
        known_size: u64,
    },
    /// Any other status, with the body the witness sent (its reason).
    Refused {
        /// The HTTP status.
        status: u16,
        /// The body, as text.
        body: String,
    },
}

/// Why a witness could not be asked.
#[derive(Debug, thiserror::Error)]
pub enum WitnessCallError {
    /// The configured URL is not `https://host[:port][/prefix]`.
    #[error("witness URL `{0}` is not https://host[:port][/prefix]")]
    Url(String),
    /// The CA file could not be loaded.
    #[error("witness CA: {0}")]
    Tls(#[from] crate::tls::TlsError),
    /// Connecting, TLS, or HTTP failed.
    #[error("witness {url}: {what}")]
    Transport {
        /// The witness URL.
        url: String,
        /// What failed.
        what: String,
    },
}

/// A witness's `add-checkpoint` endpoint.
#[derive(Clone)]
pub struct WitnessClient {
    url: String,
    authority: String,
    server_name: ServerName<'static>,
    path: String,
    tls: tokio_rustls::TlsConnector,
}

impl std::fmt::Debug for WitnessClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WitnessClient")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl WitnessClient {
    /// A client for the witness at `url` (the submission prefix, e.g.
    /// `https://witness.cndp.ma/jisr`), whose certificate chains to `ca`.
    pub fn new(url: &str, ca: &Path) -> Result<Self, WitnessCallError> {
        let bad = || WitnessCallError::Url(url.to_owned());
        let uri: http::Uri = url.parse().map_err(|_| bad())?;
        if uri.scheme_str() != Some("https") || uri.query().is_some() {
            return Err(bad());
        }
        let host = uri.host().ok_or_else(bad)?;
        let port = uri.port_u16().unwrap_or(443);
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let server_name = ServerName::try_from(bare.to_owned()).map_err(|_| bad())?;
        let prefix = uri.path().trim_end_matches('/');
        Ok(WitnessClient {
            url: url.to_owned(),
            authority: format!("{host}:{port}"),
            server_name,
            path: format!("{prefix}/add-checkpoint"),
            tls: tokio_rustls::TlsConnector::from(crate::tls::web_client_config(ca)?),
        })
    }

    /// The witness URL, as configured.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Sends one `add-checkpoint` request and sorts the answer.
    pub async fn add_checkpoint(
        &self,
        request: &AddCheckpoint,
    ) -> Result<Answer, WitnessCallError> {
        let call = self.call(request.to_body());
        match tokio::time::timeout(CALL_TIMEOUT, call).await {
            Ok(result) => result.map_err(|what| WitnessCallError::Transport {
                url: self.url.clone(),
                what,
            }),
            Err(_) => Err(WitnessCallError::Transport {
                url: self.url.clone(),
                what: format!("no answer within {CALL_TIMEOUT:?}"),
            }),
        }
    }

    async fn call(&self, body: String) -> Result<Answer, String> {
        let tcp = tokio::net::TcpStream::connect(&self.authority)
            .await
            .map_err(|e| format!("cannot connect: {e}"))?;
        let tls = self
            .tls
            .connect(self.server_name.clone(), tcp)
            .await
            .map_err(|e| format!("TLS handshake failed: {e}"))?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(|e| format!("HTTP handshake failed: {e}"))?;
        let driver = tokio::spawn(connection);
        let request = http::Request::post(self.path.as_str())
            .header(http::header::HOST, &self.authority)
            .header(http::header::CONTENT_TYPE, "text/plain; charset=utf-8")
            .body(Full::new(bytes::Bytes::from(body)))
            .map_err(|e| format!("cannot build the request: {e}"))?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| format!("request failed: {e}"))?;
        let status = response.status().as_u16();
        let body = Limited::new(response.into_body(), MAX_ANSWER_BYTES)
            .collect()
            .await
            .map_err(|e| format!("cannot read the answer: {e}"))?
            .to_bytes();
        driver.abort();
        let body = String::from_utf8_lossy(&body).into_owned();
        Ok(sort_answer(status, body))
    }
}

fn sort_answer(status: u16, body: String) -> Answer {
    match status {
        200 => Answer::Cosigned(body),
        409 => match crate::audit::note::parse_size(body.trim_end_matches('\n')) {
            Some(known_size) => Answer::Conflict { known_size },
            None => Answer::Refused { status, body },
        },
        _ => Answer::Refused { status, body },
    }
}
