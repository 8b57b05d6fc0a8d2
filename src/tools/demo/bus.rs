//! The demo's bus scene: civil status registers a death once; tax and health
//! are notified through the gateway, each with what its rule releases, and
//! the audit log shows the publish and both deliveries.

use super::network::Network;
use super::script::connect;
use crate::proto::jisr::audit::v1::{AuditRecord, Kind};
use crate::proto::jisr::bus::v1::{
    bus_client::BusClient, AckRequest, Delivery, PublishRequest, SubscribeRequest,
};
use crate::proto::ma::civilstatus::v1::DeathRegistered;
use prost::Message as _;
use std::time::Duration;
use tokio_stream::StreamExt as _;

const TOPIC: &str = "civil-status.death-registered";
const DECEASED: &str = "CD471122";
const ACT: &str = "Fès-Médina/2026/0412";

async fn subscribe(
    network: &Network,
    agency: &str,
    purpose: &str,
) -> anyhow::Result<(
    BusClient<tonic::transport::Channel>,
    tonic::Streaming<Delivery>,
)> {
    let mut bus = BusClient::new(connect(network, agency).await?);
    let stream = bus
        .subscribe(SubscribeRequest {
            topic: TOPIC.into(),
            purpose: purpose.into(),
        })
        .await?
        .into_inner();
    println!("    {agency:<12} ⇐ jisr   jisr.bus.v1.Bus/Subscribe {TOPIC} for {purpose}");
    Ok((bus, stream))
}

async fn notified(
    agency: &str,
    bus: &mut BusClient<tonic::transport::Channel>,
    stream: &mut tonic::Streaming<Delivery>,
) -> anyhow::Result<()> {
    let delivery = tokio::time::timeout(Duration::from_secs(10), stream.next())
        .await
        .map_err(|_| anyhow::anyhow!("{agency} was not notified within 10 s"))?
        .ok_or_else(|| anyhow::anyhow!("{agency}'s subscription ended"))??;
    let event = DeathRegistered::decode(
        delivery
            .event
            .as_ref()
            .map_or(&[][..], |e| e.value.as_slice()),
    )?;
    let shown = |s: &str| {
        if s.is_empty() {
            "(withheld)".to_owned()
        } else {
            s.to_owned()
        }
    };
    println!(
        "    ✔ {agency} notified: event {} (attempt {}) — citizen {}, died {}, act {}, place {}, cause {}",
        delivery.event_id,
        delivery.attempt,
        delivery.subject,
        shown(&event.death_date),
        shown(&event.act_number),
        shown(&event.death_place),
        shown(&event.cause),
    );
    bus.ack(AckRequest {
        topic: TOPIC.into(),
        ids: vec![delivery.id],
    })
    .await?;
    println!("      {agency} acknowledges: the event will not be delivered to it again");
    Ok(())
}

/// Plays the scene and prints the topic's audit trail.
pub(super) async fn play(network: &Network) -> anyhow::Result<()> {
    println!(
        "\nThe message bus — a death registered once, every administration concerned notified"
    );
    println!(
        "A family used to report a death at each office. Here civil status publishes it once."
    );
    let (mut tax, mut tax_stream) = subscribe(network, "tax", "tax-household").await?;
    let (mut health, mut health_stream) = subscribe(network, "health", "civil-event").await?;
    let mut civil = BusClient::new(connect(network, "civil-status").await?);
    let event = DeathRegistered {
        citizen_id: DECEASED.into(),
        death_date: "2026-11-20".into(),
        death_place: "Fès".into(),
        registry_office: "Fès-Médina".into(),
        act_number: ACT.into(),
        cause: "cardiac arrest".into(),
    };
    let publish = PublishRequest {
        topic: TOPIC.into(),
        event: Some(prost_types::Any {
            type_url: "type.googleapis.com/ma.civilstatus.v1.DeathRegistered".into(),
            value: event.encode_to_vec(),
        }),
        idempotency_key: ACT.into(),
        subject: String::new(),
    };
    println!("    civil-status → jisr   jisr.bus.v1.Bus/Publish {TOPIC} (act {ACT})");
    let first = civil.publish(publish.clone()).await?.into_inner();
    println!(
        "    ✔ event {} accepted, durable before the answer",
        first.event_id
    );
    // Both deliveries are recorded before the subscribers receive them, so
    // the retry below comes after them in the log on every run: the trail
    // printed is the same each time.
    notified("tax", &mut tax, &mut tax_stream).await?;
    notified("health", &mut health, &mut health_stream).await?;
    println!("    civil-status → jisr   the same publish again (a retry after a timeout)");
    let again = civil.publish(publish).await?.into_inner();
    anyhow::ensure!(
        again.duplicate,
        "a retried publish was taken as a new event"
    );
    println!(
        "    ✔ duplicate of event {}: the same idempotency key is one event, nobody is notified twice",
        again.event_id
    );
    print_trail(network).await
}

async fn print_trail(network: &Network) -> anyhow::Result<()> {
    use crate::proto::jisr::audit::v1::{audit_client::AuditClient, QueryRequest};
    println!("\nAudit trail of {TOPIC}, as the data protection authority (cndp) reads it:");
    let mut cndp = AuditClient::new(connect(network, "cndp").await?);
    // Entries are indexed just after they are durable.
    let mut entries = Vec::new();
    for _ in 0..50 {
        entries = cndp
            .query(QueryRequest {
                agency: "civil-status".into(),
                page_size: 100,
                ..Default::default()
            })
            .await?
            .into_inner()
            .entries;
        let bus = entries
            .iter()
            .filter(|e| e.record.as_ref().is_some_and(|r| r.topic == TOPIC))
            .count();
        if bus >= 6 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut trail: Vec<_> = (entries.iter().rev())
        .filter_map(|e| Some((e.index, e.record.as_ref().filter(|r| r.topic == TOPIC)?)))
        .collect();
    in_subscriber_order(&mut trail);
    for (index, r) in trail {
        println!("  {}", crate::tools::cli::audit::render(index, r, false));
    }
    Ok(())
}

/// One event's deliveries go out to its subscribers concurrently, so their
/// entries land in the log in any order: each run of them is shown by
/// subscriber id (their log indexes say in which order they landed), so
/// the demo prints the same trail every run.
fn in_subscriber_order(trail: &mut [(u64, &AuditRecord)]) {
    let delivered = |r: &AuditRecord| r.kind == Kind::EventDelivered as i32;
    let mut i = 0;
    while i < trail.len() {
        let event = &trail[i].1.event_id;
        let run = trail[i..]
            .iter()
            .take_while(|(_, r)| delivered(r) && &r.event_id == event)
            .count();
        trail[i..i + run].sort_by(|a, b| a.1.consumer.cmp(&b.1.consumer));
        i += run.max(1);
    }
}
