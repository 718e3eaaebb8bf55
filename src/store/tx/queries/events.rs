//! `EventTx`: the outbox and the request ids of idempotent creates and batch calls.

use async_trait::async_trait;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use super::BackendTx;
use crate::domain::error::Result;
use crate::domain::model::*;
use crate::domain::repo::EventTx;
use crate::store::rows::*;
use crate::store::schema::*;

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
        diesel::insert_into(events::table)
            .values(&EventRow::from(event))
            .execute(self.conn())
            .await?;
        Ok(())
    }

    async fn list_events(&mut self, tenant: TenantId, group: GroupId) -> Result<Vec<Event>> {
        Ok(events::table
            .filter(events::tenant_id.eq(tenant.0))
            .filter(events::group_id.eq(group.0))
            .order(events::event_id)
            .select(EventRow::as_select())
            .load(self.conn())
            .await?
            .into_iter()
            .map(Event::from)
            .collect())
    }
}
