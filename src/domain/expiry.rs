//! Expiring members: a member added with an expire time counts nowhere once the transaction's
//! instant (`Tx::now`) reaches it. Every statement over member rows leaves such rows out, so
//! the rule holds before any row is deleted; the cache's answers end at the next expiry
//! (`Service::cache_generation`). The rows themselves are deleted, with the MembersRemoved
//! event and their users' R03 slots freed, before any membership change of their group and by
//! the sweeper. Group Masters never expire (R05 cannot be broken by the clock).

use super::error::Result;
use super::events::{ChangeDetail, EventKind, emit};
use super::members::member_change;
use super::model::*;
use super::repo::Tx;
use super::service::{Mode, Service, finish};

/// The cause recorded on the MembersRemoved event of members that expired.
pub const EXPIRED: &str = "membership_expired";

/// Groups the sweeper visits in one round.
const SWEEP_BATCH: i64 = 100;

/// Deletes the group's expired member rows (already absent from every answer), frees their
/// users' slots and writes the MembersRemoved event. The group is locked by the caller.
pub(crate) async fn drop_expired(tx: &mut dyn Tx, group: &Group) -> Result<usize> {
    let now = tx.now();
    let expired = tx.expired_members(group.tenant, group.id, now).await?;
    if expired.is_empty() {
        return Ok(0);
    }
    let mut released = Vec::new();
    for m in &expired {
        tx.delete_member(group.tenant, group.id, *m).await?;
        if let MemberRef::User(u) = m {
            released.push(*u);
        }
    }
    tx.release_user_group_slots(&released).await?;
    tx.touch_group(group.tenant, group.id, now).await?;
    let detail = ChangeDetail::Expired { cause: EXPIRED };
    let change = member_change(tx, group, &expired, detail).await?;
    emit(tx, group, EventKind::MembersRemoved(change), now).await?;
    Ok(expired.len())
}

impl Service {
    /// The work the clock brings, as the server's timers run it: expired members swept, due
    /// message purges run (`grace`).
    pub async fn run_timers(&self) -> Result<()> {
        self.sweep_expired_members().await?;
        self.purge_due_messages().await?;
        Ok(())
    }

    /// One sweep: deletes the expired members of up to `SWEEP_BATCH` groups, one transaction
    /// per group. Returns how many members went.
    pub async fn sweep_expired_members(&self) -> Result<usize> {
        let mut t = self.db().begin(Mode::Read).await?;
        let now = t.now();
        let res = t.groups_with_expired_members(now, SWEEP_BATCH).await;
        let due = finish(self.db(), t, Mode::Read, "", res).await?;
        let mut swept = 0;
        for (tenant, id) in due {
            let mut t = self.db().begin(Mode::Write).await?;
            let res = async {
                match t.lock_group(tenant, id).await? {
                    Some(group) => drop_expired(&mut *t, &group).await,
                    None => Ok(0),
                }
            }
            .await;
            swept += finish(self.db(), t, Mode::Write, SWEEPER, res).await?;
        }
        Ok(swept)
    }
}

/// The actor the sweeper's events name.
pub const SWEEPER: &str = "group-service/expiry";
