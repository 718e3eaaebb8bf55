//! An in-process cache of whole read answers (GetGroup, CheckMembership,
//! BatchCheckMembership and ListGroupsOfUser's names-only view), bounded by memory.
//!
//! Coherence rests on per-tenant *revisions* (`Database::revision`): the store knows which
//! tenants' rows each committed write changed (`Touched`, filled by the store's write
//! statements) and bumps those tenants' revisions after the commit, before the write's answer
//! leaves; another replica's writes bump them when announced (PostgreSQL `NOTIFY` with the
//! tenants in its payload, sent by the writing process after the commit: `store::changes`;
//! a notification that cannot say bumps every tenant). An answer is stored with the revision
//! of the tenants it reads (`Key::tenants`), read *before* the read that produced it, and
//! served only while that revision is still the same number. A change of a group's own row
//! that leaves its visibility, kind and key alone touches only that group (`Key::group`). So an answer is never older than
//! the last write this replica acknowledged, never older than the last write another replica
//! committed once its notification has arrived, and a write in one tenant leaves every answer
//! that reads no row of that tenant in place. While the store cannot promise that (its
//! listening connection is down), it reports no revision and the cache is bypassed. No answer
//! is served more than `MAX_AGE` after it was read, which bounds a write whose notification
//! never came.

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::{Arc, RwLock};

use super::caller::{Actor, Caller};
use super::membership::Membership;
use super::model::{Group, GroupId, GroupKeyOfUser, GroupRef, TenantId, UserKey};
use super::names::GroupPath;

/// The longest an answer is served, whatever the generation says: the bound on staleness
/// when a write's notification never arrives (its process died between the commit and the
/// notification, or the write was made outside the service).
pub(crate) const MAX_AGE: std::time::Duration = std::time::Duration::from_secs(2);

/// The most groups one user's membership entry answers for; answers beyond it are read, not
/// kept.
const MAX_MEMBERSHIPS_PER_ENTRY: usize = 4096;

/// What an answer depends on besides the database: the caller and the request.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Key {
    /// The caller as the directory knows it (R24), for reads.
    Actor(Caller),
    Group {
        caller: Caller,
        tenant: TenantId,
        id: GroupRef,
    },
    /// The user's membership of groups, as the caller may learn it: one entry for all the
    /// groups asked about, so that a batch of checks is one lookup.
    Memberships { caller: Caller, user: UserKey },
    /// The groups a user is in, names only, as the caller may see them (ListGroupsOfUser's
    /// names-only view).
    GroupsOfUser { caller: Caller, user: UserKey },
}

impl Key {
    /// The answer's kind, as metrics label it.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Key::Actor(_) => "caller",
            Key::Group { .. } => "group",
            Key::Memberships { .. } => "membership",
            Key::GroupsOfUser { .. } => "groups_of_user",
        }
    }

    /// The group whose own row the answer reads besides what `tenants` covers (its id, or
    /// `None` for a group named by external key: any group of the tenant), so that a change
    /// of that row alone (`Touched::groups`: not its visibility, kind or key) drops this
    /// answer and no other. Membership answers and lists of names read no group's other
    /// columns.
    pub(crate) fn group(&self) -> Option<(TenantId, Option<GroupId>)> {
        match self {
            Key::Group { tenant, id, .. } => Some((
                *tenant,
                match id {
                    GroupRef::Id(id) => Some(*id),
                    GroupRef::Key(_) => None,
                },
            )),
            _ => None,
        }
    }

    /// The tenants whose rows the answer reads, whose revisions it is kept under (module
    /// doc). A member of a group is of the group's tenant, or, in an external group, a user
    /// of another tenant, whose own rows are that user's tenant's; teams and nested groups
    /// never cross tenants (R24).
    pub(crate) fn tenants(&self) -> [TenantId; 2] {
        match self {
            // The caller's directory row.
            Key::Actor(caller) => [caller.tenant, caller.tenant],
            // The group's row and members, and the caller's own rows (whether an admin).
            Key::Group { caller, tenant, .. } => [caller.tenant, *tenant],
            // The caller's and the user's rows; the groups' rows only where they are of one of
            // those tenants (`Service::cached_memberships` caches no other).
            Key::Memberships { caller, user } => [caller.tenant, user.tenant],
            // The user's memberships and the caller's, and the groups' rows: kept only when
            // every group is of one of these tenants (`GroupKeysOfUser::keeps`). A group of a
            // third tenant joins the list only through a membership row of that user, which
            // touches the user's tenant too (the store's `touch_member`).
            Key::GroupsOfUser { caller, user } => [caller.tenant, user.tenant],
        }
    }
}

