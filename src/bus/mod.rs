//! The message bus: administrative events (a birth, a death registered)
//! published by the agency that owns a topic and delivered at least once to
//! the agencies that subscribe to it.
//!
//! An event about a citizen is personal data, so the bus applies the rules
//! of exchanges: only the topic's owner publishes; only configured
//! subscribers receive, for a configured purpose, on a legal basis or the
//! citizen's consent, with only the fields their entry releases; every
//! publish and every delivery is an audit entry, written before the
//! delivery leaves the gateway.
//!
//! [`Topics`] is the configuration compiled against the catalogue;
//! [`store`] holds delivery state (embedded redb or Redis Streams);
//! [`service`] is the `jisr.bus.v1.Bus` gRPC API; [`deliver`] prepares each
//! delivery (consent, minimisation, audit).

mod ack_id;
pub mod deliver;
pub mod figures;
#[doc(hidden)]
pub mod fuzzing;
pub mod retention;
pub mod service;
pub mod store;
mod stream;

use std::collections::HashMap;
use std::sync::Arc;

use prost_reflect::{DynamicMessage, MessageDescriptor, Value};

use crate::catalogue::{Catalogue, Category};
use crate::config::{Basis, Config, ConfigError, ConfigErrors, TopicConfig};
use crate::identity::AgencyId;
use crate::policy::release::Release;
pub use figures::Figures;
pub use store::{BusError, BusStore, Limits, Retention, Waiter};

/// One subscriber's terms.
#[derive(Debug, Clone)]
pub struct Subscriber {
    /// The purposes it may receive the events for.
    pub purposes: Vec<String>,
    /// The legal ground, or consent.
    pub basis: Basis,
    /// The fields released, when the entry minimises.
    pub release: Option<Arc<Release>>,
}

/// A topic, resolved once against the catalogue.
#[derive(Debug, Clone)]
pub struct Topic {
    /// Its name.
    pub name: String,
    /// The only publisher.
    pub owner: AgencyId,
    /// The event type.
    pub event: MessageDescriptor,
    /// `type.googleapis.com/<event type>`.
    pub type_url: String,
    /// Field numbers to the event's `(jisr.subject)` field.
    pub subject_path: Option<Vec<u32>>,
    /// The data category (of the owner's services in the event's package),
    /// which a consent must name when a subscriber's basis is consent.
    pub category: Category,
    /// Subscribers by agency.
    pub subscribers: HashMap<AgencyId, Subscriber>,
    /// Subscriber ids, in config order (the subscriptions of the store).
    pub subscriber_ids: Vec<String>,
}

impl Topic {
    /// The subject named by the event's `(jisr.subject)` field, if the type
    /// has one.
    pub fn subject_of(&self, event: &DynamicMessage) -> Option<String> {
        let path = self.subject_path.as_ref()?;
        let mut msg = event.clone();
        for (i, number) in path.iter().enumerate() {
            let value = msg.get_field_by_number(*number)?.into_owned();
            match value {
                Value::String(s) if i + 1 == path.len() => return Some(s),
                Value::Message(m) => msg = m,
                _ => return None,
            }
        }
        None
    }
}

/// Every topic of the node, by name.
#[derive(Debug, Clone, Default)]
pub struct Topics {
    by_name: HashMap<String, Arc<Topic>>,
}

impl Topics {
    /// Resolves each `[[topic]]`: the event type must be a message of one of
    /// the owner's contracts, and `release` must name its fields.
    pub fn compile(config: &Config, catalogue: &Catalogue) -> Result<Self, ConfigErrors> {
        let mut errors = Vec::new();
        let mut by_name = HashMap::new();
        for t in &config.topics {
            match compile_topic(config, catalogue, t) {
                Ok(topic) => {
                    by_name.insert(t.name.clone(), Arc::new(topic));
                }
                Err(mut e) => errors.append(&mut e),
            }
        }
        if errors.is_empty() {
            Ok(Self { by_name })
        } else {
            Err(ConfigErrors(errors))
        }
    }

    /// The topic of that name.
    pub fn get(&self, name: &str) -> Option<&Arc<Topic>> {
        self.by_name.get(name)
    }

    /// Every (topic, subscriber) pair.
    pub fn subscriptions(&self) -> Vec<(String, String)> {
        let mut all: Vec<_> = self
            .by_name
            .values()
            .flat_map(|t| t.subscriber_ids.iter().map(|s| (t.name.clone(), s.clone())))
            .collect();
        all.sort();
        all
    }

    /// Every topic with its subscribers, what retention trims.
    pub(crate) fn with_subscribers(&self) -> Vec<(String, Vec<String>)> {
        let mut all: Vec<_> = self
            .by_name
            .values()
            .map(|t| (t.name.clone(), t.subscriber_ids.clone()))
            .collect();
        all.sort();
        all
    }

    /// Topic names, sorted.
    pub fn names(&self) -> Vec<&str> {
        let mut names: Vec<_> = self.by_name.keys().map(String::as_str).collect();
        names.sort_unstable();
        names
    }
}

