//! The outbox and the request ids that make creates and batch calls idempotent.

use async_trait::async_trait;

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

    // Outbox
    async fn insert_event(&mut self, event: &Event) -> Result<()>;
    /// A group's events, oldest first. Only the integration tests read the outbox this way
    /// (through `Store::read`; `#[cfg(test)]` items are not compiled for them); the service
    /// itself only writes it.
    async fn list_events(&mut self, tenant: TenantId, group: GroupId) -> Result<Vec<Event>>;
}
