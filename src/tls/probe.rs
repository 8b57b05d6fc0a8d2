//! What `jisr probe` needs from TLS: a client that accepts any identity of
//! the trust domain (it reports the one it finds), and a check that the
//! peer kept the connection after the handshake.
//!
//! In TLS 1.3 the client finishes its handshake before the server has
//! checked the client's certificate: a refused certificate shows only as an
//! alert on the first read. [`h2_greeting`] makes that read.

use std::sync::Arc;

use rustls::{AlertDescription, ClientConfig};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};

use super::{handshake_failure_reason, spiffe_client_config, TlsError, TlsFiles};
use crate::identity::TrustDomain;

/// The HTTP/2 client connection preface and an empty SETTINGS frame.
const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00";
/// An HTTP/2 frame header: a server's first SETTINGS frame starts with one.
const FRAME_HEADER: usize = 9;

/// Mutual TLS as `files`' agency towards any server whose certificate
/// chains to `files.ca` and names an identity of `domain`.
pub fn probe_client_config(
    files: &TlsFiles,
    domain: &TrustDomain,
) -> Result<Arc<ClientConfig>, TlsError> {
    spiffe_client_config(files, domain, None, None)
}

/// Why the peer ended a connection after the TLS handshake.
#[derive(Debug, thiserror::Error)]
pub enum Greeting {
    /// It sent an alert: it refused our certificate, and says why.
    #[error("{reason}")]
    Alert {
        /// The alert.
        alert: AlertDescription,
        /// Its reading, e.g. "the peer aborted the handshake: our certificate expired".
        reason: String,
    },
    /// It closed the connection without a word (a gateway does that to a
    /// valid certificate whose identity it does not admit).
    #[error("the peer closed the connection right after the TLS handshake")]
    Closed,
    /// Something else failed.
    #[error("{0}")]
    Other(String),
}

/// Sends the HTTP/2 preface on an established TLS stream and waits for the
/// server's first frame: `Ok` once it arrives, else why the server ended
/// the connection.
pub async fn h2_greeting<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
) -> Result<(), Greeting> {
    let failed = |e: std::io::Error| {
        let alert = e.get_ref().and_then(|inner| match inner.downcast_ref() {
            Some(rustls::Error::AlertReceived(alert)) => Some(*alert),
            _ => None,
        });
        match alert {
            Some(alert) => Greeting::Alert {
                alert,
                reason: handshake_failure_reason(&e),
            },
            // A server that drops the connection unread resets it.
            None if is_close(&e) => Greeting::Closed,
            None => Greeting::Other(handshake_failure_reason(&e)),
        }
    };
    stream.write_all(PREFACE).await.map_err(failed)?;
    stream.flush().await.map_err(failed)?;
    let mut header = [0u8; FRAME_HEADER];
    stream.read_exact(&mut header).await.map_err(failed)?;
    Ok(())
}

fn is_close(e: &std::io::Error) -> bool {
    use std::io::ErrorKind as K;
    matches!(
        e.kind(),
        K::UnexpectedEof | K::ConnectionReset | K::BrokenPipe
    )
}