fn compile_topic(
    config: &Config,
    catalogue: &Catalogue,
    t: &TopicConfig,
) -> Result<Topic, Vec<ConfigError>> {
    let event = topic_event(config, catalogue, t)?;
    let subject_path = crate::catalogue::subject_path(catalogue.pool(), &event)
        .map_err(|why| {
            vec![ConfigError::new(
                Some(t.at.clone()),
                format!("topic `{}`: {why}", t.name),
                "mark at most one string field of the event with `[(jisr.subject) = true]`",
            )]
        })?
        .map(|p| p.into_iter().map(|(n, _)| n).collect());
    let category = topic_category(catalogue, t, &event);
    let subscribers = compile_subscribers(t, &event, subject_path.is_some())?;
    Ok(Topic {
        name: t.name.clone(),
        owner: t.owner.clone(),
        type_url: format!("type.googleapis.com/{}", event.full_name()),
        event,
        subject_path,
        category,
        subscriber_ids: t.subscribers.iter().map(|s| s.agency.to_string()).collect(),
        subscribers,
    })
}

/// The topic's event message, which must come from one of its owner's
/// contracts.
fn topic_event(
    config: &Config,
    catalogue: &Catalogue,
    t: &TopicConfig,
) -> Result<MessageDescriptor, Vec<ConfigError>> {
    let err = |at, message: String, fix: &str| vec![ConfigError::new(Some(at), message, fix)];
    let contracts = config
        .agency(&t.owner)
        .map(|a| a.contracts.clone())
        .unwrap_or_default();
    let Some(event) = catalogue.pool().get_message_by_name(&t.event) else {
        return Err(err(
            t.at.clone(),
            format!("topic `{}`: event type `{}` is not a message of any loaded contract", t.name, t.event),
            "name a message of the owner's contract by its full name, e.g. `ma.civilstatus.v1.DeathRegistered`",
        ));
    };
    if !contracts.iter().any(|c| c == event.parent_file().name()) {
        return Err(err(
            t.at.clone(),
            format!(
                "topic `{}`: event type `{}` is declared in `{}`, which is not a contract of owner `{}`",
                t.name, t.event, event.parent_file().name(), t.owner
            ),
            "the owner publishes events of its own contracts: declare the message there, or fix `owner`",
        ));
    }
    Ok(event)
}

/// The data category of the owner's service in the event's package.
fn topic_category(catalogue: &Catalogue, t: &TopicConfig, event: &MessageDescriptor) -> Category {
    let package = event.package_name();
    catalogue
        .methods()
        .iter()
        .find(|m| {
            m.provider == t.owner
                && m.service
                    .strip_prefix(package)
                    .is_some_and(|r| r.starts_with('.'))
        })
        .map_or(Category::Unspecified, |m| m.category)
}

/// Each subscriber's terms; every misfit `release` or consent basis is
/// reported, not only the first.
fn compile_subscribers(
    t: &TopicConfig,
    event: &MessageDescriptor,
    has_subject: bool,
) -> Result<HashMap<AgencyId, Subscriber>, Vec<ConfigError>> {
    let mut errors = Vec::new();
    let mut subscribers = HashMap::new();
    for s in &t.subscribers {
        let release = match &s.release {
            None => None,
            Some(fields) => match Release::compile(event, fields) {
                Ok(r) => Some(Arc::new(r)),
                Err(why) => {
                    errors.push(ConfigError::new(
                        Some(s.at.clone()),
                        format!(
                            "`release` of `{}` on topic `{}` does not fit `{}`: {why}",
                            s.agency, t.name, t.event
                        ),
                        "name fields of the event message",
                    ));
                    None
                }
            },
        };
        if matches!(s.basis, Basis::Consent) && !has_subject {
            errors.push(ConfigError::new(Some(s.at.clone()), format!("`{}` receives topic `{}` on consent, but its event type has no `(jisr.subject)` field to find the citizen by", s.agency, t.name), "mark the citizen id field of the event with `[(jisr.subject) = true]`, or use a `law:` basis"));
        }
        subscribers.insert(
            s.agency.clone(),
            Subscriber {
                purposes: s.purposes.clone(),
                basis: s.basis.clone(),
                release,
            },
        );
    }
    if errors.is_empty() {
        Ok(subscribers)
    } else {
        Err(errors)
    }
}

/// Opens the bus store: Redis Streams when `bus.redis_url` is set, else
/// the embedded one; nothing on disk or in Redis when no topic is
/// configured. On Redis, events are sealed under a key derived from
/// `pseudonyms`'s, which every replica shares; a loss of data Redis
/// suffered is told to `figures`.
pub async fn open_store(
    config: &Config,
    topics: &Topics,
    pseudonyms: &crate::audit::keys::Pseudonymizer,
    figures: &Arc<Figures>,
) -> Result<Arc<dyn BusStore>, BusError> {
    let bus = &config.bus;
    let limits = Limits {
        ack_deadline: bus.ack_deadline,
        max_attempts: bus.max_attempts,
        max_in_flight: bus.max_in_flight,
        idempotency_window: bus.idempotency_window,
    };
    let store: Arc<dyn BusStore> = match &bus.redis_url {
        _ if config.topics.is_empty() => {
            Arc::new(store::embedded::EmbeddedBusStore::in_memory(limits)?)
        }
        Some(url) => Arc::new(
            store::redis::RedisBusStore::connect(
                url,
                limits,
                bus.timeout,
                (config.node.id.as_str(), pseudonyms.clone()),
                figures.clone(),
            )
            .await?,
        ),
        None => Arc::new(store::embedded::EmbeddedBusStore::open(&bus.path, limits)?),
    };
    let subscriptions = topics.subscriptions();
    tokio::time::timeout(bus.timeout * 4, store.prepare(&subscriptions))
        .await
        .map_err(|_| {
            BusError::Unavailable(
                "the bus store did not answer in time while creating subscriptions".into(),
            )
        })??;
    Ok(store)
}
