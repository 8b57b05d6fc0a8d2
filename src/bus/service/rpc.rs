//! The RPC handlers of `jisr.bus.v1.Bus`.

use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tonic::{Request, Response, Status};

use super::checks::checked_event;
use super::{
    now_micros, BusService, DeliveryStream, Inner, HOW_TO_CALL, POLL, PUBLISH, PULL, REPLAY,
    STREAM_BUFFER, SUBSCRIBE,
};
use crate::audit::record::Ending;
use crate::bus::ack_id;
use crate::bus::deliver::Receiver;
use crate::identity::Caller;
use crate::proto::jisr::audit::v1::{Kind, Outcome};
use crate::proto::jisr::bus::v1 as pb;
use crate::refusal::{Reason, Refusal};

#[tonic::async_trait]
impl pb::bus_server::Bus for BusService {
    async fn publish(
        &self,
        request: Request<pb::PublishRequest>,
    ) -> Result<Response<pb::PublishResponse>, Status> {
        let s = &self.inner;
        let caller = Caller::of(&request, HOW_TO_CALL)?;
        let req = request.into_inner();
        let topic = s.topic(&req.topic)?;
        let mut trail = Inner::trail(&caller, PUBLISH, &topic);
        if caller != topic.owner {
            let refusal = Refusal::new(
                Reason::AccessDenied,
                format!("only `{}` publishes on topic `{}`", topic.owner, topic.name),
            );
            if let Err(e) = s
                .audit(&trail, Kind::EventPublished, Some(refusal.reason))
                .await
            {
                tracing::error!(error = %e.message, "refused publish not recorded");
            }
            return Err(refusal.into());
        }
        let stored = checked_event(&topic, &caller, req)?;
        let subject = stored.subject.clone();
        let published = s
            .bounded(s.store.publish(&topic.name, &topic.subscriber_ids, stored))
            .await
            .map_err(|refusal| match refusal.reason {
                // Never OK for an event no subscription would see: say that
                // it was not published and what makes a retry safe.
                Reason::BusUnavailable => Refusal::new(
                    Reason::BusUnavailable,
                    "the event was not published: the bus store cannot be reached; publish it again with the same idempotency key once the bus is back (if it was stored after all, the retry is answered as a duplicate)",
                ),
                _ => refusal,
            })?;
        trail.event_id.clone_from(&published.event_id);
        if !subject.is_empty() {
            trail.subject = Some(s.recorder.pseudonyms.pseudonym(&subject));
        }
        let ending = Ending {
            outcome: Outcome::Allowed,
            reason: if published.duplicate { "DUPLICATE" } else { "" },
            grpc_status: 0,
            response_digest: None,
        };
        s.recorder.record_kind(&trail, ending, Kind::EventPublished).await.map_err(|e| {
            tracing::error!(error = %e, event = %published.event_id, "publish stored but not recorded in the audit log");
            Refusal::new(Reason::AuditUnavailable, "the event is stored but its publish could not be recorded; retry with the same idempotency key")
        })?;
        if let Some(wake) = s.wake.get(&topic.name) {
            wake.send_modify(|n| *n = n.wrapping_add(1));
        }
        Ok(Response::new(pb::PublishResponse {
            event_id: published.event_id,
            duplicate: published.duplicate,
        }))
    }

    type SubscribeStream = DeliveryStream;

