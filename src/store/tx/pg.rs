//! The shared queries (`queries/`) compiled for PostgreSQL.

type BackendTx = super::PgTx;
/// Its Diesel backend.
type Db = diesel::pg::Pg;

#[allow(
    clippy::duplicate_mod,
    reason = "the same queries, compiled once per backend"
)]
#[path = "queries/mod.rs"]
mod queries;
