//! What the domain needs from storage: one transaction's worth of reads and writes.
//! `store/` implements it once, expanded for each backend.

use async_trait::async_trait;

use super::error::Result;
use super::model::*;

/// A keyset page request: rows strictly after `after`, at most `limit` of them.
#[derive(Clone, Copy, Debug)]
pub struct Page<K> {
    pub after: Option<K>,
    pub limit: i64,
}

/// Direct members of a group, as stored.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DirectMembers {
    /// (user, is_master), sorted by user.
    pub users: Vec<(UserKey, bool)>,
    pub teams: Vec<TeamId>,
    pub groups: Vec<GroupId>,
}

/// A direct member as listed: kind order (user, team, group), tenant, id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemberRow {
    /// 1 user, 2 team, 3 group.
    pub kind: i32,
    pub tenant: TenantId,
    pub id: i64,
    pub is_master: bool,
}

/// What ListGroups may filter on.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GroupFilter {
    pub kind: Option<GroupKind>,
    pub is_public: Option<bool>,
}

/// One transaction. Every method runs inside it; the transaction commits only when the domain
/// operation returns `Ok`.
#[async_trait]
pub trait Tx: Send {
    async fn ping(&mut self) -> Result<()>;

    // Tenants
    /// Inserts or updates a tenant's settings; counters are kept.
    async fn upsert_tenant(&mut self, tenant: &Tenant) -> Result<()>;
    async fn get_tenant(&mut self, id: TenantId) -> Result<Option<Tenant>>;
    async fn list_tenants(&mut self, page: Page<TenantId>) -> Result<Vec<Tenant>>;
    async fn delete_tenant(&mut self, id: TenantId) -> Result<bool>;
    /// Takes one group slot if the tenant is under its plan's limit (R03); false when full.
    /// Holds the tenant's row lock to the end of the transaction.
    async fn take_group_slot(&mut self, id: TenantId) -> Result<bool>;
    async fn release_group_slot(&mut self, id: TenantId) -> Result<()>;

    // Users
    async fn upsert_user(&mut self, user: &User) -> Result<()>;
    async fn get_user(&mut self, key: UserKey) -> Result<Option<User>>;
    async fn get_users(&mut self, keys: &[UserKey]) -> Result<Vec<User>>;
    async fn list_users(&mut self, tenant: TenantId, page: Page<UserId>) -> Result<Vec<User>>;
    async fn delete_user(&mut self, key: UserKey) -> Result<bool>;
    /// Counts one more direct group for the user if under `limit` (R03) and, when
    /// `needs_external_permission`, if the user still has it (R14, checked under the user's row
    /// lock so a concurrent revocation cannot slip between check and insert); false otherwise.
    async fn take_user_group_slot(
        &mut self,
        key: UserKey,
        limit: i64,
        needs_external_permission: bool,
    ) -> Result<bool>;
    async fn release_user_group_slots(&mut self, keys: &[UserKey]) -> Result<()>;

    // Teams
    /// Inserts or updates a team and replaces its members.
    async fn upsert_team(&mut self, team: &Team) -> Result<()>;
    async fn get_team(&mut self, tenant: TenantId, id: TeamId) -> Result<Option<Team>>;
    async fn existing_teams(&mut self, tenant: TenantId, ids: &[TeamId]) -> Result<Vec<TeamId>>;
    async fn list_teams(&mut self, tenant: TenantId, page: Page<TeamId>) -> Result<Vec<Team>>;
    async fn delete_team(&mut self, tenant: TenantId, id: TeamId) -> Result<bool>;

    // Contacts
    async fn add_contact(&mut self, contact: &Contact) -> Result<()>;
    async fn list_contacts(&mut self, owner: UserKey, page: Page<UserKey>) -> Result<Vec<Contact>>;
    async fn remove_contact(&mut self, contact: &Contact) -> Result<bool>;

    // Message rooms
    /// Inserts or updates a room and replaces its members.
    async fn upsert_room(&mut self, room: &MessageRoom) -> Result<()>;
    async fn get_room(&mut self, tenant: TenantId, id: RoomId) -> Result<Option<MessageRoom>>;
    async fn list_rooms(
        &mut self,
        tenant: TenantId,
        page: Page<RoomId>,
    ) -> Result<Vec<MessageRoom>>;
    async fn delete_room(&mut self, tenant: TenantId, id: RoomId) -> Result<bool>;
    /// Marks the room converted into `group` unless it already was; false if it was (R16).
    async fn mark_room_converted(
        &mut self,
        tenant: TenantId,
        id: RoomId,
        group: GroupId,
    ) -> Result<bool>;

