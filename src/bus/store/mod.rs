//! Where events live: the [`BusStore`] trait, with an embedded store (redb,
//! one node, survives restarts) and a Redis Streams store (several replicas
//! share each subscription through a consumer group).
//!
//! The store owns delivery state: which events each subscription still
//! owes, which are in flight until when, how many attempts each had, and the
//! dead letters. Access rules, consent, minimisation and audit are the
//! service's business, not the store's.

pub mod embedded;
pub mod redis;

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

/// An event as stored: what the publisher sent plus what the gateway knew.
#[derive(Clone, PartialEq, prost::Message)]
pub struct StoredEvent {
    /// `type.googleapis.com/<message>`.
    #[prost(string, tag = "1")]
    pub type_url: String,
    /// The event message bytes, as published.
    #[prost(bytes = "vec", tag = "2")]
    pub payload: Vec<u8>,
    /// The citizen the event is about ("" when none).
    #[prost(string, tag = "3")]
    pub subject: String,
    /// The publishing agency.
    #[prost(string, tag = "4")]
    pub publisher: String,
    /// When the gateway accepted it (µs since the epoch).
    #[prost(int64, tag = "5")]
    pub published_unix_micros: i64,
    /// The publisher's idempotency key.
    #[prost(string, tag = "6")]
    pub idempotency_key: String,
}

/// The delivery limits every subscription shares.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// An unacknowledged delivery is redelivered after this.
    pub ack_deadline: Duration,
    /// Deliveries before an event becomes a dead letter.
    pub max_attempts: u32,
    /// Unacknowledged deliveries per subscription before delivery pauses.
    pub max_in_flight: u32,
    /// A key seen within this window is the same event.
    pub idempotency_window: Duration,
}

/// How long what the bus no longer owes is kept.
#[derive(Debug, Clone, Copy)]
pub struct Retention {
    /// An event acknowledged by every subscription (or owed to none) goes
    /// once it is this old; never shorter than the idempotency window.
    pub events: Duration,
    /// A dead letter not replayed goes once it is this old.
    pub dead_letters: Duration,
}

/// What one retention run of a topic removed, and what it found after.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TopicState {
    /// Events removed.
    pub trimmed: u64,
    /// Dead letters removed.
    pub trimmed_dead: u64,
    /// Events the topic holds now.
    pub length: u64,
    /// Each configured subscription.
    pub subscriptions: Vec<SubscriptionState>,
}

/// One subscription as a retention run found it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SubscriptionState {
    /// The subscribing agency.
    pub subscriber: String,
    /// When the oldest event it still owes was published (µs since the
    /// epoch): the head of its backlog, in flight or not.
    pub oldest_owed_unix_micros: Option<i64>,
    /// Its dead letters.
    pub dead_letters: u64,
}

/// What `publish` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    /// The event's id in its topic.
    pub event_id: String,
    /// The key was already published within the window: nothing new.
    pub duplicate: bool,
}

/// One delivery handed out by `fetch`.
#[derive(Debug, Clone, PartialEq)]
pub struct Pending {
    /// The token to acknowledge.
    pub id: String,
    /// The event's id in its topic.
    pub event_id: String,
    /// The event.
    pub event: StoredEvent,
    /// 1 for the first delivery.
    pub attempt: u32,
}

/// An event set aside after too many attempts.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadLetter {
    /// The event's id in its topic.
    pub event_id: String,
    /// Deliveries made.
    pub attempts: u32,
    /// Why it was set aside.
    pub reason: String,
    /// When (µs since the epoch).
    pub dead_unix_micros: i64,
    /// The event.
    pub event: StoredEvent,
}

/// A bus store failure.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    /// The store cannot be reached or failed.
    #[error("the bus store is unavailable: {0}")]
    Unavailable(String),
    /// The request names something the store never issued.
    #[error("{0}")]
    Invalid(String),
}

/// Boxed future of the store's operations.
pub type BusFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, BusError>> + Send + 'a>>;

