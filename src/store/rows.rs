//! Row structs (Diesel's view of the tables) and their conversions to domain types.
//! Row structs are not domain types: text enums are parsed here, and an unknown value is an
//! internal error, never a guess. Every text or number the database stores for a domain enum
//! is defined here; SQL elsewhere interpolates these constants.

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Bool, Integer, Nullable, Text};

use super::schema::*;
use crate::domain::error::{Error, Result};
use crate::domain::model::*;
use crate::domain::repo::MemberRow;

fn bad_value(column: &str, value: &str) -> Error {
    Error::Internal(format!("unexpected value {value:?} in column {column}"))
}

pub const PLAN_FREE: &str = "FREE";
pub const PLAN_PAID: &str = "PAID";
pub const GROUP_KIND_INTERNAL: &str = "INTERNAL";
pub const GROUP_KIND_EXTERNAL: &str = "EXTERNAL";
pub const USER_KIND_WORKS: &str = "WORKS";
pub const USER_KIND_LINE: &str = "LINE";

/// How `list_members` numbers member kinds in SQL; it orders by this number.
pub const MEMBER_KIND_USER: i32 = 1;
pub const MEMBER_KIND_TEAM: i32 = 2;
pub const MEMBER_KIND_GROUP: i32 = 3;

pub fn plan_text(plan: Plan) -> &'static str {
    match plan {
        Plan::Free => PLAN_FREE,
        Plan::Paid => PLAN_PAID,
    }
}

pub fn group_creation_text(value: GroupCreation) -> &'static str {
    match value {
        GroupCreation::AdminsOnly => "ADMINS_ONLY",
        GroupCreation::AllMembers => "ALL_MEMBERS",
    }
}

pub fn user_kind_text(kind: UserKind) -> &'static str {
    match kind {
        UserKind::Works => USER_KIND_WORKS,
        UserKind::Line => USER_KIND_LINE,
    }
}

pub fn group_kind_text(kind: GroupKind) -> &'static str {
    match kind {
        GroupKind::Internal => GROUP_KIND_INTERNAL,
        GroupKind::External => GROUP_KIND_EXTERNAL,
    }
}

pub fn group_kind_of_text(text: &str) -> Result<GroupKind> {
    match text {
        GROUP_KIND_INTERNAL => Ok(GroupKind::Internal),
        GROUP_KIND_EXTERNAL => Ok(GroupKind::External),
        other => Err(bad_value("groups.kind", other)),
    }
}

pub fn member_kind_number(kind: MemberKind) -> i32 {
    match kind {
        MemberKind::User => MEMBER_KIND_USER,
        MemberKind::Team => MEMBER_KIND_TEAM,
        MemberKind::Group => MEMBER_KIND_GROUP,
    }
}

/// The member kind `list_members` numbered `n`; an unknown number is an error.
pub fn member_kind_of_number(n: i32) -> Result<MemberKind> {
    match n {
        MEMBER_KIND_USER => Ok(MemberKind::User),
        MEMBER_KIND_TEAM => Ok(MemberKind::Team),
        MEMBER_KIND_GROUP => Ok(MemberKind::Group),
        other => Err(bad_value("member kind", &other.to_string())),
    }
}

#[derive(Queryable, Selectable, Insertable)]
#[diesel(table_name = tenants)]
pub struct TenantRow {
    pub tenant_id: i64,
    pub display_name: String,
    pub plan: String,
    pub core_enabled: bool,
    pub group_creation: String,
    pub masters_may_manage_settings: bool,
    pub storage_quota_bytes: i64,
    pub storage_used_bytes: i64,
    pub group_count: i64,
    pub create_time: i64,
    pub update_time: i64,
}

impl TenantRow {
    pub fn new(t: &Tenant, now: i64) -> Self {
        TenantRow {
            tenant_id: t.id.0,
            display_name: t.display_name.clone(),
            plan: plan_text(t.plan).into(),
            core_enabled: t.core_enabled,
            group_creation: group_creation_text(t.group_creation).into(),
            masters_may_manage_settings: t.masters_may_manage_settings,
            storage_quota_bytes: t.storage_quota_bytes,
            storage_used_bytes: 0,
            group_count: 0,
            create_time: now,
            update_time: now,
        }
    }
}

