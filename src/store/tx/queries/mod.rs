//! The query code shared by both backends, one module per aggregate trait. Included by
//! `pg.rs` and `sqlite.rs`, so it is compiled once for each: `BackendTx` is `PgTx` in one
//! and `SqliteTx` in the other. Write backend-neutral Diesel here; statements whose SQL
//! differs go to `locks.rs`.

mod directory;
mod events;
mod groups;
mod membership;

use super::BackendTx;
use crate::domain::repo::Tx;

impl Tx for BackendTx {
    fn now(&self) -> i64 {
        self.now
    }
}
