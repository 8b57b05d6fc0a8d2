//! Faults the writer meets in place of the disk's own, so that "no audit, no
//! data" is proven on any machine, without root or a device to fill up.
//!
//! Production never sets one: each is an atomic flag read once per write or
//! fsync, next to a system call that costs far more. The failure paths it
//! drives are the real ones (the failed write is undone, a failed fsync
//! stops the log for good); only the error's origin is made up. Tests reach
//! it through [`super::AuditLog::faults`]; a real full disk is still tested
//! as root (`tests/it/audit.rs`, `…_as_root`).

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};

/// Which writes and fsyncs of the log's records fail, and how.
#[derive(Debug, Default)]
pub struct Faults {
    /// Writes fail with ENOSPC ("No space left on device").
    disk_full: AtomicBool,
    /// Writes fail with EIO.
    write_error: AtomicBool,
    /// The next fsync fails with EIO.
    fsync_error: AtomicBool,
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
    pub(super) fn on_fsync(&self) -> Option<io::Error> {
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
