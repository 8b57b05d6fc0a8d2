//! The gateway's reader of a request body (`gateway::body::read_message`):
//! one length-prefixed gRPC message, bounded by the configured limit before
//! it is buffered, arriving in HTTP/2 DATA frames of any sizes.
//!
//! The result is checked against the rule written out here (exactly one
//! uncompressed message of at most `limit` bytes, else `INVALID_REQUEST`,
//! or `MESSAGE_TOO_LARGE` when the prefix announces more than the limit),
//! and must not depend on how the body was cut into frames; a transport
//! error is `INVALID_REQUEST`.
//!
//! Input: two bytes of limit, one byte of frame-size seed, then the body.

#![no_main]

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use jisr::gateway::body::{read_message, PREFIX};
use jisr::refusal::{Reason, Refusal};
use libfuzzer_sys::fuzz_target;
use std::collections::VecDeque;
use std::future::Future;
use std::pin::{pin, Pin};
use std::task::{Context, Poll, Waker};

/// A body whose frames are all there already, as when the connection has
/// buffered them; an `Err` frame is a broken stream.
struct Frames(VecDeque<Result<Frame<Bytes>, &'static str>>);

impl Body for Frames {
    type Data = Bytes;
    type Error = &'static str;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        Poll::Ready(self.0.pop_front())
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

/// Runs the reader to its end: every frame is ready, so it never waits.
fn read(
    frames: VecDeque<Result<Frame<Bytes>, &'static str>>,
    limit: usize,
) -> Result<Bytes, Refusal> {
    let mut cx = Context::from_waker(Waker::noop());
    match pin!(read_message(Frames(frames), limit))
        .as_mut()
        .poll(&mut cx)
    {
        Poll::Ready(result) => result,
        Poll::Pending => panic!("the reader waited on a body that was all there"),
    }
}

/// The rule, written out.
fn expected(body: &[u8], limit: usize) -> Result<(), Reason> {
    let Some((prefix, message)) = body.split_first_chunk::<PREFIX>() else {
        return Err(Reason::InvalidRequest);
    };
    let [flag, len @ ..] = *prefix;
    let len = u32::from_be_bytes(len) as usize;
    if flag != 0 {
        Err(Reason::InvalidRequest)
    } else if len > limit {
        Err(Reason::MessageTooLarge)
    } else if message.len() != len {
        Err(Reason::InvalidRequest)
    } else {
        Ok(())
    }
}

/// `body` cut into frames of sizes drawn from `seed`, with a trailers
/// frame (which the reader skips) after the first.
fn cut(body: &[u8], mut seed: u8) -> VecDeque<Result<Frame<Bytes>, &'static str>> {
    let mut frames = VecDeque::new();
    let mut rest = body;
    while !rest.is_empty() {
        let size = usize::from(seed % 7) + 1;
        seed = seed.wrapping_mul(31).wrapping_add(17);
        let (frame, tail) = rest.split_at(size.min(rest.len()));
        frames.push_back(Ok(Frame::data(Bytes::copy_from_slice(frame))));
        if frames.len() == 1 {
            frames.push_back(Ok(Frame::trailers(http::HeaderMap::new())));
        }
        rest = tail;
    }
    frames
}

fuzz_target!(|data: &[u8]| {
    let [a, b, seed, body @ ..] = data else {
        return;
    };
    let limit = usize::from(u16::from_be_bytes([*a, *b]));
    let whole = read(
        VecDeque::from([Ok(Frame::data(Bytes::copy_from_slice(body)))]),
        limit,
    );
    match (&whole, expected(body, limit)) {
        (Ok(read), Ok(())) => assert_eq!(read.as_ref(), body),
        (Err(refusal), Err(reason)) => assert_eq!(refusal.reason, reason, "{refusal:?}"),
        (got, want) => panic!("limit {limit}: read {got:?}, the rule says {want:?}"),
    }
    let framed = read(cut(body, *seed), limit);
    match (&whole, &framed) {
        (Ok(a), Ok(b)) => assert_eq!(a, b),
        (Err(a), Err(b)) => assert_eq!((a.reason, &a.message), (b.reason, &b.message)),
        _ => panic!("one frame: {whole:?}; several: {framed:?}"),
    }
    // A stream that breaks is refused, whatever came before.
    let mut broken = cut(body, *seed);
    broken.push_back(Err("connection reset"));
    let refused = read(broken, limit).expect_err("a broken body is refused");
    assert!(
        matches!(
            refused.reason,
            Reason::InvalidRequest | Reason::MessageTooLarge
        ),
        "{refused:?}"
    );
});
