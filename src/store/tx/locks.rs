//! The statements whose SQL differs by backend, side by side. The shared queries call these
//! through the same names on `PgTx` and `SqliteTx`.
//!
//! SQLite writes go through one writer connection (see `Store`), so a plain read already holds
//! the only write lock there is: its versions take no lock.

use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Nullable, Text};
use diesel_async::RunQueryDsl;

use super::{KeepPrepared, PgTx, SqliteTx, retry_on_taken_id};
use crate::domain::error::{Error, Result};
use crate::domain::model::{Event, Group, GroupId, TenantId};
use crate::domain::repo::GroupTx;
use crate::store::rows::{EventRow, GroupRow};
use crate::store::schema::{event_sequences, events, groups};

/// One tenant's events with their sequence numbers, in one statement: the counter's upsert
/// feeds the events' insert (binds: tenant, count, then one array per column, the events in
/// the order they were emitted).
const SEQUENCED_EVENTS: &str = "\
WITH s AS (\
 INSERT INTO event_sequences (tenant_id, last_seq) VALUES ($1, $2) \
 ON CONFLICT (tenant_id) DO UPDATE SET last_seq = event_sequences.last_seq + EXCLUDED.last_seq \
 RETURNING last_seq) \
INSERT INTO events (tenant_id, event_id, group_id, kind, payload, create_time, seq, actor) \
SELECT $1, e.event_id, e.group_id, e.kind, e.payload, e.create_time, s.last_seq - $2 + e.ord, \
 e.actor \
FROM s, unnest($3::bigint[], $4::bigint[], $5::text[], $6::text[], $7::bigint[], $8::text[]) \
 WITH ORDINALITY AS e(event_id, group_id, kind, payload, create_time, actor, ord)";

impl PgTx {
    /// An advisory lock per tenant on nested-group edges (R21), until the transaction ends.
    pub(super) async fn backend_lock_nesting(&mut self, tenant: TenantId) -> Result<()> {
        diesel::sql_query("SELECT pg_advisory_xact_lock(hashtextextended('nesting:' || $1, 0))")
            .bind::<Text, _>(tenant.0.to_string())
            .keep_prepared()
            .execute(self.conn())
            .await?;
        Ok(())
    }

    /// The group's row, locked until the transaction ends.
    pub(super) async fn backend_lock_group(
        &mut self,
        tenant: TenantId,
        id: GroupId,
    ) -> Result<Option<Group>> {
        groups::table
            .find((tenant.0, id.0))
            .select(GroupRow::as_select())
            // NO KEY UPDATE: foreign-key checks of rows that reference the group (a nested
            // group being added elsewhere) take KEY SHARE, which this must not block.
            .for_no_key_update()
            .first(self.conn())
            .await
            .optional()?
            .map(Group::try_from)
            .transpose()
    }

    /// Numbers one tenant's events (`write_events`) and writes them, one round trip: the
    /// counter row is locked from this statement to the commit, so the creates of one tenant,
    /// which queue on it, wait for one statement and the commit rather than three.
    pub(super) async fn backend_sequence_events(&mut self, run: &[Event]) -> Result<()> {
        let n = run.len();
        let written = diesel::sql_query(SEQUENCED_EVENTS)
            .bind::<BigInt, _>(run[0].tenant.0)
            .bind::<BigInt, _>(n as i64)
            .bind::<Array<BigInt>, _>(run.iter().map(|e| e.id.0).collect::<Vec<_>>())
            .bind::<Array<Nullable<BigInt>>, _>(
                run.iter().map(|e| e.group.map(|g| g.0)).collect::<Vec<_>>(),
            )
            .bind::<Array<Text>, _>(run.iter().map(|e| e.kind.as_str()).collect::<Vec<_>>())
            .bind::<Array<Text>, _>(run.iter().map(|e| e.payload.as_str()).collect::<Vec<_>>())
            .bind::<Array<BigInt>, _>(run.iter().map(|e| e.create_time).collect::<Vec<_>>())
            .bind::<Array<Text>, _>(run.iter().map(|e| e.actor.as_str()).collect::<Vec<_>>())
            .keep_prepared()
            .execute(self.conn())
            .await
            .map_err(|e| retry_on_taken_id(e, "events", "event_id"))?;
        if written != n {
            return Err(Error::Internal(format!("{written} of {n} events written")));
        }
        Ok(())
    }
}

impl SqliteTx {
    /// Numbers one tenant's events and writes them: the counter's upsert, then one insert per
    /// event (SQLite's batch insert cannot leave `group_id` to its default, and most
    /// transactions write one event). In process, statements cost no round trip.
    pub(super) async fn backend_sequence_events(&mut self, run: &mut [Event]) -> Result<()> {
        let n = run.len() as i64;
        use event_sequences::dsl as c;
        let last: i64 = diesel::insert_into(event_sequences::table)
            .values((c::tenant_id.eq(run[0].tenant.0), c::last_seq.eq(n)))
            .on_conflict(c::tenant_id)
            .do_update()
            .set(c::last_seq.eq(c::last_seq + n))
            .returning(c::last_seq)
            .keep_prepared()
            .get_result(self.conn())
            .await?;
        for (i, e) in run.iter_mut().enumerate() {
            e.seq = last - n + 1 + i as i64;
        }
        for e in run.iter() {
            diesel::insert_into(events::table)
                .values(&EventRow::from(e))
                .keep_prepared()
                .execute(self.conn())
                .await
                .map_err(|e| retry_on_taken_id(e, "events", "event_id"))?;
        }
        Ok(())
    }

    pub(super) async fn backend_lock_nesting(&mut self, _tenant: TenantId) -> Result<()> {
        Ok(())
    }

    pub(super) async fn backend_lock_group(
        &mut self,
        tenant: TenantId,
        id: GroupId,
    ) -> Result<Option<Group>> {
        self.get_group(tenant, id).await
    }
}
