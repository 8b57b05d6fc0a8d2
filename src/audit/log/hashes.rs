//! The stored Merkle hashes of the log, in a file of 32-byte hashes laid out
//! as [`merkle::stored_hash_index`] says. Derived from the records, rebuilt
//! on start when it disagrees with them.

use crate::audit::merkle::{self, Hash, HashReader, MerkleError};
use crate::audit::AuditError;
use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// The stored-hash file.
#[derive(Debug)]
pub(crate) struct HashFile {
    file: File,
    path: PathBuf,
}

impl HashFile {
    /// Opens (creating) the file.
    pub(crate) fn open(path: &Path) -> Result<Self, AuditError> {
        let file = OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(path)
            .map_err(|e| AuditError::io("open", path, e))?;
        Ok(Self {
            file,
            path: path.to_owned(),
        })
    }

    /// How many whole hashes the file holds.
    pub(crate) fn count(&self) -> Result<u64, AuditError> {
        Ok(self.len()? / 32)
    }

    /// The file's length in bytes: a torn write can leave part of a hash.
    pub(crate) fn len(&self) -> Result<u64, AuditError> {
        Ok(self
            .file
            .metadata()
            .map_err(|e| AuditError::io("read", &self.path, e))?
            .len())
    }

    /// Cuts the file to `count` hashes.
    pub(crate) fn truncate(&self, count: u64) -> Result<(), AuditError> {
        self.file
            .set_len(count * 32)
            .map_err(|e| AuditError::io("truncate", &self.path, e))
    }

    /// Appends hashes.
    pub(crate) fn append(&self, hashes: &[Hash]) -> Result<(), AuditError> {
        let mut bytes = Vec::with_capacity(hashes.len() * 32);
        for h in hashes {
            bytes.extend_from_slice(h);
        }
        (&self.file)
            .write_all(&bytes)
            .map_err(|e| AuditError::io("write", &self.path, e))
    }
}

impl HashReader for HashFile {
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, MerkleError> {
        indexes
            .iter()
            .map(|&i| {
                let mut h = [0u8; 32];
                self.file
                    .read_exact_at(&mut h, i * 32)
                    .map_err(|e| MerkleError::Read(format!("stored hash {i}: {e}")))?;
                Ok(h)
            })
            .collect()
    }
}

/// Stored hashes the writer needs again soon (the tree's right edge and the
/// current batch) in memory, the rest from the file.
#[derive(Debug, Default)]
pub(crate) struct Cache {
    hashes: HashMap<u64, Hash>,
}

impl Cache {
    /// Remembers a stored hash.
    pub(crate) fn insert(&mut self, index: u64, hash: Hash) {
        self.hashes.insert(index, hash);
    }

    /// Keeps only the hashes of the perfect subtrees that make up a tree of
    /// `size` leaves: the ones the next append and the root need.
    pub(crate) fn keep_edge(&mut self, size: u64) {
        let edge: Vec<u64> = edge_indexes(size).collect();
        self.hashes.retain(|i, _| edge.contains(i));
    }

    /// A reader that looks here first, then in `file`.
    pub(crate) fn over<'a, R: HashReader + ?Sized>(&'a self, file: &'a R) -> Cached<'a, R> {
        Cached { cache: self, file }
    }

    /// Adds leaf `n` with leaf hash `leaf` to the tree: returns the stored
    /// hashes to append (the leaf's, then each subtree it completes), read
    /// from here first, then `file`, and keeps only the new right edge.
    pub(crate) fn add_leaf<R: HashReader + ?Sized>(
        &mut self,
        n: u64,
        leaf: Hash,
        file: &R,
    ) -> Result<Vec<Hash>, MerkleError> {
        let stored = merkle::stored_hashes_for_leaf(n, leaf, &self.over(file))?;
        let base = merkle::stored_hash_count(n);
        for (j, h) in stored.iter().enumerate() {
            self.insert(base + j as u64, *h);
        }
        self.keep_edge(n + 1);
        Ok(stored)
    }
}

/// Stored-hash indexes of the perfect subtrees of a tree of `size` leaves.
pub(crate) fn edge_indexes(size: u64) -> impl Iterator<Item = u64> {
    (0..64u32)
        .filter(move |level| size >> level & 1 == 1)
        .map(move |level| merkle::stored_hash_index(level, (size >> level) - 1))
}

/// See [`Cache::over`].
#[derive(Debug)]
pub(crate) struct Cached<'a, R: ?Sized = HashFile> {
    cache: &'a Cache,
    file: &'a R,
}

impl<R: HashReader + ?Sized> HashReader for Cached<'_, R> {
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, MerkleError> {
        indexes
            .iter()
            .map(|i| match self.cache.hashes.get(i) {
                Some(h) => Ok(*h),
                None => self.file.read_hashes(&[*i]).map(|v| v[0]),
            })
            .collect()
    }
}
