//! `jisr bus …`: a subscription's dead letters on a running gateway, listed
//! and replayed through the Bus API (as the subscriber itself, or as an
//! agency with the `auditor` role), and the bus benchmark.

use clap::Subcommand;

use super::audit::{format_time, status_error, Connection};
use crate::proto::jisr::bus::v1::{bus_client::BusClient, ListDeadLettersRequest, ReplayRequest};

/// `jisr bus …`.
#[derive(Debug, Subcommand)]
pub enum BusCommand {
    /// Dead letters: events a subscriber did not acknowledge in time.
    Dlq {
        /// What to do.
        #[command(subcommand)]
        command: DlqCommand,
    },
    /// Events per second end to end (publish → delivered → acknowledged)
    /// and delivery latency, against a running gateway.
    Bench(crate::tools::bench::bus::BenchArgs),
}

/// `jisr bus dlq …`.
#[derive(Debug, Subcommand)]
pub enum DlqCommand {
    /// List a subscription's dead letters, oldest first.
    List {
        /// How to reach the gateway.
        #[command(flatten)]
        conn: Connection,
        /// The topic.
        #[arg(long)]
        topic: String,
        /// The subscribing agency (default: the agency given with --as).
        #[arg(long)]
        subscriber: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
    /// Put dead letters back into their subscription, with fresh attempts.
    Replay {
        /// How to reach the gateway.
        #[command(flatten)]
        conn: Connection,
        /// The topic.
        #[arg(long)]
        topic: String,
        /// The subscribing agency (default: the agency given with --as).
        #[arg(long)]
        subscriber: Option<String>,
        /// Event ids to replay (repeat or comma-separate).
        #[arg(long = "event", value_delimiter = ',')]
        events: Vec<String>,
        /// Replay every dead letter of the subscription.
        #[arg(long, conflicts_with = "events")]
        all: bool,
    },
}

/// Runs a `jisr bus` command.
pub async fn run(command: BusCommand) -> anyhow::Result<()> {
    match command {
        BusCommand::Dlq { command } => dlq(command).await,
        BusCommand::Bench(args) => crate::tools::bench::bus::run(args).await,
    }
}

async fn dlq(command: DlqCommand) -> anyhow::Result<()> {
    match command {
        DlqCommand::List {
            conn,
            topic,
            subscriber,
            limit,
        } => list(&conn, topic, subscriber, limit).await,
        DlqCommand::Replay {
            conn,
            topic,
            subscriber,
            events,
            all,
        } => {
            if events.is_empty() && !all {
                anyhow::bail!("name the dead letters to replay with --event ID (see `jisr bus dlq list`), or replay them all with --all");
            }
            replay(&conn, topic, subscriber, events).await
        }
    }
}

async fn list(
    conn: &Connection,
    topic: String,
    subscriber: Option<String>,
    limit: u32,
) -> anyhow::Result<()> {
    let mut bus = BusClient::new(conn.channel().await?);
    let letters = bus
        .list_dead_letters(ListDeadLettersRequest {
            topic: topic.clone(),
            subscriber: subscriber.unwrap_or_default(),
            limit,
        })
        .await
        .map_err(status_error)?
        .into_inner()
        .dead_letters;
    if letters.is_empty() {
        println!("no dead letters on `{topic}`");
    }
    for d in letters {
        println!(
            "{}  event {}  {}  subscriber={}  attempts={}  published={}  reason: {}",
            format_time(d.dead_unix_micros),
            d.event_id,
            d.event_type,
            d.subscriber,
            d.attempts,
            format_time(d.published_unix_micros),
            d.reason
        );
    }
    Ok(())
}

/// Replays `events`, or every dead letter when none is named.
async fn replay(
    conn: &Connection,
    topic: String,
    subscriber: Option<String>,
    events: Vec<String>,
) -> anyhow::Result<()> {
    let mut bus = BusClient::new(conn.channel().await?);
    let replayed = bus
        .replay(ReplayRequest {
            topic: topic.clone(),
            subscriber: subscriber.unwrap_or_default(),
            event_ids: events,
        })
        .await
        .map_err(status_error)?
        .into_inner()
        .replayed;
    println!("{replayed} dead letter(s) of `{topic}` replayed");
    Ok(())
}
