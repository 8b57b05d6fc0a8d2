//! A gateway with bus topics (civil status publishes births and deaths; tax
//! and health subscribe) and typed clients for the Bus API.

use super::{channel, gateway_config, spawn_gateway, start_gateway, Gateway, Pki, Proc, Upstreams};
use jisr::proto::jisr::bus::v1::{self as pb, bus_client::BusClient};
use jisr::proto::ma::civilstatus::v1::DeathRegistered;
use prost::Message;
use tonic::transport::Channel;

/// Topic names used by the tests.
pub const DEATHS: &str = "civil-status.death-registered";
/// Births.
pub const BIRTHS: &str = "civil-status.birth-registered";

/// The topics, with `bus` lines in `[bus]`.
pub fn topics(bus: &str) -> String {
    format!(
        r#"
[bus]
{bus}

[[purpose]]
code = "civil-event"
description = "Keep the health record in step with civil status"

[[topic]]
name = "{DEATHS}"
owner = "civil-status"
event = "ma.civilstatus.v1.DeathRegistered"

[[topic.subscriber]]
agency = "tax"
purposes = ["tax-household"]
basis = "law:cgi-art-22"
release = ["citizen_id", "death_date", "act_number"]

[[topic.subscriber]]
agency = "health"
purposes = ["civil-event"]
basis = "law:65-00"

[[topic]]
name = "{BIRTHS}"
owner = "civil-status"
event = "ma.civilstatus.v1.BirthRegistered"

[[topic.subscriber]]
agency = "health"
purposes = ["civil-event"]
basis = "law:65-00"

# Education learns of a birth only for citizens who consented.
[[topic.subscriber]]
agency = "education"
purposes = ["bac-candidature"]
basis = "consent"
"#
    )
}

/// A gateway (no live providers: the bus does not need them), in this
/// process ([`BusNet::start`]) or a `jisr serve` process ([`BusNet::spawn`]).
pub struct BusNet<G = Gateway> {
    /// The gateway (dropped first: it closes its audit log in the PKI's
    /// directory).
    pub gateway: G,
    /// Its address.
    pub addr: String,
    /// The config text, to start it again.
    pub config: String,
    /// The PKI and files.
    pub pki: Pki,
}

impl BusNet {
    /// A gateway with the topics and `bus` lines in `[bus]`.
    pub fn start(bus: &str) -> Self {
        Self::start_with(bus, "")
    }

    /// The same, with `extra` sections appended (e.g. `[consent]`).
    pub fn start_with(bus: &str, extra: &str) -> Self {
        BusNet::with(bus, extra, start_gateway)
    }
}

impl BusNet<Proc> {
    /// [`BusNet::start`] with the gateway in a `jisr serve` process.
    pub fn spawn(bus: &str) -> Self {
        BusNet::with(bus, "", spawn_gateway)
    }

    /// Kills the gateway (SIGKILL) and starts it again on the same files.
    pub fn restart(&mut self) {
        self.gateway.kill();
        let (gateway, addr) = spawn_gateway(&self.pki, "gateway", &self.config);
        self.gateway = gateway;
        self.addr = addr;
    }
}

impl<G> BusNet<G> {
    fn with(bus: &str, extra: &str, start: impl FnOnce(&Pki, &str, &str) -> (G, String)) -> Self {
        let pki = Pki::new();
        let up = Upstreams {
            civil_status: "127.0.0.1:9".into(),
            tax: "127.0.0.1:9".into(),
            health: "127.0.0.1:9".into(),
        };
        let config = gateway_config(&pki, &up, "", &format!("{}\n{extra}", topics(bus)));
        let (gateway, addr) = start(&pki, "gateway", &config);
        Self {
            gateway,
            addr,
            config,
            pki,
        }
    }

    /// Another gateway process on the same files (`name` keeps its audit
    /// log apart), e.g. a second replica sharing Redis that a test kills.
    pub fn spawn_another(&self, name: &str) -> (Proc, String) {
        spawn_gateway(&self.pki, name, &self.config)
    }

    /// A Bus client as `agency`.
    pub async fn client(&self, agency: &str) -> BusClient<Channel> {
        client(&self.addr, &self.pki, agency).await
    }
}

/// A Bus client to `addr` as `agency`.
pub async fn client(addr: &str, pki: &Pki, agency: &str) -> BusClient<Channel> {
    BusClient::new(channel(addr, &pki.files(agency)).await.unwrap())
}

/// A death event of `citizen`, with act number `act`.
pub fn death(citizen: &str, act: &str) -> prost_types::Any {
    let event = DeathRegistered {
        citizen_id: citizen.into(),
        death_date: "2026-11-20".into(),
        death_place: "Fès".into(),
        registry_office: "Fès-Médina".into(),
        act_number: act.into(),
        cause: "confidential".into(),
    };
    prost_types::Any {
        type_url: "type.googleapis.com/ma.civilstatus.v1.DeathRegistered".into(),
        value: event.encode_to_vec(),
    }
}

/// Publishes a death as civil status; returns the response.
pub async fn publish_death(
    bus: &mut BusClient<Channel>,
    citizen: &str,
    act: &str,
) -> Result<pb::PublishResponse, tonic::Status> {
    bus.publish(pb::PublishRequest {
        topic: DEATHS.into(),
        event: Some(death(citizen, act)),
        idempotency_key: act.into(),
        subject: String::new(),
    })
    .await
    .map(tonic::Response::into_inner)
}

/// Decodes a delivered death.
pub fn decode_death(d: &pb::Delivery) -> DeathRegistered {
    DeathRegistered::decode(d.event.as_ref().unwrap().value.as_slice()).unwrap()
}

/// Pulls (waiting up to `wait_ms`) as `purpose`.
pub async fn pull(
    bus: &mut BusClient<Channel>,
    topic: &str,
    purpose: &str,
    max: u32,
    wait_ms: u32,
) -> Vec<pb::Delivery> {
    bus.pull(pb::PullRequest {
        topic: topic.into(),
        purpose: purpose.into(),
        max_events: max,
        wait_ms,
    })
    .await
    .unwrap()
    .into_inner()
    .deliveries
}

/// Acknowledges deliveries.
pub async fn ack(bus: &mut BusClient<Channel>, topic: &str, ids: Vec<String>) -> u32 {
    bus.ack(pb::AckRequest {
        topic: topic.into(),
        ids,
    })
    .await
    .unwrap()
    .into_inner()
    .acknowledged
}
