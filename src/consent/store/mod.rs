//! Where consents live: the [`ConsentStore`] trait, with an embedded store
//! (redb, one node) and a Redis store (several replicas).

pub mod embedded;
pub mod redis;

use crate::proto::jisr::consent::v1::Consent;
use prost::Message;
use sha2::{Digest, Sha256};
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

/// A consent as stored: the signed artefact plus its mutable state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredConsent {
    /// The consent's canonical encoding (what was signed).
    pub encoded: Vec<u8>,
    /// The gateway's Ed25519 signature over the domain-separated encoding.
    pub signature: Vec<u8>,
    /// The decoded consent.
    pub consent: Consent,
    /// When it was revoked (µs since the epoch); 0 while not revoked.
    pub revoked_unix_micros: i64,
    /// Calls made under it so far.
    pub uses: u32,
}

/// What `use_once` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UseOutcome {
    /// A use was counted; the consent as it is now.
    Counted(StoredConsent),
    /// No such consent.
    Unknown,
    /// Revoked before this use.
    Revoked(StoredConsent),
    /// Every allowed use was already made.
    Exhausted(StoredConsent),
}

/// A consent store failure: the call is refused (fail closed).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The store cannot be reached or answered with an error.
    #[error("the consent store is unavailable: {0}")]
    Unavailable(String),
    /// A stored consent cannot be read back.
    #[error("the consent store holds a damaged consent `{id}`: {what}")]
    Damaged {
        /// The consent id.
        id: String,
        /// What is wrong.
        what: String,
    },
    /// A consent in Redis sealed under another pseudonym key than this
    /// node's: the replicas do not share `[audit] pseudonym_key`.
    #[error("the consent `{0}` in Redis cannot be decrypted with this node's pseudonym key: every replica must share `[audit] pseudonym_key`")]
    Undecryptable(String),
    /// `put` of an id that exists.
    #[error("a consent with id `{0}` already exists")]
    Exists(String),
}

/// Boxed future of the store's operations.
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// Consents by id, with atomic revocation and use counting. Every replica
/// sharing a store sees a revocation on its very next call: implementations
/// may not answer from a cache that could hold a revoked consent as active.
pub trait ConsentStore: Send + Sync + std::fmt::Debug {
    /// Stores a new consent (uses 0, not revoked). Fails if the id exists.
    fn put(&self, consent: StoredConsent) -> StoreFuture<'_, ()>;
    /// The consent with this id.
    fn get<'a>(&'a self, id: &'a str) -> StoreFuture<'a, Option<StoredConsent>>;
    /// Marks a consent revoked at `at` (idempotent: an earlier revocation
    /// time is kept); returns it, or `None` if unknown.
    fn revoke<'a>(&'a self, id: &'a str, at: i64) -> StoreFuture<'a, Option<StoredConsent>>;
    /// Atomically: if the consent exists, is not revoked and
    /// (`max_uses` is 0 or `uses < max_uses`), counts one use.
    fn use_once<'a>(&'a self, id: &'a str) -> StoreFuture<'a, UseOutcome>;
    /// Every consent of a subject (citizen id), oldest first.
    fn list_by_subject<'a>(&'a self, subject: &'a str) -> StoreFuture<'a, Vec<StoredConsent>>;
    /// Whether the store answers now (readiness). An embedded store is
    /// always reachable once open.
    fn ping(&self) -> StoreFuture<'_, ()> {
        Box::pin(async { Ok(()) })
    }
    /// How long one operation may wait for this store before the call it
    /// serves is refused (fail closed), given `[consent] timeout_ms`. That
    /// bound guards against a store across the network that hangs (a
    /// frozen Redis), and applies as configured; a store on this node's
    /// own disk overrides it, since there it would only measure how busy
    /// the CPU is.
    fn answer_bound(&self, configured: Duration) -> Duration {
        configured
    }
}

/// sha256 of a citizen id: how the embedded store (a local file) keys a
/// subject's consents, so the id itself is never a key in clear. The Redis
/// store, shared over the network, uses the keyed pseudonym instead.
fn subject_digest(subject: &str) -> [u8; 32] {
    Sha256::digest(subject.as_bytes()).into()
}

/// A stored consent from its stored parts, decoding the signed encoding.
fn assemble(
    id: &str,
    encoded: Vec<u8>,
    signature: Vec<u8>,
    revoked_unix_micros: i64,
    uses: u32,
) -> Result<StoredConsent, StoreError> {
    let consent = Consent::decode(encoded.as_slice()).map_err(|e| StoreError::Damaged {
        id: id.to_owned(),
        what: format!("its signed encoding does not decode: {e}"),
    })?;
    if consent.id != id {
        return Err(StoreError::Damaged {
            id: id.to_owned(),
            what: format!(
                "it is stored under another id than its own (`{}`)",
                consent.id
            ),
        });
    }
    Ok(StoredConsent {
        encoded,
        signature,
        consent,
        revoked_unix_micros,
        uses,
    })
}

/// Refuses to store a consent whose decoded form is not what its signed
/// encoding says: every later read decodes the encoding, so the two must
/// agree or a reader would see another consent than the writer meant.
fn check_new(consent: &StoredConsent) -> Result<(), StoreError> {
    let decoded = Consent::decode(consent.encoded.as_slice()).map_err(|e| StoreError::Damaged {
        id: consent.consent.id.clone(),
        what: format!("its signed encoding does not decode: {e}"),
    })?;
    if decoded != consent.consent {
        return Err(StoreError::Damaged {
            id: consent.consent.id.clone(),
            what: "its decoded form differs from its signed encoding".into(),
        });
    }
    Ok(())
}
