//! Group Masters: AddMasters, RemoveMasters and R05 (a group keeps at least one Group
//! Master), decided in `keep_a_master` for every path that can take masters away.

use super::access::manage_membership;
use super::caller::Caller;
use super::error::{Error, Reason, Result, Violations};
use super::events::EventKind;
use super::limits::MAX_BATCH;
use super::members::{Admission, add_members_in, emit_change};
use super::model::*;
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

impl Service {
    pub async fn add_masters(
        &self,
        caller: &Caller,
        tenant: TenantId,
        group: GroupId,
        users: Vec<UserKey>,
    ) -> Result<MastersOutcome> {
        let users = master_batch(users)?;
        self.write("add_masters", caller, users, |tx, actor, users| {
            Box::pin(async move {
                let m = manage_membership(tx, actor, tenant, group).await?;
                let (unchanged, changed) = split_by_master(tx, tenant, group, users).await?;
                if changed.is_empty() {
                    return Err(Error::AlreadyExists {
                        reason: Reason::AlreadyMaster,
                        message: "every named user is already a Group Master".into(),
                    });
                }
                let now = now_micros();
                let added = add_members_in(tx, &m, &[], &changed, Admission::Added, now).await?;
                tx.touch_group(tenant, group, now).await?;
                if !added.added.is_empty() {
                    emit_change(tx, &m.group, EventKind::MembersAdded, &added.added, now).await?;
                }
                let promoted = as_members(&changed);
                emit_change(tx, &m.group, EventKind::MastersAdded, &promoted, now).await?;
                Ok(MastersOutcome { changed, unchanged })
            })
        })
        .await
    }

    pub async fn remove_masters(
        &self,
        caller: &Caller,
        tenant: TenantId,
        group: GroupId,
        users: Vec<UserKey>,
    ) -> Result<MastersOutcome> {
        let users = master_batch(users)?;
        self.write("remove_masters", caller, users, |tx, actor, users| {
            Box::pin(async move {
                let m = manage_membership(tx, actor, tenant, group).await?;
                let (changed, unchanged) = split_by_master(tx, tenant, group, users).await?;
                if changed.is_empty() {
                    return Err(Error::precondition(
                        Reason::NotAMaster,
                        "none of the named users is a Group Master",
                    ));
                }
                keep_a_master(tx, tenant, group, changed.len() as i64).await?;
                for u in &changed {
                    tx.set_master(tenant, group, *u, false).await?;
                }
                let now = now_micros();
                tx.touch_group(tenant, group, now).await?;
                let demoted = as_members(&changed);
                emit_change(tx, &m.group, EventKind::MastersRemoved, &demoted, now).await?;
                Ok(MastersOutcome { changed, unchanged })
            })
        })
        .await
    }
}
