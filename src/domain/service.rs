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

use super::cache::{Answer, AnswerCache, Key, Lookup, coalesced};
use super::caller::{Actor, Caller};
use super::error::{Error, Result};
use super::membership::Membership;
use super::model::UserKey;
use super::names::GroupPath;
use super::operation::Operation;
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

/// What a committed write changed, as far as cached answers care (`cache`): the store adds
/// to it as the transaction writes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Touched {
    /// The tenants whose rows the write changed.
    pub tenants: Vec<super::model::TenantId>,
    /// Groups whose own row changed in nothing another answer reads (not their visibility,
    /// kind or external key): only answers of the group itself depend on it. A group of a
    /// tenant in `tenants` is not named here.
    pub groups: Vec<(super::model::TenantId, super::model::GroupId)>,
    /// It set, moved or removed a member's expiry (the cache's horizon).
    pub expiry: bool,
    /// It may have changed rows of any tenant (a deletion whose reach is not tracked).
    pub all: bool,
    /// It wrote events (the change feed's followers are woken).
    pub events: bool,
}

impl Touched {
    pub fn tenant(&mut self, tenant: super::model::TenantId) {
        if !self.tenants.contains(&tenant) {
            self.tenants.push(tenant);
        }
    }
    /// Only the group's own row changed (`groups`).
    pub fn group(&mut self, tenant: super::model::TenantId, group: super::model::GroupId) {
        if !self.groups.contains(&(tenant, group)) {
            self.groups.push((tenant, group));
        }
    }
    pub fn expiry(&mut self) {
        self.expiry = true;
    }
    pub fn everything(&mut self) {
        self.all = true;
        self.expiry = true;
    }
    /// Whether nothing a reader or a follower sees changed (the feed's own bookkeeping, an
    /// idempotency record): nobody is told.
    pub fn is_nothing(&self) -> bool {
        self.tenants.is_empty()
            && self.groups.is_empty()
            && !self.expiry
            && !self.all
            && !self.events
    }
}

/// An open transaction: the queries of [`Tx`], then commit or roll back. Dropping it without
/// either rolls it back (the connection is discarded).
#[async_trait]
pub trait Transaction: Tx {
    /// Runs just before a write commits: writes the transaction's events with their sequence
    /// numbers and `actor` (the change feed: `feed`). Other processes are told that the data
    /// changed once it has committed (`Database::changed`).
    async fn announce(&mut self, actor: &str) -> Result<()>;
    /// Commits; answers what the transaction changed (nothing for a read).
    async fn commit(self: Box<Self>) -> Result<Touched>;
    async fn rollback(self: Box<Self>) -> Result<()>;
}

/// Where transactions come from. `store::Store` implements it for SQLite and PostgreSQL.
#[async_trait]
pub trait Database: Send + Sync + 'static {
    async fn begin(&self, mode: Mode) -> Result<Box<dyn Transaction>>;
    /// A number that grows after every committed write that changed rows of any of
    /// `tenants` (here, or in another process once it is announced), or `None` while writes
    /// of other processes could go unnoticed (see `cache`). Never the same number again once
    /// it has grown.
    fn revision(&self, tenants: &[super::model::TenantId]) -> Option<u64>;
    /// A number that grows after every committed write that changed the row of group `id` of
    /// `tenant` alone (`Touched::groups`), or, for `None`, of any group of `tenant` (an answer
    /// that names its group by external key).
    fn group_revision(
        &self,
        tenant: super::model::TenantId,
        id: Option<super::model::GroupId>,
    ) -> u64;
    /// A number that grows after every committed write that may have set a member's expiry
    /// earlier than any before (the cache's horizon: `Service::cache_generation`).
    fn expiry_revision(&self) -> u64;
    /// The clock transactions take their instant from (`Tx::now`).
    fn clock(&self) -> &super::clock::Clock;
    /// A write transaction of this process committed, changing `touched`: bumps those
    /// tenants' revisions before the write's answer leaves, and tells other processes (the
    /// read cache's coherence: `cache`; the feed's followers, woken by every write).
    fn changed(&self, touched: &Touched);
    /// This process's position (`consistency`): a token at least as new as every write it
    /// has acknowledged.
    fn token(&self) -> super::consistency::Token;
    /// Whether this process's answers are at least as fresh as the write at `token`, waiting
    /// at most `wait` to hear of it.
    async fn caught_up(&self, token: &super::consistency::Token, wait: Duration) -> bool;
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

