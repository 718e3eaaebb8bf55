//! The outbox (R11, R12): every change writes one typed event in its own transaction. The
//! closed set of kinds is [`EventKind`], one payload struct per kind; [`EventKind::record`]
//! is the one place where a kind becomes its stored name and JSON payload.

use serde::Serialize;

use super::error::Result;
use super::model::{Event, EventId, Group, GroupId, MemberRef, TenantId, UserKey, next_id};
use super::repo::Tx;

/// A change to a group, with what its followers need to know.
#[derive(Clone, Debug, PartialEq)]
pub enum EventKind {
    GroupCreated(GroupCreated),
    /// A settings change that kept the name.
    GroupUpdated(GroupUpdated),
    /// A settings change that renamed the group (R11: notifies every member).
    GroupRenamed(GroupUpdated),
    GroupDeleted(GroupDeleted),
    MembersAdded(MemberChange),
    MembersRemoved(MemberChange),
    MastersAdded(MemberChange),
    MastersRemoved(MemberChange),
    /// Members' expire time set or cleared (`expiry`).
    MembersExpiryChanged(ExpiryChange),
    FeatureDataPurged(FeatureDataPurged),
    /// The grace period after message was turned off ended: the owning services delete the
    /// group's message-room data (`grace`).
    MessageDataPurged(FeatureDataPurged),
    FeatureUsageReported(FeatureUsageReported),
    /// The directory deleted the tenant: its last event (of no group).
    TenantDeleted(TenantDeleted),
    /// The directory deleted a user (of no group; each group they left has its own
    /// `members.removed` before it).
    UserDeleted(UserDeleted),
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct UserDeleted {
    pub user: UserKey,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TenantDeleted {
    pub tenant: String,
    /// How many groups and users went with it (each group's deletion is an event before).
    pub groups: usize,
    pub users: usize,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct GroupCreated {
    pub group: String,
    pub kind: &'static str,
    pub masters: Vec<UserKey>,
    pub members: Vec<MemberRef>,
    pub excluded: Vec<Excluded>,
    pub origin: Origin,
}

/// A user left out of an external group at creation (R14).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Excluded {
    pub user: UserKey,
    pub reason: &'static str,
}

/// Where a new group came from.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Origin {
    /// CreateGroup.
    Created {},
    /// ConvertMessageRoom (R16): the room's resource name.
    ConvertedFrom { converted_from: String },
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct GroupUpdated {
    pub group: String,
    /// The fields of the update mask.
    pub fields: Vec<String>,
    pub previous_name: String,
    /// R11: the users to notify (a rename with `notify_all_members` on).
    pub notify: Vec<UserKey>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct GroupDeleted {
    pub group: String,
    pub kind: &'static str,
    /// The feature data deleted with the group (R12).
    pub purged: Vec<&'static str>,
    /// Every tenant the deletion reaches: the owner and each member company (R12).
    pub tenants: Vec<i64>,
    /// The groups it was nested in.
    pub removed_from: Vec<String>,
    /// R11: `[tenant, user]` pairs to notify.
    pub notify: Vec<[i64; 2]>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct MemberChange {
    pub group: String,
    pub members: Vec<MemberRef>,
    /// R11: the users the change concerns, when the group notifies all members.
    pub notify: Vec<UserKey>,
    pub detail: ChangeDetail,
}

/// Why members left, when no one asked for it.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(untagged)]
pub enum ChangeDetail {
    /// Asked for by a caller.
    Requested {},
    /// A user left a group because the directory changed (R18).
    UserLeft {
        cause: Departure,
        /// R05: the member who became master in place of the departed last master.
        last_master_replaced_by: Option<UserKey>,
        without_master: bool,
    },
    /// The directory deleted a team.
    TeamDeleted { cause: &'static str },
    /// Members whose expire time passed (`expiry`).
    Expired { cause: &'static str },
}

/// Why the directory took a user out of groups.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Departure {
    /// R18: out of every external group.
    ExternalPermissionRevoked,
    /// Out of every group.
    UserDeleted,
    /// Out of every group of other tenants: the user's tenant was deleted.
    TenantDeleted,
}

/// Members whose expire time changed, and the new one (microseconds; `None`: never).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ExpiryChange {
    pub group: String,
    pub members: Vec<MemberRef>,
    pub expire_time: Option<i64>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FeatureDataPurged {
    pub group: String,
    pub purged: Vec<PurgedFeature>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PurgedFeature {
    pub feature: &'static str,
    pub bytes: i64,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FeatureUsageReported {
    pub group: String,
    pub feature: &'static str,
    pub bytes: i64,
}

impl EventKind {
    /// The stored name of the kind.
    pub fn name(&self) -> &'static str {
        match self {
            EventKind::GroupCreated(_) => "group.created",
            EventKind::GroupUpdated(_) => "group.updated",
            EventKind::GroupRenamed(_) => "group.renamed",
            EventKind::GroupDeleted(_) => "group.deleted",
            EventKind::MembersAdded(_) => "members.added",
            EventKind::MembersRemoved(_) => "members.removed",
            EventKind::MastersAdded(_) => "masters.added",
            EventKind::MastersRemoved(_) => "masters.removed",
            EventKind::MembersExpiryChanged(_) => "members.expiry_changed",
            EventKind::FeatureDataPurged(_) => "feature_data.purged",
            EventKind::MessageDataPurged(_) => "message_data.purged",
            EventKind::FeatureUsageReported(_) => "feature_usage.reported",
            EventKind::TenantDeleted(_) => "tenant.deleted",
            EventKind::UserDeleted(_) => "user.deleted",
        }
    }

    fn payload(&self) -> serde_json::Result<String> {
        match self {
            EventKind::GroupCreated(p) => serde_json::to_string(p),
            EventKind::GroupUpdated(p) | EventKind::GroupRenamed(p) => serde_json::to_string(p),
            EventKind::GroupDeleted(p) => serde_json::to_string(p),
            EventKind::MembersAdded(p)
            | EventKind::MembersRemoved(p)
            | EventKind::MastersAdded(p)
            | EventKind::MastersRemoved(p) => serde_json::to_string(p),
            EventKind::MembersExpiryChanged(p) => serde_json::to_string(p),
            EventKind::FeatureDataPurged(p) | EventKind::MessageDataPurged(p) => {
                serde_json::to_string(p)
            }
            EventKind::FeatureUsageReported(p) => serde_json::to_string(p),
            EventKind::TenantDeleted(p) => serde_json::to_string(p),
            EventKind::UserDeleted(p) => serde_json::to_string(p),
        }
    }

    /// Whether the service writes the event on its own account, with no actor: what the clock
    /// made due (members whose expire time passed, message data past its grace period), even
    /// when a caller's change is the transaction that finds it due. Everything else is the
    /// caller's.
    pub fn on_own_account(&self) -> bool {
        match self {
            EventKind::MembersRemoved(change) => {
                matches!(change.detail, ChangeDetail::Expired { .. })
            }
            EventKind::MessageDataPurged(_) => true,
            EventKind::GroupCreated(_)
            | EventKind::GroupUpdated(_)
            | EventKind::GroupRenamed(_)
            | EventKind::GroupDeleted(_)
            | EventKind::MembersAdded(_)
            | EventKind::MastersAdded(_)
            | EventKind::MastersRemoved(_)
            | EventKind::MembersExpiryChanged(_)
            | EventKind::FeatureDataPurged(_)
            | EventKind::FeatureUsageReported(_)
            | EventKind::TenantDeleted(_)
            | EventKind::UserDeleted(_) => false,
        }
    }

    /// The event as the outbox stores it, of `tenant` and `group`.
    pub fn record(&self, tenant: TenantId, group: Option<GroupId>, now: i64) -> Event {
        Event {
            tenant,
            id: EventId(next_id()),
            seq: 0,
            group,
            kind: self.name().to_owned(),
            // Plain structs of strings and numbers always serialize.
            payload: self.payload().unwrap_or_default(),
            create_time: now,
            actor: String::new(),
            own_account: self.on_own_account(),
        }
    }
}

/// The actor of the transactions the service runs on its own account (the timers'): none.
pub const OWN_ACCOUNT: &str = "";

/// Writes `kind` for `group` to the outbox.
pub(crate) async fn emit(tx: &mut dyn Tx, group: &Group, kind: EventKind, now: i64) -> Result<()> {
    tx.insert_event(&kind.record(group.tenant, Some(group.id), now))
        .await
}

/// Writes `kind`, of no group, to the tenant's outbox.
pub(crate) async fn emit_for_tenant(
    tx: &mut dyn Tx,
    tenant: TenantId,
    kind: EventKind,
    now: i64,
) -> Result<()> {
    tx.insert_event(&kind.record(tenant, None, now)).await
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::domain::model::{TenantId, UserId};

    #[test]
    fn r11_member_changes_serialize_with_their_detail() {
        let user = UserKey {
            tenant: TenantId(1),
            user: UserId(2),
        };
        let change = MemberChange {
            group: "tenants/1/groups/3".into(),
            members: vec![MemberRef::User(user)],
            notify: vec![user],
            detail: ChangeDetail::UserLeft {
                cause: Departure::ExternalPermissionRevoked,
                last_master_replaced_by: None,
                without_master: true,
            },
        };
        let kind = EventKind::MembersRemoved(change);
        assert_eq!(kind.name(), "members.removed");
        let json: serde_json::Value = serde_json::from_str(&kind.payload().unwrap()).unwrap();
        assert_eq!(json["detail"]["cause"], "external_permission_revoked");
        assert_eq!(json["detail"]["without_master"], true);
        assert!(json["detail"]["last_master_replaced_by"].is_null());
        assert_eq!(json["notify"][0]["user"], 2);
        let requested = serde_json::to_value(ChangeDetail::Requested {}).unwrap();
        assert_eq!(requested, serde_json::json!({}));
    }
}
