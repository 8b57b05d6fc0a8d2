//! Where appends wait for the audit thread: a list under one lock, and a
//! condition variable the thread sleeps on only when the list is empty.
//!
//! A lane appends by pushing its payload and answer onto the list, under
//! the lock, on its own thread; it wakes the audit thread only if that
//! thread said it was idle, and at most once per idle spell (the flag is
//! cleared by whoever wakes it). While the thread writes or syncs, appends
//! just join the list and the thread takes them all at its next round: no
//! channel, no wake per append. A condition variable's notify is a system
//! call whether or not anyone waits (std's futex one), hence the flag.
//!
//! The list is bounded: once [`Intake::bound`] appends wait, an append
//! waits (as a future, without blocking its lane's thread) until the audit
//! thread takes the list, as the bounded channel held callers back when
//! the disk fell behind. Once the log is closing or its thread has
//! stopped, an append is refused at once.

use super::answers::Ack;
use super::MAX_BATCH;
use crate::audit::AuditError;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// Appends waiting for the audit thread, and what else it must be told.
#[derive(Debug)]
pub(in crate::audit::log) struct Intake {
    state: Mutex<State>,
    /// Signalled when the idle audit thread has something to do.
    work: Condvar,
    /// Appends that may wait before the next one waits for room.
    bound: usize,
}

#[derive(Debug, Default)]
struct State {
    payloads: Vec<Vec<u8>>,
    acks: Vec<Ack>,
    /// The audit thread waits on `work` and nobody has woken it yet.
    idle: bool,
    /// Appends waiting for room in the list.
    room: Vec<Waker>,
    /// A close was asked for; answered once everything before it is done.
    close: Option<oneshot::Sender<()>>,
    /// The log's handle is gone without a close (a crash, in tests).
    gone: bool,
    /// Why appends are refused from now on: the log is closing or its
    /// thread has stopped.
    refused: Option<&'static str>,
}

/// What the audit thread takes at one round.
#[derive(Default)]
pub(super) struct Batch {
    pub(super) payloads: Vec<Vec<u8>>,
    pub(super) acks: Vec<Ack>,
}

/// What the audit thread is to do next.
pub(super) enum Next {
    /// Write, sync and acknowledge the batch taken.
    Commit,
    /// The checkpoint interval passed with nothing to write.
    Interval,
    /// Nothing is left before the close: sign, answer it and stop.
    Close(oneshot::Sender<()>),
    /// The handle is gone and nothing is left: stop.
    Gone,
}

const CLOSING: &str = "the audit log is closed";
const STOPPED: &str = "the audit writer has stopped";

impl Intake {
    /// An intake where at most `bound` appends wait before an append
    /// waits for room.
    pub(in crate::audit::log) fn new(bound: usize) -> Self {
        Self {
            state: Mutex::new(State::default()),
            work: Condvar::new(),
            bound: bound.max(1),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Hands an append to the audit thread, waiting for room if the list
    /// is full; refused once the log is closing or stopped.
    pub(in crate::audit::log) async fn push(
        &self,
        payload: Vec<u8>,
        ack: Ack,
    ) -> Result<(), AuditError> {
        let mut append = Some((payload, ack));
        std::future::poll_fn(|cx| {
            let mut state = self.lock();
            if let Some(why) = state.refused {
                return Poll::Ready(Err(AuditError::Unavailable(why.into())));
            }
            if state.payloads.len() >= self.bound {
                state.room.push(cx.waker().clone());
                return Poll::Pending;
            }
            let Some((payload, ack)) = append.take() else {
                // Polled again after it was pushed: a future is not.
                return Poll::Ready(Ok(()));
            };
            state.payloads.push(payload);
            state.acks.push(ack);
            if std::mem::take(&mut state.idle) {
                self.work.notify_one();
            }
            Poll::Ready(Ok(()))
        })
        .await
    }

    /// Asks the audit thread to finish what is pending, sign and stop;
    /// appends from now on are refused.
    pub(in crate::audit::log) fn close(&self, ack: oneshot::Sender<()>) {
        let mut state = self.lock();
        if state.refused == Some(STOPPED) {
            // Nobody would answer it: dropped, the close returns at once.
            return;
        }
        state.refused = Some(CLOSING);
        state.close = Some(ack);
        let room = std::mem::take(&mut state.room);
        drop(state);
        self.work.notify_one();
        room.into_iter().for_each(Waker::wake);
    }

    /// The log's handle is gone: the thread stops once the list is empty.
    pub(in crate::audit::log) fn gone(&self) {
        self.lock().gone = true;
        self.work.notify_one();
    }

    /// The thread has stopped: refuses what waits and whatever comes.
    pub(super) fn stopped(&self) {
        let mut state = self.lock();
        state.refused = Some(STOPPED);
        state.close = None;
        let acks = std::mem::take(&mut state.acks);
        state.payloads.clear();
        let room = std::mem::take(&mut state.room);
        drop(state);
        room.into_iter().for_each(Waker::wake);
        for ack in acks {
            ack.send(Err(AuditError::Unavailable(STOPPED.into())));
        }
    }

    /// Waits for work, until `deadline` if one is given, and moves up to
    /// [`MAX_BATCH`] appends into `batch` (whose vectors are empty; theirs
    /// are kept for the next round, so that taking allocates nothing).
    pub(super) fn next(&self, batch: &mut Batch, deadline: Option<Instant>) -> Next {
        let mut state = self.lock();
        while state.payloads.is_empty() && state.close.is_none() && !state.gone {
            let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            if left == Some(Duration::ZERO) {
                state.idle = false;
                return Next::Interval;
            }
            state.idle = true;
            state = match left {
                Some(left) => {
                    let waited = self.work.wait_timeout(state, left);
                    waited.unwrap_or_else(|e| e.into_inner()).0
                }
                None => self.work.wait(state).unwrap_or_else(|e| e.into_inner()),
            };
        }
        state.idle = false;
        if state.payloads.is_empty() {
            return match state.close.take() {
                Some(ack) => Next::Close(ack),
                None => Next::Gone,
            };
        }
        let taken = &mut *state;
        if taken.payloads.len() <= MAX_BATCH {
            std::mem::swap(&mut taken.payloads, &mut batch.payloads);
            std::mem::swap(&mut taken.acks, &mut batch.acks);
        } else {
            batch.payloads.extend(taken.payloads.drain(..MAX_BATCH));
            batch.acks.extend(taken.acks.drain(..MAX_BATCH));
        }
        let room = std::mem::take(&mut taken.room);
        drop(state);
        // Outside the lock: a waker may write another runtime's eventfd.
        room.into_iter().for_each(Waker::wake);
        Next::Commit
    }
}