/// What a lookup found.
#[derive(Debug)]
pub(crate) enum Lookup {
    Hit(Answer),
    /// An entry read at another generation; dropped.
    Stale,
    Absent,
}

#[derive(Clone, Debug)]
pub(crate) enum Answer {
    Actor(Actor),
    Group(Arc<Group>),
    Memberships(Arc<Memberships>),
    GroupsOfUser(Arc<GroupKeysOfUser>),
}

/// The groups of a user that a caller may see, in (tenant, group) order, as far as one read
/// scanned them.
#[derive(Debug)]
pub(crate) struct GroupKeysOfUser {
    pub keys: Vec<GroupKeyOfUser>,
    /// Every group of the user was scanned (fewer than the read's limit).
    pub complete: bool,
    /// The last of the user's groups the read looked at, seen or not.
    pub last_scanned: Option<(TenantId, GroupId)>,
}

impl GroupKeysOfUser {
    /// Kept only whole, and only when the revisions of the key's tenants cover it: every
    /// group is of the caller's or the user's tenant.
    fn keeps(&self, tenants: &[TenantId]) -> bool {
        self.complete && self.keys.iter().all(|k| tenants.contains(&k.tenant))
    }
}

/// One user's membership answers by group, all read at the generation of the entry holding
/// them. Answers are added as they are read at that generation; the entry is weighed again
/// whenever their count passes a power of two, so its weight is within a factor of two of its
/// size.
#[derive(Debug, Default)]
pub(crate) struct Memberships {
    by_group: RwLock<HashMap<GroupPath, Membership, foldhash::fast::RandomState>>,
}

impl Memberships {
    fn len(&self) -> usize {
        self.by_group.read().map_or(0, |m| m.len())
    }
}

impl Answer {
    /// About how many bytes the entry holds, for the bound.
    fn weight(&self) -> u32 {
        let base: usize = 160;
        match self {
            Answer::Group(g) => {
                let text = g.display_name.len() + g.description.len() + g.photo_uri.len();
                let list = g.mailing_list.as_ref().map_or(0, |l| {
                    l.address.len()
                        + 16 * l.designated_senders.len()
                        + l.external_recipients
                            .iter()
                            .map(|r| r.len() + 24)
                            .sum::<usize>()
                });
                u32::try_from(base + 320 + text + list).unwrap_or(u32::MAX)
            }
            Answer::Memberships(m) => {
                let by_group = m.by_group.read().map_or(0, |m| {
                    m.keys()
                        .map(|g| match &g.group {
                            GroupRef::Id(_) => 48,
                            GroupRef::Key(k) => 72 + k.len(),
                        })
                        .sum::<usize>()
                });
                u32::try_from(base + 64 + by_group).unwrap_or(u32::MAX)
            }
            Answer::GroupsOfUser(g) => u32::try_from(base + 40 * g.keys.len()).unwrap_or(u32::MAX),
            Answer::Actor(_) => base as u32,
        }
    }
}

/// Reads under way, by what they fill: concurrent misses of one key wait for one read
/// (`coalesced`).
pub(crate) type Filling<K, V> =
    std::sync::Mutex<HashMap<K, Arc<tokio::sync::OnceCell<V>>, foldhash::fast::RandomState>>;

