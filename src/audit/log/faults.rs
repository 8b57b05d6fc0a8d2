//! Faults the writer meets in place of the disk's own, so that "no audit, no
//! data" is proven on any machine, without root or a device to fill up.
//!
//! Production never sets one: each is an atomic flag read once per write or
//! fsync, next to a system call that costs far more. Tests can also hold
//! the records' fsyncs at a gate ([`Faults::hold_fsyncs`]) to see what the
//! writer does while one is in flight, and let them through one at a time. The failure paths it
//! drives are the real ones (the failed write is undone, a failed fsync
//! stops the log for good); only the error's origin is made up. Tests reach
//! it through [`super::AuditLog::faults`]; a real full disk is still tested
//! as root (`tests/it/audit.rs`, `…_as_root`).

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// How long a held fsync waits for its release before going on anyway: a
/// test that fails before releasing must not hang the writer for good.
const HOLD_LIMIT: Duration = Duration::from_secs(30);

/// Which writes and fsyncs of the log's records fail, and how.
#[derive(Debug, Default)]
pub struct Faults {
    /// Writes fail with ENOSPC ("No space left on device").
    disk_full: AtomicBool,
    /// Writes fail with EIO.
    write_error: AtomicBool,
    /// The next fsync fails with EIO.
    fsync_error: AtomicBool,
    /// Fsyncs wait at the gate (read without the lock on every fsync).
    holding: AtomicBool,
    gate: Mutex<Gate>,
    /// Signalled when the gate changes: an fsync arrives, or is let through.
    changed: Condvar,
}

/// The fsync gate's state.
#[derive(Debug, Default)]
struct Gate {
    /// Fsyncs waiting at the gate now.
    waiting: usize,
    /// Fsyncs allowed through and not yet gone.
    passes: usize,
}

impl Faults {
    /// From now on until [`Faults::free_disk`], writing the log's records
    /// (and its padding) fails as on a full disk whose padding is used up.
    pub fn fill_disk(&self) {
        self.disk_full.store(true, Ordering::SeqCst);
    }

    /// Space comes back: writes succeed again.
    pub fn free_disk(&self) {
        self.disk_full.store(false, Ordering::SeqCst);
    }

    /// Writing the log's records fails with an I/O error until turned off.
    pub fn fail_writes(&self, on: bool) {
        self.write_error.store(on, Ordering::SeqCst);
    }

    /// The next fsync of the log's records fails with an I/O error.
    pub fn fail_next_fsync(&self) {
        self.fsync_error.store(true, Ordering::SeqCst);
    }

    /// From now on fsyncs of the log's records wait at a gate until let
    /// through by [`Faults::release_fsyncs`] (or for at most 30 s).
    pub fn hold_fsyncs(&self) {
        self.holding.store(true, Ordering::SeqCst);
    }

    /// Lets `n` held (or future) fsyncs through the gate.
    pub fn release_fsyncs(&self, n: usize) {
        self.lock().passes += n;
        self.changed.notify_all();
    }

    /// Opens the gate for good: every fsync goes through again.
    pub fn stop_holding(&self) {
        self.holding.store(false, Ordering::SeqCst);
        self.changed.notify_all();
    }

    /// Waits (up to `limit`) until `n` fsyncs wait at the gate; returns
    /// whether they do.
    pub fn wait_held(&self, n: usize, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        let mut gate = self.lock();
        while gate.waiting < n {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            gate = self
                .changed
                .wait_timeout(gate, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        true
    }

    /// How many fsyncs wait at the gate now.
    pub fn held(&self) -> usize {
        self.lock().waiting
    }

    fn lock(&self) -> MutexGuard<'_, Gate> {
        self.gate.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits at the gate while fsyncs are held, until a pass is given.
    fn pass_gate(&self) {
        if !self.holding.load(Ordering::SeqCst) {
            return;
        }
        let deadline = Instant::now() + HOLD_LIMIT;
        let mut gate = self.lock();
        gate.waiting += 1;
        self.changed.notify_all();
        while gate.passes == 0 && self.holding.load(Ordering::SeqCst) {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            gate = self
                .changed
                .wait_timeout(gate, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        gate.passes = gate.passes.saturating_sub(1);
        gate.waiting -= 1;
        self.changed.notify_all();
    }

    /// The error a write meets instead of the disk's, if any.
    pub(super) fn on_write(&self) -> Option<io::Error> {
        if self.disk_full.load(Ordering::SeqCst) {
            Some(io::Error::from_raw_os_error(ENOSPC))
        } else if self.write_error.load(Ordering::SeqCst) {
            Some(io::Error::from_raw_os_error(EIO))
        } else {
            None
        }
    }

    /// The error an fsync meets instead of the disk's, if any; only once.
    /// Waits first at the gate while fsyncs are held.
    pub(super) fn on_fsync(&self) -> Option<io::Error> {
        self.pass_gate();
        self.fsync_error
            .swap(false, Ordering::SeqCst)
            .then(|| io::Error::from_raw_os_error(EIO))
    }
}

// Linux's numbers (the only platform Jisr runs on), without the `libc`
// crate for two constants: the errors read as the kernel's own.
/// "No space left on device".
const ENOSPC: i32 = 28;
/// "Input/output error".
const EIO: i32 = 5;