/// Topics, subscriptions and their delivery state. A subscription is named
/// by (topic, subscribing agency); every operation is atomic.
pub trait BusStore: Send + Sync + std::fmt::Debug {
    /// Makes sure every subscription exists before the first publish, so it
    /// misses nothing published after start.
    fn prepare<'a>(&'a self, subscriptions: &'a [(String, String)]) -> BusFuture<'a, ()>;
    /// Appends an event for every subscriber of `topic`, durably, unless its
    /// key was published within the idempotency window.
    fn publish<'a>(
        &'a self,
        topic: &'a str,
        subscribers: &'a [String],
        event: StoredEvent,
    ) -> BusFuture<'a, Published>;
    /// Up to `max` deliveries due to `subscriber`, oldest first: deliveries
    /// whose ack deadline passed (attempt + 1; past the maximum they become
    /// dead letters instead), then new events; never more than the
    /// in-flight bound unacknowledged. Each is in flight until now + the ack
    /// deadline.
    fn fetch<'a>(
        &'a self,
        topic: &'a str,
        subscriber: &'a str,
        max: u32,
        now: i64,
    ) -> BusFuture<'a, Vec<Pending>>;
    /// Acknowledges deliveries; returns how many were still pending.
    fn ack<'a>(
        &'a self,
        topic: &'a str,
        subscriber: &'a str,
        ids: &'a [String],
    ) -> BusFuture<'a, u32>;
    /// Makes unacknowledged deliveries due again at once; already
    /// acknowledged ones are ignored. `counted`: the delivery reached the
    /// subscriber (its stream closed) and keeps its attempt; otherwise it
    /// never left the gateway (audit log or consent store unavailable) and
    /// its attempt is given back, so an outage does not turn events into
    /// dead letters.
    fn release<'a>(
        &'a self,
        topic: &'a str,
        subscriber: &'a str,
        ids: &'a [String],
        counted: bool,
    ) -> BusFuture<'a, ()>;
    /// The subscription's dead letters, oldest first.
    fn dead_letters<'a>(
        &'a self,
        topic: &'a str,
        subscriber: &'a str,
        limit: u32,
    ) -> BusFuture<'a, Vec<DeadLetter>>;
    /// Puts dead letters (all when `event_ids` is empty) back in the
    /// subscription with fresh attempts; returns how many.
    fn replay<'a>(
        &'a self,
        topic: &'a str,
        subscriber: &'a str,
        event_ids: &'a [String],
        now: i64,
    ) -> BusFuture<'a, u32>;
    /// Removes what `topic` no longer owes anyone and is older than the
    /// retention: events every subscription acknowledged (never one still
    /// owed to a subscription, in flight, or kept for a dead letter), and
    /// dead letters past theirs. Bounded work per call; safe while other
    /// replicas do the same. `subscribers` are the configured ones, whose
    /// state is reported.
    fn trim<'a>(
        &'a self,
        topic: &'a str,
        subscribers: &'a [String],
        retention: Retention,
        now: i64,
    ) -> BusFuture<'a, TopicState>;
    /// A reader for one Subscribe stream that waits in the store for new
    /// events instead of polling, holding what it needs (a connection)
    /// until it is dropped. `None`: the store cannot wait (the embedded one,
    /// woken by publishes through its own node), or enough readers wait
    /// already; the stream then polls.
    fn waiter(&self) -> Option<Box<dyn Waiter>> {
        None
    }
}

/// See [`BusStore::waiter`].
pub trait Waiter: Send {
    /// Like [`BusStore::fetch`], but when nothing is due it waits for a new
    /// event, at most [`Waiter::longest_wait`], and returns what came (maybe
    /// nothing). Deliveries whose ack deadline passes meanwhile are handed
    /// out by the next call: the wait bounds how late a redelivery can be.
    fn fetch_waiting<'a>(
        &'a mut self,
        topic: &'a str,
        subscriber: &'a str,
        max: u32,
        now: i64,
    ) -> BusFuture<'a, Vec<Pending>>;
    /// The longest a call waits (on top of the store's own timeout).
    fn longest_wait(&self) -> Duration;
}

/// The reason recorded for an event that ran out of attempts.
pub fn exhausted_reason(attempts: u32) -> String {
    format!("not acknowledged after {attempts} attempts")
}
