//! The service and its one transaction seam. Every domain operation runs through
//! [`Service::read`] or [`Service::write`]: they open the transaction on a [`Database`] the
//! domain owns as a trait (storage implements it), resolve the caller once (R24), run the
//! operation, commit or roll back, and run write operations again when they lose a
//! serialization race. Handlers and rules never open transactions themselves.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use tracing::Instrument;

use super::cache::{Answer, AnswerCache, Key};
use super::caller::{Actor, Caller};
use super::error::{Error, Result};
use super::membership::Membership;
use super::model::UserKey;
use super::names::GroupPath;
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
    /// Runs just before a write commits: writes the transaction's events with their sequence
    /// numbers and `actor` (the change feed: `feed`). Other processes are told that the data
    /// changed once it has committed (`Database::changed`).
    async fn announce(&mut self, actor: &str) -> Result<()>;
    async fn commit(self: Box<Self>) -> Result<()>;
    async fn rollback(self: Box<Self>) -> Result<()>;
}

/// Where transactions come from. `store::Store` implements it for SQLite and PostgreSQL.
#[async_trait]
pub trait Database: Send + Sync + 'static {
    async fn begin(&self, mode: Mode) -> Result<Box<dyn Transaction>>;
    /// A number that grows after every committed write, or `None` while writes of other
    /// processes could go unnoticed (see `cache`).
    fn generation(&self) -> Option<u64>;
    /// The clock transactions take their instant from (`Tx::now`).
    fn clock(&self) -> &super::clock::Clock;
    /// A write transaction of this process committed: bumps the generation before the
    /// write's answer leaves, and tells other processes (the read cache's coherence: `cache`;
    /// the feed's followers).
    fn changed(&self);
    /// Changes whenever a write may have committed, here or in another process (while the
    /// signal from other processes is down, at least when it comes back).
    fn subscribe(&self) -> tokio::sync::watch::Receiver<u64>;
    /// Whether the database answers: on PostgreSQL followed from a connection of its own;
    /// embedded SQLite, once opened, always does.
    fn availability(&self) -> tokio::sync::watch::Receiver<bool>;
    /// The connection pools as they are now (metrics).
    fn pools(&self) -> Vec<PoolState>;
    /// The database system, as OpenTelemetry's `db.system` names it (`sqlite`, `postgresql`).
    fn system(&self) -> &'static str;
}

/// One connection pool of the database at one moment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolState {
    /// `postgres`, `sqlite_writer` or `sqlite_readers`.
    pub name: &'static str,
    /// Connections open, idle or checked out.
    pub connections: u32,
    pub idle: u32,
    /// Statements sent over the pool's connections since the start: every round trip to the
    /// database, transaction control included.
    pub statements: u64,
}

/// Told how long each operation run through the seam took, by the operation's name (a bounded
/// set: the names the domain passes to `read` and `write`).
pub trait Observer: Send + Sync + 'static {
    fn operation(&self, name: &'static str, elapsed: Duration);
}

/// The service: the database plus what the rules need around it.
#[derive(Clone)]
pub struct Service {
    db: Arc<dyn Database>,
    pub(crate) pager: Pager,
    cache: Option<Arc<AnswerCache>>,
    horizon: Arc<Mutex<Horizon>>,
    observer: Option<Arc<dyn Observer>>,
    /// How long after message is turned off its data is purged (`grace`).
    pub(crate) message_grace: Duration,
}

/// Until when cached membership answers hold (`Service::cache_generation`).
#[derive(Debug, Default)]
struct Horizon {
    generation: Option<u64>,
    until: i64,
    epoch: u64,
}

impl Service {
    pub fn new(db: impl Database, page_token_key: &[u8]) -> Self {
        Service {
            db: Arc::new(db),
            pager: Pager::new(page_token_key),
            cache: None,
            horizon: Arc::default(),
            observer: None,
            message_grace: super::grace::DEFAULT_MESSAGE_GRACE,
        }
    }

    /// Purges a group's message data `grace` after message is turned off (30 days unless set).
    pub fn with_message_grace(mut self, grace: Duration) -> Self {
        self.message_grace = grace;
        self
    }

    /// Tells `observer` how long each operation took.
    pub fn observed(mut self, observer: Arc<dyn Observer>) -> Self {
        self.observer = Some(observer);
        self
    }

    /// The database's connection pools as they are now.
    pub fn pools(&self) -> Vec<PoolState> {
        self.db.pools()
    }

    /// Keeps about `max_bytes` of read answers in memory (`cache`); 0 keeps none.
    pub fn with_cache(mut self, max_bytes: u64) -> Self {
        self.cache = (max_bytes > 0).then(|| Arc::new(AnswerCache::new(max_bytes)));
        self
    }