/// `fill`'s value for `key`, shared by every caller that asks while one read of `key` is under
/// way: the first caller's `fill` runs, the others wait for its value (and run theirs only if
/// it fails). `fill` should keep its value in the cache before it returns, so that a caller
/// arriving once the read is done finds it there.
pub(crate) async fn coalesced<K, V>(
    filling: &Filling<K, V>,
    key: K,
    fill: impl Future<Output = super::error::Result<V>>,
) -> super::error::Result<V>
where
    K: Hash + Eq + Clone,
    V: Clone,
{
    let cell = filling
        .lock()
        .ok()
        .map(|mut under_way| under_way.entry(key.clone()).or_default().clone());
    let Some(cell) = cell else {
        return fill.await;
    };
    let value = cell.get_or_try_init(|| fill).await.cloned();
    if let Ok(mut under_way) = filling.lock()
        && under_way.get(&key).is_some_and(|c| Arc::ptr_eq(c, &cell))
    {
        under_way.remove(&key);
    }
    value
}

/// The answers, each with the generation it was read at.
pub(crate) struct AnswerCache {
    /// foldhash: keys are a few integers, which SipHash (moka's default) spends a tenth of a
    /// cached batch check on; its seed is random per cache, as SipHash's is.
    entries: moka::sync::Cache<Key, (u64, Answer), foldhash::fast::RandomState>,
    /// Reads of whole answers under way, by key and generation.
    pub(crate) filling: Filling<(Key, u64), Answer>,
    /// Reads of membership answers under way, by key, generation and the groups asked.
    pub(crate) filling_memberships: Filling<(Key, u64, Vec<GroupPath>), Vec<Option<Membership>>>,
}

impl AnswerCache {
    /// A cache holding about `max_bytes` of answers.
    pub fn new(max_bytes: u64) -> Self {
        let entries = moka::sync::Cache::builder()
            .max_capacity(max_bytes)
            .time_to_live(MAX_AGE)
            .weigher(|k: &Key, (_, a): &(u64, Answer)| {
                let key = match k {
                    Key::Actor(_) | Key::Group { .. } => 64,
                    Key::Memberships { .. } | Key::GroupsOfUser { .. } => 80,
                };
                a.weight().saturating_add(key)
            })
            .build_with_hasher(foldhash::fast::RandomState::default());
        AnswerCache {
            entries,
            filling: Default::default(),
            filling_memberships: Default::default(),
        }
    }

    /// The answer for `key` if it was read at generation `now`.
    pub fn get(&self, key: &Key, now: Option<u64>) -> Lookup {
        let Some(now) = now else {
            return Lookup::Absent;
        };
        match self.entries.get(key) {
            Some((generation, answer)) if generation == now => Lookup::Hit(answer),
            Some(_) => {
                self.entries.invalidate(key);
                Lookup::Stale
            }
            None => Lookup::Absent,
        }
    }

    /// Keeps `answer`, read at generation `read_at` (taken before the read began).
    pub fn put(&self, key: Key, read_at: Option<u64>, answer: Answer) {
        if let Answer::GroupsOfUser(g) = &answer
            && !g.keeps(&key.tenants())
        {
            return;
        }
        if let Some(generation) = read_at {
            self.entries.insert(key, (generation, answer));
        }
    }

    /// For each of `groups`, the membership answer of `key` (a `Key::Memberships`) if it was
    /// read at generation `now`.
    /// Whether an entry of an older generation was found (and dropped) comes with them.
    pub fn memberships(
        &self,
        key: &Key,
        groups: &[GroupPath],
        now: Option<u64>,
    ) -> (Vec<Option<Membership>>, bool) {
        match self.get(key, now) {
            Lookup::Hit(Answer::Memberships(m)) => match m.by_group.read() {
                Ok(by_group) => (
                    groups.iter().map(|g| by_group.get(g).copied()).collect(),
                    false,
                ),
                Err(_) => (vec![None; groups.len()], false),
            },
            Lookup::Stale => (vec![None; groups.len()], true),
            _ => (vec![None; groups.len()], false),
        }
    }

