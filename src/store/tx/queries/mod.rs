//! The query code shared by both backends, one module per aggregate trait. Included by
//! `pg.rs` and `sqlite.rs`, so it is compiled once for each: `BackendTx` is `PgTx` in one
//! and `SqliteTx` in the other. Write backend-neutral Diesel here; statements whose SQL
//! differs go to `locks.rs`.

mod directory;
mod events;
mod groups;
mod membership;

use diesel::QueryableByName;
use diesel::sql_types::BigInt;
use diesel_async::RunQueryDsl;

use super::{BackendTx, Db};
use crate::domain::error::Result;
use crate::domain::model::{GroupId, TenantId, UserKey};
use crate::domain::repo::Tx;
use crate::store::tx::KeepPrepared;

impl BackendTx {
    /// The one row of a statement about one user in the reach of one group
    /// (`sql::membership_of`, `sql::group_seen_by`): it binds the group, its tenant, the user
    /// and the transaction's instant.
    async fn user_in_reach<R>(
        &mut self,
        sql: String,
        tenant: TenantId,
        group: GroupId,
        user: UserKey,
    ) -> Result<R>
    where
        R: QueryableByName<Db> + Send + 'static,
    {
        Ok(diesel::sql_query(BackendTx::statement(sql))
            .bind::<BigInt, _>(group.0)
            .bind::<BigInt, _>(tenant.0)
            .bind::<BigInt, _>(user.tenant.0)
            .bind::<BigInt, _>(user.user.0)
            .bind::<BigInt, _>(self.now)
            .keep_prepared()
            .get_result(self.conn())
            .await?)
    }
}

impl Tx for BackendTx {
    fn now(&self) -> i64 {
        self.now
    }
}
