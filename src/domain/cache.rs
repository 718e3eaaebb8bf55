//! An in-process cache of whole read answers (GetGroup, CheckMembership), bounded by memory.
//!
//! Coherence rests on one number, the database's *generation* (`Database::generation`): the
//! store bumps it after every committed write of this process, before the write's answer
//! leaves, and whenever another replica's write is announced (PostgreSQL `NOTIFY` sent by the
//! writing transaction). An answer is stored with the generation read *before* the read that
//! produced it, and served only while the generation is still that number. So an answer is
//! never older than the last write this replica acknowledged, and never older than the last
//! write another replica committed once its notification has arrived. While the store cannot
//! promise that (its listening connection is down), it reports no generation and the cache is
//! bypassed.

use std::hash::Hash;
use std::sync::Arc;

use super::caller::{Actor, Caller};
use super::membership::Membership;
use super::model::{Group, GroupRef, TenantId, UserKey};

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
    Membership {
        caller: Caller,
        tenant: TenantId,
        group: GroupRef,
        user: UserKey,
    },
}

#[derive(Clone, Debug)]
pub(crate) enum Answer {
    Actor(Actor),
    Group(Arc<Group>),
    Membership(Membership),
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
            Answer::Actor(_) | Answer::Membership(_) => base as u32,
        }
    }
}

/// The answers, each with the generation it was read at.
pub(crate) struct AnswerCache {
    /// foldhash: keys are a few integers, which SipHash (moka's default) spends a tenth of a
    /// cached batch check on; its seed is random per cache, as SipHash's is.
    entries: moka::sync::Cache<Key, (u64, Answer), foldhash::fast::RandomState>,
}

impl AnswerCache {
    /// A cache holding about `max_bytes` of answers.
    pub fn new(max_bytes: u64) -> Self {
        let entries = moka::sync::Cache::builder()
            .max_capacity(max_bytes)
            .weigher(|k: &Key, (_, a): &(u64, Answer)| {
                let key = match k {
                    Key::Actor(_) | Key::Group { .. } => 64,
                    Key::Membership { .. } => 80,
                };
                a.weight().saturating_add(key)
            })
            .build_with_hasher(foldhash::fast::RandomState::default());
        AnswerCache { entries }
    }

    /// The answer for `key` if it was read at generation `now`.
    pub fn get(&self, key: &Key, now: Option<u64>) -> Option<Answer> {
        let now = now?;
        match self.entries.get(key) {
            Some((generation, answer)) if generation == now => Some(answer),
            Some(_) => {
                self.entries.invalidate(key);
                None
            }
            None => None,
        }
    }

    /// Keeps `answer`, read at generation `read_at` (taken before the read began).
    pub fn put(&self, key: Key, read_at: Option<u64>, answer: Answer) {
        if let Some(generation) = read_at {
            self.entries.insert(key, (generation, answer));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::caller::Principal;
    use crate::domain::model::UserId;

    fn key(user: i64) -> Key {
        Key::Membership {
            caller: Caller {
                tenant: TenantId(1),
                principal: Principal::User(UserId(7)),
                admin_claim: false,
            },
            tenant: TenantId(1),
            group: GroupRef::Id(crate::domain::model::GroupId(2)),
            user: UserKey {
                tenant: TenantId(1),
                user: UserId(user),
            },
        }
    }

    fn member(answer: Option<Answer>) -> Option<bool> {
        match answer {
            Some(Answer::Membership(m)) => Some(m.member),
            _ => None,
        }
    }

    #[test]
    fn an_answer_is_served_only_at_the_generation_it_was_read_at() {
        let cache = AnswerCache::new(1 << 20);
        let yes = Membership {
            member: true,
            master: false,
            direct: true,
        };
        cache.put(key(3), Some(5), Answer::Membership(yes));
        assert_eq!(member(cache.get(&key(3), Some(5))), Some(true));
        assert_eq!(
            member(cache.get(&key(3), Some(6))),
            None,
            "a write happened since"
        );
        assert_eq!(
            member(cache.get(&key(3), Some(5))),
            None,
            "the stale entry is gone"
        );
        cache.put(key(4), None, Answer::Membership(yes));
        assert_eq!(
            member(cache.get(&key(4), None)),
            None,
            "no generation, no cache"
        );
    }
}
