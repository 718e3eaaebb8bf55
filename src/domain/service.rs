//! The service and its one transaction seam. Every domain operation runs through
//! [`Service::read`] or [`Service::write`]: they open the transaction on a [`Database`] the
//! domain owns as a trait (storage implements it), resolve the caller once (R24), run the
//! operation, commit or roll back, and run write operations again when they lose a
//! serialization race. Handlers and rules never open transactions themselves.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;

use super::caller::{Actor, Caller};
use super::error::{Error, Result};
use super::page::Pager;
use super::repo::Tx;

/// How many times a transaction that lost a serialization race is run.
const MAX_ATTEMPTS: u32 = 5;

/// A boxed future borrowing one transaction.
pub type TxFuture<'t, R> = Pin<Box<dyn Future<Output = Result<R>> + Send + 't>>;

/// What a transaction may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Reads only; may run beside other readers and the writer.
    Read,
    /// Reads and writes.
    Write,
}

/// An open transaction: the queries of [`Tx`], then commit or roll back. Dropping it without
/// either rolls it back (the connection is discarded).
#[async_trait]
pub trait Transaction: Tx {
    async fn commit(self: Box<Self>) -> Result<()>;
    async fn rollback(self: Box<Self>) -> Result<()>;
}

/// Where transactions come from. `store::Store` implements it for SQLite and PostgreSQL.
#[async_trait]
pub trait Database: Send + Sync + 'static {
    async fn begin(&self, mode: Mode) -> Result<Box<dyn Transaction>>;
}

/// The service: the database plus what the rules need around it.
#[derive(Clone)]
pub struct Service {
    db: Arc<dyn Database>,
    pub(crate) pager: Pager,
}

impl Service {
    pub fn new(db: impl Database, page_token_key: &[u8]) -> Self {
        Service {
            db: Arc::new(db),
            pager: Pager::new(page_token_key),
        }
    }

    /// Whether the database answers (health).
    pub async fn ping(&self) -> bool {
        match self.db.begin(Mode::Read).await {
            Ok(mut t) => t.ping().await.is_ok() && t.rollback().await.is_ok(),
            Err(_) => false,
        }
    }

    /// Runs `op` in a read transaction, for the resolved caller, with `args` lent to it.
    pub(crate) async fn read<A, R, F>(
        &self,
        name: &'static str,
        caller: &Caller,
        args: A,
        op: F,
    ) -> Result<R>
    where
        A: Send + Sync,
        R: Send,
        F: for<'t> Fn(&'t mut dyn Tx, &'t Actor, &'t A) -> TxFuture<'t, R> + Send + Sync,
    {
        self.run(name, Mode::Read, caller, &args, &op).await
    }

    /// Runs `op` in a write transaction, again when it loses a serialization race. All or
    /// nothing: an error rolls back every write of the attempt.
    pub(crate) async fn write<A, R, F>(
        &self,
        name: &'static str,
        caller: &Caller,
        args: A,
        op: F,
    ) -> Result<R>
    where
        A: Send + Sync,
        R: Send,
        F: for<'t> Fn(&'t mut dyn Tx, &'t Actor, &'t A) -> TxFuture<'t, R> + Send + Sync,
    {
        self.run(name, Mode::Write, caller, &args, &op).await
    }

    async fn run<A, R, F>(
        &self,
        name: &'static str,
        mode: Mode,
        caller: &Caller,
        args: &A,
        op: &F,
    ) -> Result<R>
    where
        A: Send + Sync,
        R: Send,
        F: for<'t> Fn(&'t mut dyn Tx, &'t Actor, &'t A) -> TxFuture<'t, R> + Send + Sync,
    {
        let started = Instant::now();
        let mut attempt = 1;
        loop {
            let res = self.attempt(mode, caller, args, op).await;
            match res {
                Err(Error::Retry(cause)) if attempt < MAX_ATTEMPTS => {
                    tracing::debug!(op = name, attempt, %cause, "transaction retried");
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(5 * u64::from(attempt))).await;
                }
                Err(Error::Retry(cause)) => {
                    return Err(Error::Unavailable(format!(
                        "gave up after retries: {cause}"
                    )));
                }
                other => {
                    tracing::trace!(op = name, attempt, elapsed = ?started.elapsed(), "operation");
                    return other;
                }
            }
        }
    }

    async fn attempt<A, R, F>(&self, mode: Mode, caller: &Caller, args: &A, op: &F) -> Result<R>
    where
        A: Send + Sync,
        R: Send,
        F: for<'t> Fn(&'t mut dyn Tx, &'t Actor, &'t A) -> TxFuture<'t, R> + Send + Sync,
    {
        let mut t = self.db.begin(mode).await?;
        let res = match caller.resolve(&mut *t).await {
            Ok(actor) => op(&mut *t, &actor, args).await,
            Err(e) => Err(e),
        };
        match res {
            Ok(value) => {
                t.commit().await?;
                Ok(value)
            }
            Err(e) => {
                // The operation's error is the answer; a failed rollback discards the
                // connection.
                let _ = t.rollback().await;
                Err(e)
            }
        }
    }
}
