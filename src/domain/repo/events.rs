//! The outbox and the request ids that make creates and batch calls idempotent.

use async_trait::async_trait;

use super::{AuditFilter, Page};
use crate::domain::error::Result;
use crate::domain::model::*;

#[async_trait]
pub trait EventTx: Send {
    // Idempotent batches
    /// Claims a request id for a batch call; false when it was claimed before.
    async fn claim_batch_request(
        &mut self,
        tenant: TenantId,
        request_id: &str,
        fingerprint: &str,
        now: i64,
    ) -> Result<bool>;
    /// (fingerprint, response) of a claimed request id.
    async fn get_batch_request(
        &mut self,
        tenant: TenantId,
        request_id: &str,
    ) -> Result<Option<(String, String)>>;
    async fn save_batch_response(
        &mut self,
        tenant: TenantId,
        request_id: &str,
        response: &str,
    ) -> Result<()>;

    // Idempotent creates
    /// The (fingerprint, group) a request id first created, if any.
    async fn get_create_request(
        &mut self,
        tenant: TenantId,
        request_id: &str,
    ) -> Result<Option<(String, GroupId)>>;
    /// Claims a request id; false when another transaction already holds it (on PostgreSQL
    /// this waits for that transaction to end).
    async fn insert_create_request(
        &mut self,
        tenant: TenantId,
        request_id: &str,
        fingerprint: &str,
        group: GroupId,
        now: i64,
    ) -> Result<bool>;

    // Outbox and change feed
    /// Adds an event to the transaction. It is written, with its tenant's next sequence
    /// number, when the transaction commits.
    async fn insert_event(&mut self, event: &Event) -> Result<()>;
    /// Up to `limit` events of the tenant with a sequence number above `after`, in order.
    async fn events_after(
        &mut self,
        tenant: TenantId,
        after: i64,
        limit: i64,
    ) -> Result<Vec<Event>>;
    /// The tenant's feed bounds: (pruned, last). Every event up to `pruned` has been removed
    /// by retention; `last` is the newest sequence number given (0, 0 for a tenant with none).
    async fn event_bounds(&mut self, tenant: TenantId) -> Result<(i64, i64)>;
    /// The audit log: events of the tenant matching `filter`, newest first, before `page.after`.
    async fn audit_events(
        &mut self,
        tenant: TenantId,
        filter: &AuditFilter,
        page: Page<i64>,
    ) -> Result<Vec<Event>>;
    /// Up to `limit` events no relay has published, in (tenant, sequence) order.
    async fn unpublished_events(&mut self, limit: i64) -> Result<Vec<Event>>;
    async fn mark_published(&mut self, events: &[(TenantId, EventId)]) -> Result<()>;
    /// The creation time of the oldest unpublished event.
    async fn oldest_unpublished(&mut self) -> Result<Option<i64>>;
    /// Takes or renews the lease `name` for `holder` until `expires`; false while another
    /// holder's lease has not expired at `now`.
    async fn take_lease(
        &mut self,
        name: &str,
        holder: &str,
        now: i64,
        expires: i64,
    ) -> Result<bool>;
    /// Retention for one tenant: the end of the longest run of its oldest kept events that
    /// were all created before `before` (and, with `published_only`, published), at most `max`
    /// events past what is already pruned; `None` when there is nothing to remove.
    async fn prunable_through(
        &mut self,
        tenant: TenantId,
        before: i64,
        published_only: bool,
        max: i64,
    ) -> Result<Option<i64>>;
    /// Removes the tenant's events up to `seq` and records it as the pruned sequence number.
    async fn prune_through(&mut self, tenant: TenantId, seq: i64) -> Result<()>;
    /// Tenants that have events.
    async fn event_tenants(&mut self) -> Result<Vec<TenantId>>;
    /// A group's events, oldest first. Only the integration tests read the outbox this way
    /// (through `Store::read`; `#[cfg(test)]` items are not compiled for them); the service
    /// itself only writes it.
    async fn list_events(&mut self, tenant: TenantId, group: GroupId) -> Result<Vec<Event>>;
}
