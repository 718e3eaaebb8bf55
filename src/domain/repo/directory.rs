//! Directory data: tenants, users, teams, contacts and general message rooms.

use async_trait::async_trait;

use super::Page;
use crate::domain::error::Result;
use crate::domain::model::*;

#[async_trait]
pub trait DirectoryTx: Send {
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
    /// Whether `contact` is in `owner`'s address book (R15).
    async fn has_contact(&mut self, owner: UserKey, contact: UserKey) -> Result<bool>;
    /// Whether `contact` is in the address book of some user of `tenant`.
    async fn is_partner_contact(&mut self, tenant: TenantId, contact: UserKey) -> Result<bool>;

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
}
