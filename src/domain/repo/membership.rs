//! Membership: direct members of groups (users, teams, nested groups), Group Masters and the
//! transitive walks over them (R21, R22).

use async_trait::async_trait;

use super::{DirectMembers, MemberRow, Page};
use crate::domain::error::Result;
use crate::domain::model::*;

#[async_trait]
pub trait MembershipTx: Send {
    async fn direct_members(&mut self, tenant: TenantId, id: GroupId) -> Result<DirectMembers>;
    /// Inserts a direct member (`is_master` for a user member), expiring at `expire_time`
    /// (microseconds) when given.
    async fn insert_member(
        &mut self,
        tenant: TenantId,
        group: GroupId,
        member: MemberRef,
        is_master: bool,
        expire_time: Option<i64>,
        now: i64,
    ) -> Result<()>;
    /// Sets or clears a direct member's expire time; false when it is not a member.
    async fn set_member_expiry(
        &mut self,
        tenant: TenantId,
        group: GroupId,
        member: MemberRef,
        expire_time: Option<i64>,
    ) -> Result<bool>;
    /// Direct members of the group whose expire time is not after `now` (still stored).
    async fn expired_members(
        &mut self,
        tenant: TenantId,
        group: GroupId,
        now: i64,
    ) -> Result<Vec<MemberRef>>;
    /// Groups with expired members still stored, at most `limit`.
    async fn groups_with_expired_members(
        &mut self,
        now: i64,
        limit: i64,
    ) -> Result<Vec<(TenantId, GroupId)>>;
    /// The earliest expire time of any member after `now`.
    async fn next_expiry(&mut self, now: i64) -> Result<Option<i64>>;
    /// `Some(is_master)` when `user` is a direct member.
    async fn user_member(
        &mut self,
        tenant: TenantId,
        group: GroupId,
        user: UserKey,
    ) -> Result<Option<bool>>;
    async fn has_member(
        &mut self,
        tenant: TenantId,
        group: GroupId,
        member: MemberRef,
    ) -> Result<bool>;
    /// Removes a direct member; false when it was not one.
    async fn delete_member(
        &mut self,
        tenant: TenantId,
        group: GroupId,
        member: MemberRef,
    ) -> Result<bool>;
    /// Direct members after `after`, in (kind, tenant, id) order.
    async fn list_members(
        &mut self,
        tenant: TenantId,
        group: GroupId,
        page: Page<(MemberKind, i64, i64)>,
    ) -> Result<Vec<MemberRow>>;

    // Group Masters
    /// Makes a user member a Group Master or a plain member. A master never expires: making
    /// one clears the member's expire time.
    async fn set_master(
        &mut self,
        tenant: TenantId,
        group: GroupId,
        user: UserKey,
        is_master: bool,
    ) -> Result<bool>;
    async fn count_masters(&mut self, tenant: TenantId, group: GroupId) -> Result<i64>;
    async fn list_masters(
        &mut self,
        tenant: TenantId,
        group: GroupId,
        page: Page<UserKey>,
    ) -> Result<Vec<UserKey>>;
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

    // Nesting (R21)
    /// Serializes changes to nested-group edges of a tenant until the transaction ends (R21).
    async fn lock_nesting(&mut self, tenant: TenantId) -> Result<()>;
    /// Distinct groups directly contained in any of `of`.
    async fn child_groups(&mut self, tenant: TenantId, of: &[GroupId]) -> Result<Vec<GroupId>>;
    /// Distinct groups that directly contain any of `of`.
    async fn parent_groups(&mut self, tenant: TenantId, of: &[GroupId]) -> Result<Vec<GroupId>>;

    // Effective membership (R22)
    /// Whether `user` is a member of the group directly, through a team, or through nested
    /// groups (R22).
    async fn is_effective_member(
        &mut self,
        tenant: TenantId,
        group: GroupId,
        user: UserKey,
    ) -> Result<bool>;
    /// `user_member` and `is_effective_member` together, in one round trip: (`Some(is_master)`
    /// when direct, effective).
    async fn membership_of(
        &mut self,
        tenant: TenantId,
        group: GroupId,
        user: UserKey,
    ) -> Result<(Option<bool>, bool)>;
    /// Every distinct user reached from the group (R22), sorted.
    async fn effective_users(&mut self, tenant: TenantId, group: GroupId) -> Result<Vec<UserKey>>;
    /// A page of the distinct users reached from the group (R22).
    async fn list_effective_users(
        &mut self,
        tenant: TenantId,
        group: GroupId,
        page: Page<UserKey>,
    ) -> Result<Vec<UserKey>>;

    // The other way round: a user's or a team's groups
    /// Groups the user is in, directly, through a team or through nested groups, in
    /// (tenant, group) order, with whether the user is a direct member.
    async fn groups_of_user(
        &mut self,
        user: UserKey,
        page: Page<(TenantId, GroupId)>,
    ) -> Result<Vec<(Group, bool)>>;
    /// `groups_of_user`, keys only (the names-only listing).
    async fn group_keys_of_user(
        &mut self,
        user: UserKey,
        page: Page<(TenantId, GroupId)>,
    ) -> Result<Vec<GroupKeyOfUser>>;
    /// Groups in which the user is a direct member: (tenant, group, is_master).
    async fn direct_groups_of_user(
        &mut self,
        user: UserKey,
    ) -> Result<Vec<(TenantId, GroupId, bool)>>;
    /// Groups in which the team is a direct member.
    async fn groups_with_team(&mut self, tenant: TenantId, team: TeamId) -> Result<Vec<GroupId>>;
}
