//! Expiring members: a member added with an expire time counts nowhere once the transaction's
//! instant (`Tx::now`) reaches it. Every statement over member rows leaves such rows out, so
//! the rule holds before any row is deleted; the cache's answers end at the next expiry
//! (`Service::cache_generation`). The rows themselves are deleted, with the MembersRemoved
//! event and their users' R03 slots freed, before any membership change of their group and by
//! the sweeper. Group Masters never expire (R05 cannot be broken by the clock).

use super::access::manage_membership;
use super::caller::{Actor, Caller};
use super::error::{Error, Reason, Result};
use super::events::{ChangeDetail, EventKind, ExpiryChange, emit};
use super::members::{MemberBatch, member_change, with_keyed_groups};
use super::model::*;
use super::operation::Operation;
use super::repo::Tx;
use super::service::{Mode, Service};

/// The cause recorded on the MembersRemoved event of members that expired.
pub const EXPIRED: &str = "membership_expired";

/// Groups the sweeper visits in one round.
const SWEEP_BATCH: i64 = 100;

/// An expire time a call gives must be after the transaction's instant.
pub(crate) fn check_expire_time(expire_time: Option<i64>, now: i64) -> Result<()> {
    if expire_time.is_some_and(|e| e <= now) {
        return Err(Error::invalid("expire_time", "must be in the future"));
    }
    Ok(())
}

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

/// What SetMembersExpiry did: the members whose expiry it set, and those that were not
/// members.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExpiryOutcome {
    pub updated: Vec<MemberRef>,
    pub not_members: Vec<MemberRef>,
}

impl Service {
    /// Sets (or, with `None`, clears) the expire time of direct members, all or nothing. Group
    /// Masters never expire (R05): naming one fails. Members that are not there are reported;
    /// when none of the named members is there the call fails.
    pub async fn set_members_expiry(
        &self,
        caller: &Caller,
        mut batch: MemberBatch,
    ) -> Result<ExpiryOutcome> {
        batch.validate()?;
        self.write(
            Operation::SetMembersExpiry,
            caller,
            batch,
            |tx, actor, batch| Box::pin(set_expiry(tx, actor, batch)),
        )
        .await
    }

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
        let due = self
            .background(Operation::FindExpiredMembers, Mode::Read, (), |tx, ()| {
                Box::pin(async move {
                    let now = tx.now();
                    tx.groups_with_expired_members(now, SWEEP_BATCH).await
                })
            })
            .await?;
        let mut swept = 0;
        for group in due {
            swept += self
                .background(
                    Operation::SweepExpiredMembers,
                    Mode::Write,
                    group,
                    |tx, &(tenant, id)| {
                        Box::pin(async move {
                            match tx.lock_group(tenant, id).await? {
                                Some(group) => drop_expired(tx, &group).await,
                                None => Ok(0),
                            }
                        })
                    },
                )
                .await?;
        }
        Ok(swept)
    }
}

async fn set_expiry(tx: &mut dyn Tx, actor: &Actor, batch: &MemberBatch) -> Result<ExpiryOutcome> {
    let now = tx.now();
    check_expire_time(batch.expire_time, now)?;
    let m = manage_membership(tx, actor, batch.tenant, &batch.group).await?;
    let group = &m.group;
    let members =
        with_keyed_groups(tx, actor, batch.tenant, &batch.members, &batch.group_keys).await?;
    let mut out = ExpiryOutcome::default();
    for member in members {
        if let MemberRef::User(u) = member
            && batch.expire_time.is_some()
            && tx.user_member(group.tenant, group.id, u).await? == Some(true)
        {
            return Err(Error::precondition(
                Reason::MastersNeverExpire,
                "Group Masters never expire; make them plain members first",
            ));
        }
        if tx
            .set_member_expiry(group.tenant, group.id, member, batch.expire_time)
            .await?
        {
            out.updated.push(member);
        } else {
            out.not_members.push(member);
        }
    }
    if out.updated.is_empty() {
        return Err(Error::precondition(
            Reason::NotAMember,
            "none of the named members is a member",
        ));
    }
    tx.touch_group(group.tenant, group.id, now).await?;
    let change = ExpiryChange {
        group: group.resource_name(),
        members: out.updated.clone(),
        expire_time: batch.expire_time,
    };
    emit(tx, group, EventKind::MembersExpiryChanged(change), now).await?;
    Ok(out)
}
