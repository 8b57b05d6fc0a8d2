//! Lanes: one single-threaded runtime per core, like nginx's worker
//! processes. Each accepted connection is given to one lane and stays
//! there: its TLS session, its HTTP/2 connection, every call on it, and the
//! provider connections those calls open (each lane keeps its own slots in
//! a provider's pool, see [`slot`]).
//!
//! A call thus runs on one thread from its first byte to its last. On a
//! work-stealing runtime the same call crossed threads several times (the
//! client connection's task, the call's task and the provider connection's
//! task were woken wherever a worker was free), and each crossing cost a
//! futex wake and a context switch; on two cores that was a quarter of the
//! gateway's CPU per call. The price is the one nginx pays: a lane cannot
//! hand work to an idle one, so a few very busy connections can load one
//! core more than another. New connections go to the lane with the fewest
//! open ones.

use std::cell::Cell;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::runtime::Handle;

thread_local! {
    static LANE: Cell<Option<Lane>> = const { Cell::new(None) };
}

/// Which lane the current thread is, and how many lanes there are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lane {
    /// This lane, from 0.
    pub index: usize,
    /// All lanes.
    pub count: usize,
}

/// The lane running on this thread, if the thread is a lane.
pub fn current() -> Option<Lane> {
    LANE.with(Cell::get)
}

/// Which of `len` connection slots a call on `lane` takes on its `turn`.
///
/// With at least as many slots as lanes, slot `i` belongs to lane
/// `i % lanes` alone, and a lane takes its own slots in turn; with fewer,
/// lanes share slot `lane % len`. Off a lane (`None`), every slot in turn.
pub fn slot(lane: Option<Lane>, len: usize, turn: usize) -> usize {
    let len = len.max(1);
    match lane {
        None => turn % len,
        Some(Lane { index, count }) if len >= count => {
            let owned = (len - index).div_ceil(count);
            index + count * (turn % owned)
        }
        Some(Lane { index, .. }) => index % len,
    }
}

/// The lanes' runtimes, and how many connections each one serves.
#[derive(Debug)]
pub struct Lanes {
    lanes: Vec<LaneHandle>,
    next: AtomicUsize,
}