impl TryFrom<TenantRow> for Tenant {
    type Error = Error;
    fn try_from(r: TenantRow) -> Result<Self> {
        Ok(Tenant {
            id: TenantId(r.tenant_id),
            display_name: r.display_name,
            plan: match r.plan.as_str() {
                PLAN_FREE => Plan::Free,
                PLAN_PAID => Plan::Paid,
                other => return Err(bad_value("tenants.plan", other)),
            },
            core_enabled: r.core_enabled,
            group_creation: match r.group_creation.as_str() {
                "ADMINS_ONLY" => GroupCreation::AdminsOnly,
                "ALL_MEMBERS" => GroupCreation::AllMembers,
                other => return Err(bad_value("tenants.group_creation", other)),
            },
            masters_may_manage_settings: r.masters_may_manage_settings,
            storage_quota_bytes: r.storage_quota_bytes,
            storage_used_bytes: r.storage_used_bytes,
            group_count: r.group_count,
        })
    }
}

#[derive(Queryable, Selectable, Insertable)]
#[diesel(table_name = users)]
pub struct UserRow {
    pub tenant_id: i64,
    pub user_id: i64,
    pub email: String,
    pub display_name: String,
    pub is_admin: bool,
    pub external_messaging_allowed: bool,
    pub kind: String,
}

impl From<&User> for UserRow {
    fn from(u: &User) -> Self {
        UserRow {
            tenant_id: u.key.tenant.0,
            user_id: u.key.user.0,
            email: u.email.clone(),
            display_name: u.display_name.clone(),
            is_admin: u.is_admin,
            external_messaging_allowed: u.external_messaging_allowed,
            kind: user_kind_text(u.kind).into(),
        }
    }
}

impl TryFrom<UserRow> for User {
    type Error = Error;
    fn try_from(r: UserRow) -> Result<Self> {
        Ok(User {
            key: UserKey {
                tenant: TenantId(r.tenant_id),
                user: UserId(r.user_id),
            },
            email: r.email,
            display_name: r.display_name,
            is_admin: r.is_admin,
            external_messaging_allowed: r.external_messaging_allowed,
            kind: match r.kind.as_str() {
                USER_KIND_WORKS => UserKind::Works,
                USER_KIND_LINE => UserKind::Line,
                other => return Err(bad_value("users.kind", other)),
            },
        })
    }
}

#[derive(Queryable, Selectable, Insertable)]
#[diesel(table_name = teams)]
pub struct TeamRow {
    pub tenant_id: i64,
    pub team_id: i64,
    pub display_name: String,
    pub email: String,
}

impl TeamRow {
    pub fn into_team(self, members: Vec<UserId>) -> Team {
        Team {
            tenant: TenantId(self.tenant_id),
            id: TeamId(self.team_id),
            display_name: self.display_name,
            email: self.email,
            members,
        }
    }
}

#[derive(Queryable, Selectable, Insertable)]
#[diesel(table_name = team_members)]
pub struct TeamMemberRow {
    pub tenant_id: i64,
    pub team_id: i64,
    pub user_id: i64,
}

#[derive(Queryable, Selectable, Insertable)]
#[diesel(table_name = contacts)]
pub struct ContactRow {
    pub tenant_id: i64,
    pub user_id: i64,
    pub contact_tenant_id: i64,
    pub contact_user_id: i64,
}

impl From<&Contact> for ContactRow {
    fn from(c: &Contact) -> Self {
        ContactRow {
            tenant_id: c.owner.tenant.0,
            user_id: c.owner.user.0,
            contact_tenant_id: c.contact.tenant.0,
            contact_user_id: c.contact.user.0,
        }
    }
}