/// Told how long each operation run through the seam took.
pub trait Observer: Send + Sync + 'static {
    fn operation(&self, op: Operation, elapsed: Duration);
    /// A cache lookup of an answer of `kind` (`Key::kind`) ended as `outcome`: `hit`,
    /// `miss`, `stale` (an entry of an older revision, dropped), `shared` (another call's read
    /// of the same key answered it) or `bypassed` (the call's consistency, or revisions
    /// unknown).
    fn cache(&self, kind: &'static str, outcome: &'static str) {
        let _ = (kind, outcome);
    }
    /// A read's consistency choice was met as `met` (`consistency::Met::label`).
    fn consistency(&self, met: &'static str) {
        let _ = met;
    }
}

/// The service: the database plus what the rules need around it.
#[derive(Clone)]
pub struct Service {
    db: Arc<dyn Database>,
    pub(crate) pager: Pager,
    cache: Option<Arc<AnswerCache>>,
    horizon: Arc<Mutex<Horizon>>,
    /// Held while the horizon is read, so that concurrent misses read it once.
    horizon_read: Arc<tokio::sync::Mutex<()>>,
    observer: Option<Arc<dyn Observer>>,
    /// How long after message is turned off its data is purged (`grace`).
    pub(crate) message_grace: Duration,
}

