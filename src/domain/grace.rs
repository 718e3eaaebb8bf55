//! The message grace period (the product's rule: the data of a group whose message is turned
//! off is purged after 30 days; turning message back on within them keeps it). Turning message
//! off records when the purge is due (`Group::message_purge_time`, that instant plus the grace
//! period the server is configured with); turning it back on before then clears it. At that
//! time the purge runs: the server's timers, or a change that turns message back on too late,
//! zero the message-room features' usage and write a `message_data.purged` event, which tells
//! the owning services to delete the data.

use std::time::Duration;

use super::error::Result;
use super::events::{EventKind, FeatureDataPurged, PurgedFeature, emit};
use super::features::Feature;
use super::model::*;
use super::operation::Operation;
use super::repo::Tx;
use super::service::{Mode, Service};

/// The product's grace period.
pub const DEFAULT_MESSAGE_GRACE: Duration = Duration::from_secs(30 * 24 * 3600);

/// Groups purged in one round of the timers.
const PURGE_BATCH: i64 = 100;

/// R08's message switch as a change decides it: `before` as stored, `group` as it will be.
/// Turning message off starts the grace period; turning it on ends it, purging first when it
/// has already run out. Returns whether the data was purged.
pub(crate) async fn follow_message_switch(
    tx: &mut dyn Tx,
    before: &Group,
    group: &mut Group,
    grace: Duration,
) -> Result<bool> {
    let now = tx.now();
    match (before.features.message, group.features.message) {
        (true, false) => {
            let grace = i64::try_from(grace.as_micros()).unwrap_or(i64::MAX);
            group.message_purge_time = Some(now.saturating_add(grace));
            Ok(false)
        }
        (false, true) => {
            let due = group.message_purge_time.take();
            match due {
                Some(due) if due <= now => {
                    purge(tx, group, now).await?;
                    Ok(true)
                }
                _ => Ok(false),
            }
        }
        _ => Ok(false),
    }
}

/// Zeroes the usage of every message-room feature (in `group` too, which the caller stores)
/// and writes the purge event. The caller clears `message_purge_time`.
async fn purge(tx: &mut dyn Tx, group: &mut Group, now: i64) -> Result<()> {
    let usage = tx.feature_usage(group.tenant, group.id).await?;
    let mut purged = Vec::new();
    for f in Feature::ALL {
        let bytes = usage
            .iter()
            .find(|(name, _)| name == f.as_str())
            .map_or(0, |(_, b)| *b);
        if bytes > 0 {
            tx.set_feature_usage(group.tenant, group.id, f.as_str(), 0, now)
                .await?;
            tx.add_storage(group.tenant, group.id, -bytes).await?;
            group.storage_used_bytes = (group.storage_used_bytes - bytes).max(0);
        }
        purged.push(PurgedFeature {
            feature: f.as_str(),
            bytes: bytes.max(0),
        });
    }
    let kind = EventKind::MessageDataPurged(FeatureDataPurged {
        group: group.resource_name(),
        purged,
    });
    emit(tx, group, kind, now).await
}

impl Service {
    /// Runs the purges that are due, up to `PURGE_BATCH` groups, one transaction each.
    /// Returns how many groups were purged.
    pub async fn purge_due_messages(&self) -> Result<usize> {
        let due = self
            .background(Operation::FindDueMessagePurges, Mode::Read, (), |tx, ()| {
                Box::pin(async move {
                    let now = tx.now();
                    tx.groups_due_for_purge(now, PURGE_BATCH).await
                })
            })
            .await?;
        let mut purged = 0;
        for group in due {
            purged += self
                .background(
                    Operation::PurgeMessageData,
                    Mode::Write,
                    group,
                    |t, &(tenant, id)| {
                        Box::pin(async move {
                            let now = t.now();
                            let Some(mut group) = t.lock_group(tenant, id).await? else {
                                return Ok(0);
                            };
                            // Read again under the lock: message may have come back on meanwhile.
                            match group.message_purge_time {
                                Some(due) if due <= now && !group.features.message => {}
                                _ => return Ok(0),
                            }
                            let before = group.clone();
                            purge(t, &mut group, now).await?;
                            group.message_purge_time = None;
                            group.version += 1;
                            group.update_time = now;
                            t.update_group(&before, &group).await?;
                            Ok(1)
                        })
                    },
                )
                .await?;
        }
        Ok(purged)
    }
}
