//! External groups across companies: room conversion (R16), storage and usage (R19).
//! Creation rules (R13, R14) live with group creation, admission of members (R14, R15) with
//! membership, revocation (R18) with the directory.

use super::caller::{Actor, Caller};
use super::error::{Error, Reason, Result, Violations};
use super::events::Origin;
use super::groups::{Created, GroupSpec, NewGroup, insert_new_group, validate_spec};
use super::idempotency::{self, RequestKey};
use super::model::*;
use super::names::RoomName;
use super::operation::Operation;
use super::repo::Tx;
use super::service::Service;

#[derive(Clone, Debug, serde::Serialize)]
pub struct ConvertRoom {
    pub tenant: TenantId,
    pub room: RoomId,
    pub display_name: String,
    pub description: String,
    #[serde(skip)]
    pub features: Features,
    #[serde(skip)]
    pub request_id: Option<String>,
}

/// A tenant's groups and storage against its plan and quota.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TenantUsage {
    pub tenant: TenantId,
    pub groups_used: i64,
    pub groups_limit: i64,
    pub storage_used_bytes: i64,
    /// 0: no quota.
    pub storage_quota_bytes: i64,
    /// (groups, storage bytes) of internal and of external groups.
    pub internal: (i64, i64),
    pub external: (i64, i64),
}

impl TenantUsage {
    pub fn over_quota(&self) -> bool {
        self.storage_quota_bytes > 0 && self.storage_used_bytes > self.storage_quota_bytes
    }
}

pub(crate) fn over_quota(tenant: &Tenant) -> bool {
    tenant.storage_quota_bytes > 0 && tenant.storage_used_bytes > tenant.storage_quota_bytes
}

impl Service {
    /// R16: converts a general message room into an external group, in one transaction; a
    /// failure leaves the room as it was.
    pub async fn convert_room(&self, caller: &Caller, cmd: ConvertRoom) -> Result<Created> {
        let spec = GroupSpec {
            display_name: cmd.display_name.clone(),
            description: cmd.description.clone(),
            photo_uri: String::new(),
            kind: GroupKind::External,
            is_public: false,
            features: cmd.features,
            notify_all_members: false,
            master_manages_features: false,
            external_key: None,
            mailing_list: None,
        };
        let mut v = Violations::default();
        validate_spec(&spec, "", &mut v);
        v.finish()?;
        let content = format!(
            "{:?}|{}",
            cmd.features,
            serde_json::to_string(&cmd).unwrap_or_default()
        );
        let fingerprint = idempotency::fingerprint("convert", caller, &content);
        let args = (cmd, spec, fingerprint);
        self.write(
            Operation::ConvertRoom,
            caller,
            args,
            |tx, actor, (cmd, spec, fp)| {
                Box::pin(async move { convert_in(tx, actor, cmd, spec, fp).await })
            },
        )
        .await
    }

    /// R19: groups and storage of a tenant, internal and external. Admins and services of
    /// the tenant.
    pub async fn tenant_usage(&self, caller: &Caller, tenant: TenantId) -> Result<TenantUsage> {
        self.read(Operation::TenantUsage, caller, (), |tx, actor, ()| {
            Box::pin(async move {
                if actor.tenant() != tenant {
                    return Err(Error::NotFound("tenant"));
                }
                if !actor.is_admin_of(tenant) {
                    return Err(Error::permission(
                        Reason::NotGroupManager,
                        "admins and services of the tenant only",
                    ));
                }
                let t = tx
                    .get_tenant(tenant)
                    .await?
                    .ok_or(Error::NotFound("tenant"))?;
                let [internal, external] = tx.usage_by_kind(tenant).await?;
                Ok(TenantUsage {
                    tenant,
                    groups_used: t.group_count,
                    groups_limit: t.plan.group_limit(),
                    storage_used_bytes: t.storage_used_bytes,
                    storage_quota_bytes: t.storage_quota_bytes,
                    internal,
                    external,
                })
            })
        })
        .await
    }
}

fn already_converted() -> Error {
    Error::precondition(
        Reason::RoomAlreadyConverted,
        "the room was converted already",
    )
}

/// R16 in one transaction: the converting user must be in the room; the room becomes an
/// external group once; a retry with the conversion's request id gets its group again.
async fn convert_in(
    tx: &mut dyn Tx,
    actor: &Actor,
    cmd: &ConvertRoom,
    spec: &GroupSpec,
    fingerprint: &str,
) -> Result<Created> {
    let Some(me) = actor.user_key() else {
        return Err(Error::permission(
            Reason::UserCallerRequired,
            "a user converts a room",
        ));
    };
    let missing = || Error::NotFound("message room");
    if me.tenant != cmd.tenant {
        return Err(missing());
    }
    let room = tx
        .get_room(cmd.tenant, cmd.room)
        .await?
        .ok_or_else(missing)?;
    // A room one is not in answers as a missing one.
    if !room.members.contains(&me) {
        return Err(missing());
    }
    let request = cmd
        .request_id
        .as_deref()
        .map(|id| RequestKey { id, fingerprint });
    if let Some(converted) = room.converted_group {
        // Only a retry of the conversion that did it gets past a converted room.
        let replay = match request {
            Some(key) => tx.get_create_request(cmd.tenant, key.id).await?,
            None => None,
        };
        if replay.is_none_or(|(_, group)| group != converted) {
            return Err(already_converted());
        }
    }
    let tenant = tx
        .get_tenant(cmd.tenant)
        .await?
        .ok_or(Error::NotFound("tenant"))?;
    let members: Vec<MemberRef> = room
        .members
        .iter()
        .filter(|u| **u != me)
        .map(|u| MemberRef::User(*u))
        .collect();
    let new = NewGroup {
        by: actor,
        tenant: &tenant,
        spec,
        masters: &[me],
        members: &members,
        request,
        origin: Origin::ConvertedFrom {
            converted_from: RoomName {
                tenant: room.tenant,
                room: room.id,
            }
            .to_string(),
        },
    };
    let created = insert_new_group(tx, new).await?;
    mark_converted(tx, &room, created).await
}

/// Read again: a concurrent retry of this conversion may have committed while the request id
/// was being claimed (PostgreSQL waits there).
async fn mark_converted(tx: &mut dyn Tx, room: &MessageRoom, created: Created) -> Result<Created> {
    let now = tx
        .get_room(room.tenant, room.id)
        .await?
        .ok_or(Error::NotFound("message room"))?;
    match now.converted_group {
        Some(g) if g == created.group.id => Ok(created),
        Some(_) => Err(already_converted()),
        None if tx
            .mark_room_converted(room.tenant, room.id, created.group.id)
            .await? =>
        {
            Ok(created)
        }
        None => Err(already_converted()),
    }
}
