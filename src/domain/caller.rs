//! Who is calling, as verified by `auth/`, and what that caller is in the directory.

use super::error::{Error, Reason, Result};
use super::model::{TenantId, User, UserId, UserKey};
use super::repo::Tx;

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Principal {
    User(UserId),
    /// Another service of the suite, named by its token's subject.
    Service(String),
}

/// A verified caller (R24): every call carries one.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Caller {
    pub tenant: TenantId,
    pub principal: Principal,
    /// The token's `admin` claim. A user is an admin only when the directory agrees.
    pub admin_claim: bool,
}

/// The caller resolved against the directory inside a transaction.
#[derive(Clone, Debug)]
pub enum Actor {
    /// A service of the suite, acting for its tenant with admin rights.
    Service {
        tenant: TenantId,
    },
    User {
        user: User,
        is_admin: bool,
    },
}

impl Actor {
    pub fn tenant(&self) -> TenantId {
        match self {
            Actor::Service { tenant } => *tenant,
            Actor::User { user, .. } => user.key.tenant,
        }
    }

    /// Admin of `tenant` (services count as admins of their own tenant).
    pub fn is_admin_of(&self, tenant: TenantId) -> bool {
        match self {
            Actor::Service { tenant: t } => *t == tenant,
            Actor::User { user, is_admin } => *is_admin && user.key.tenant == tenant,
        }
    }

    pub fn user_key(&self) -> Option<UserKey> {
        match self {
            Actor::Service { .. } => None,
            Actor::User { user, .. } => Some(user.key),
        }
    }
}

impl Caller {
    /// Who the caller is, as events record it: `tenants/1/users/2`, `tenants/1/services/mail`.
    pub fn subject(&self) -> String {
        match &self.principal {
            Principal::User(user) => format!("tenants/{}/users/{}", self.tenant, user),
            Principal::Service(name) => format!("tenants/{}/services/{name}", self.tenant),
        }
    }

    /// Looks the caller up in the directory. A user token for a user or tenant the directory
    /// does not know is refused: tokens outlive directory entries.
    pub async fn resolve(&self, tx: &mut dyn Tx) -> Result<Actor> {
        match self.user_key() {
            None => Ok(Actor::Service {
                tenant: self.tenant,
            }),
            Some(key) => self.user_actor(tx.get_user(key).await?),
        }
    }

    /// The calling user's key; none for a service.
    pub fn user_key(&self) -> Option<UserKey> {
        match &self.principal {
            Principal::User(id) => Some(UserKey {
                tenant: self.tenant,
                user: *id,
            }),
            Principal::Service(_) => None,
        }
    }

    /// A user caller as the directory has them (`row`, read for `user_key`): refused when it
    /// does not know them; an admin only when the token claims it and the directory agrees.
    pub fn user_actor(&self, row: Option<User>) -> Result<Actor> {
        let user = row.ok_or_else(|| {
            Error::permission(
                Reason::CallerNotInDirectory,
                "the calling user is not in the directory",
            )
        })?;
        let is_admin = self.admin_claim && user.is_admin;
        Ok(Actor::User { user, is_admin })
    }

    /// DirectoryService and other system methods: a service caller of `tenant`.
    pub fn require_service_of(&self, tenant: TenantId) -> Result<()> {
        if !matches!(self.principal, Principal::Service(_)) {
            return Err(Error::permission(
                Reason::ServiceCallerRequired,
                "this method needs a service caller",
            ));
        }
        if self.tenant != tenant {
            return Err(Error::permission(
                Reason::WrongTenant,
                "the caller's tenant is not the tenant of the request",
            ));
        }
        Ok(())
    }
}
