//! The change feed (R11, R12, R18 delivered): the outbox read in order. Every event has its
//! tenant's sequence number, given as its transaction commits (`store`: one tenant's events
//! commit in sequence order), so "the events after cursor N" is a gap-free, duplicate-free
//! resume point. `follow` replays from a cursor and then follows commits live, woken by the
//! store's commit signal; the audit log, retention and the JetStream relay (`crate::relay`)
//! read the same rows.

use std::time::Duration;

use tokio::sync::mpsc;

use super::caller::{Actor, Caller};
use super::error::{Error, Reason, Result, Violations};
use super::model::*;
use super::operation::Operation;
use super::page::PageRequest;
use super::repo::{AuditFilter, Page};
use super::service::{Mode, Service};

/// An idle follower hears the current cursor at least this often.
pub const CHECKPOINT_EVERY: Duration = Duration::from_secs(5);
/// Events read per statement while replaying.
const BATCH: i64 = 500;
/// Most events one tenant's retention removes per round (a transaction's size).
const PRUNE_BATCH: i64 = 10_000;
/// The relay's lease, renewed at every round; another server takes over after it expires.
pub const RELAY_LEASE: Duration = Duration::from_secs(10);

/// What a follower receives.
#[derive(Clone, Debug, PartialEq)]
pub enum FeedItem {
    Event(Event),
    /// Nothing new: the follower is up to date at this cursor.
    Checkpoint(i64),
}

/// Events are a tenant's own business: its services follow them.
fn require_feed_reader(actor: &Actor, tenant: TenantId) -> Result<()> {
    match actor {
        Actor::Service { tenant: t } if *t == tenant => Ok(()),
        _ => Err(Error::permission(
            Reason::ServiceCallerRequired,
            "the change feed is for service callers of the tenant",
        )),
    }
}

fn check_cursor(cursor: i64) -> Result<()> {
    let mut v = Violations::default();
    v.check(cursor >= 0, "after_cursor", || "must be 0 or more".into());
    v.finish()
}

impl Service {
    /// The oldest cursor a follower can resume from: every event after it is kept.
    pub async fn earliest_cursor(&self, caller: &Caller, tenant: TenantId) -> Result<i64> {
        self.read(Operation::EarliestCursor, caller, (), |tx, actor, ()| {
            Box::pin(async move {
                require_feed_reader(actor, tenant)?;
                Ok(tx.event_bounds(tenant).await?.0)
            })
        })
        .await
    }

    /// Up to `BATCH` events after `after`; CURSOR_EXPIRED when retention removed some of them,
    /// CURSOR_AHEAD when `after` is past the tenant's last cursor. A cursor the feed gave is
    /// never past it: `last` only grows, and is read after that cursor's event committed.
    async fn events_after(
        &self,
        caller: &Caller,
        tenant: TenantId,
        after: i64,
    ) -> Result<Vec<Event>> {
        self.read(Operation::WatchEvents, caller, (), |tx, actor, ()| {
            Box::pin(async move {
                require_feed_reader(actor, tenant)?;
                let (pruned, last) = tx.event_bounds(tenant).await?;
                if after < pruned {
                    return Err(Error::CursorExpired {
                        cursor: after,
                        earliest: pruned,
                    });
                }
                if after > last {
                    return Err(Error::CursorAhead {
                        cursor: after,
                        last,
                    });
                }
                tx.events_after(tenant, after, BATCH).await
            })
        })
        .await
    }

    /// Opens the tenant's feed after `after`: the first read happens here, so a bad cursor or
    /// caller fails the call itself rather than the stream (`Feed::run` sends the rest).
    pub async fn open_feed(&self, caller: Caller, tenant: TenantId, after: i64) -> Result<Feed> {
        check_cursor(after)?;
        let mut wake = self.subscribe();
        wake.borrow_and_update();
        let batch = self.events_after(&caller, tenant, after).await?;
        Ok(Feed {
            service: self.clone(),
            caller,
            tenant,
            cursor: after,
            wake,
            batch,
        })
    }

    /// The audit log of a tenant, newest first: admins and services of the tenant. An
    /// external group's events belong to its owning tenant (R24): other tenants' admins do not
    /// see them.
    pub async fn list_audit_events(
        &self,
        caller: &Caller,
        tenant: TenantId,
        filter: AuditFilter,
        page: PageRequest,
    ) -> Result<(Vec<Event>, String)> {
        let scope = format!(
            "audit|{tenant}|{filter:?}|{}|{:?}",
            caller.tenant, caller.principal
        );
        let (size, after) = self.pager.start::<i64>(&scope, &page)?;
        let page = Page { after, limit: size };
        let rows = self
            .read(
                Operation::ListAuditEvents,
                caller,
                filter,
                |tx, actor, filter| {
                    Box::pin(async move {
                        if actor.tenant() != tenant || !actor.is_admin_of(tenant) {
                            return Err(Error::permission(
                                Reason::NotGroupManager,
                                "the audit log is for admins and services of the tenant",
                            ));
                        }
                        tx.audit_events(tenant, filter, page).await
                    })
                },
            )
            .await?;
        let next = self.pager.next(&scope, &rows, size, |e| e.seq);
        Ok((rows, next))
    }

