//! External groups across companies: room conversion (R16), storage and usage (R19).
//! Creation rules (R13, R14) live with group creation, admission of members (R14, R15) with
//! membership, revocation (R18) with the directory.

use serde_json::json;

use super::caller::Caller;
use super::error::Violations;
use super::error::{Error, Reason, Result};
use super::groups::{Created, GroupSpec, MemberRef, insert_new_group, validate_spec};
use super::model::*;
use super::{Service, request_fingerprint};

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
        let fingerprint = request_fingerprint("convert", caller, &content);
        let caller = caller.clone();
        self.store
            .write(move |tx| {
                let (caller, cmd, spec, fingerprint) = (caller.clone(), cmd.clone(), spec.clone(), fingerprint.clone());
                Box::pin(async move {
                    let actor = caller.resolve(tx).await?;
                    let Some(me) = actor.user_key() else {
                        return Err(Error::permission(Reason::UserCallerRequired, "a user converts a room"));
                    };
                    if me.tenant != cmd.tenant {
                        return Err(Error::NotFound("message room"));
                    }
                    let room = tx.get_room(cmd.tenant, cmd.room).await?.ok_or(Error::NotFound("message room"))?;
                    // A room one is not in answers as a missing one.
                    if !room.members.contains(&me) {
                        return Err(Error::NotFound("message room"));
                    }
                    let request = cmd.request_id.as_deref().map(|id| (id, fingerprint.as_str()));
                    if let Some(converted) = room.converted_group {
                        // Only a retry of the conversion that did it gets past a converted room.
                        let replay = match request {
                            Some((id, _)) => tx.get_create_request(cmd.tenant, id).await?,
                            None => None,
                        };
                        if replay.is_none_or(|(_, group)| group != converted) {
                            return Err(Error::precondition(Reason::RoomAlreadyConverted, "the room was converted already"));
                        }
                    }
                    let tenant = tx.get_tenant(cmd.tenant).await?.ok_or(Error::NotFound("tenant"))?;
                    let members: Vec<MemberRef> = room.members.iter().filter(|u| **u != me).map(|u| MemberRef::User(*u)).collect();
                    let created = insert_new_group(
                        tx,
                        &tenant,
                        &spec,
                        &[me],
                        &members,
                        request,
                        json!({"converted_from": format!("tenants/{}/rooms/{}", room.tenant, room.id)}),
                    )
                    .await?;
                    // Read again: a concurrent retry of this conversion may have committed while
                    // the request id was being claimed (PostgreSQL waits there).
                    let now = tx.get_room(room.tenant, room.id).await?.ok_or(Error::NotFound("message room"))?;
                    match now.converted_group {
                        Some(g) if g == created.group.id => Ok(created),
                        Some(_) => Err(Error::precondition(Reason::RoomAlreadyConverted, "the room was converted already")),
                        None if tx.mark_room_converted(room.tenant, room.id, created.group.id).await? => Ok(created),
                        None => Err(Error::precondition(Reason::RoomAlreadyConverted, "the room was converted already")),
                    }
                })
            })
            .await
    }

    /// R19: groups and storage of a tenant, internal and external. Admins and services of
    /// the tenant.
    pub async fn tenant_usage(&self, caller: &Caller, tenant: TenantId) -> Result<TenantUsage> {
        let caller = caller.clone();
        self.store
            .read(move |tx| {
                let caller = caller.clone();
                Box::pin(async move {
                    let actor = caller.resolve(tx).await?;
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
