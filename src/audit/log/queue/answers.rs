//! Answers to appends: one wake per runtime per acknowledged batch.
//!
//! An append's caller waits on a oneshot. Sent from the audit thread, each
//! answer would wake its caller's task from outside its runtime: a remote
//! schedule, which on a lane (a current-thread runtime parked in epoll)
//! writes the lane's eventfd once per call (docs/BENCHMARKS.md, "Where the
//! CPU goes: Jisr beside nginx and HAProxy"). Instead each thread that
//! appends from a runtime has an [`Inbox`] for that runtime, drained by one
//! task spawned on it: the audit thread moves a batch's answers into the
//! inboxes they belong to and wakes each inbox's task once, and that task
//! sends them on its own thread, where waking a caller is a push on the
//! local run queue and no system call.
//!
//! Order and durability stay the audit thread's: an answer is handed over
//! only when it would have been sent, every answer of a batch before any
//! of the next, and an inbox sends in the order it received. An inbox whose
//! task is gone (its runtime shut down) is closed: what it holds, and
//! whatever comes after, is sent directly.

use crate::audit::AuditError;
use std::cell::RefCell;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Poll, Waker};
use tokio::runtime::{Handle, Id};
use tokio::sync::oneshot;

/// An append's answer: its index once durable, or why it was refused.
pub(in crate::audit::log) type Answer = Result<u64, AuditError>;

type Sender = oneshot::Sender<Answer>;

/// Answers waiting to be sent, in order.
type Held = Vec<(Sender, Answer)>;

/// Where one append's answer goes: its caller's oneshot, through the inbox
/// of the runtime it waits on if it has one.
#[derive(Debug)]
pub(in crate::audit::log) struct Ack {
    tx: Sender,
    inbox: Option<Arc<Inbox>>,
}

/// Answers handed over for one runtime's callers on one thread, and the
/// waker of the task that sends them.
#[derive(Debug, Default)]
pub(in crate::audit::log) struct Inbox {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    answers: Held,
    waker: Option<Waker>,
    closed: bool,
}

thread_local! {
    /// This thread's inbox, for the runtime it was made for.
    static INBOX: RefCell<Option<(Id, Arc<Inbox>)>> = const { RefCell::new(None) };
}

impl Ack {
    /// Answered by sending to `tx` directly, from whichever thread answers
    /// (the queue's tests, which run without a runtime).
    #[cfg(test)]
    pub(in crate::audit::log) fn direct(tx: Sender) -> Self {
        Self { tx, inbox: None }
    }

    /// Answered through this thread's inbox for the current runtime (made,
    /// with its task, the first time), or directly outside any runtime.
    pub(in crate::audit::log) fn here(tx: Sender) -> Self {
        Self { tx, inbox: inbox() }
    }

    /// Answers this one alone, directly.
    pub(in crate::audit::log) fn send(self, answer: Answer) {
        let _ = self.tx.send(answer);
    }
}

/// Sends `answers` in their order: the ones with an inbox grouped per
/// inbox, one hand-over and at most one wake each.
pub(in crate::audit::log) fn answer_all(answers: impl IntoIterator<Item = (Ack, Answer)>) {
    // A handful of inboxes (one per lane), so a list beats a map.
    let mut grouped: Vec<(Arc<Inbox>, Held)> = Vec::new();
    for (ack, answer) in answers {
        let Some(inbox) = ack.inbox else {
            let _ = ack.tx.send(answer);
            continue;
        };
        match grouped.iter_mut().find(|(i, _)| Arc::ptr_eq(i, &inbox)) {
            Some((_, list)) => list.push((ack.tx, answer)),
            None => grouped.push((inbox, vec![(ack.tx, answer)])),
        }
    }
    for (inbox, list) in grouped {
        inbox.post(list);
    }
}

fn send_all(answers: Held) {
    for (tx, answer) in answers {
        let _ = tx.send(answer);
    }
}

impl Inbox {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Hands `answers` to the inbox's task and wakes it, or sends them
    /// directly if the task is gone.
    fn post(&self, mut answers: Held) {
        let mut state = self.lock();
        if state.closed {
            drop(state);
            return send_all(answers);
        }
        if state.answers.is_empty() {
            std::mem::swap(&mut state.answers, &mut answers);
        } else {
            state.answers.append(&mut answers);
        }
        let waker = state.waker.take();
        drop(state);
        // Outside the lock: the task may run at once on its own thread.
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    fn is_closed(&self) -> bool {
        self.lock().closed
    }
}

/// This thread's inbox for the current runtime, if there is one.
fn inbox() -> Option<Arc<Inbox>> {
    let handle = Handle::try_current().ok()?;
    let id = handle.id();
    INBOX.with(|cell| {
        let mut cell = cell.borrow_mut();
        if let Some((held, inbox)) = cell.as_ref() {
            if *held == id && !inbox.is_closed() {
                return Some(inbox.clone());
            }
        }
        let inbox = Arc::new(Inbox::default());
        handle.spawn(deliver(Closing(inbox.clone())));
        *cell = Some((id, inbox.clone()));
        Some(inbox)
    })
}

/// Closes its inbox when the task holding it is dropped, even unpolled
/// (a runtime shutting down drops its tasks), and sends what it held.
struct Closing(Arc<Inbox>);

impl Drop for Closing {
    fn drop(&mut self) {
        let mut state = self.0.lock();
        state.closed = true;
        let answers = std::mem::take(&mut state.answers);
        drop(state);
        send_all(answers);
    }
}

/// The inbox's task: sends what is handed over, on the runtime's thread.
async fn deliver(inbox: Closing) {
    let mut answers = Vec::new();
    loop {
        std::future::poll_fn(|cx| {
            let mut state = inbox.0.lock();
            if state.answers.is_empty() {
                state.waker = Some(cx.waker().clone());
                return Poll::Pending;
            }
            // The emptied list goes back, keeping its room for the next.
            std::mem::swap(&mut state.answers, &mut answers);
            Poll::Ready(())
        })
        .await;
        for (tx, answer) in answers.drain(..) {
            let _ = tx.send(answer);
        }
    }
}

#[cfg(test)]
#[path = "answers_tests.rs"]
mod tests;