    /// Keeps membership `answers` of `key` (a `Key::Memberships`), read at generation
    /// `read_at`: added to the entry read at that generation, or in a new entry that replaces
    /// one of another generation.
    pub fn put_memberships(
        &self,
        key: Key,
        read_at: Option<u64>,
        answers: impl IntoIterator<Item = (GroupPath, Membership)>,
    ) {
        let Some(generation) = read_at else {
            return;
        };
        let entry = self.entries.get(&key).and_then(|(g, a)| match a {
            Answer::Memberships(m) if g == generation => Some(m),
            _ => None,
        });
        let fresh = entry.is_none();
        let entry = entry.unwrap_or_default();
        let before = entry.len();
        if let Ok(mut by_group) = entry.by_group.write() {
            for (group, answer) in answers {
                if by_group.len() >= MAX_MEMBERSHIPS_PER_ENTRY {
                    break;
                }
                by_group.insert(group, answer);
            }
        }
        let after = entry.len();
        if fresh || before.next_power_of_two() != after.next_power_of_two() {
            self.entries
                .insert(key, (generation, Answer::Memberships(entry)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::caller::Principal;
    use crate::domain::model::UserId;

    fn key(user: i64) -> Key {
        Key::Memberships {
            caller: Caller {
                tenant: TenantId(1),
                principal: Principal::User(UserId(7)),
                admin_claim: false,
            },
            user: UserKey {
                tenant: TenantId(1),
                user: UserId(user),
            },
        }
    }

    fn group(id: i64) -> GroupPath {
        GroupPath {
            tenant: TenantId(1),
            group: GroupRef::Id(GroupId(id)),
        }
    }

    fn member(cache: &AnswerCache, user: i64, g: i64, now: Option<u64>) -> Option<bool> {
        cache.memberships(&key(user), &[group(g)], now).0[0].map(|m| m.member)
    }

    const YES: Membership = Membership {
        member: true,
        master: false,
        direct: true,
    };

    #[test]
    fn an_answer_is_served_only_at_the_generation_it_was_read_at() {
        let cache = AnswerCache::new(1 << 20);
        cache.put_memberships(key(3), Some(5), [(group(2), YES)]);
        assert_eq!(member(&cache, 3, 2, Some(5)), Some(true));
        assert_eq!(
            member(&cache, 3, 2, Some(6)),
            None,
            "a write happened since"
        );
        assert_eq!(
            member(&cache, 3, 2, Some(5)),
            None,
            "the stale entry is gone"
        );
        cache.put_memberships(key(4), None, [(group(2), YES)]);
        assert_eq!(member(&cache, 4, 2, None), None, "no generation, no cache");
    }

    #[test]
    fn answers_of_one_generation_join_one_entry_and_another_generation_replaces_it() {
        let cache = AnswerCache::new(1 << 20);
        cache.put_memberships(key(3), Some(5), [(group(1), YES)]);
        cache.put_memberships(key(3), Some(5), [(group(2), YES)]);
        let (both, _) = cache.memberships(&key(3), &[group(1), group(2), group(9)], Some(5));
        assert_eq!(both, vec![Some(YES), Some(YES), None]);
        // An answer read at a later generation starts a new entry: the older answers go.
        cache.put_memberships(key(3), Some(6), [(group(2), YES)]);
        let (now, _) = cache.memberships(&key(3), &[group(1), group(2)], Some(6));
        assert_eq!(now, vec![None, Some(YES)]);
    }

    #[test]
    fn an_entry_holds_a_bounded_number_of_answers() {
        let cache = AnswerCache::new(1 << 24);
        let many = (0..MAX_MEMBERSHIPS_PER_ENTRY as i64 + 10).map(|g| (group(g), YES));
        cache.put_memberships(key(3), Some(5), many);
        let last = MAX_MEMBERSHIPS_PER_ENTRY as i64 + 5;
        assert_eq!(member(&cache, 3, 0, Some(5)), Some(true));
        assert_eq!(member(&cache, 3, last, Some(5)), None);
    }
}
