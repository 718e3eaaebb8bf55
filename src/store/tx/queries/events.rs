//! `EventTx`: the outbox and the request ids of idempotent creates and batch calls.

use async_trait::async_trait;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};
use diesel_async::RunQueryDsl;

use super::BackendTx;
use crate::domain::error::Result;
use crate::domain::model::*;
use crate::domain::repo::{AuditFilter, EventTx, Page};
use crate::store::rows::*;
use crate::store::schema::*;
use crate::store::tx::KeepPrepared;

#[async_trait]
impl EventTx for BackendTx {
    async fn claim_batch_request(
        &mut self,
        tenant: TenantId,
        request_id: &str,
        fingerprint: &str,
        now: i64,
    ) -> Result<bool> {
        use batch_requests::dsl as r;
        let n = diesel::insert_into(batch_requests::table)
            .values((
                r::tenant_id.eq(tenant.0),
                r::request_id.eq(request_id),
                r::fingerprint.eq(fingerprint),
                r::response.eq(""),
                r::create_time.eq(now),
            ))
            .on_conflict_do_nothing()
            .execute(self.conn())
            .await?;
        Ok(n > 0)
    }

    async fn get_batch_request(
        &mut self,
        tenant: TenantId,
        request_id: &str,
    ) -> Result<Option<(String, String)>> {
        Ok(batch_requests::table
            .find((tenant.0, request_id))
            .select((batch_requests::fingerprint, batch_requests::response))
            .first::<(String, String)>(self.conn())
            .await
            .optional()?)
    }

    async fn save_batch_response(
        &mut self,
        tenant: TenantId,
        request_id: &str,
        response: &str,
    ) -> Result<()> {
        diesel::update(batch_requests::table.find((tenant.0, request_id)))
            .set(batch_requests::response.eq(response))
            .execute(self.conn())
            .await?;
        Ok(())
    }

    async fn get_create_request(
        &mut self,
        tenant: TenantId,
        request_id: &str,
    ) -> Result<Option<(String, GroupId)>> {
        Ok(create_requests::table
            .find((tenant.0, request_id))
            .select((create_requests::fingerprint, create_requests::group_id))
            .first::<(String, i64)>(self.conn())
            .await
            .optional()?
            .map(|(f, g)| (f, GroupId(g))))
    }

    async fn insert_create_request(
        &mut self,
        tenant: TenantId,
        request_id: &str,
        fingerprint: &str,
        group: GroupId,
        now: i64,
    ) -> Result<bool> {
        use create_requests::dsl as r;
        let n = diesel::insert_into(create_requests::table)
            .values((
                r::tenant_id.eq(tenant.0),
                r::request_id.eq(request_id),
                r::fingerprint.eq(fingerprint),
                r::group_id.eq(group.0),
                r::create_time.eq(now),
            ))
            .on_conflict_do_nothing()
            .execute(self.conn())
            .await?;
        Ok(n > 0)
    }

    async fn insert_event(&mut self, event: &Event) -> Result<()> {
        self.touched.events = true;
        self.events.push(event.clone());
        Ok(())
    }

    async fn events_after(
        &mut self,
        tenant: TenantId,
        after: i64,
        limit: i64,
    ) -> Result<Vec<Event>> {
        Ok(events::table
            .filter(events::tenant_id.eq(tenant.0))
            .filter(events::seq.gt(after))
            .order(events::seq)
            .limit(limit)
            .select(EventRow::as_select())
            .load(self.conn())
            .await?
            .into_iter()
            .map(Event::from)
            .collect())
    }

    async fn event_bounds(&mut self, tenant: TenantId) -> Result<(i64, i64)> {
        Ok(event_sequences::table
            .find(tenant.0)
            .select((event_sequences::pruned_seq, event_sequences::last_seq))
            .first::<(i64, i64)>(self.conn())
            .await
            .optional()?
            .unwrap_or((0, 0)))
    }

    async fn audit_events(
        &mut self,
        tenant: TenantId,
        filter: &AuditFilter,
        page: Page<i64>,
    ) -> Result<Vec<Event>> {
        let mut q = events::table
            .filter(events::tenant_id.eq(tenant.0))
            .filter(events::seq.lt(page.after.unwrap_or(i64::MAX)))
            .into_boxed();
        if let Some(actor) = &filter.actor {
            q = q.filter(events::actor.eq(actor.clone()));
        }
        if let Some(group) = filter.group {
            q = q.filter(events::group_id.eq(group.0));
        }
        if let Some(kind) = &filter.kind {
            q = q.filter(events::kind.eq(kind.clone()));
        }
        if let Some(since) = filter.since {
            q = q.filter(events::create_time.ge(since));
        }
        if let Some(until) = filter.until {
            q = q.filter(events::create_time.lt(until));
        }
        Ok(q.order(events::seq.desc())
            .limit(page.limit)
            .select(EventRow::as_select())
            .load(self.conn())
            .await?
            .into_iter()
            .map(Event::from)
            .collect())
    }

