//! What the domain needs from storage: one transaction's worth of reads and writes, split by
//! aggregate. `store/` implements every trait once, compiled for each backend.
//!
//! The domain takes `&mut dyn Tx`; `Tx` has every aggregate trait as a supertrait, and methods of
//! supertraits are callable on `dyn Tx` without importing them.

mod directory;
mod events;
mod groups;
mod membership;

use super::model::*;

pub use directory::DirectoryTx;
pub use events::EventTx;
pub use groups::{GroupSeen, GroupTx, StaleKeys};
pub use membership::MembershipTx;

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
    pub kind: MemberKind,
    pub tenant: TenantId,
    pub id: i64,
    pub is_master: bool,
    /// When the member stops counting (microseconds); `None`: never.
    pub expire_time: Option<i64>,
}

/// What ListGroups may filter on.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GroupFilter {
    pub kind: Option<GroupKind>,
    pub is_public: Option<bool>,
    pub has_external_key: Option<bool>,
}

/// Which events the audit log lists; every field that is set must match.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuditFilter {
    pub actor: Option<String>,
    pub group: Option<GroupId>,
    pub kind: Option<String>,
    /// Creation time in microseconds: `since` included, `until` excluded.
    pub since: Option<i64>,
    pub until: Option<i64>,
}

/// One transaction. Every method runs inside it; the transaction commits only when the domain
/// operation returns `Ok`.
pub trait Tx: DirectoryTx + GroupTx + MembershipTx + EventTx + Send {
    /// The transaction's instant (`domain::clock`), in microseconds: expired members are
    /// absent from every statement of the transaction as of this instant.
    fn now(&self) -> i64;
}