impl From<ContactRow> for Contact {
    fn from(r: ContactRow) -> Self {
        Contact {
            owner: UserKey {
                tenant: TenantId(r.tenant_id),
                user: UserId(r.user_id),
            },
            contact: UserKey {
                tenant: TenantId(r.contact_tenant_id),
                user: UserId(r.contact_user_id),
            },
        }
    }
}

#[derive(Queryable, Selectable, Insertable)]
#[diesel(table_name = message_rooms)]
pub struct RoomRow {
    pub tenant_id: i64,
    pub room_id: i64,
    pub display_name: String,
    pub converted_group_id: Option<i64>,
}

impl RoomRow {
    pub fn into_room(self, members: Vec<UserKey>) -> MessageRoom {
        MessageRoom {
            tenant: TenantId(self.tenant_id),
            id: RoomId(self.room_id),
            display_name: self.display_name,
            members,
            converted_group: self.converted_group_id.map(GroupId),
        }
    }
}

#[derive(Queryable, Selectable, Insertable)]
#[diesel(table_name = room_members)]
pub struct RoomMemberRow {
    pub tenant_id: i64,
    pub room_id: i64,
    pub user_tenant_id: i64,
    pub user_id: i64,
}

#[derive(Queryable, QueryableByName, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = groups)]
#[diesel(treat_none_as_null = true)]
pub struct GroupRow {
    pub tenant_id: i64,
    pub group_id: i64,
    pub display_name: String,
    pub name_key: String,
    pub description: String,
    pub photo_uri: String,
    pub kind: String,
    pub is_public: bool,
    pub use_message: bool,
    pub use_note: bool,
    pub use_event: bool,
    pub use_task: bool,
    pub use_folder: bool,
    pub notify_all_members: bool,
    pub master_manages_features: bool,
    pub external_key: Option<String>,
    pub storage_used_bytes: i64,
    pub version: i64,
    pub create_time: i64,
    pub update_time: i64,
    pub search_text: String,
    pub mailing_list: Option<String>,
    pub ml_block_external: bool,
    pub message_purge_time: Option<i64>,
}

impl From<&Group> for GroupRow {
    fn from(g: &Group) -> Self {
        GroupRow {
            tenant_id: g.tenant.0,
            group_id: g.id.0,
            display_name: g.display_name.clone(),
            name_key: name_key(&g.display_name),
            description: g.description.clone(),
            photo_uri: g.photo_uri.clone(),
            kind: group_kind_text(g.kind).into(),
            is_public: g.is_public,
            use_message: g.features.message,
            use_note: g.features.note,
            use_event: g.features.event,
            use_task: g.features.task,
            use_folder: g.features.folder,
            notify_all_members: g.notify_all_members,
            master_manages_features: g.master_manages_features,
            external_key: g.external_key.clone(),
            storage_used_bytes: g.storage_used_bytes,
            version: g.version,
            create_time: g.create_time,
            update_time: g.update_time,
            search_text: search_text(&g.display_name, &g.description),
            mailing_list: g.mailing_list.as_ref().map(|m| m.address.clone()),
            ml_block_external: g
                .mailing_list
                .as_ref()
                .is_some_and(|m| m.block_external_senders),
            message_purge_time: g.message_purge_time,
        }
    }
}

impl TryFrom<GroupRow> for Group {
    type Error = Error;
    fn try_from(r: GroupRow) -> Result<Self> {
        Ok(Group {
            tenant: TenantId(r.tenant_id),
            id: GroupId(r.group_id),
            display_name: r.display_name,
            description: r.description,
            photo_uri: r.photo_uri,
            kind: group_kind_of_text(&r.kind)?,
            is_public: r.is_public,
            features: Features {
                message: r.use_message,
                note: r.use_note,
                event: r.use_event,
                task: r.use_task,
                folder: r.use_folder,
            },
            notify_all_members: r.notify_all_members,
            master_manages_features: r.master_manages_features,
            external_key: r.external_key,
            mailing_list: r.mailing_list.map(|address| MailingList {
                address,
                block_external_senders: r.ml_block_external,
                ..Default::default()
            }),
            storage_used_bytes: r.storage_used_bytes,
            version: r.version,
            create_time: r.create_time,
            update_time: r.update_time,
            message_purge_time: r.message_purge_time,
        })
    }
}