    /// One relay round's work list: takes (or renews) the relay lease for `holder`, then
    /// up to `limit` unpublished events in (tenant, sequence) order. `None`: another server
    /// holds the lease.
    pub async fn relay_claim(&self, holder: &str, limit: i64) -> Result<Option<Vec<Event>>> {
        self.background(Operation::RelayClaim, Mode::Write, holder, |t, &holder| {
            Box::pin(async move {
                let now = now_micros();
                let expires = now + RELAY_LEASE.as_micros() as i64;
                if !t.take_lease("relay", holder, now, expires).await? {
                    return Ok(None);
                }
                Ok(Some(t.unpublished_events(limit).await?))
            })
        })
        .await
    }

    pub async fn relay_published(&self, events: &[(TenantId, EventId)]) -> Result<()> {
        self.background(
            Operation::RelayPublished,
            Mode::Write,
            events,
            |t, events| Box::pin(t.mark_published(events)),
        )
        .await
    }

    /// Microseconds since the oldest unpublished event was created (0 when none is).
    pub async fn relay_lag(&self) -> Result<i64> {
        let oldest = self
            .background(Operation::RelayLag, Mode::Read, (), |t, ()| {
                Box::pin(t.oldest_unpublished())
            })
            .await?;
        Ok(oldest.map_or(0, |o| (now_micros() - o).max(0)))
    }

    /// Retention: removes events older than `keep`, tenant by tenant, oldest first and never
    /// past an event the relay has yet to publish (`published_only`, when a relay runs).
    /// Returns how many tenants' feeds moved.
    pub async fn prune_events(&self, keep: Duration, published_only: bool) -> Result<usize> {
        let before = now_micros() - keep.as_micros() as i64;
        // What may go is found by reading; only tenants with something to remove take the
        // writer. What the read finds stays removable: events only ever get published, and
        // new ones come after it.
        let due = self
            .background(Operation::FindPrunableEvents, Mode::Read, (), |t, ()| {
                Box::pin(async move {
                    let mut due = Vec::new();
                    for tenant in t.event_tenants().await? {
                        let upto = t
                            .prunable_through(tenant, before, published_only, PRUNE_BATCH)
                            .await?;
                        due.extend(upto.map(|seq| (tenant, seq)));
                    }
                    Ok(due)
                })
            })
            .await?;
        for &(tenant, seq) in &due {
            self.background(Operation::PruneEvents, Mode::Write, (), |t, ()| {
                Box::pin(t.prune_through(tenant, seq))
            })
            .await?;
        }
        Ok(due.len())
    }
}

/// A follower's position in a tenant's feed (`Service::open_feed`).
pub struct Feed {
    service: Service,
    caller: Caller,
    tenant: TenantId,
    cursor: i64,
    wake: tokio::sync::watch::Receiver<u64>,
    /// Read, not yet sent.
    batch: Vec<Event>,
}

impl Feed {
    /// Sends the events in order, then every new one as it commits, with a checkpoint when
    /// nothing happened for `CHECKPOINT_EVERY`. Ends when the receiver is gone, or after
    /// sending the error that ended the feed (retention overtaking a slow follower, the
    /// database down).
    pub async fn run(mut self, out: mpsc::Sender<Result<FeedItem>>) {
        // The checkpoint is due 5 s after the last item sent, however often the feed wakes:
        // the commit signal is the store's, so every tenant's commits wake every follower.
        let mut due = tokio::time::Instant::now() + CHECKPOINT_EVERY;
        loop {
            if self.batch.is_empty() {
                // A commit after the last `borrow_and_update` marks the receiver changed:
                // none is lost between the read and this wait.
                match tokio::time::timeout_at(due, self.wake.changed()).await {
                    Ok(Ok(())) => {}
                    Ok(Err(_)) => return,
                    Err(_) => {
                        let checkpoint = FeedItem::Checkpoint(self.cursor);
                        if out.send(Ok(checkpoint)).await.is_err() {
                            return;
                        }
                        due = tokio::time::Instant::now() + CHECKPOINT_EVERY;
                    }
                }
            }
            for event in std::mem::take(&mut self.batch) {
                self.cursor = event.seq;
                if out.send(Ok(FeedItem::Event(event))).await.is_err() {
                    return;
                }
                due = tokio::time::Instant::now() + CHECKPOINT_EVERY;
            }
            self.wake.borrow_and_update();
            let next = self
                .service
                .events_after(&self.caller, self.tenant, self.cursor);
            match next.await {
                Ok(batch) => self.batch = batch,
                Err(e) => {
                    let _ = out.send(Err(e)).await;
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn r11_feed_is_for_services_of_the_tenant() {
        let service = Actor::Service {
            tenant: TenantId(1),
        };
        assert!(require_feed_reader(&service, TenantId(1)).is_ok());
        assert!(require_feed_reader(&service, TenantId(2)).is_err());
        assert!(check_cursor(-1).is_err());
        assert!(check_cursor(0).is_ok());
    }
}
