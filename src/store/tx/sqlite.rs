//! The shared queries (`queries/`) compiled for SQLite.

type BackendTx = super::SqliteTx;
/// Its Diesel backend.
type Db = diesel::sqlite::Sqlite;

#[allow(
    clippy::duplicate_mod,
    reason = "the same queries, compiled once per backend"
)]
#[path = "queries/mod.rs"]
mod queries;
