//! The local copy of directory data, written by the directory system (a service caller of the
//! tenant it writes).

use std::collections::BTreeSet;

use super::Service;
use super::caller::Caller;
use super::departures::{remove_team_everywhere, remove_tenant, remove_user_everywhere};
use super::error::{Error, Reason, Result, Violations};
use super::events::{Departure, EventKind, UserDeleted, emit_for_tenant};
use super::members::user_subject;
use super::model::*;
use super::operation::Operation;
use super::page::PageRequest;
use super::repo::{Page, Tx};
use super::service::TxFuture;

const MAX_NAME_CHARS: usize = 200;
const MAX_EMAIL_CHARS: usize = 254;
const MAX_MEMBERS: usize = 10_000;

fn check_id(v: &mut Violations, field: &str, id: i64) {
    v.check(id > 0, field, || "must be a positive id".into());
}

fn check_name(v: &mut Violations, field: &str, name: &str) {
    v.check(name.chars().count() <= MAX_NAME_CHARS, field, || {
        format!("must be at most {MAX_NAME_CHARS} characters")
    });
}

/// A plain check of an address's shape: one `@`, a non-empty local part and a domain with a dot.
pub fn is_email(s: &str) -> bool {
    let Some((local, domain)) = s.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && !domain.contains('@')
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && s.chars().count() <= MAX_EMAIL_CHARS
        && !s.chars().any(|c| c.is_whitespace() || c.is_control())
}

fn not_found(what: &'static str) -> Error {
    Error::NotFound(what)
}

/// `Ok` when a delete found its row, else NOT_FOUND.
fn found(deleted: bool, what: &'static str) -> Result<()> {
    if deleted {
        Ok(())
    } else {
        Err(not_found(what))
    }
}

async fn require_tenant(tx: &mut dyn Tx, tenant: TenantId) -> Result<()> {
    if tx.get_tenant(tenant).await?.is_none() {
        return Err(Error::precondition(
            Reason::TenantNotFound,
            format!("tenant {tenant} does not exist"),
        ));
    }
    Ok(())
}

/// Fails unless every key of `tenant` is a user in the directory. Users of other tenants are
/// not looked up: whether they exist is their tenant's business (R24), so a contact or a room
/// seat may name one this service does not know (yet), and the answer is the same either way.
async fn require_users(tx: &mut dyn Tx, tenant: TenantId, keys: &[UserKey]) -> Result<()> {
    let keys: Vec<UserKey> = keys
        .iter()
        .filter(|k| k.tenant == tenant)
        .copied()
        .collect();
    let found: BTreeSet<UserKey> = tx
        .get_users(&keys)
        .await?
        .into_iter()
        .map(|u| u.key)
        .collect();
    if let Some(missing) = keys.iter().find(|k| !found.contains(k)) {
        return Err(Error::precondition(
            Reason::UnknownMember,
            format!("{} does not exist", user_subject(*missing)),
        ));
    }
    Ok(())
}

/// One kind of a tenant's directory entries, listed a page at a time by id.
struct DirectoryList<T, Id> {
    name: Operation,
    scope: &'static str,
    id: fn(i64) -> Id,
    key: fn(&T) -> i64,
    list: ListPage<T, Id>,
}

/// A page of one kind of directory entries, read in a transaction.
type ListPage<T, Id> = for<'t> fn(&'t mut dyn Tx, TenantId, Page<Id>) -> TxFuture<'t, Vec<T>>;

