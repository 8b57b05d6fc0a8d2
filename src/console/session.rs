//! Sessions and used sign-in nonces, kept in the node's memory (without a
//! Redis; see `shared` for the store replicas share): a session is a random
//! id in an HttpOnly, Secure, SameSite=Strict cookie, with its agency, its
//! CSRF token and its expiry. A restart signs everyone out.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::link::{hex, LinkError, Opened};
use crate::identity::AgencyId;

/// The session cookie's name.
pub(super) const COOKIE: &str = "jisr_console";

/// A signed-in operator.
#[derive(Debug, Clone)]
pub(super) struct Session {
    /// The agency it acts as; its roles are read from the config per request.
    pub(super) agency: AgencyId,
    /// Sent back in every state-changing form.
    pub(super) csrf: String,
    expires: Instant,
}

impl Session {
    /// A new session of `agency` lasting `ttl`, with a fresh CSRF token.
    pub(super) fn new(agency: AgencyId, ttl: Duration) -> Self {
        Self {
            agency,
            csrf: hex(&rand::random::<[u8; 32]>()),
            expires: Instant::now() + ttl,
        }
    }

    /// A session read from the shared store, which expires it itself.
    pub(super) fn shared(agency: AgencyId, csrf: String) -> Self {
        Self {
            agency,
            csrf,
            expires: Instant::now(),
        }
    }
}

/// The node's sessions and the nonces of links already exchanged.
#[derive(Debug, Default)]
pub(super) struct Sessions {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    sessions: HashMap<String, Session>,
    /// Used nonces, kept until their link would have expired anyway.
    used: HashMap<String, u64>,
}

impl Sessions {
    /// Exchanges an opened link for a new session lasting `ttl`; refused
    /// when the link's nonce was used before. Returns the session id.
    pub(super) fn start(
        &self,
        link: Opened,
        ttl: Duration,
        now_unix: u64,
    ) -> Result<(String, Session), LinkError> {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.used.retain(|_, expires| *expires > now_unix);
        let now = Instant::now();
        inner.sessions.retain(|_, s| s.expires > now);
        if inner.used.contains_key(&link.nonce) {
            return Err(LinkError::Used);
        }
        inner.used.insert(link.nonce, link.expires);
        let id = hex(&rand::random::<[u8; 32]>());
        let session = Session::new(link.agency, ttl);
        inner.sessions.insert(id.clone(), session.clone());
        Ok((id, session))
    }

    /// The live session with this id.
    pub(super) fn get(&self, id: &str) -> Option<Session> {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner
            .sessions
            .get(id)
            .filter(|s| s.expires > Instant::now())
            .cloned()
    }

    /// Ends a session (sign-out).
    pub(super) fn end(&self, id: &str) {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.sessions.remove(id);
    }
}

/// The session id in a request's `Cookie` headers.
pub(super) fn cookie(headers: &http::HeaderMap) -> Option<String> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.to_owned())
}

/// The `Set-Cookie` value that installs session `id` for `ttl`.
pub(super) fn set_cookie(id: &str, ttl: Duration) -> String {
    format!(
        "{COOKIE}={id}; Path=/; Max-Age={}; HttpOnly; Secure; SameSite=Strict",
        ttl.as_secs()
    )
}

/// The `Set-Cookie` value that removes the session cookie.
pub(super) fn clear_cookie() -> String {
    format!("{COOKIE}=; Path=/; Max-Age=0; HttpOnly; Secure; SameSite=Strict")
}
