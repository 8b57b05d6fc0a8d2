//! Where a replica's node id comes from: written in the file (`id`), or, so
//! that one file serves every replica, from the process environment
//! (`id_from = "env"` reads `JISR_NODE_ID`) or the host name
//! (`id_from = "hostname"`: a Kubernetes StatefulSet pod is named `jisr-0`,
//! `jisr-1`, …). The environment is read through [`Environment`], so tests
//! hand the parser the values they want instead of touching the process's.

use std::collections::HashMap;

use super::sections::agency_id;
use super::table::{Ctx, Section};
use crate::identity::AgencyId;

/// The environment variable `id_from = "env"` reads.
pub const NODE_ID_VAR: &str = "JISR_NODE_ID";

/// What the configuration reads from outside its file.
pub trait Environment {
    /// The value of an environment variable, if set (and valid UTF-8).
    fn var(&self, name: &str) -> Option<String>;
    /// The machine's (or pod's) host name, if it can be read.
    fn hostname(&self) -> Option<String>;
}

/// The running process's environment.
#[derive(Clone, Copy, Debug, Default)]
pub struct ProcessEnvironment;

impl Environment for ProcessEnvironment {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }

    fn hostname(&self) -> Option<String> {
        // The kernel's name first (what `hostname` prints; in a pod, the
        // pod's name); `HOSTNAME` where /proc is not mounted.
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .or_else(|| self.var("HOSTNAME"))
    }
}

/// An environment given as values, for tests and embedding.
#[derive(Clone, Debug, Default)]
pub struct FixedEnvironment {
    /// The variables that are set.
    pub vars: HashMap<String, String>,
    /// The host name, if any.
    pub hostname: Option<String>,
}

impl Environment for FixedEnvironment {
    fn var(&self, name: &str) -> Option<String> {
        self.vars.get(name).cloned()
    }

    fn hostname(&self) -> Option<String> {
        self.hostname.clone()
    }
}

/// Where the node id was read, for `check-config` and the logs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeIdSource {
    /// `[node] id` in the file.
    File,
    /// The `JISR_NODE_ID` environment variable (`id_from = "env"`).
    Env,
    /// The host name (`id_from = "hostname"`).
    Hostname,
}

impl std::fmt::Display for NodeIdSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::File => "from the configuration file",
            Self::Env => "from JISR_NODE_ID",
            Self::Hostname => "from the host name",
        })
    }
}

/// Reads `id` or `id_from` (exactly one); `None` after reporting why not.
pub(super) fn node_id(
    ctx: &mut Ctx,
    s: &Section<'_, '_>,
    env: &dyn Environment,
) -> Option<(AgencyId, NodeIdSource)> {
    let from = s.opt_str(ctx, "id_from", "\"env\"");
    if s.table.get("id").is_some() || s.table.get("id_from").is_none() {
        if let Some(from) = &from {
            ctx.error(
                &from.span(),
                "[node] has both `id` and `id_from`",
                "keep one: `id = \"gw-1\"` names the node in the file; `id_from = \"env\"` or `\"hostname\"` reads it at start",
            );
            return None;
        }
        let id = s.req_str(ctx, "id", "\"gw-1\" (or `id_from = \"env\"`)")?;
        return agency_id(ctx, &id, "id", "[node]").map(|id| (id, NodeIdSource::File));
    }
    let from = from?;
    let (source, value, what) = match from.get_ref().as_str() {
        "env" => (NodeIdSource::Env, env.var(NODE_ID_VAR), NODE_ID_VAR),
        "hostname" => (
            NodeIdSource::Hostname,
            // The short name: `jisr-0.jisr.svc…` names node `jisr-0`.
            env.hostname()
                .map(|h| h.trim().split('.').next().unwrap_or_default().to_owned()),
            "the host name",
        ),
        other => {
            ctx.error(
                &from.span(),
                format!("`id_from` in [node] is `{other}`"),
                "use `id_from = \"env\"` (reads JISR_NODE_ID) or `id_from = \"hostname\"` (the pod's name), or write `id = \"gw-1\"` instead",
            );
            return None;
        }
    };
    let fix = match source {
        NodeIdSource::Hostname => "give the host (or pod) a name made of lower-case letters, digits and `-`, e.g. `jisr-0`, or use `id_from = \"env\"`",
        _ => "set JISR_NODE_ID to this replica's own node id, e.g. `JISR_NODE_ID=gw-2` (lower-case letters, digits and `-`)",
    };
    let value = value.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
    let Some(value) = value else {
        ctx.error(
            &from.span(),
            format!("[node] reads its id from {what} (`id_from`), which is not set"),
            fix,
        );
        return None;
    };
    match AgencyId::parse(&value) {
        Ok(id) => Some((id, source)),
        Err(e) => {
            ctx.error(
                &from.span(),
                format!("[node] id `{value}`, read from {what}, is not a valid node id: {e}"),
                fix,
            );
            None
        }
    }
}
