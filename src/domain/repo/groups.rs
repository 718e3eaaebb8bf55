//! Groups: their rows, settings (R06-R10), storage usage and discovery (R07).

use async_trait::async_trait;

use super::{GroupFilter, Page};
use crate::domain::error::Result;
use crate::domain::model::*;

#[async_trait]
pub trait GroupTx: Send {
    async fn insert_group(&mut self, group: &Group) -> Result<()>;
    async fn get_group(&mut self, tenant: TenantId, id: GroupId) -> Result<Option<Group>>;
    /// Groups whose message purge is due at `now`, at most `limit`.
    async fn groups_due_for_purge(
        &mut self,
        now: i64,
        limit: i64,
    ) -> Result<Vec<(TenantId, GroupId)>>;
    /// The id of the tenant's group with this external key.
    async fn group_by_key(&mut self, tenant: TenantId, key: &str) -> Result<Option<GroupId>>;
    /// The group, whether `user` is its effective member (R22), and `user`'s directory row,
    /// in one round trip.
    async fn get_group_seen_by(
        &mut self,
        tenant: TenantId,
        id: GroupId,
        user: UserKey,
    ) -> Result<GroupSeen>;
    /// Reads the group and holds its row lock to the end of the transaction.
    async fn lock_group(&mut self, tenant: TenantId, id: GroupId) -> Result<Option<Group>>;
    /// Bumps the group's version (its etag) and update time.
    async fn touch_group(&mut self, tenant: TenantId, id: GroupId, now: i64) -> Result<()>;
    async fn existing_groups(&mut self, tenant: TenantId, ids: &[GroupId]) -> Result<Vec<GroupId>>;
    async fn delete_group(&mut self, tenant: TenantId, id: GroupId) -> Result<bool>;

    // Settings (R06-R10)
    /// Writes every column of the group (the caller bumps `version`); `before` is the row as
    /// the transaction read it, which tells the store what the change touched.
    async fn update_group(&mut self, before: &Group, group: &Group) -> Result<()>;
    /// Whether a mailing-list local part is in use in the tenant: by a user's or a team's
    /// address, or by another group's list.
    async fn address_in_use(
        &mut self,
        tenant: TenantId,
        local: &str,
        except: GroupId,
    ) -> Result<bool>;
    /// Fills the designated senders and external recipients of the group's mailing list.
    async fn load_mailing_list(&mut self, group: &mut Group) -> Result<()>;
    /// Replaces the designated senders and external recipients.
    async fn save_mailing_list(&mut self, group: &Group) -> Result<()>;

    // Usage
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
    /// Up to `limit` groups whose comparison keys (`name_key`, `search_text`) were computed
    /// by a `text::KEY_VERSION` older than `version`, by (tenant, id).
    async fn stale_name_keys(&mut self, version: i32, limit: i64) -> Result<Vec<StaleKeys>>;
    /// Whether another group of the tenant has `name_key`.
    async fn name_key_taken(
        &mut self,
        tenant: TenantId,
        id: GroupId,
        name_key: &str,
    ) -> Result<bool>;
    /// Stores the group's keys as computed by `version`.
    async fn set_name_keys(&mut self, keys: &StaleKeys, version: i32) -> Result<()>;
    /// Adds `delta` (may be negative) to the group's and its tenant's storage, never below 0.
    async fn add_storage(&mut self, tenant: TenantId, group: GroupId, delta: i64) -> Result<()>;
    /// (groups, storage bytes) owned by the tenant, for internal and for external groups.
    async fn usage_by_kind(&mut self, tenant: TenantId) -> Result<[(i64, i64); 2]>;

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
}

/// One user's view of one group, read in one statement (`GroupTx::get_group_seen_by`).
#[derive(Clone, Debug)]
pub struct GroupSeen {
    /// The user's directory row; none when the directory does not know them.
    pub user: Option<User>,
    /// The group, when there is one, and whether the user is its effective member.
    pub group: Option<(Group, bool)>,
    /// The user's direct row in the group: `Some(is_master)`, `None` when not a direct member.
    pub direct: Option<bool>,
}

/// A group's name and description with the comparison keys stored for them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StaleKeys {
    pub tenant: TenantId,
    pub id: GroupId,
    pub display_name: String,
    pub description: String,
    pub name_key: String,
    pub search_text: String,
}
