//! Inboxes: one wake per inbox per batch, answers in order, nothing lost
//! when an inbox's runtime goes away, and appends from several lanes.

use super::*;
use crate::audit::tests::{new_log, record};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Wake};
use tokio::sync::oneshot::error::TryRecvError;

/// Counts the wakes of the task it is the waker of.
#[derive(Default)]
struct Wakes(AtomicUsize);

impl Wake for Wakes {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

type Task = Pin<Box<dyn Future<Output = ()> + Send>>;

/// An inbox's task, polled by hand with a waker that counts.
struct Manual {
    task: Task,
    wakes: Arc<Wakes>,
}

impl Manual {
    fn start(inbox: &Arc<Inbox>) -> Self {
        let mut manual = Self {
            task: Box::pin(deliver(Closing(inbox.clone()))),
            wakes: Arc::default(),
        };
        manual.poll();
        manual
    }

    fn poll(&mut self) {
        let waker = Waker::from(self.wakes.clone());
        let pending = self.task.as_mut().poll(&mut Context::from_waker(&waker));
        assert!(pending.is_pending(), "the inbox's task never ends");
    }

    fn wakes(&self) -> usize {
        self.wakes.0.load(Ordering::SeqCst)
    }
}

/// Answers `Ok(i)` for each `i` of `indices`, through `inbox`.
fn acks(
    inbox: &Arc<Inbox>,
    indices: &[u64],
) -> (Vec<(Ack, Answer)>, Vec<oneshot::Receiver<Answer>>) {
    indices
        .iter()
        .map(|&i| {
            let (tx, rx) = oneshot::channel();
            let ack = Ack {
                tx,
                inbox: Some(inbox.clone()),
            };
            ((ack, Ok(i)), rx)
        })
        .unzip()
}

fn held(inbox: &Inbox) -> Vec<u64> {
    let state = inbox.lock();
    state
        .answers
        .iter()
        .map(|(_, a)| *a.as_ref().unwrap())
        .collect()
}

fn answered(rx: &mut oneshot::Receiver<Answer>) -> Option<u64> {
    match rx.try_recv() {
        Ok(answer) => Some(answer.unwrap()),
        Err(TryRecvError::Empty) => None,
        Err(TryRecvError::Closed) => panic!("an answer was dropped"),
    }
}

#[test]
fn a_batch_wakes_each_inbox_once_and_answers_in_order() {
    let (a, b) = (Arc::new(Inbox::default()), Arc::new(Inbox::default()));
    let (mut lane_a, mut lane_b) = (Manual::start(&a), Manual::start(&b));
    // One batch, its entries interleaved over the two inboxes.
    let (even, mut on_a) = acks(&a, &[10, 12, 14]);
    let (odd, mut on_b) = acks(&b, &[11, 13, 15]);
    let mut batch: Vec<_> = even
        .into_iter()
        .zip(odd)
        .flat_map(|(x, y)| [x, y])
        .collect();
    batch.sort_by_key(|(_, answer)| *answer.as_ref().unwrap());
    answer_all(batch);

    assert_eq!((lane_a.wakes(), lane_b.wakes()), (1, 1));
    assert_eq!((held(&a), held(&b)), (vec![10, 12, 14], vec![11, 13, 15]));
    // Sent by the inbox's task, not by the thread that answered.
    assert!(on_a
        .iter_mut()
        .chain(&mut on_b)
        .all(|rx| answered(rx).is_none()));
    lane_a.poll();
    assert_eq!(
        on_a.iter_mut().map(answered).collect::<Vec<_>>(),
        [Some(10), Some(12), Some(14)]
    );
    assert!(on_b.iter_mut().all(|rx| answered(rx).is_none()));
    lane_b.poll();
    assert_eq!(
        on_b.iter_mut().map(answered).collect::<Vec<_>>(),
        [Some(11), Some(13), Some(15)]
    );

    // The next batch wakes once more, and comes after.
    let (next, mut rx) = acks(&a, &[16, 17]);
    answer_all(next);
    assert_eq!(lane_a.wakes(), 2);
    lane_a.poll();
    assert_eq!(
        rx.iter_mut().map(answered).collect::<Vec<_>>(),
        [Some(16), Some(17)]
    );
}

#[test]
fn an_inbox_whose_task_is_gone_answers_directly() {
    let inbox = Arc::new(Inbox::default());
    let lane = Manual::start(&inbox);
    let (first, mut held_rx) = acks(&inbox, &[0, 1]);
    answer_all(first);
    // The runtime shuts down before its task ran: nothing held is lost.
    drop(lane);
    assert!(inbox.is_closed());
    assert_eq!(
        held_rx.iter_mut().map(answered).collect::<Vec<_>>(),
        [Some(0), Some(1)]
    );
    let (after, mut rx) = acks(&inbox, &[2]);
    answer_all(after);
    assert_eq!(answered(&mut rx[0]), Some(2));
    // Refusals go the same way.
    let (tx, mut refused) = oneshot::channel();
    let ack = Ack {
        tx,
        inbox: Some(inbox),
    };
    answer_all([(ack, Err(AuditError::Unavailable("disk full".into())))]);
    assert!(matches!(
        refused.try_recv(),
        Ok(Err(AuditError::Unavailable(_)))
    ));
}

/// The inbox `Ack::here` picks on this thread, and the answer it carries.
async fn here() -> (Option<Arc<Inbox>>, Answer) {
    let (tx, rx) = oneshot::channel();
    let ack = Ack::here(tx);
    let inbox = ack.inbox.clone();
    // From another thread, as the audit thread answers.
    std::thread::spawn(move || answer_all([(ack, Ok(7))]))
        .join()
        .unwrap();
    (inbox, rx.await.unwrap())
}

#[test]
fn each_runtime_on_a_thread_has_its_own_inbox_and_none_outside() {
    let (tx, _rx) = oneshot::channel();
    assert!(Ack::here(tx).inbox.is_none(), "no runtime, no inbox");
    let runtime = || {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
    };
    let first = runtime();
    let (a, answer) = first.block_on(here());
    assert_eq!(answer.unwrap(), 7);
    let (again, _) = first.block_on(here());
    assert!(Arc::ptr_eq(a.as_ref().unwrap(), again.as_ref().unwrap()));
    drop(first);
    assert!(a.as_ref().unwrap().is_closed());
    // A new runtime on the same thread: a new inbox, its task on it.
    let (b, answer) = runtime().block_on(here());
    assert_eq!(answer.unwrap(), 7);
    assert!(!Arc::ptr_eq(a.as_ref().unwrap(), b.as_ref().unwrap()));
}

#[test]
fn appends_from_several_lanes_are_answered_in_log_order() {
    let (_dir, _signer, log) = new_log(16);
    let log = Arc::new(log);
    let lanes: Vec<_> = (0..3)
        .map(|lane| {
            let log = log.clone();
            std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .build()
                    .unwrap();
                // One after another on each lane: each answer's index is
                // above the lane's previous one.
                rt.block_on(async {
                    let mut indices = Vec::new();
                    for i in 0..40 {
                        indices.push(log.append(record(lane * 100 + i)).await.unwrap());
                    }
                    indices
                })
            })
        })
        .collect();
    let mut all = Vec::new();
    for lane in lanes {
        let indices = lane.join().unwrap();
        assert!(indices.windows(2).all(|w| w[0] < w[1]), "{indices:?}");
        all.extend(indices);
    }
    all.sort_unstable();
    assert_eq!(all, (0..120).collect::<Vec<_>>());
    assert_eq!(log.size(), 120);
}