    /// `fill`'s answer for `key`, from the cache when it holds one read at the current
    /// generation. Only successful answers are kept.
    pub(crate) async fn cached<T>(
        &self,
        key: Key,
        to: impl Fn(Answer) -> Option<T>,
        from: impl Fn(&T) -> Answer,
        fill: impl Future<Output = Result<T>>,
    ) -> Result<T> {
        let Some(cache) = &self.cache else {
            return fill.await;
        };
        // The generation is read before the database is: see `cache`.
        let generation = self.cache_generation(&key).await;
        if let Some(hit) = cache.get(&key, generation).and_then(&to) {
            return Ok(hit);
        }
        let answer = fill.await?;
        cache.put(key, generation, from(&answer));
        Ok(answer)
    }

    /// The number cached answers for `key` are kept under and served at. The caller's
    /// directory rows follow the database's generation. Answers that membership decides
    /// (groups, checks) also end at the next member expiry: `horizon` holds the generation it
    /// was read at, that expiry, and the number it hands out, which changes whenever either
    /// is passed. The next expiry is read once per generation, before the answers it covers.
    async fn cache_generation(&self, key: &Key) -> Option<u64> {
        let generation = self.db.generation()?;
        if matches!(key, Key::Actor(_)) {
            return Some(generation);
        }
        let now = self.db.clock().now_micros();
        {
            let h = self.horizon.lock().ok()?;
            if h.generation == Some(generation) && now < h.until {
                return Some(h.epoch);
            }
        }
        let mut t = self.db.begin(Mode::Read).await.ok()?;
        let res = t.next_expiry(now).await;
        let until = finish(&*self.db, t, Mode::Read, "", res).await.ok()?;
        let mut h = self.horizon.lock().ok()?;
        // Another read of this generation got there first: its number stands, so that the
        // answers cached under it meanwhile stay.
        if h.generation == Some(generation) && now < h.until {
            return Some(h.epoch);
        }
        h.epoch += 1;
        h.generation = Some(generation);
        h.until = until.unwrap_or(i64::MAX);
        Some(h.epoch)
    }

    /// For each of `groups`, whether `user` is a member as `caller` may learn it: from the
    /// cache when it holds the answer read at the current generation; `fill` reads the others
    /// at once, given their positions, and answers them in that order (`None`: the group is
    /// missing or hidden). Only `Some` answers are kept.
    pub(crate) async fn cached_memberships<F>(
        &self,
        caller: &Caller,
        user: UserKey,
        groups: &[GroupPath],
        fill: impl FnOnce(Vec<usize>) -> F,
    ) -> Result<Vec<Option<Membership>>>
    where
        F: Future<Output = Result<Vec<Option<Membership>>>>,
    {
        let key = Key::Memberships {
            caller: caller.clone(),
            user,
        };
        let (generation, mut out) = match &self.cache {
            Some(cache) => {
                let generation = self.cache_generation(&key).await;
                (generation, cache.memberships(&key, groups, generation))
            }
            None => (None, vec![None; groups.len()]),
        };
        let missing: Vec<usize> = (0..groups.len()).filter(|&i| out[i].is_none()).collect();
        if missing.is_empty() {
            return Ok(out);
        }
        let filled = fill(missing.clone()).await?;
        if let Some(cache) = &self.cache {
            let read = missing
                .iter()
                .zip(&filled)
                .filter_map(|(&i, a)| a.map(|m| (groups[i].clone(), m)));
            cache.put_memberships(key, generation, read);
        }
        for (i, answer) in missing.into_iter().zip(filled) {
            out[i] = answer;
        }
        Ok(out)
    }

    /// The database, for the work that runs outside a caller's operation (`feed`).
    pub(crate) fn db(&self) -> &dyn Database {
        &*self.db
    }