    // Groups
    async fn insert_group(&mut self, group: &Group) -> Result<()>;
    async fn get_group(&mut self, tenant: TenantId, id: GroupId) -> Result<Option<Group>>;
    /// Bumps the group's version (its etag) and update time.
    async fn touch_group(&mut self, tenant: TenantId, id: GroupId, now: i64) -> Result<()>;
    /// Reads the group and holds its row lock to the end of the transaction.
    async fn lock_group(&mut self, tenant: TenantId, id: GroupId) -> Result<Option<Group>>;
    async fn existing_groups(&mut self, tenant: TenantId, ids: &[GroupId]) -> Result<Vec<GroupId>>;
    async fn delete_group(&mut self, tenant: TenantId, id: GroupId) -> Result<bool>;
    async fn direct_members(&mut self, tenant: TenantId, id: GroupId) -> Result<DirectMembers>;
    async fn insert_user_member(
        &mut self,
        tenant: TenantId,
        group: GroupId,
        user: UserKey,
        is_master: bool,
        now: i64,
    ) -> Result<()>;
    async fn insert_team_member(
        &mut self,
        tenant: TenantId,
        group: GroupId,
        team: TeamId,
        now: i64,
    ) -> Result<()>;
    async fn insert_group_member(
        &mut self,
        tenant: TenantId,
        group: GroupId,
        member: GroupId,
        now: i64,
    ) -> Result<()>;
    /// Distinct groups directly contained in any of `of`.
    async fn child_groups(&mut self, tenant: TenantId, of: &[GroupId]) -> Result<Vec<GroupId>>;
    /// Distinct groups that directly contain any of `of`.
    async fn parent_groups(&mut self, tenant: TenantId, of: &[GroupId]) -> Result<Vec<GroupId>>;
    /// Whether `user` is a member of the group directly, through a team, or through nested
    /// groups (R22).
    async fn is_effective_member(
        &mut self,
        tenant: TenantId,
        group: GroupId,
        user: UserKey,
    ) -> Result<bool>;
    /// Every distinct user reached from the group (R22), sorted.
    async fn effective_users(&mut self, tenant: TenantId, group: GroupId) -> Result<Vec<UserKey>>;

    /// Serializes changes to nested-group edges of a tenant until the transaction ends (R21).
    async fn lock_nesting(&mut self, tenant: TenantId) -> Result<()>;
    /// `Some(is_master)` when `user` is a direct member.
    async fn user_member(
        &mut self,
        tenant: TenantId,
        group: GroupId,
        user: UserKey,
    ) -> Result<Option<bool>>;
    async fn has_team_member(
        &mut self,
        tenant: TenantId,
        group: GroupId,
        team: TeamId,
    ) -> Result<bool>;
    async fn has_group_member(
        &mut self,
        tenant: TenantId,
        group: GroupId,
        member: GroupId,
    ) -> Result<bool>;
    async fn delete_user_member(
        &mut self,
        tenant: TenantId,
        group: GroupId,
        user: UserKey,
    ) -> Result<bool>;
    async fn delete_team_member(
        &mut self,
        tenant: TenantId,
        group: GroupId,
        team: TeamId,
    ) -> Result<bool>;
    async fn delete_group_member(
        &mut self,
        tenant: TenantId,
        group: GroupId,
        member: GroupId,
    ) -> Result<bool>;
    async fn set_master(
        &mut self,
        tenant: TenantId,
        group: GroupId,
        user: UserKey,
        is_master: bool,
    ) -> Result<bool>;
    async fn count_masters(&mut self, tenant: TenantId, group: GroupId) -> Result<i64>;
    /// Direct members after `after`, in (kind, tenant, id) order.
    async fn list_members(
        &mut self,
        tenant: TenantId,
        group: GroupId,
        page: Page<(i32, i64, i64)>,
    ) -> Result<Vec<MemberRow>>;
    async fn list_masters(
        &mut self,
        tenant: TenantId,
        group: GroupId,
        page: Page<UserKey>,
    ) -> Result<Vec<UserKey>>;
    /// A page of the distinct users reached from the group (R22).
    async fn list_effective_users(
        &mut self,
        tenant: TenantId,
        group: GroupId,
        page: Page<UserKey>,
    ) -> Result<Vec<UserKey>>;
    /// Groups the user is in, directly, through a team or through nested groups, in
    /// (tenant, group) order, with whether the user is a direct member.
    async fn groups_of_user(
        &mut self,
        user: UserKey,
        page: Page<(TenantId, GroupId)>,
    ) -> Result<Vec<(Group, bool)>>;
    /// Groups in which the user is a direct member: (tenant, group, is_master).
    async fn direct_groups_of_user(
        &mut self,
        user: UserKey,
    ) -> Result<Vec<(TenantId, GroupId, bool)>>;
    /// Groups in which the team is a direct member.
    async fn groups_with_team(&mut self, tenant: TenantId, team: TeamId) -> Result<Vec<GroupId>>;
    /// The user member who joined first, of `of_tenant`, other than `except`, optionally only
    /// among those allowed external messaging.
    async fn earliest_member(
        &mut self,
        tenant: TenantId,
        group: GroupId,
        of_tenant: TenantId,
        except: UserKey,
        needs_external_permission: bool,
    ) -> Result<Option<UserKey>>;

