//! Request and response bodies on the exchange path.
//!
//! The request body is read whole (one gRPC message: unary and
//! server-streaming calls send exactly one), bounded by the configured limit
//! before it is buffered. The response body is passed through frame by frame,
//! with the caller's deadline enforced and transport errors turned into a
//! proper gRPC status in the trailers.

use crate::refusal::{Reason, Refusal};
use bytes::{Buf, Bytes, BytesMut};
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::time::{Instant, Sleep};

/// gRPC message prefix: 1 byte compressed flag, 4 bytes big-endian length.
pub const PREFIX: usize = 5;

/// Reads the single length-prefixed message of a request body. Returns the
/// framed bytes exactly as they arrived (prefix included).
pub async fn read_message<B>(mut body: B, limit: usize) -> Result<Bytes, Refusal>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: std::fmt::Display,
{
    let mut first: Option<Bytes> = None;
    let mut rest: Option<BytesMut> = None;
    let mut declared: Option<usize> = None;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| {
            Refusal::new(
                Reason::InvalidRequest,
                format!("the request body could not be read ({e}); resend the call"),
            )
        })?;
        let Ok(data) = frame.into_data() else {
            continue; // request trailers carry nothing the gateway needs
        };
        match (&mut first, &mut rest) {
            (None, _) => first = Some(data),
            (Some(head), None) => {
                let mut buf = BytesMut::with_capacity(head.len() + data.len());
                buf.extend_from_slice(head);
                buf.extend_from_slice(&data);
                rest = Some(buf);
            }
            (Some(_), Some(buf)) => buf.extend_from_slice(&data),
        }
        let received = rest
            .as_ref()
            .map_or_else(|| first.as_ref().map_or(0, Bytes::len), BytesMut::len);
        if declared.is_none() && received >= PREFIX {
            let bytes = rest.as_deref().or(first.as_deref()).unwrap_or_default();
            declared = Some(check_prefix(bytes, limit)?);
        }
        if let Some(len) = declared {
            if received > PREFIX + len {
                return Err(Refusal::new(
                    Reason::InvalidRequest,
                    "the request carries more than one message; unary and server-streaming methods take exactly one",
                ));
            }
        } else if received > PREFIX + limit {
            return Err(too_large(received, limit));
        }
    }
    let bytes = match rest {
        Some(buf) => buf.freeze(),
        None => first.unwrap_or_default(),
    };
    complete(bytes, declared)
}

/// The whole body once it ended: exactly the one message its prefix
/// announced (`declared`, once the prefix arrived).
fn complete(bytes: Bytes, declared: Option<usize>) -> Result<Bytes, Refusal> {
    match declared {
        Some(len) if bytes.len() == PREFIX + len => Ok(bytes),
        Some(len) => Err(Refusal::new(
            Reason::InvalidRequest,
            format!(
                "the request message is cut short: the prefix announces {len} bytes but {} arrived; resend the call",
                bytes.len() - PREFIX
            ),
        )),
        None => Err(Refusal::new(
            Reason::InvalidRequest,
            "the request carries no gRPC message; send exactly one length-prefixed message",
        )),
    }
}

fn check_prefix(bytes: &[u8], limit: usize) -> Result<usize, Refusal> {
    let mut prefix = &bytes[..PREFIX];
    let compressed = prefix.get_u8();
    let len = prefix.get_u32() as usize;
    if compressed != 0 {
        return Err(Refusal::new(
            Reason::InvalidRequest,
            "compressed request messages are not accepted: the gateway must read the message to check it; disable request compression (grpc-encoding identity)",
        ));
    }
    if len > limit {
        return Err(too_large(len, limit));
    }
    Ok(len)
}

fn too_large(len: usize, limit: usize) -> Refusal {
    Refusal::new(
        Reason::MessageTooLarge,
        format!("the request message is {len} bytes; this gateway accepts at most {limit}; send a smaller request or ask the operator"),
    )
}

/// A response body passed through unchanged, ending with a gRPC status in
/// the trailers if the deadline passes or the provider's stream breaks.
pub struct Passthrough<B> {
    inner: B,
    deadline: Option<Pin<Box<Sleep>>>,
    done: bool,
    provider: String,
}

// By hand: the wrapped body need not be `Debug`.
impl<B> std::fmt::Debug for Passthrough<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Passthrough")
            .field("provider", &self.provider)
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