/// Until when cached membership answers hold (`Service::cache_generation`); `generation` is
/// the expiry revision it was read at.
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
            horizon_read: Arc::default(),
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
        // Whether the call's consistency lets the cache answer is settled first (it may wait
        // for a notification, which bumps revisions); then the generation, read before the
        // database is: see `cache`.
        let fresh = self.fresh_enough().await;
        let generation = self.cache_generation(&key).await;
        let kind = key.kind();
        let Some(read_at) = generation.filter(|_| fresh) else {
            self.observe_cache(kind, "bypassed");
            let answer = fill.await?;
            cache.put(key, generation, from(&answer));
            return Ok(answer);
        };
        match cache.get(&key, generation) {
            Lookup::Hit(answer) => {
                if let Some(hit) = to(answer) {
                    self.observe_cache(kind, "hit");
                    return Ok(hit);
                }
            }
            Lookup::Stale => self.observe_cache(kind, "stale"),
            Lookup::Absent => self.observe_cache(kind, "miss"),
        }
        // Concurrent misses of the key at this generation share one read: the first fills
        // (and keeps the answer before the others are let go), the others wait for it.
        let mut filled = false;
        let answer = coalesced(&cache.filling, (key.clone(), read_at), async {
            filled = true;
            let answer = from(&fill.await?);
            cache.put(key.clone(), Some(read_at), answer.clone());
            Ok(answer)
        })
        .await?;
        if !filled {
            self.observe_cache(kind, "shared");
        }
        to(answer).ok_or_else(|| Error::Internal("a shared answer of another kind".into()))
    }

    /// `consistency::fresh_enough`, observed.
    async fn fresh_enough(&self) -> bool {
        let met = super::consistency::fresh_enough(&*self.db).await;
        if met != super::consistency::Met::Default
            && let Some(observer) = &self.observer
        {
            observer.consistency(met.label());
        }
        met.cache_may_answer()
    }

    fn observe_cache(&self, kind: &'static str, outcome: &'static str) {
        if let Some(observer) = &self.observer {
            observer.cache(kind, outcome);
        }
    }

    /// The number cached answers for `key` are kept under and served at: the revision of
    /// the tenants the answer reads (`Key::tenants`). The caller's directory row follows its
    /// tenant alone. Answers that membership decides (groups, checks) also end at the next
    /// member expiry: `horizon` holds the expiry revision it was read at, that expiry, and
    /// the number it hands out, which changes whenever either is passed; the key's number is
    /// the sum of the two (both only grow, so the sum changes whenever either does). The next
    /// expiry is read once per expiry revision, before the answers it covers.
    async fn cache_generation(&self, key: &Key) -> Option<u64> {
        let revision = self.db.revision(&key.tenants())?
            + key
                .group()
                .map_or(0, |(tenant, id)| self.db.group_revision(tenant, id));
        if matches!(key, Key::Actor(_)) {
            return Some(revision);
        }
        let expiry = self.db.expiry_revision();
        let now = self.db.clock().now_micros();
        {
            let h = self.horizon.lock().ok()?;
            if h.generation == Some(expiry) && now < h.until {
                return Some(revision + h.epoch);
            }
        }
        // One read at a time: the others wait for it and take its number.
        let _reading = self.horizon_read.lock().await;
        {
            let h = self.horizon.lock().ok()?;
            if h.generation == Some(expiry) && now < h.until {
                return Some(revision + h.epoch);
            }
        }
        let until = self
            .background(Operation::NextExpiry, Mode::Read, now, |tx, &now| {
                Box::pin(tx.next_expiry(now))
            })
            .await
            .ok()?;
        let mut h = self.horizon.lock().ok()?;
        // Another read of this revision got there first: its number stands, so that the
        // answers cached under it meanwhile stay.
        if h.generation == Some(expiry) && now < h.until {
            return Some(revision + h.epoch);
        }
        h.epoch += 1;
        h.generation = Some(expiry);
        h.until = until.unwrap_or(i64::MAX);
        Some(revision + h.epoch)
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
        // The entry follows the caller's and the user's tenants: answers about a group of a
        // third tenant (an external group) are read every time.
        let cacheable = |g: &GroupPath| g.tenant == caller.tenant || g.tenant == user.tenant;
        let (generation, fresh, mut out) = match &self.cache {
            Some(cache) => {
                // As in `cached`: the consistency first, then the generation.
                let fresh = self.fresh_enough().await;
                let generation = self.cache_generation(&key).await;
                let mut out = if fresh && generation.is_some() {
                    let (out, stale) = cache.memberships(&key, groups, generation);
                    let outcome = if stale {
                        "stale"
                    } else if out.iter().all(Option::is_some) {
                        "hit"
                    } else {
                        "miss"
                    };
                    self.observe_cache(key.kind(), outcome);
                    out
                } else {
                    self.observe_cache(key.kind(), "bypassed");
                    vec![None; groups.len()]
                };
                for (answer, group) in out.iter_mut().zip(groups) {
                    if !cacheable(group) {
                        *answer = None;
                    }
                }
                (generation, fresh, out)
            }
            None => (None, false, vec![None; groups.len()]),
        };
        let missing: Vec<usize> = (0..groups.len()).filter(|&i| out[i].is_none()).collect();
        if missing.is_empty() {
            return Ok(out);
        }
        let keep = |filled: &[Option<Membership>]| {
            if let Some(cache) = &self.cache {
                let read = missing
                    .iter()
                    .zip(filled)
                    .filter(|&(&i, _)| cacheable(&groups[i]))
                    .filter_map(|(&i, a)| a.map(|m| (groups[i].clone(), m)));
                cache.put_memberships(key.clone(), generation, read);
            }
        };
        let filled = match (&self.cache, generation.filter(|_| fresh)) {
            // Concurrent misses of the same groups share one read, as in `cached`.
            (Some(cache), Some(read_at)) => {
                let asked: Vec<GroupPath> = missing.iter().map(|&i| groups[i].clone()).collect();
                coalesced(
                    &cache.filling_memberships,
                    (key.clone(), read_at, asked),
                    async {
                        let filled = fill(missing.clone()).await?;
                        keep(&filled);
                        Ok(filled)
                    },
                )
                .await?
            }
            _ => {
                let filled = fill(missing.clone()).await?;
                keep(&filled);
                filled
            }
        };
        for (i, answer) in missing.into_iter().zip(filled) {
            out[i] = answer;
        }
        Ok(out)
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
        name: Operation,
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
        name: Operation,
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
        name: Operation,
        caller: &Caller,
        args: A,
        op: impl for<'t> Fn(&'t mut dyn Tx, &'t Actor, &'t A) -> TxFuture<'t, R> + Send + Sync,
    ) -> Result<R> {
        self.run(name, Mode::Write, || {
            self.attempt(Mode::Write, caller, &args, &op)
        })
        .await
    }

    /// Runs `op`, work of the service's own (timers, retention, the relay, the cache's
    /// horizon), in a transaction of `mode`, with `args` lent to it: through the same seam as
    /// a caller's operation (retries, timing, the database's loss, revisions), with no actor.
    pub(crate) async fn background<A: Send + Sync, R: Send>(
        &self,
        name: Operation,
        mode: Mode,
        args: A,
        op: impl for<'t> Fn(&'t mut dyn Tx, &'t A) -> TxFuture<'t, R> + Send + Sync,
    ) -> Result<R> {
        self.run(name, mode, || async {
            let mut t = self.db.begin(mode).await?;
            let res = op(&mut *t, &args).await;
            finish(&*self.db, t, mode, super::events::OWN_ACCOUNT, res).await
        })
        .await
    }

    /// Runs `attempt` (one transaction, start to end) again when it loses a serialization
    /// race, or when a read's connection broke under it, and times the whole.
    async fn run<R, F, Fut>(&self, name: Operation, mode: Mode, attempt_once: F) -> Result<R>
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
                otel.name = name.label(),
                otel.kind = "client",
                db.system = self.db.system(),
                db.operation.name = name.label(),
            )
        };
        let mut attempt = 1;
        // A statement in flight when the database is seen to stop answering (a frozen network
        // answers nothing and closes nothing) is abandoned: the operation answers UNAVAILABLE
        // at once instead of waiting out the outage, and its transaction, dropped unfinished,
        // takes its connection out of the pool.
        let lost = database_lost(self.db.availability());
        let work = async {
            loop {
                let res = attempt_once().await;
                match res {
                    Err(Error::Retry(cause)) if attempt < MAX_ATTEMPTS => {
                        tracing::debug!(op = name.label(), attempt, %cause, "transaction retried");
                        attempt += 1;
                        tokio::time::sleep(Duration::from_millis(5 * u64::from(attempt))).await;
                    }
                    Err(Error::Disconnected(cause))
                        if mode == Mode::Read && attempt < MAX_ATTEMPTS =>
                    {
                        tracing::debug!(op = name.label(), attempt, %cause, "read retried on a new connection");
                        attempt += 1;
                    }
                    Err(Error::Retry(cause)) => {
                        break Err(Error::Unavailable(format!(
                            "gave up after retries: {cause}"
                        )));
                    }
                    other => {
                        tracing::trace!(op = name.label(), attempt, elapsed = ?started.elapsed(), "operation");
                        break other;
                    }
                }
            }
        };
        let res = async {
            tokio::select! {
                res = work => res,
                () = lost => Err(Error::Unavailable(
                    "the database stopped answering during the operation".into(),
                )),
            }
        }
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

/// Resolves when `available` turns false (at once if it is), never if its sender is gone.
async fn database_lost(mut available: tokio::sync::watch::Receiver<bool>) {
    if available.wait_for(|up| !*up).await.is_err() {
        std::future::pending::<()>().await;
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
            let touched = t.commit().await?;
            if mode == Mode::Write {
                if !touched.is_nothing() {
                    db.changed(&touched);
                }
                super::consistency::record(db.token());
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