    async fn subscribe(
        &self,
        request: Request<pb::SubscribeRequest>,
    ) -> Result<Response<Self::SubscribeStream>, Status> {
        let caller = Caller::of(&request, HOW_TO_CALL)?;
        let req = request.into_inner();
        let topic = self.inner.topic(&req.topic)?;
        let terms = self
            .inner
            .subscriber(&caller, &topic, &req.purpose, SUBSCRIBE)
            .await?;
        let (tx, rx) = mpsc::channel(STREAM_BUFFER);
        let inner = self.inner.clone();
        tokio::spawn(async move {
            crate::bus::stream::run(inner, topic, caller, terms, req.purpose, tx).await;
        });
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        )))
    }

    async fn pull(
        &self,
        request: Request<pb::PullRequest>,
    ) -> Result<Response<pb::PullResponse>, Status> {
        let s = &self.inner;
        let caller = Caller::of(&request, HOW_TO_CALL)?;
        let req = request.into_inner();
        let topic = s.topic(&req.topic)?;
        let max = match req.max_events {
            0 => 100,
            n @ 1..=1000 => n,
            n => {
                return Err(Refusal::new(
                    Reason::InvalidRequest,
                    format!("`max_events` = {n} is too many; ask for 1 to 1000"),
                )
                .into())
            }
        };
        let wait = Duration::from_millis(u64::from(req.wait_ms.min(30_000)));
        let terms = s.subscriber(&caller, &topic, &req.purpose, PULL).await?;
        let rx = Receiver {
            agency: caller.as_str(),
            terms: &terms,
            purpose: &req.purpose,
            method: PULL,
        };
        let until = tokio::time::Instant::now() + wait;
        let mut woken = s.wake.get(&topic.name).map(watch::Sender::subscribe);
        loop {
            if let Some(w) = woken.as_mut() {
                w.borrow_and_update();
            }
            let batch = s
                .bounded(
                    s.store
                        .fetch(&topic.name, caller.as_str(), max, now_micros()),
                )
                .await?;
            let mut deliveries = s.prepare_all(&topic, rx, batch).await?;
            for d in &mut deliveries {
                d.id = s.ack_id(&topic.name, caller.as_str(), &d.id);
            }
            if !deliveries.is_empty() || tokio::time::Instant::now() >= until {
                return Ok(Response::new(pb::PullResponse { deliveries }));
            }
            let nap = tokio::time::sleep_until(until.min(tokio::time::Instant::now() + POLL));
            match woken.as_mut() {
                Some(w) => {
                    tokio::select! {
                        _ = w.changed() => {}
                        () = nap => {}
                    }
                }
                None => nap.await,
            }
        }
    }

    async fn ack(
        &self,
        request: Request<pb::AckRequest>,
    ) -> Result<Response<pb::AckResponse>, Status> {
        let s = &self.inner;
        let caller = Caller::of(&request, HOW_TO_CALL)?;
        let req = request.into_inner();
        let topic = s.topic(&req.topic)?;
        if !topic.subscribers.contains_key(&caller) {
            return Err(Refusal::new(
                Reason::AccessDenied,
                format!("`{caller}` is not a subscriber of topic `{}`", topic.name),
            )
            .into());
        }
        if req.ids.len() > 10_000 {
            return Err(Refusal::new(
                Reason::InvalidRequest,
                "acknowledge at most 10000 ids per call",
            )
            .into());
        }
        let ids = ack_id::open_all(
            &s.recorder.pseudonyms,
            &topic.name,
            caller.as_str(),
            &req.ids,
        )?;
        let acknowledged = s
            .bounded(s.store.ack(&topic.name, caller.as_str(), &ids))
            .await?;
        Ok(Response::new(pb::AckResponse { acknowledged }))
    }

    async fn list_dead_letters(
        &self,
        request: Request<pb::ListDeadLettersRequest>,
    ) -> Result<Response<pb::ListDeadLettersResponse>, Status> {
        let s = &self.inner;
        let caller = Caller::of(&request, HOW_TO_CALL)?;
        let req = request.into_inner();
        let (topic, sub) = s.dead_letter_target(&caller, &req.topic, &req.subscriber)?;
        let limit = if req.limit == 0 {
            100
        } else {
            req.limit.min(10_000)
        };
        let dead = s
            .bounded(s.store.dead_letters(&topic.name, sub.as_str(), limit))
            .await?;
        Ok(Response::new(pb::ListDeadLettersResponse {
            dead_letters: dead
                .into_iter()
                .map(|d| pb::DeadLetter {
                    event_id: d.event_id,
                    topic: topic.name.clone(),
                    subscriber: sub.to_string(),
                    attempts: d.attempts,
                    reason: d.reason,
                    dead_unix_micros: d.dead_unix_micros,
                    published_unix_micros: d.event.published_unix_micros,
                    event_type: d
                        .event
                        .type_url
                        .rsplit('/')
                        .next()
                        .unwrap_or_default()
                        .to_owned(),
                })
                .collect(),
        }))
    }

    async fn replay(
        &self,
        request: Request<pb::ReplayRequest>,
    ) -> Result<Response<pb::ReplayResponse>, Status> {
        let s = &self.inner;
        let caller = Caller::of(&request, HOW_TO_CALL)?;
        let req = request.into_inner();
        let (topic, sub) = s.dead_letter_target(&caller, &req.topic, &req.subscriber)?;
        // Recorded before the dead letters move: no entry, no replay.
        let mut trail = Inner::trail(&caller, REPLAY, &topic);
        trail.provider = sub.to_string();
        trail.event_id = req.event_ids.join(",");
        s.audit(&trail, Kind::DeadLettersReplayed, None).await?;
        let replayed = s
            .bounded(
                s.store
                    .replay(&topic.name, sub.as_str(), &req.event_ids, now_micros()),
            )
            .await?;
        tracing::info!(topic = %topic.name, subscriber = %sub, by = %caller, replayed, "dead letters replayed");
        if let Some(wake) = s.wake.get(&topic.name) {
            wake.send_modify(|n| *n = n.wrapping_add(1));
        }
        Ok(Response::new(pb::ReplayResponse { replayed }))
    }
}