impl<B> Passthrough<B> {
    /// Wraps `inner`; `deadline` is the caller's, if it sent one.
    pub fn new(inner: B, deadline: Option<Instant>, provider: String) -> Self {
        Self {
            inner,
            deadline: deadline.map(|d| Box::pin(tokio::time::sleep_until(d))),
            done: false,
            provider,
        }
    }
}

/// Trailers that end a stream with `refusal`'s status.
pub fn status_trailers(refusal: &Refusal) -> HeaderMap {
    let mut trailers = HeaderMap::new();
    // A status built here always has valid header values.
    let _ = refusal.to_status("").add_header(&mut trailers);
    trailers
}

impl<B> Body for Passthrough<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: std::fmt::Display,
{
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        if this.done {
            return Poll::Ready(None);
        }
        if let Some(deadline) = this.deadline.as_mut() {
            if deadline.as_mut().poll(cx).is_ready() {
                this.done = true;
                let refusal = Refusal::new(
                    Reason::DeadlineExceeded,
                    "the deadline set by the caller passed before the provider finished answering",
                );
                return Poll::Ready(Some(Ok(Frame::trailers(status_trailers(&refusal)))));
            }
        }
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if frame.is_trailers() {
                    this.done = true;
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => {
                this.done = true;
                tracing::warn!(provider = %this.provider, error = %e, "provider stream broke");
                let refusal = Refusal::new(
                    Reason::ProviderUnavailable,
                    format!(
                        "the `{}` service stopped in the middle of its answer; retry the call",
                        this.provider
                    ),
                );
                Poll::Ready(Some(Ok(Frame::trailers(status_trailers(&refusal)))))
            }
            Poll::Ready(None) => {
                this.done = true;
                Poll::Ready(None)
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

use std::future::Future as _;

/// A whole answer held in memory (until its audit entry was durable), sent
/// as one data frame and the provider's trailers.
#[derive(Debug)]
pub struct Buffered {
    data: Option<Bytes>,
    trailers: Option<HeaderMap>,
}

impl Buffered {
    /// The body `data` followed by `trailers`.
    pub fn new(data: Bytes, trailers: Option<HeaderMap>) -> Self {
        Self {
            data: (!data.is_empty()).then_some(data),
            trailers,
        }
    }
}

impl Body for Buffered {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if let Some(data) = self.data.take() {
            return Poll::Ready(Some(Ok(Frame::data(data))));
        }
        Poll::Ready(self.trailers.take().map(|t| Ok(Frame::trailers(t))))
    }

    fn is_end_stream(&self) -> bool {
        self.data.is_none() && self.trailers.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.data.as_ref().map_or(0, |d| d.len() as u64))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{Full, StreamBody};

    fn framed(payload: &[u8]) -> Vec<u8> {
        let mut out = vec![0];
        out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        out.extend_from_slice(payload);
        out
    }

    #[tokio::test]
    async fn reads_one_message_in_pieces() {
        let bytes = framed(b"hello world");
        let chunks: Vec<Result<Frame<Bytes>, std::convert::Infallible>> = bytes
            .chunks(3)
            .map(|c| Ok(Frame::data(Bytes::copy_from_slice(c))))
            .collect();
        let body = StreamBody::new(futures_util::stream::iter(chunks));
        let got = read_message(body, 1024).await.unwrap();
        assert_eq!(&got[..], &bytes[..]);
    }

    #[tokio::test]
    async fn refuses_oversized_compressed_short_and_double() {
        let big = framed(&[0u8; 100]);
        let err = read_message(Full::new(Bytes::from(big)), 10)
            .await
            .unwrap_err();
        assert_eq!(err.reason, Reason::MessageTooLarge);
        let mut compressed = framed(b"x");
        compressed[0] = 1;
        let err = read_message(Full::new(Bytes::from(compressed)), 10)
            .await
            .unwrap_err();
        assert_eq!(err.reason, Reason::InvalidRequest);
        let mut short = framed(b"abcdef");
        short.truncate(8);
        let err = read_message(Full::new(Bytes::from(short)), 10)
            .await
            .unwrap_err();
        assert_eq!(err.reason, Reason::InvalidRequest);
        let mut double = framed(b"ab");
        double.extend(framed(b"cd"));
        let err = read_message(Full::new(Bytes::from(double)), 10)
            .await
            .unwrap_err();
        assert_eq!(err.reason, Reason::InvalidRequest);
        let err = read_message(Full::new(Bytes::new()), 10).await.unwrap_err();
        assert_eq!(err.reason, Reason::InvalidRequest);
    }
}
