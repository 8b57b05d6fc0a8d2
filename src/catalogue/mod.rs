//! The catalogue: agency contracts loaded at runtime from `.proto` files.
//!
//! At start (and on reload) the gateway compiles every contract its config
//! names with protox, finds in each request type the field marked
//! `(jisr.subject)`, reads each method's data category, and compiles a wire
//! [`Schema`](wire::Schema) per method. The result is a table keyed by the
//! gRPC path `/<package>.<Service>/<Method>`: one hash lookup per call, no
//! descriptor lookups by name on the hot path.

pub mod wire;

mod annotations;
mod load;
mod subject;

use crate::identity::AgencyId;
use prost_reflect::{DescriptorPool, MessageDescriptor};
use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Arc;

pub use load::ANNOTATIONS_PROTO;
pub use subject::subject_path;

/// Package prefixes of the services the gateway serves itself.
const RESERVED: [&str; 3] = ["grpc.health.", "grpc.reflection.", "jisr."];

/// Whether a service (or `service/method` path) belongs to the gateway's
/// own reserved packages.
pub fn is_reserved_service(name: &str) -> bool {
    RESERVED.iter().any(|prefix| name.starts_with(prefix))
}

/// The category of personal data a method releases (`jisr.DataCategory`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Category {
    /// Not declared by the contract.
    Unspecified,
    /// Civil status.
    Civil,
    /// Tax.
    Fiscal,
    /// Health (sensitive under law 09-08).
    Health,
    /// Education.
    Education,
    /// Social protection.
    Social,
    /// Declared as no personal data at all.
    NotPersonal,
}

impl Category {
    fn from_number(n: i32) -> Self {
        match n {
            1 => Self::Civil,
            2 => Self::Fiscal,
            3 => Self::Health,
            4 => Self::Education,
            5 => Self::Social,
            6 => Self::NotPersonal,
            _ => Self::Unspecified,
        }
    }

    /// The lowercase name used in config and output.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unspecified => "unspecified",
            Self::Civil => "civil",
            Self::Fiscal => "fiscal",
            Self::Health => "health",
            Self::Education => "education",
            Self::Social => "social",
            Self::NotPersonal => "not-personal",
        }
    }

    /// Whether law 09-08 treats this category as sensitive data.
    pub fn is_sensitive(self) -> bool {
        self == Self::Health
    }
}

/// How many messages flow each way in a method.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Streaming {
    /// One request, one response.
    Unary,
    /// One request, a stream of responses.
    Server,
    /// A stream of requests, one response.
    Client,
    /// Streams both ways.
    Bidi,
}

impl Streaming {
    /// Whether the gateway carries this kind of call (one request message).
    pub fn is_supported(self) -> bool {
        matches!(self, Self::Unary | Self::Server)
    }

    /// Its name, for listings.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unary => "unary",
            Self::Server => "server-streaming",
            Self::Client => "client-streaming (not carried)",
            Self::Bidi => "bidi-streaming (not carried)",
        }
    }
}

/// Everything the gateway needs to know about one method, resolved once.
#[derive(Debug)]
pub struct MethodRoute {
    /// `/<package>.<Service>/<Method>`.
    pub path: String,
    /// Fully qualified service name, e.g. `ma.tax.v1.TaxRecords`.
    pub service: String,
    /// Method name, e.g. `GetTaxStatus`.
    pub method: String,
    /// The agency that provides the service.
    pub provider: AgencyId,
    /// Data category released.
    pub category: Category,
    /// Call shape.
    pub streaming: Streaming,
    /// Fully qualified request type.
    pub request_type: String,
    /// Response type descriptor (for minimisation).
    pub response: MessageDescriptor,
    /// Dotted name path of the subject field, e.g. `citizen_id`.
    pub subject_field: Option<String>,
    /// Why the request names no citizen (`(jisr.no_subject)`), when it
    /// has no subject field.
    pub no_subject: Option<String>,
    /// Wire schema of the request, with the subject's field number path.
    pub schema: wire::Schema,
}

impl MethodRoute {
    /// `<service>/<method>`, the form rules use.
    pub fn qualified(&self) -> String {
        format!("{}/{}", self.service, self.method)
    }
}

/// The loaded contracts, indexed by gRPC path.
#[derive(Debug, Clone)]
pub struct Catalogue {
    pool: DescriptorPool,
    by_path: HashMap<String, Arc<MethodRoute>>,
    /// Sorted by path, for listings.
    ordered: Vec<Arc<MethodRoute>>,
}

impl Catalogue {
    /// The route for a gRPC path.
    pub fn get(&self, path: &str) -> Option<&Arc<MethodRoute>> {
        self.by_path.get(path)
    }

    /// Every method, sorted by path.
    pub fn methods(&self) -> &[Arc<MethodRoute>] {
        &self.ordered
    }

    /// The descriptor pool of every loaded contract (for server reflection).
    pub fn pool(&self) -> &DescriptorPool {
        &self.pool
    }

    /// Whether a service of that full name is loaded.
    pub fn has_service(&self, service: &str) -> bool {
        self.ordered.iter().any(|m| m.service == service)
    }

    /// Whether `service/method` is loaded.
    pub fn has_method(&self, service: &str, method: &str) -> bool {
        self.by_path.contains_key(&format!("/{service}/{method}"))
    }

    /// A human-readable listing: agencies, services, methods, subjects.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let mut current: Option<(&AgencyId, &str)> = None;
        for m in &self.ordered {
            if current.map(|(p, _)| p) != Some(&m.provider) {
                let _ = writeln!(out, "agency {}", m.provider);
            }
            if current.map(|(_, s)| s) != Some(m.service.as_str()) {
                let _ = writeln!(out, "  service {}", m.service);
            }
            current = Some((&m.provider, m.service.as_str()));
            let sensitive = if m.category.is_sensitive() {
                " (sensitive)"
            } else {
                ""
            };
            // A method about no citizen shows why, as its contract says.
            let subject = match (&m.subject_field, &m.no_subject) {
                (Some(field), _) => field.clone(),
                (None, Some(why)) => format!("none ({why})"),
                (None, None) => "-".to_owned(),
            };
            let _ = writeln!(
                out,
                "    {:<24} {:<16} category={}{}  subject={subject}  request={}",
                m.method,
                m.streaming.as_str(),
                m.category.as_str(),
                sensitive,
                m.request_type,
            );
        }
        out
    }
}

#[cfg(test)]
mod annotation_tests;
#[cfg(test)]
mod tests;
