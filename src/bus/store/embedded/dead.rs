//! Dead letters: listing a subscription's, and replaying them as pending
//! rows again.

use prost::Message;
use redb::{ReadableDatabase, ReadableTable};

use super::{seq_of, DeadRecord, Inner, DEAD, EVENTS, PENDING};
use crate::bus::store::{BusError, DeadLetter};

impl Inner {
    pub(super) fn dead_letters(
        &self,
        topic: &str,
        sub: &str,
        limit: u32,
    ) -> Result<Vec<DeadLetter>, BusError> {
        let txn = self.db.begin_read().map_err(|e| self.failed(e))?;
        let dead = txn.open_table(DEAD).map_err(|e| self.failed(e))?;
        let events = txn.open_table(EVENTS).map_err(|e| self.failed(e))?;
        let mut out = Vec::new();
        for row in dead
            .range((topic, sub, 0u64)..=(topic, sub, u64::MAX))
            .map_err(|e| self.failed(e))?
            .take(limit as usize)
        {
            let (key, value) = row.map_err(|e| self.failed(e))?;
            let seq = key.value().2;
            let record = DeadRecord::decode(value.value()).map_err(|e| {
                BusError::Unavailable(format!("bus store: dead letter {seq} is damaged: {e}"))
            })?;
            out.push(DeadLetter {
                event_id: seq.to_string(),
                attempts: record.attempts,
                reason: record.reason,
                dead_unix_micros: record.dead_unix_micros,
                event: self.event(&events, topic, seq)?,
            });
        }
        Ok(out)
    }

    pub(super) fn replay(&self, topic: &str, sub: &str, ids: &[String]) -> Result<u32, BusError> {
        let wanted = ids
            .iter()
            .map(|id| seq_of(id))
            .collect::<Result<Vec<_>, _>>()?;
        let txn = self.write(true)?;
        let mut done = 0;
        {
            let mut dead = txn.open_table(DEAD).map_err(|e| self.failed(e))?;
            let mut pending = txn.open_table(PENDING).map_err(|e| self.failed(e))?;
            let seqs: Vec<u64> = if wanted.is_empty() {
                let mut all = Vec::new();
                for row in dead
                    .range((topic, sub, 0u64)..=(topic, sub, u64::MAX))
                    .map_err(|e| self.failed(e))?
                {
                    all.push(row.map_err(|e| self.failed(e))?.0.value().2);
                }
                all
            } else {
                wanted
            };
            for seq in seqs {
                if dead
                    .remove((topic, sub, seq))
                    .map_err(|e| self.failed(e))?
                    .is_some()
                {
                    pending
                        .insert((topic, sub, seq), (0u32, 0i64))
                        .map_err(|e| self.failed(e))?;
                    done += 1;
                }
            }
        }
        txn.commit().map_err(|e| self.failed(e))?;
        Ok(done)
    }
}