#[derive(Debug)]
struct LaneHandle {
    runtime: Handle,
    connections: Arc<AtomicUsize>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Lanes {
    /// Starts `count` lanes (at least one), each an OS thread named
    /// `jisr-lane-N` running its own runtime.
    pub fn start(count: usize) -> std::io::Result<Self> {
        let count = count.max(1);
        let mut lanes = Vec::with_capacity(count);
        for index in 0..count {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
            let handle = runtime.handle().clone();
            let thread = std::thread::Builder::new()
                .name(format!("jisr-lane-{index}"))
                .spawn(move || {
                    LANE.with(|lane| lane.set(Some(Lane { index, count })));
                    // Returns when `stop` is sent or dropped; dropping the
                    // runtime then cancels what is left on the lane.
                    let _ = runtime.block_on(stopped);
                })?;
            lanes.push(LaneHandle {
                runtime: handle,
                connections: Arc::new(AtomicUsize::new(0)),
                stop: Some(stop),
                thread: Some(thread),
            });
        }
        Ok(Self {
            lanes,
            next: AtomicUsize::new(0),
        })
    }

    /// How many lanes run.
    pub fn count(&self) -> usize {
        self.lanes.len()
    }

    /// Each lane's count of open connections, for metrics.
    pub fn open_counts(&self) -> Vec<Arc<AtomicUsize>> {
        self.lanes.iter().map(|l| l.connections.clone()).collect()
    }

    /// Serves one connection on the lane with the fewest open ones (the
    /// next in turn among equals).
    pub fn spawn<F>(&self, serve: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let n = self.lanes.len();
        let lane = (0..n)
            .map(|k| &self.lanes[(start + k) % n])
            .min_by_key(|l| l.connections.load(Ordering::Relaxed))
            .expect("at least one lane");
        let open = Open::new(lane.connections.clone());
        lane.runtime.spawn(async move {
            let _open = open;
            serve.await;
        });
    }

    /// Stops every lane: what still runs on them is cancelled (their
    /// connections close), and their threads are joined.
    pub async fn stop(mut self) {
        let threads: Vec<_> = self
            .lanes
            .iter_mut()
            .filter_map(|lane| {
                lane.stop.take().map(|stop| stop.send(()));
                lane.thread.take()
            })
            .collect();
        let _ = tokio::task::spawn_blocking(move || {
            for thread in threads {
                let _ = thread.join();
            }
        })
        .await;
    }
}

/// Counts a connection as open on its lane until dropped.
struct Open(Arc<AtomicUsize>);

impl Open {
    fn new(count: Arc<AtomicUsize>) -> Self {
        count.fetch_add(1, Ordering::Relaxed);
        Self(count)
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::time::Duration;

    /// Open connections per lane, now.
    fn open(lanes: &Lanes) -> Vec<usize> {
        lanes
            .open_counts()
            .iter()
            .map(|n| n.load(Ordering::Relaxed))
            .collect()
    }

    fn lane(index: usize, count: usize) -> Option<Lane> {
        Some(Lane { index, count })
    }

    #[test]
    fn each_lane_takes_its_own_slots_in_turn() {
        let taken = |l| {
            (0..6)
                .map(|turn| slot(lane(l, 2), 4, turn))
                .collect::<Vec<_>>()
        };
        assert_eq!(taken(0), [0, 2, 0, 2, 0, 2]);
        assert_eq!(taken(1), [1, 3, 1, 3, 1, 3]);
        // Five slots over two lanes: lane 0 owns three.
        let taken = (0..4)
            .map(|turn| slot(lane(0, 2), 5, turn))
            .collect::<Vec<_>>();
        assert_eq!(taken, [0, 2, 4, 0]);
    }

    #[test]
    fn fewer_slots_than_lanes_are_shared() {
        assert_eq!(slot(lane(3, 4), 2, 7), 1);
        assert_eq!(slot(lane(2, 4), 1, 0), 0);
        assert_eq!(slot(None, 3, 4), 1);
    }

    proptest! {
        #[test]
        fn a_slot_is_in_range_and_owned(count in 1usize..16, index in 0usize..16, len in 1usize..64, turn: usize) {
            let index = index % count;
            let s = slot(lane(index, count), len, turn);
            prop_assert!(s < len);
            if len >= count {
                prop_assert_eq!(s % count, index);
            }
        }

        #[test]
        fn a_lane_uses_every_slot_it_owns(count in 1usize..8, index in 0usize..8, len in 1usize..32) {
            let index = index % count;
            prop_assume!(len >= count);
            let used: std::collections::BTreeSet<_> =
                (0..len).map(|turn| slot(lane(index, count), len, turn)).collect();
            let owned: std::collections::BTreeSet<_> = (index..len).step_by(count).collect();
            prop_assert_eq!(used, owned);
        }
    }

    #[tokio::test]
    async fn connections_go_to_the_least_busy_lane_and_stop_with_it() {
        let lanes = Lanes::start(2).expect("lanes start");
        assert_eq!(lanes.count(), 2);
        let (seen, mut where_) = tokio::sync::mpsc::unbounded_channel();
        let (hold, held) = tokio::sync::watch::channel(());
        for _ in 0..3 {
            let seen = seen.clone();
            let mut held = held.clone();
            lanes.spawn(async move {
                let _ = seen.send((current(), std::thread::current().name().map(str::to_owned)));
                // Stays open until the test lets go or the lane stops.
                let _ = held.changed().await;
            });
        }
        let mut lanes_seen = Vec::new();
        for _ in 0..3 {
            let (lane, name) = where_.recv().await.expect("each connection runs");
            let lane = lane.expect("runs on a lane");
            assert_eq!(lane.count, 2);
            assert_eq!(
                name.as_deref(),
                Some(format!("jisr-lane-{}", lane.index).as_str())
            );
            lanes_seen.push(lane.index);
        }
        lanes_seen.sort_unstable();
        assert_eq!(lanes_seen, [0, 0, 1], "two on one lane, one on the other");
        let mut now = open(&lanes);
        now.sort_unstable();
        assert_eq!(now, [1, 2]);
        // The fourth goes to the lane with one open connection.
        let busier = open(&lanes)
            .iter()
            .position(|&n| n == 2)
            .expect("a busier lane");
        let seen4 = seen.clone();
        lanes.spawn(async move {
            let _ = seen4.send((current(), None));
        });
        let (lane, _) = where_.recv().await.expect("runs");
        assert_ne!(lane.expect("on a lane").index, busier);
        // Stopping cancels the held connections: their counts fall to zero.
        let counts = lanes.open_counts();
        tokio::time::timeout(Duration::from_secs(5), lanes.stop())
            .await
            .expect("lanes stop");
        assert!(counts.iter().all(|c| c.load(Ordering::Relaxed) == 0));
        drop(hold);
    }
}