impl Service {
    /// One directory entry of `tenant`, or NOT_FOUND naming `what`.
    async fn directory_get<T: Send + 'static>(
        &self,
        name: Operation,
        caller: &Caller,
        tenant: TenantId,
        what: &'static str,
        get: impl for<'t> Fn(&'t mut dyn Tx) -> TxFuture<'t, Option<T>> + Send + Sync,
    ) -> Result<T> {
        caller.require_service_of(tenant)?;
        self.read(name, caller, (), |tx, _, ()| {
            let found = get(tx);
            Box::pin(async move { found.await?.ok_or(not_found(what)) })
        })
        .await
    }

    async fn directory_page<T: Send, Id: Copy + Send + Sync>(
        &self,
        caller: &Caller,
        tenant: TenantId,
        page: PageRequest,
        list: DirectoryList<T, Id>,
    ) -> Result<(Vec<T>, String)> {
        caller.require_service_of(tenant)?;
        let scope = format!("{}|{tenant}", list.scope);
        let (size, after) = self.pager.start::<i64>(&scope, &page)?;
        let page = Page {
            after: after.map(list.id),
            limit: size,
        };
        let read = list.list;
        let rows = self
            .read(list.name, caller, page, |tx, _, page| {
                read(tx, tenant, *page)
            })
            .await?;
        let next = self.pager.next(&scope, &rows, size, list.key);
        Ok((rows, next))
    }

    pub async fn upsert_tenant(&self, caller: &Caller, tenant: Tenant) -> Result<Tenant> {
        caller.require_service_of(tenant.id)?;
        let mut v = Violations::default();
        check_id(&mut v, "tenant.id", tenant.id.0);
        check_name(&mut v, "tenant.display_name", &tenant.display_name);
        v.check(
            tenant.storage_quota_bytes >= 0,
            "tenant.storage_quota_bytes",
            || "must not be negative".into(),
        );
        v.finish()?;
        self.write(Operation::UpsertTenant, caller, tenant, |tx, _, tenant| {
            Box::pin(async move {
                tx.upsert_tenant(tenant).await?;
                tx.get_tenant(tenant.id).await?.ok_or(not_found("tenant"))
            })
        })
        .await
    }

    pub async fn get_tenant(&self, caller: &Caller, id: TenantId) -> Result<Tenant> {
        let what = "tenant";
        self.directory_get(Operation::GetTenant, caller, id, what, move |tx| {
            tx.get_tenant(id)
        })
        .await
    }

    /// The tenants the caller may read: its own.
    pub async fn list_tenants(
        &self,
        caller: &Caller,
        page: PageRequest,
    ) -> Result<(Vec<Tenant>, String)> {
        let tenant = caller.tenant;
        caller.require_service_of(tenant)?;
        let scope = format!("tenants|{tenant}");
        let (size, after) = self.pager.start::<i64>(&scope, &page)?;
        let rows = self
            .read(Operation::ListTenants, caller, (), |tx, _, ()| {
                Box::pin(async move {
                    let own = tx.get_tenant(tenant).await?;
                    Ok(own
                        .into_iter()
                        .filter(|t| after.is_none_or(|a| t.id.0 > a))
                        .take(size as usize)
                        .collect::<Vec<_>>())
                })
            })
            .await?;
        let next = self.pager.next(&scope, &rows, size, |t| t.id.0);
        Ok((rows, next))
    }

    /// Deletes a tenant with all its data: users, teams, rooms, groups and their memberships,
    /// writing the events of every group and departure (`departures::remove_tenant`).
    pub async fn delete_tenant(&self, caller: &Caller, id: TenantId) -> Result<()> {
        caller.require_service_of(id)?;
        self.write(Operation::DeleteTenant, caller, (), |tx, _, ()| {
            Box::pin(async move {
                if tx.get_tenant(id).await?.is_none() {
                    return Err(Error::NotFound("tenant"));
                }
                let now = tx.now();
                remove_tenant(tx, id, now).await?;
                found(tx.delete_tenant(id).await?, "tenant")
            })
        })
        .await
    }

    pub async fn upsert_user(&self, caller: &Caller, user: User) -> Result<User> {
        caller.require_service_of(user.key.tenant)?;
        let mut v = Violations::default();
        check_id(&mut v, "user.id", user.key.user.0);
        check_name(&mut v, "user.display_name", &user.display_name);
        v.check(is_email(&user.email), "user.email", || {
            "must be an email address".into()
        });
        v.finish()?;
        self.write(Operation::UpsertUser, caller, user, |tx, _, user| {
            Box::pin(async move {
                require_tenant(tx, user.key.tenant).await?;
                let before = tx.get_user(user.key).await?;
                tx.upsert_user(user).await?;
                // R18: losing the external permission (or becoming a LINE user) takes the
                // user out of every external group in this same transaction.
                let could = |u: &User| u.external_messaging_allowed && u.kind == UserKind::Works;
                if before.as_ref().is_some_and(could) && !could(user) {
                    let why = Departure::ExternalPermissionRevoked;
                    let now = tx.now();
                    remove_user_everywhere(tx, user.key, why, now).await?;
                }
                Ok(user.clone())
            })
        })
        .await
    }

    pub async fn get_user(&self, caller: &Caller, key: UserKey) -> Result<User> {
        let what = "user";
        self.directory_get(Operation::GetUser, caller, key.tenant, what, move |tx| {
            tx.get_user(key)
        })
        .await
    }

    pub async fn list_users(
        &self,
        caller: &Caller,
        tenant: TenantId,
        page: PageRequest,
    ) -> Result<(Vec<User>, String)> {
        let list = DirectoryList {
            name: Operation::ListUsers,
            scope: "users",
            id: UserId,
            key: |r: &User| r.key.user.0,
            list: |tx, tenant, page| tx.list_users(tenant, page),
        };
        self.directory_page(caller, tenant, page, list).await
    }

    /// Deletes a user; their memberships, team memberships, contacts and room seats go with
    /// them in the same transaction.
    pub async fn delete_user(&self, caller: &Caller, key: UserKey) -> Result<()> {
        caller.require_service_of(key.tenant)?;
        self.write(Operation::DeleteUser, caller, (), |tx, _, ()| {
            Box::pin(async move {
                if tx.get_user(key).await?.is_none() {
                    return Err(Error::NotFound("user"));
                }
                let now = tx.now();
                remove_user_everywhere(tx, key, Departure::UserDeleted, now).await?;
                let deleted = EventKind::UserDeleted(UserDeleted { user: key });
                emit_for_tenant(tx, key.tenant, deleted, now).await?;
                found(tx.delete_user(key).await?, "user")
            })
        })
        .await
    }

    pub async fn upsert_team(&self, caller: &Caller, mut team: Team) -> Result<Team> {
        caller.require_service_of(team.tenant)?;
        let mut v = Violations::default();
        check_id(&mut v, "team.id", team.id.0);
        check_name(&mut v, "team.display_name", &team.display_name);
        v.check(
            team.email.is_empty() || is_email(&team.email),
            "team.email",
            || "must be an email address".into(),
        );
        v.check(
            team.members.len() <= MAX_MEMBERS,
            "team.member_user_ids",
            || format!("at most {MAX_MEMBERS} members"),
        );
        v.finish()?;
        team.members.sort();
        team.members.dedup();
        self.write(Operation::UpsertTeam, caller, team, |tx, _, team| {
            Box::pin(async move {
                require_tenant(tx, team.tenant).await?;
                let keys: Vec<UserKey> = team
                    .members
                    .iter()
                    .map(|u| UserKey {
                        tenant: team.tenant,
                        user: *u,
                    })
                    .collect();
                require_users(tx, team.tenant, &keys).await?;
                tx.upsert_team(team).await?;
                Ok(team.clone())
            })
        })
        .await
    }

    pub async fn get_team(&self, caller: &Caller, tenant: TenantId, id: TeamId) -> Result<Team> {
        let what = "team";
        self.directory_get(Operation::GetTeam, caller, tenant, what, move |tx| {
            tx.get_team(tenant, id)
        })
        .await
    }

    pub async fn list_teams(
        &self,
        caller: &Caller,
        tenant: TenantId,
        page: PageRequest,
    ) -> Result<(Vec<Team>, String)> {
        let list = DirectoryList {
            name: Operation::ListTeams,
            scope: "teams",
            id: TeamId,
            key: |r: &Team| r.id.0,
            list: |tx, tenant, page| tx.list_teams(tenant, page),
        };
        self.directory_page(caller, tenant, page, list).await
    }

    /// Deletes a team; its group memberships go with it in the same transaction.
    pub async fn delete_team(&self, caller: &Caller, tenant: TenantId, id: TeamId) -> Result<()> {
        caller.require_service_of(tenant)?;
        self.write(Operation::DeleteTeam, caller, (), |tx, _, ()| {
            Box::pin(async move {
                let now = tx.now();
                remove_team_everywhere(tx, tenant, id, now).await?;
                found(tx.delete_team(tenant, id).await?, "team")
            })
        })
        .await
    }

    /// Adds an external contact: a user of another tenant in a user's address book. The owner
    /// must exist; the contact is not looked up (R24: `require_users`).
    pub async fn add_contact(&self, caller: &Caller, contact: Contact) -> Result<Contact> {
        caller.require_service_of(contact.owner.tenant)?;
        let mut v = Violations::default();
        check_id(&mut v, "contact.user_id", contact.owner.user.0);
        check_id(
            &mut v,
            "contact.contact_tenant_id",
            contact.contact.tenant.0,
        );
        check_id(&mut v, "contact.contact_user_id", contact.contact.user.0);
        v.check(
            contact.contact.tenant != contact.owner.tenant,
            "contact.contact_tenant_id",
            || "an external contact is a user of another tenant".into(),
        );
        v.finish()?;
        self.write(Operation::AddContact, caller, (), |tx, _, ()| {
            Box::pin(async move {
                require_users(tx, contact.owner.tenant, &[contact.owner]).await?;
                tx.add_contact(&contact).await?;
                Ok(contact)
            })
        })
        .await
    }

    pub async fn list_contacts(
        &self,
        caller: &Caller,
        owner: UserKey,
        page: PageRequest,
    ) -> Result<(Vec<Contact>, String)> {
        caller.require_service_of(owner.tenant)?;
        let scope = format!("contacts|{}|{}", owner.tenant, owner.user);
        let (size, after) = self.pager.start::<(i64, i64)>(&scope, &page)?;
        let after = after.map(|(t, u)| UserKey {
            tenant: TenantId(t),
            user: UserId(u),
        });
        let page = Page { after, limit: size };
        let rows = self
            .read(Operation::ListContacts, caller, (), |tx, _, ()| {
                Box::pin(async move { tx.list_contacts(owner, page).await })
            })
            .await?;
        let next = self.pager.next(&scope, &rows, size, |c| {
            (c.contact.tenant.0, c.contact.user.0)
        });
        Ok((rows, next))
    }

    pub async fn remove_contact(&self, caller: &Caller, contact: Contact) -> Result<()> {
        caller.require_service_of(contact.owner.tenant)?;
        self.write(Operation::RemoveContact, caller, (), |tx, _, ()| {
            Box::pin(async move { found(tx.remove_contact(&contact).await?, "contact") })
        })
        .await
    }

    pub async fn upsert_room(&self, caller: &Caller, mut room: MessageRoom) -> Result<MessageRoom> {
        caller.require_service_of(room.tenant)?;
        let mut v = Violations::default();
        check_id(&mut v, "room.id", room.id.0);
        check_name(&mut v, "room.display_name", &room.display_name);
        v.check(room.members.len() <= MAX_MEMBERS, "room.members", || {
            format!("at most {MAX_MEMBERS} members")
        });
        v.finish()?;
        room.members.sort();
        room.members.dedup();
        self.write(Operation::UpsertRoom, caller, room, |tx, _, room| {
            Box::pin(async move {
                require_tenant(tx, room.tenant).await?;
                require_users(tx, room.tenant, &room.members).await?;
                tx.upsert_room(room).await?;
                tx.get_room(room.tenant, room.id)
                    .await?
                    .ok_or(not_found("message room"))
            })
        })
        .await
    }

    pub async fn get_room(
        &self,
        caller: &Caller,
        tenant: TenantId,
        id: RoomId,
    ) -> Result<MessageRoom> {
        let what = "message room";
        self.directory_get(Operation::GetRoom, caller, tenant, what, move |tx| {
            tx.get_room(tenant, id)
        })
        .await
    }

    pub async fn list_rooms(
        &self,
        caller: &Caller,
        tenant: TenantId,
        page: PageRequest,
    ) -> Result<(Vec<MessageRoom>, String)> {
        let list = DirectoryList {
            name: Operation::ListRooms,
            scope: "rooms",
            id: RoomId,
            key: |r: &MessageRoom| r.id.0,
            list: |tx, tenant, page| tx.list_rooms(tenant, page),
        };
        self.directory_page(caller, tenant, page, list).await
    }

    pub async fn delete_room(&self, caller: &Caller, tenant: TenantId, id: RoomId) -> Result<()> {
        caller.require_service_of(tenant)?;
        self.write(Operation::DeleteRoom, caller, (), |tx, _, ()| {
            Box::pin(async move { found(tx.delete_room(tenant, id).await?, "message room") })
        })
        .await
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::is_email;

    #[test]
    fn emails_have_one_at_a_local_part_and_a_dotted_domain() {
        for good in ["a@b.co", "first.last@mail.example.com"] {
            assert!(is_email(good), "{good}");
        }
        for bad in [
            "", "a", "@b.co", "a@b", "a@@b.co", "a@.b.co", "a@b.co.", "a b@c.de",
        ] {
            assert!(!is_email(bad), "{bad}");
        }
    }
}
