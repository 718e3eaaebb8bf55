//! Group Masters: AddMasters, RemoveMasters and R05 (a group keeps at least one Group
//! Master), decided in `keep_a_master` for every path that can take masters away.

use super::access::{Managed, manage_membership};
use super::caller::{Actor, Caller};
use super::error::{Error, Reason, Result, Violations};
use super::events::EventKind;
use super::limits::MAX_BATCH;
use super::members::{Admission, add_members_in, emit_change};
use super::model::*;
use super::names::GroupPath;
use super::operation::Operation;
use super::repo::Tx;
use super::service::Service;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MastersOutcome {
    pub changed: Vec<UserKey>,
    pub unchanged: Vec<UserKey>,
}

/// R05: taking `removing` masters away must leave the group at least one.
pub(crate) async fn keep_a_master(
    tx: &mut dyn Tx,
    tenant: TenantId,
    group: GroupId,
    removing: i64,
) -> Result<()> {
    if removing > 0 && tx.count_masters(tenant, group).await? <= removing {
        return Err(Error::precondition(
            Reason::LastMaster,
            "a group keeps at least one Group Master",
        ));
    }
    Ok(())
}

fn master_batch(mut users: Vec<UserKey>) -> Result<Vec<UserKey>> {
    let mut v = Violations::default();
    v.check(!users.is_empty(), "users", || {
        "name at least one user".into()
    });
    v.check(users.len() <= MAX_BATCH, "users", || {
        format!("at most {MAX_BATCH} users in one call")
    });
    v.finish()?;
    users.sort();
    users.dedup();
    Ok(users)
}

/// Splits `users` into those that are masters of the group and those that are not.
async fn split_by_master(
    tx: &mut dyn Tx,
    tenant: TenantId,
    group: GroupId,
    users: &[UserKey],
) -> Result<(Vec<UserKey>, Vec<UserKey>)> {
    let (mut masters, mut others) = (Vec::new(), Vec::new());
    for u in users {
        if tx.user_member(tenant, group, *u).await? == Some(true) {
            masters.push(*u);
        } else {
            others.push(*u);
        }
    }
    Ok((masters, others))
}

fn as_members(users: &[UserKey]) -> Vec<MemberRef> {
    users.iter().map(|u| MemberRef::User(*u)).collect()
}

/// A masters call on a group the actor may manage: the users split into those that are
/// masters and those that are not.
async fn start(
    tx: &mut dyn Tx,
    actor: &Actor,
    name: &GroupPath,
    users: &[UserKey],
) -> Result<(Managed, Vec<UserKey>, Vec<UserKey>)> {
    let m = manage_membership(tx, actor, name.tenant, &name.group).await?;
    let (masters, others) = split_by_master(tx, name.tenant, m.group.id, users).await?;
    Ok((m, masters, others))
}

async fn promote(
    tx: &mut dyn Tx,
    actor: &Actor,
    name: &GroupPath,
    users: &[UserKey],
) -> Result<MastersOutcome> {
    let (managed, unchanged, changed) = start(tx, actor, name, users).await?;
    if changed.is_empty() {
        return Err(Error::AlreadyExists {
            reason: Reason::AlreadyMaster,
            message: "every named user is already a Group Master".into(),
        });
    }
    let now = tx.now();
    let added = add_members_in(tx, &managed, &[], &changed, Admission::Added, None, now).await?;
    let group = &managed.group;
    tx.touch_group(group.tenant, group.id, now).await?;
    if !added.added.is_empty() {
        emit_change(tx, group, EventKind::MembersAdded, &added.added, now).await?;
    }
    emit_change(
        tx,
        group,
        EventKind::MastersAdded,
        &as_members(&changed),
        now,
    )
    .await?;
    Ok(MastersOutcome { changed, unchanged })
}

async fn demote(
    tx: &mut dyn Tx,
    actor: &Actor,
    name: &GroupPath,
    users: &[UserKey],
) -> Result<MastersOutcome> {
    let (Managed { group, .. }, changed, unchanged) = start(tx, actor, name, users).await?;
    if changed.is_empty() {
        return Err(Error::precondition(
            Reason::NotAMaster,
            "none of the named users is a Group Master",
        ));
    }
    keep_a_master(tx, group.tenant, group.id, changed.len() as i64).await?;
    for u in &changed {
        tx.set_master(group.tenant, group.id, *u, false).await?;
    }
    let now = tx.now();
    tx.touch_group(group.tenant, group.id, now).await?;
    emit_change(
        tx,
        &group,
        EventKind::MastersRemoved,
        &as_members(&changed),
        now,
    )
    .await?;
    Ok(MastersOutcome { changed, unchanged })
}

/// What a masters call does to the named users.
#[derive(Clone, Copy)]
enum Change {
    Promote,
    Demote,
}

impl Service {
    pub async fn add_masters(
        &self,
        caller: &Caller,
        tenant: TenantId,
        group: GroupRef,
        users: Vec<UserKey>,
    ) -> Result<MastersOutcome> {
        let name = GroupPath { tenant, group };
        self.change_masters(caller, name, users, Change::Promote)
            .await
    }

    /// R05: the last Group Master stays.
    pub async fn remove_masters(
        &self,
        caller: &Caller,
        tenant: TenantId,
        group: GroupRef,
        users: Vec<UserKey>,
    ) -> Result<MastersOutcome> {
        let name = GroupPath { tenant, group };
        self.change_masters(caller, name, users, Change::Demote)
            .await
    }

    async fn change_masters(
        &self,
        caller: &Caller,
        name: GroupPath,
        users: Vec<UserKey>,
        change: Change,
    ) -> Result<MastersOutcome> {
        let users = master_batch(users)?;
        let op = match change {
            Change::Promote => Operation::AddMasters,
            Change::Demote => Operation::RemoveMasters,
        };
        self.write(op, caller, (name, users), |tx, actor, (name, users)| {
            Box::pin(async move {
                match change {
                    Change::Promote => promote(tx, actor, name, users).await,
                    Change::Demote => demote(tx, actor, name, users).await,
                }
            })
        })
        .await
    }
}
