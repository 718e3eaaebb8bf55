//! The statements whose SQL differs by backend, side by side. The shared queries call these
//! through the same names on `PgTx` and `SqliteTx`.
//!
//! SQLite writes go through one writer connection (see `Store`), so a plain read already holds
//! the only write lock there is: its versions take no lock.

use diesel::prelude::*;
use diesel::sql_types::Text;
use diesel_async::RunQueryDsl;

use super::{KeepPrepared, PgTx, SqliteTx};
use crate::domain::error::Result;
use crate::domain::model::{Group, GroupId, TenantId};
use crate::domain::repo::GroupTx;
use crate::store::rows::GroupRow;
use crate::store::schema::groups;

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
}

impl SqliteTx {
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
