//! The domain's transaction traits (`domain::repo`) for both backends from one body of Diesel
//! code.
//!
//! Diesel-async has no connection type that spans both backends, so every query is compiled
//! once per backend. The query code is a plain module tree, `queries/`, one file per aggregate
//! trait, written against `BackendTx`: `pg.rs` and `sqlite.rs` each define that alias (to
//! `PgTx`, to `SqliteTx`) and include the same `queries/mod.rs` with `#[path]`. The files are
//! ordinary Rust, so rustfmt formats them and the IDE reads them, which a macro body (as
//! before) is not; one small macro per aggregate would have the same problem.
//!
//! - `sql.rs`: the raw SQL statements, assembled from named pieces, and the tests of their
//!   bind numbering. Compiled once.
//! - `locks.rs`: the only statements whose SQL differs by backend (row and advisory locks),
//!   both backends side by side.
//! - Queries reach the connection only through `conn()` below, one accessor per backend.

mod locks;
mod pg;
mod sql;
mod sqlite;

use diesel::QueryResult;
use diesel::backend::Backend;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel_async::AsyncPgConnection;

use super::{Pooled, SqliteConn};
use crate::domain::Touched;
use crate::domain::error::{Error, Reason};
use crate::domain::model::{Event, TenantId, UserId, UserKey};

/// A PostgreSQL transaction: a connection checked out of the pool. Reads run without
/// BEGIN/COMMIT (`open` false): under READ COMMITTED every statement takes its own snapshot
/// inside a transaction too, so a read-only transaction would cost two round trips and buy
/// nothing.
pub struct PgTx {
    pub conn: Pooled<AsyncPgConnection>,
    pub open: bool,
    /// The transaction's instant (`Tx::now`).
    pub now: i64,
    /// The transaction's events, written with their sequence numbers just before it commits
    /// (`EventTx::sequence_events`).
    pub events: Vec<Event>,
    /// What its writes changed (`domain::cache`), added to by every write statement.
    pub touched: Touched,
}
/// An SQLite transaction, likewise.
pub struct SqliteTx {
    pub conn: Pooled<SqliteConn>,
    pub now: i64,
    pub events: Vec<Event>,
    pub touched: Touched,
}

impl PgTx {
    /// The connection every PostgreSQL query of the transaction runs on.
    fn conn(&mut self) -> &mut AsyncPgConnection {
        &mut self.conn
    }
}

impl PgTx {
    /// A statement of `sql` as PostgreSQL reads it: `$n` binds by number.
    fn statement(sql: impl Into<String>) -> String {
        sql.into()
    }
}

impl SqliteTx {
    /// A statement of `sql` (`$n` binds) as SQLite binds by number: `?n`. SQLite would number
    /// `$n` names by first appearance instead. No statement has `$` anywhere else
    /// (`sql` tests).
    fn statement(sql: impl Into<String>) -> String {
        sql.into().replace('$', "?")
    }

    /// The connection every SQLite query of the transaction runs on.
    fn conn(&mut self) -> &mut SqliteConn {
        &mut self.conn
    }
}

/// A raw statement (`diesel::sql_query` with its binds) that the connection's statement cache
/// keeps prepared. Diesel marks every raw statement unsafe to cache, because it cannot know
/// whether its text was built from input; so each call prepared and planned it again (parse
/// 0.18 ms and planning 0.4-0.6 ms on PostgreSQL, for an execute of 0.07 ms:
/// docs/performance.md). Ours are the texts of `sql.rs`, built from a bounded set of pieces
/// and never from input (values are always binds), so each text is prepared once per
/// connection, keyed by the text and its bind types.
pub(crate) struct Prepared<Q>(Q);

/// `.keep_prepared()` before running a raw statement, or a DSL statement that Diesel would
/// prepare again on every run: an `UPDATE`, an upsert, a boxed query, or an insert of a
/// derived `Insertable` (PostgreSQL's statement log showed each of these parsed anew for every
/// create). Only for statements of one shape per text: never for a bind list whose length
/// follows the input (`eq_any`, batch inserts), which would fill the cache with a text per
/// length.
pub(crate) trait KeepPrepared: Sized {
    fn keep_prepared(self) -> Prepared<Self> {
        Prepared(self)
    }
}

impl<Q> KeepPrepared for Q {}

impl<Q, DB> QueryFragment<DB> for Prepared<Q>
where
    Q: QueryFragment<DB>,
    DB: Backend,
{
    fn walk_ast<'b>(&'b self, pass: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        self.0.walk_ast(pass)
    }

    fn is_safe_to_cache_prepared(&self, _backend: &DB) -> QueryResult<bool> {
        Ok(true)
    }
}

impl<Q> QueryId for Prepared<Q> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<Q: Query> Query for Prepared<Q> {
    type SqlType = Q::SqlType;
}

fn unique_violation_on(err: &DieselError, needle: &str) -> bool {
    match err {
        DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, info) => {
            info.constraint_name().is_some_and(|c| c.contains(needle))
                || info.message().contains(needle)
        }
        _ => false,
    }
}

/// A unique violation of `table`'s primary key `(tenant_id, id_column)` is a generated id
/// another process issued too (`model::next_id`): the write runs again (the seam's retry)
/// with new ids, instead of failing or overwriting. PostgreSQL names the constraint
/// `{table}_pkey`; SQLite names the columns.
pub(crate) fn retry_on_taken_id(e: DieselError, table: &str, id_column: &str) -> Error {
    if unique_violation_on(&e, &format!("{table}_pkey"))
        || unique_violation_on(&e, &format!("{table}.tenant_id, {table}.{id_column}"))
    {
        Error::Retry(format!("generated {table} id already taken: {e}"))
    } else {
        e.into()
    }
}

/// Unique violations of a group write, as the rule they break.
fn map_group_write(e: DieselError) -> Error {
    if unique_violation_on(&e, "name_key") {
        Error::AlreadyExists {
            reason: Reason::GroupNameTaken,
            message: "another group of the tenant has this name".into(),
        }
    } else if unique_violation_on(&e, "external_key") {
        Error::AlreadyExists {
            reason: Reason::ExternalKeyTaken,
            message: "another group of the tenant has this external key".into(),
        }
    } else if unique_violation_on(&e, "mailing_list") {
        Error::precondition(
            Reason::AddressInUse,
            "the mailing-list address is in use in the tenant",
        )
    } else {
        retry_on_taken_id(e, "groups", "group_id")
    }
}

fn user_key(tenant_id: i64, user_id: i64) -> UserKey {
    UserKey {
        tenant: TenantId(tenant_id),
        user: UserId(user_id),
    }
}