#[derive(Queryable, Selectable, Insertable)]
#[diesel(table_name = events)]
pub struct EventRow {
    pub tenant_id: i64,
    pub event_id: i64,
    pub group_id: Option<i64>,
    pub kind: String,
    pub payload: String,
    pub create_time: i64,
    pub seq: i64,
    pub actor: String,
}

impl From<&Event> for EventRow {
    fn from(e: &Event) -> Self {
        EventRow {
            tenant_id: e.tenant.0,
            event_id: e.id.0,
            group_id: e.group.map(|g| g.0),
            kind: e.kind.clone(),
            payload: e.payload.clone(),
            create_time: e.create_time,
            seq: e.seq,
            actor: e.actor.clone(),
        }
    }
}

impl From<EventRow> for Event {
    fn from(r: EventRow) -> Self {
        Event {
            tenant: TenantId(r.tenant_id),
            id: EventId(r.event_id),
            group: r.group_id.map(GroupId),
            seq: r.seq,
            kind: r.kind,
            payload: r.payload,
            create_time: r.create_time,
            own_account: r.actor.is_empty(),
            actor: r.actor,
        }
    }
}

// Rows of raw SQL statements (`diesel::sql_query`).

/// One boolean answer, named `flag`.
#[derive(QueryableByName)]
pub struct FlagRow {
    #[diesel(sql_type = Bool)]
    pub flag: bool,
}

/// A user key, as `tenant_id`, `user_id`.
#[derive(QueryableByName)]
pub struct UserKeyRow {
    #[diesel(sql_type = BigInt)]
    pub tenant_id: i64,
    #[diesel(sql_type = BigInt)]
    pub user_id: i64,
}

impl From<UserKeyRow> for UserKey {
    fn from(r: UserKeyRow) -> Self {
        UserKey {
            tenant: TenantId(r.tenant_id),
            user: UserId(r.user_id),
        }
    }
}

/// A direct member as `list_members` selects it.
#[derive(QueryableByName)]
pub struct MemberSqlRow {
    #[diesel(sql_type = Integer)]
    pub kind: i32,
    #[diesel(sql_type = BigInt)]
    pub tenant_id: i64,
    #[diesel(sql_type = BigInt)]
    pub id: i64,
    #[diesel(sql_type = Bool)]
    pub is_master: bool,
    #[diesel(sql_type = Nullable<BigInt>)]
    pub expire_time: Option<i64>,
}

impl TryFrom<MemberSqlRow> for MemberRow {
    type Error = Error;
    fn try_from(r: MemberSqlRow) -> Result<Self> {
        Ok(MemberRow {
            kind: member_kind_of_number(r.kind)?,
            tenant: TenantId(r.tenant_id),
            id: r.id,
            is_master: r.is_master,
            expire_time: r.expire_time,
        })
    }
}

#[derive(QueryableByName)]
pub struct NextExpiryRow {
    #[diesel(sql_type = Nullable<BigInt>)]
    pub next_expiry: Option<i64>,
}

/// A group the user is in, and whether directly.
#[derive(QueryableByName)]
pub struct GroupOfUserRow {
    #[diesel(embed)]
    pub group: GroupRow,
    #[diesel(sql_type = Bool)]
    pub direct: bool,
}

/// A group the user is in, as the names-only listing reads it (`sql::group_keys_of_user`).
#[derive(QueryableByName)]
pub struct GroupKeyOfUserRow {
    #[diesel(sql_type = BigInt)]
    pub tenant_id: i64,
    #[diesel(sql_type = BigInt)]
    pub group_id: i64,
    #[diesel(sql_type = Text)]
    pub kind: String,
    #[diesel(sql_type = Bool)]
    pub is_public: bool,
    #[diesel(sql_type = Bool)]
    pub direct: bool,
}