    // Settings (R06-R10)
    /// Writes every column of the group (the caller bumps `version`).
    async fn update_group(&mut self, group: &Group) -> Result<()>;
    /// Whether a mailing-list local part is in use in the tenant: by a user's or a team's
    /// address, or by another group's list.
    async fn address_in_use(
        &mut self,
        tenant: TenantId,
        local: &str,
        except: GroupId,
    ) -> Result<bool>;
    /// Whether `contact` is in the address book of some user of `tenant`.
    async fn is_partner_contact(&mut self, tenant: TenantId, contact: UserKey) -> Result<bool>;
    /// Fills the designated senders and external recipients of the group's mailing list.
    async fn load_mailing_list(&mut self, group: &mut Group) -> Result<()>;
    /// Replaces the designated senders and external recipients.
    async fn save_mailing_list(&mut self, group: &Group) -> Result<()>;
    /// Sizes of the group's feature data, by feature.
    async fn feature_usage(
        &mut self,
        tenant: TenantId,
        group: GroupId,
    ) -> Result<Vec<(String, i64)>>;
    /// Sets a feature's data size; returns the previous size.
    async fn set_feature_usage(
        &mut self,
        tenant: TenantId,
        group: GroupId,
        feature: &str,
        bytes: i64,
        now: i64,
    ) -> Result<i64>;
    /// Adds `delta` (may be negative) to the group's and its tenant's storage, never below 0.
    async fn add_storage(&mut self, tenant: TenantId, group: GroupId, delta: i64) -> Result<()>;

    /// (groups, storage bytes) owned by the tenant, for internal and for external groups.
    async fn usage_by_kind(&mut self, tenant: TenantId) -> Result<[(i64, i64); 2]>;
    /// Whether `contact` is in `owner`'s address book (R15).
    async fn has_contact(&mut self, owner: UserKey, contact: UserKey) -> Result<bool>;

    // Discovery (R07)
    /// Groups of `tenant` that `viewer` may see (`sees_all`: the tenant's admins see every
    /// group of it), plus external groups of other tenants the viewer is a member of (R20);
    /// after `after` by id.
    async fn list_groups(
        &mut self,
        tenant: TenantId,
        viewer: UserKey,
        sees_all: bool,
        filter: &GroupFilter,
        page: Page<GroupId>,
    ) -> Result<Vec<Group>>;
    /// Groups whose name or description contains `query` (lower-cased), ranked exact name,
    /// name prefix, then substring; keyset over (rank, name_key, id).
    async fn search_groups(
        &mut self,
        tenant: TenantId,
        viewer: UserKey,
        sees_all: bool,
        query: &str,
        page: Page<(i32, String, i64)>,
    ) -> Result<Vec<(i32, Group)>>;
    /// Groups whose lower-cased name starts with `prefix`, in name order.
    async fn autocomplete_groups(
        &mut self,
        tenant: TenantId,
        viewer: UserKey,
        sees_all: bool,
        prefix: &str,
        limit: i64,
    ) -> Result<Vec<Group>>;

    // Idempotent batches
    /// Claims a request id for a batch call; false when it was claimed before.
    async fn claim_batch_request(
        &mut self,
        tenant: TenantId,
        request_id: &str,
        fingerprint: &str,
        now: i64,
    ) -> Result<bool>;
    /// (fingerprint, response) of a claimed request id.
    async fn get_batch_request(
        &mut self,
        tenant: TenantId,
        request_id: &str,
    ) -> Result<Option<(String, String)>>;
    async fn save_batch_response(
        &mut self,
        tenant: TenantId,
        request_id: &str,
        response: &str,
    ) -> Result<()>;

    // Idempotent creates
    /// The (fingerprint, group) a request id first created, if any.
    async fn get_create_request(
        &mut self,
        tenant: TenantId,
        request_id: &str,
    ) -> Result<Option<(String, GroupId)>>;
    /// Claims a request id; false when another transaction already holds it (on PostgreSQL
    /// this waits for that transaction to end).
    async fn insert_create_request(
        &mut self,
        tenant: TenantId,
        request_id: &str,
        fingerprint: &str,
        group: GroupId,
        now: i64,
    ) -> Result<bool>;

    // Outbox
    async fn insert_event(&mut self, event: &Event) -> Result<()>;
    async fn list_events(&mut self, tenant: TenantId, group: GroupId) -> Result<Vec<Event>>;
}