    async fn unpublished_events(&mut self, limit: i64) -> Result<Vec<Event>> {
        Ok(events::table
            .filter(events::published.eq(false))
            .order((events::tenant_id, events::seq))
            .limit(limit)
            .select(EventRow::as_select())
            .load(self.conn())
            .await?
            .into_iter()
            .map(Event::from)
            .collect())
    }

    async fn mark_published(&mut self, published: &[(TenantId, EventId)]) -> Result<()> {
        for (tenant, id) in published {
            diesel::update(events::table.find((tenant.0, id.0)))
                .set(events::published.eq(true))
                .execute(self.conn())
                .await?;
        }
        Ok(())
    }

    async fn oldest_unpublished(&mut self) -> Result<Option<i64>> {
        Ok(events::table
            .filter(events::published.eq(false))
            .select(diesel::dsl::min(events::create_time))
            .first::<Option<i64>>(self.conn())
            .await?)
    }

    async fn take_lease(
        &mut self,
        name: &str,
        holder: &str,
        now: i64,
        expires: i64,
    ) -> Result<bool> {
        let n = diesel::sql_query(
            "INSERT INTO relay_lease (name, holder, expires) VALUES ($1, $2, $3) \
             ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires = excluded.expires \
             WHERE relay_lease.holder = excluded.holder OR relay_lease.expires < $4",
        )
        .bind::<Text, _>(name)
        .bind::<Text, _>(holder)
        .bind::<BigInt, _>(expires)
        .bind::<BigInt, _>(now)
        .keep_prepared()
        .execute(self.conn())
        .await?;
        Ok(n > 0)
    }

    async fn prunable_through(
        &mut self,
        tenant: TenantId,
        before: i64,
        published_only: bool,
        max: i64,
    ) -> Result<Option<i64>> {
        let (pruned, last) = self.event_bounds(tenant).await?;
        // The first event that must stay ends the run that may go.
        let mut keep = events::table
            .filter(events::tenant_id.eq(tenant.0))
            .filter(events::seq.gt(pruned))
            .into_boxed();
        keep = if published_only {
            keep.filter(
                events::create_time
                    .ge(before)
                    .or(events::published.eq(false)),
            )
        } else {
            keep.filter(events::create_time.ge(before))
        };
        let first_kept: Option<i64> = keep
            .order(events::seq)
            .select(events::seq)
            .first(self.conn())
            .await
            .optional()?;
        let upto = first_kept.map_or(last, |k| k - 1).min(pruned + max);
        Ok((upto > pruned).then_some(upto))
    }

    async fn prune_through(&mut self, tenant: TenantId, seq: i64) -> Result<()> {
        diesel::delete(
            events::table
                .filter(events::tenant_id.eq(tenant.0))
                .filter(events::seq.le(seq)),
        )
        .execute(self.conn())
        .await?;
        diesel::update(
            event_sequences::table
                .find(tenant.0)
                .filter(event_sequences::pruned_seq.lt(seq)),
        )
        .set(event_sequences::pruned_seq.eq(seq))
        .execute(self.conn())
        .await?;
        Ok(())
    }

    async fn event_tenants(&mut self) -> Result<Vec<TenantId>> {
        Ok(event_sequences::table
            .select(event_sequences::tenant_id)
            .order(event_sequences::tenant_id)
            .load::<i64>(self.conn())
            .await?
            .into_iter()
            .map(TenantId)
            .collect())
    }

    async fn list_events(&mut self, tenant: TenantId, group: GroupId) -> Result<Vec<Event>> {
        Ok(events::table
            .filter(events::tenant_id.eq(tenant.0))
            .filter(events::group_id.eq(group.0))
            // The cursor: commit order, whatever id layout issued the ids.
            .order(events::seq)
            .select(EventRow::as_select())
            .load(self.conn())
            .await?
            .into_iter()
            .map(Event::from)
            .collect())
    }
}

impl BackendTx {
    /// Writes the transaction's events, just before it commits: each gets its tenant's next
    /// sequence number and the actor (none for an event on the service's own account). The counter row of each tenant stays locked to the
    /// commit, so one tenant's events commit in sequence order (no follower can see N+1
    /// before N); tenants are taken in ascending order, one order for every transaction, so
    /// two transactions never wait for each other's counters.
    pub(crate) async fn write_events(&mut self, actor: &str) -> Result<()> {
        if self.events.is_empty() {
            return Ok(());
        }
        let mut pending = std::mem::take(&mut self.events);
        // Stable: a tenant's events keep the order they were emitted in.
        pending.sort_by_key(|e| e.tenant);
        for run in pending.chunk_by_mut(|a, b| a.tenant == b.tenant) {
            for e in run.iter_mut() {
                if !e.own_account {
                    e.actor = actor.to_owned();
                }
            }
            self.backend_sequence_events(run).await?;
        }
        Ok(())
    }
}