impl TryFrom<GroupKeyOfUserRow> for GroupKeyOfUser {
    type Error = Error;
    fn try_from(r: GroupKeyOfUserRow) -> Result<Self> {
        Ok(GroupKeyOfUser {
            tenant: TenantId(r.tenant_id),
            id: GroupId(r.group_id),
            kind: group_kind_of_text(&r.kind)?,
            is_public: r.is_public,
            direct: r.direct,
        })
    }
}

/// A group, if there is one, whether a given user is its effective member, and that user's
/// directory row (`sql::group_seen_by`).
#[derive(QueryableByName)]
pub struct GroupSeenRow {
    #[diesel(embed)]
    pub group: Option<GroupRow>,
    #[diesel(sql_type = Bool)]
    pub member: bool,
    #[diesel(sql_type = Nullable<Bool>)]
    pub master: Option<bool>,
    #[diesel(embed)]
    pub caller: CallerColumns,
}

/// A user's directory row beside other columns, under names of its own; all NULL when the
/// directory does not know the user. The key is the statement's bind.
#[derive(QueryableByName)]
pub struct CallerColumns {
    #[diesel(sql_type = Nullable<Text>)]
    pub caller_email: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    pub caller_display_name: Option<String>,
    #[diesel(sql_type = Nullable<Bool>)]
    pub caller_is_admin: Option<bool>,
    #[diesel(sql_type = Nullable<Bool>)]
    pub caller_external_messaging_allowed: Option<bool>,
    #[diesel(sql_type = Nullable<Text>)]
    pub caller_kind: Option<String>,
}

impl CallerColumns {
    /// The user `key` as the directory has them, if it does.
    pub fn user(self, key: UserKey) -> Result<Option<User>> {
        let (
            Some(email),
            Some(display_name),
            Some(is_admin),
            Some(external_messaging_allowed),
            Some(kind),
        ) = (
            self.caller_email,
            self.caller_display_name,
            self.caller_is_admin,
            self.caller_external_messaging_allowed,
            self.caller_kind,
        )
        else {
            return Ok(None);
        };
        User::try_from(UserRow {
            tenant_id: key.tenant.0,
            user_id: key.user.0,
            email,
            display_name,
            is_admin,
            external_messaging_allowed,
            kind,
        })
        .map(Some)
    }
}

/// A user's direct row in a group (`master`, none when not direct) and effective membership.
#[derive(QueryableByName)]
pub struct MembershipRow {
    #[diesel(sql_type = diesel::sql_types::Nullable<Bool>)]
    pub master: Option<bool>,
    #[diesel(sql_type = Bool)]
    pub member: bool,
}

/// A search hit and its rank.
#[derive(QueryableByName)]
pub struct RankedGroupRow {
    #[diesel(embed)]
    pub group: GroupRow,
    #[diesel(sql_type = Integer)]
    pub search_rank: i32,
}

/// A group's texts and stored comparison keys, for the start-up re-key (`store::rekey`).
#[derive(QueryableByName)]
pub struct StaleKeysRow {
    #[diesel(sql_type = BigInt)]
    pub tenant_id: i64,
    #[diesel(sql_type = BigInt)]
    pub group_id: i64,
    #[diesel(sql_type = Text)]
    pub display_name: String,
    #[diesel(sql_type = Text)]
    pub description: String,
    #[diesel(sql_type = Text)]
    pub name_key: String,
    #[diesel(sql_type = Text)]
    pub search_text: String,
}

impl From<StaleKeysRow> for crate::domain::repo::StaleKeys {
    fn from(r: StaleKeysRow) -> Self {
        crate::domain::repo::StaleKeys {
            tenant: TenantId(r.tenant_id),
            id: GroupId(r.group_id),
            display_name: r.display_name,
            description: r.description,
            name_key: r.name_key,
            search_text: r.search_text,
        }
    }
}

/// Groups of one kind and their storage.
#[derive(QueryableByName)]
pub struct KindUsageRow {
    #[diesel(sql_type = Text)]
    pub kind: String,
    #[diesel(sql_type = BigInt)]
    pub n: i64,
    #[diesel(sql_type = BigInt)]
    pub bytes: i64,
}
