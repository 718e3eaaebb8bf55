//! The query code shared by both backends, one module per aggregate trait. Included by
//! `pg.rs` and `sqlite.rs`, so it is compiled once for each: `BackendTx` is `PgTx` in one
//! and `SqliteTx` in the other. Write backend-neutral Diesel here; statements whose SQL
//! differs go to `locks.rs`.

mod directory;
mod events;
mod groups;
mod membership;

use async_trait::async_trait;
use diesel_async::RunQueryDsl;

use super::BackendTx;
use crate::domain::error::Result;
use crate::domain::repo::Tx;
use crate::store::tx::KeepPrepared;

#[async_trait]
impl Tx for BackendTx {
    async fn ping(&mut self) -> Result<()> {
        diesel::sql_query("SELECT 1")
            .keep_prepared()
            .execute(self.conn())
            .await?;
        Ok(())
    }
}
