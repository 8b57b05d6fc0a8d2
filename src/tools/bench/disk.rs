//! The disk's `fdatasync` latency where the gateway's audit log lives,
//! probed before and after the rounds.
//!
//! Every answer through Jisr waits for its audit entry's `fdatasync`, and
//! that latency is not the gateway's own: the device flush it ends with also
//! waits for whatever other processes on the machine have written (measured
//! here: 0.26 ms p50 on a quiet disk, ≈ 4 ms while another process writes a
//! few hundred MB). The probe lets a reader tell a slow gateway from a busy
//! disk.

use std::fs::OpenOptions;
use std::io::Write as _;
use std::path::Path;
use std::time::Instant;

/// Appends per probe: enough for a p99, short enough not to disturb the run.
const APPENDS: usize = 100;
/// Bytes per append: about one framed audit entry.
const RECORD: usize = 320;

/// `fdatasync` latency after a small append, µs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Fsync {
    pub(crate) p50_us: u64,
    pub(crate) p99_us: u64,
}

/// Appends [`APPENDS`] records to a scratch file in `dir`, each followed by
/// `fdatasync` as the audit writer does for a lone entry, then removes it.
pub(crate) fn probe(dir: &Path) -> std::io::Result<Fsync> {
    let path = dir.join("fsync-probe.bin");
    let mut file = OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(&path)?;
    let record = [0x5a_u8; RECORD];
    let mut micros = Vec::with_capacity(APPENDS);
    let mut append = || -> std::io::Result<()> {
        for _ in 0..APPENDS {
            file.write_all(&record)?;
            let start = Instant::now();
            file.sync_data()?;
            micros.push(start.elapsed().as_micros() as u64);
        }
        Ok(())
    };
    let appended = append();
    let _ = std::fs::remove_file(&path);
    appended?;
    micros.sort_unstable();
    Ok(Fsync {
        p50_us: percentile(&micros, 0.5),
        p99_us: percentile(&micros, 0.99),
    })
}

/// The `q` quantile of sorted, non-empty `values` (nearest rank).
fn percentile(sorted: &[u64], q: f64) -> u64 {
    let rank = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_probe_measures_and_leaves_no_file() {
        let dir = tempfile::tempdir().unwrap();
        let fsync = probe(dir.path()).unwrap();
        assert!(fsync.p50_us <= fsync.p99_us, "{fsync:?}");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn a_probe_in_a_missing_directory_fails() {
        let dir = tempfile::tempdir().unwrap();
        assert!(probe(&dir.path().join("missing")).is_err());
    }

    #[test]
    fn percentiles_take_the_nearest_rank() {
        let values: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&values, 0.5), 51);
        assert_eq!(percentile(&values, 0.99), 99);
        assert_eq!(percentile(&[7], 0.99), 7);
    }
}
