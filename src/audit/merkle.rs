//! RFC 6962 Merkle tree (in progress).