    /// Changes whenever a write may have committed (`Database::subscribe`).
    pub(crate) fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.db.subscribe()
    }

    /// `Database::availability` (health).
    pub fn availability(&self) -> tokio::sync::watch::Receiver<bool> {
        self.db.availability()
    }

    /// Runs `op` in a read transaction, for the resolved caller, with `args` lent to it.
    pub(crate) async fn read<A: Send + Sync, R: Send>(
        &self,
        name: &'static str,
        caller: &Caller,
        args: A,
        op: impl for<'t> Fn(&'t mut dyn Tx, &'t Actor, &'t A) -> TxFuture<'t, R> + Send + Sync,
    ) -> Result<R> {
        self.run(name, Mode::Read, || {
            self.attempt(Mode::Read, caller, &args, &op)
        })
        .await
    }

    /// `read`, for an operation that resolves the caller in its own first statement
    /// (`access::group_for_caller`: the caller's directory row comes with the group it reads)
    /// instead of in a statement of its own before it: one round trip where `read` takes two.
    /// The caller is resolved once all the same, by `Caller::user_actor`'s rule.
    pub(crate) async fn read_resolving<A: Send + Sync, R: Send>(
        &self,
        name: &'static str,
        caller: &Caller,
        args: A,
        op: impl for<'t> Fn(&'t mut dyn Tx, &'t Caller, &'t A) -> TxFuture<'t, R> + Send + Sync,
    ) -> Result<R> {
        self.run(name, Mode::Read, || {
            self.attempt_resolving(Mode::Read, caller, &args, &op)
        })
        .await
    }

    /// Runs `op` in a write transaction, again when it loses a serialization race. All or
    /// nothing: an error rolls back every write of the attempt.
    pub(crate) async fn write<A: Send + Sync, R: Send>(
        &self,
        name: &'static str,
        caller: &Caller,
        args: A,
        op: impl for<'t> Fn(&'t mut dyn Tx, &'t Actor, &'t A) -> TxFuture<'t, R> + Send + Sync,
    ) -> Result<R> {
        self.run(name, Mode::Write, || {
            self.attempt(Mode::Write, caller, &args, &op)
        })
        .await
    }

    /// Runs `attempt` (one transaction, start to end) again when it loses a serialization
    /// race, or when a read's connection broke under it, and times the whole.
    async fn run<R, F, Fut>(&self, name: &'static str, mode: Mode, attempt_once: F) -> Result<R>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<R>>,
    {
        let started = Instant::now();
        // Within a call (its span is current), a child span per operation: exported with the
        // call's (`telemetry`). Work outside calls (timers, retention) makes no trace.
        let span = if tracing::Span::current().is_none() {
            tracing::Span::none()
        } else {
            tracing::info_span!(
                "operation",
                otel.name = name,
                otel.kind = "client",
                db.system = self.db.system(),
                db.operation.name = name,
            )
        };
        let mut attempt = 1;
        let res = async { loop {
            let res = attempt_once().await;
            match res {
                Err(Error::Retry(cause)) if attempt < MAX_ATTEMPTS => {
                    tracing::debug!(op = name, attempt, %cause, "transaction retried");
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(5 * u64::from(attempt))).await;
                }
                Err(Error::Disconnected(cause)) if mode == Mode::Read && attempt < MAX_ATTEMPTS => {
                    tracing::debug!(op = name, attempt, %cause, "read retried on a new connection");
                    attempt += 1;
                }
                Err(Error::Retry(cause)) => {
                    break Err(Error::Unavailable(format!(
                        "gave up after retries: {cause}"
                    )));
                }
                other => {
                    tracing::trace!(op = name, attempt, elapsed = ?started.elapsed(), "operation");
                    break other;
                }
            }
        } }
        .instrument(span)
        .await;
        if let Some(observer) = &self.observer {
            observer.operation(name, started.elapsed());
        }
        res
    }

    async fn attempt<A, R, F>(&self, mode: Mode, caller: &Caller, args: &A, op: &F) -> Result<R>
    where
        A: Send + Sync,
        R: Send,
        F: for<'t> Fn(&'t mut dyn Tx, &'t Actor, &'t A) -> TxFuture<'t, R> + Send + Sync,
    {
        let mut t = self.db.begin(mode).await?;
        let actor = match mode {
            // A write decides with the directory as its own transaction reads it.
            Mode::Write => caller.resolve(&mut *t).await,
            Mode::Read => {
                let to = |a| match a {
                    Answer::Actor(a) => Some(a),
                    _ => None,
                };
                let from = |a: &Actor| Answer::Actor(a.clone());
                let key = Key::Actor(caller.clone());
                self.cached(key, to, from, caller.resolve(&mut *t)).await
            }
        };
        let res = match actor {
            Ok(actor) => op(&mut *t, &actor, args).await,
            Err(e) => Err(e),
        };
        finish(&*self.db, t, mode, &caller.subject(), res).await
    }

    /// One transaction of an operation that resolves the caller itself.
    async fn attempt_resolving<A, R, F>(
        &self,
        mode: Mode,
        caller: &Caller,
        args: &A,
        op: &F,
    ) -> Result<R>
    where
        A: Send + Sync,
        R: Send,
        F: for<'t> Fn(&'t mut dyn Tx, &'t Caller, &'t A) -> TxFuture<'t, R> + Send + Sync,
    {
        let mut t = self.db.begin(mode).await?;
        let res = op(&mut *t, caller, args).await;
        finish(&*self.db, t, mode, &caller.subject(), res).await
    }
}

/// Ends a transaction with the outcome of its work: commits on `Ok` (a write's events written
/// first; after the commit, this process's generation bumped before the answer leaves, so no
/// cached read older than the write is served from here on, and other processes told), rolls
/// back on `Err`.
pub async fn finish<R>(
    db: &dyn Database,
    mut t: Box<dyn Transaction>,
    mode: Mode,
    actor: &str,
    res: Result<R>,
) -> Result<R> {
    match res {
        Ok(value) => {
            if mode == Mode::Write {
                t.announce(actor).await?;
            }
            t.commit().await?;
            if mode == Mode::Write {
                db.changed();
            }
            Ok(value)
        }
        Err(e) => {
            // The operation's error is the answer; a failed rollback discards the connection.
            let _ = t.rollback().await;
            Err(e)
        }
    }
}
