//! Where sessions and used sign-in nonces live: in the node's memory
//! ([`Sessions`]), or, when the gateway has a Redis (`consent.redis_url`),
//! in that Redis, so that every replica knows them: a session made on one
//! replica works on the others, a sign-out on one ends it on all, and a
//! link's nonce is taken once across them all (`SET NX`).
//!
//! In Redis, a session is `jisr:console:session:<SHA-256 of its id>` →
//! `<agency> <csrf>`, expiring with the session: the store never holds the
//! cookie's value itself. A used nonce is `jisr:console:nonce:<nonce>`,
//! kept until its link would have expired anyway.

use super::link::{hex, LinkError, Opened};
use super::session::{Session, Sessions};
use crate::identity::AgencyId;
use crate::redis::Shared;
use sha2::Digest as _;
use std::time::Duration;

/// The sessions of a console: this node's, or shared through Redis.
#[derive(Debug)]
pub(super) enum Store {
    /// In this node's memory.
    Node(Sessions),
    /// In the gateway's Redis, shared by every replica.
    Redis(Shared),
}

/// The session store could not be asked (Redis down or too slow).
#[derive(Debug, thiserror::Error)]
#[error("the console's session store cannot be reached ({0}); retry in a moment")]
pub(super) struct Unavailable(String);

fn session_key(id: &str) -> String {
    format!(
        "jisr:console:session:{}",
        hex(&sha2::Sha256::digest(id.as_bytes()))
    )
}

impl Store {
    /// Exchanges an opened link for a new session lasting `ttl`, once per
    /// nonce. The outer error is the store's; the inner one the link's.
    pub(super) async fn start(
        &self,
        link: Opened,
        ttl: Duration,
        now_unix: u64,
    ) -> Result<Result<(String, Session), LinkError>, Unavailable> {
        let redis = match self {
            Self::Node(sessions) => return Ok(sessions.start(link, ttl, now_unix)),
            Self::Redis(redis) => redis,
        };
        let nonce_key = format!("jisr:console:nonce:{}", link.nonce);
        let keep = link.expires.saturating_sub(now_unix).max(1);
        let taken: Option<String> = redis
            .call("take a console sign-in nonce", |mut conn| async move {
                redis::cmd("SET")
                    .arg(&nonce_key)
                    .arg(1)
                    .arg("NX")
                    .arg("EX")
                    .arg(keep)
                    .query_async(&mut conn)
                    .await
            })
            .await
            .map_err(|e| Unavailable(e.to_string()))?;
        if taken.is_none() {
            return Ok(Err(LinkError::Used));
        }
        let id = hex(&rand::random::<[u8; 32]>());
        let session = Session::new(link.agency, ttl);
        let value = format!("{} {}", session.agency, session.csrf);
        let key = session_key(&id);
        let millis = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        redis
            .call("store a console session", |mut conn| async move {
                redis::cmd("SET")
                    .arg(&key)
                    .arg(&value)
                    .arg("PX")
                    .arg(millis)
                    .query_async::<()>(&mut conn)
                    .await
            })
            .await
            .map_err(|e| Unavailable(e.to_string()))?;
        Ok(Ok((id, session)))
    }

    /// The live session with this id.
    pub(super) async fn get(&self, id: &str) -> Result<Option<Session>, Unavailable> {
        let redis = match self {
            Self::Node(sessions) => return Ok(sessions.get(id)),
            Self::Redis(redis) => redis,
        };
        let key = session_key(id);
        let value: Option<String> = redis
            .call("read a console session", |mut conn| async move {
                redis::cmd("GET").arg(&key).query_async(&mut conn).await
            })
            .await
            .map_err(|e| Unavailable(e.to_string()))?;
        Ok(value.and_then(|v| {
            let (agency, csrf) = v.split_once(' ')?;
            let agency = AgencyId::parse(agency).ok()?;
            // Its expiry is Redis's: the key is gone once it passes.
            Some(Session::shared(agency, csrf.to_owned()))
        }))
    }

    /// Ends a session (sign-out), on every replica.
    pub(super) async fn end(&self, id: &str) -> Result<(), Unavailable> {
        let redis = match self {
            Self::Node(sessions) => {
                sessions.end(id);
                return Ok(());
            }
            Self::Redis(redis) => redis,
        };
        let key = session_key(id);
        redis
            .call("end a console session", |mut conn| async move {
                redis::cmd("DEL")
                    .arg(&key)
                    .query_async::<()>(&mut conn)
                    .await
            })
            .await
            .map_err(|e| Unavailable(e.to_string()))
    }
}
