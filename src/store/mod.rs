//! Storage: the only code that touches Diesel. One schema and one body of query code serve
//! SQLite (embedded default) and PostgreSQL; see `tx.rs`.

mod changes;
mod rekey;
mod rows;
mod schema;
mod tls;
mod tx;

use async_trait::async_trait;
use diesel_async::TransactionManager;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel::{Connection, SqliteConnection};
use diesel_async::pooled_connection::bb8::{Pool, PooledConnection, RunError};
use diesel_async::pooled_connection::{
    AsyncDieselConnectionManager, ManagerConfig, PoolableConnection,
};
use diesel_async::sync_connection_wrapper::SyncConnectionWrapper;
use diesel_async::{
    AsyncConnection, AsyncMigrationHarness, AsyncPgConnection, SimpleAsyncConnection,
};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};
use futures_util::FutureExt;

use crate::domain::clock::Clock;
use crate::domain::consistency::Token;
use crate::domain::error::{Error, Result};
use crate::domain::model::TenantId;
use crate::domain::repo::Tx;
pub use crate::domain::service::TxFuture;
use crate::domain::service::{Database, Mode, PoolState, Touched, Transaction, finish};
use changes::Changes;
pub use rekey::Rekeyed;
use tls::PgTarget;
use tx::{PgTx, SqliteTx};

pub(crate) type SqliteConn = SyncConnectionWrapper<SqliteConnection>;
/// A connection checked out of a pool for as long as one transaction holds it.
pub(crate) type Pooled<C> = PooledConnection<'static, C>;

const PG_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");
const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");

/// Every SQLite connection's settings. temp_store: the recursive membership walks and sorts
/// build temporary b-trees; in memory, not in files. cache_size: 2 MB of pages per connection
/// (the OS caches the file too); 8 MB across 17 connections took the server's RSS to 267 MiB
/// after the benchmark, 2 MB gives 117 MiB and the same throughput (docs/performance.md).
const SQLITE_SETTINGS: &str = "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
     PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 5000; \
     PRAGMA temp_store = MEMORY; PRAGMA cache_size = -2000;";

/// The database: PostgreSQL, or SQLite with one writer connection (SQLite allows one writer at
/// a time; queueing writers in the pool instead of in `busy_timeout` keeps them fair and makes
/// every write transaction serial, which the limits and the cycle check rely on) and a pool of
/// readers (WAL lets them run beside the writer).
#[derive(Clone)]
pub struct Store {
    pub backend: Backend,
    changes: Arc<Changes>,
    clock: Clock,
    /// Statements sent to the database, by pool (`PoolState::statements`).
    statements: Arc<[Arc<AtomicU64>; 2]>,
    /// Streaming standbys that reads may go to (PostgreSQL, `with_standbys`).
    standbys: Arc<[Arc<Standby>]>,
    /// Which standby a read tries first: they take turns.
    next_standby: Arc<AtomicU64>,
}

/// A streaming standby of the primary (`--database-read-url`).
struct Standby {
    /// Its pool's name in `PoolState` (`postgres_standby_1`, ...).
    name: &'static str,
    target: PgTarget,
    pool: Pool<AsyncPgConnection>,
    statements: Arc<AtomicU64>,
    /// The WAL position it was last seen to have replayed, read from the standby itself:
    /// replay only moves forward, so it has replayed at least this much now.
    replayed: AtomicU64,
    /// The connection its position is read on (outside the pool, so that the pool's
    /// statements count reads only), and when it was last read. Held while it is read.
    check: tokio::sync::Mutex<(Option<tokio_postgres::Client>, Option<std::time::Instant>)>,
}

/// The longest a read waits to learn a standby's position or for one of its connections:
/// past it the read goes to the primary.
const STANDBY_PATIENCE: Duration = Duration::from_millis(200);
/// A standby's position is read again at most this often.
const STANDBY_RECHECK: Duration = Duration::from_millis(1);

impl Standby {
    /// Whether it has replayed the primary's WAL up to `position`: from what it last said,
    /// or asking it again (at most every `STANDBY_RECHECK`, one read at a time; a read that
    /// finds another asking does not wait for it).
    async fn has_replayed(&self, position: u64) -> bool {
        if self.replayed.load(Ordering::SeqCst) >= position {
            return true;
        }
        let Ok(mut check) = self.check.try_lock() else {
            return false;
        };
        if self.replayed.load(Ordering::SeqCst) >= position {
            return true;
        }
        if check.1.is_some_and(|at| at.elapsed() < STANDBY_RECHECK) {
            return false;
        }
        check.1 = Some(std::time::Instant::now());
        let asked = tokio::time::timeout(STANDBY_PATIENCE, async {
            if check.0.as_ref().is_none_or(|c| c.is_closed()) {
                let (client, connection) = self.target.connect().await?;
                tokio::spawn(connection);
                check.0 = Some(client);
            }
            let client = check.0.as_ref().expect("connected above");
            let row = client
                .query_one(&format!("SELECT {}", changes::REPLAYED), &[])
                .await?;
            anyhow::Ok(row.get::<_, Option<i64>>(0))
        })
        .await;
        match asked {
            Ok(Ok(Some(replayed))) => {
                let replayed = u64::try_from(replayed).unwrap_or(0);
                self.replayed.fetch_max(replayed, Ordering::SeqCst);
                replayed >= position
            }
            Ok(Ok(None)) => false,
            Ok(Err(e)) => {
                tracing::debug!(standby = self.name, error = %e, "standby position unread");
                check.0 = None;
                false
            }
            Err(_) => {
                check.0 = None;
                false
            }
        }
    }
}

/// Counts the statements a connection sends (every query and every `batch_execute`, BEGIN
/// and COMMIT included): the round trips an operation costs, read by the metrics and by the
/// tests that hold a call to its statements.
struct Counted(Arc<AtomicU64>);

impl diesel::connection::Instrumentation for Counted {
    fn on_connection_event(&mut self, event: diesel::connection::InstrumentationEvent<'_>) {
        if matches!(
            event,
            diesel::connection::InstrumentationEvent::StartQuery { .. }
        ) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// The pools of one backend.
#[derive(Clone)]
pub enum Backend {
    Postgres(Pool<AsyncPgConnection>),
    Sqlite {
        writer: Pool<SqliteConn>,
        readers: Pool<SqliteConn>,
    },
}

/// Which database a URL names.
pub fn is_postgres_url(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

impl Store {
    /// Holds every notification of another process's writes for `by` before this store
    /// applies it: a slow notification path on purpose, for tests of consistency tokens.
    pub fn hold_notifications(&self, by: Duration) {
        self.changes.hold_notifications(by);
    }

    /// The clock of this store's transactions; tests move it forward.
    pub fn clock(&self) -> Clock {
        self.clock.clone()
    }

    /// Connects to `url` (`postgres://...`, or an SQLite path / `sqlite://path`).
    pub async fn connect(url: &str, max_connections: u32) -> anyhow::Result<Store> {
        let timeout = changes::CONNECT_TIMEOUT;
        if is_postgres_url(url) {
            let target = Arc::new(
                tls::PgTarget::parse(url)
                    .map_err(|e| anyhow::anyhow!("DATABASE_URL {}: {e:#}", redact(url)))?,
            );
            // One connection first, to say at once which database does not answer and why
            // (the pool would only time out); it becomes the listening connection.
            let first = changes::connect(&target, timeout).await.map_err(|e| {
                anyhow::anyhow!("cannot connect to PostgreSQL at {}: {e:#}", redact(url))
            })?;
            let statements: [Arc<AtomicU64>; 2] = Default::default();
            let pool = pg_pool(target.clone(), url, max_connections, statements[0].clone()).await?;
            let changes = Changes::new(false);
            changes.listen(target, first);
            Ok(Store {
                backend: Backend::Postgres(pool),
                changes,
                clock: Clock::default(),
                statements: Arc::new(statements),
                standbys: Arc::new([]),
                next_standby: Arc::default(),
            })
        } else {
            let path = url.strip_prefix("sqlite://").unwrap_or(url).to_owned();
            // Each connection would get a database of its own: the writer's tables would be
            // invisible to the readers.
            anyhow::ensure!(
                !path.trim().is_empty()
                    && !path.contains(":memory:")
                    && !path.contains("mode=memory"),
                "SQLite needs a file path: an empty or in-memory database is private to one \
                 connection"
            );
            if let Some(dir) = std::path::Path::new(&path).parent()
                && !dir.as_os_str().is_empty()
            {
                std::fs::create_dir_all(dir).map_err(|e| {
                    anyhow::anyhow!(
                        "cannot create the directory {} of the SQLite database: {e}",
                        dir.display()
                    )
                })?;
            }
            // Opening is lazy: the settings below are what first read the file. Applied here
            // once, a file that is not a database fails start-up at once, naming it (the pools
            // would retry their failing connections until their timeout, silently).
            let opening = path.clone();
            tokio::task::spawn_blocking(move || {
                let mut conn = SqliteConnection::establish(&opening).map_err(|e| e.to_string())?;
                diesel::connection::SimpleConnection::batch_execute(&mut conn, SQLITE_SETTINGS)
                    .map_err(|e| e.to_string())
            })
            .await?
            .map_err(|e| anyhow::anyhow!("cannot open the SQLite database {path}: {e}"))?;
            let statements: [Arc<AtomicU64>; 2] = Default::default();
            let manager = |counter: &Arc<AtomicU64>| {
                let counter = counter.clone();
                let mut config = ManagerConfig::default();
                config.custom_setup = Box::new(move |url| {
                    let url = url.to_owned();
                    let counter = counter.clone();
                    async move {
                        let mut conn = SyncConnectionWrapper::<SqliteConnection>::new(
                            tokio::task::spawn_blocking(move || SqliteConnection::establish(&url))
                                .await
                                .map_err(|e| {
                                    diesel::ConnectionError::BadConnection(e.to_string())
                                })??,
                        );
                        conn.batch_execute(SQLITE_SETTINGS)
                            .await
                            .map_err(diesel::ConnectionError::CouldntSetupConfiguration)?;
                        conn.set_instrumentation(Counted(counter));
                        Ok(conn)
                    }
                    .boxed()
                });
                AsyncDieselConnectionManager::<SqliteConn>::new_with_config(&path, config)
            };
            let writer = Pool::builder()
                .max_size(1)
                .connection_timeout(Duration::from_secs(30))
                .test_on_check_out(false)
                .build(manager(&statements[0]))
                .await?;
            let readers = Pool::builder()
                .max_size(max_connections.max(1))
                .connection_timeout(timeout)
                .test_on_check_out(false)
                .build(manager(&statements[1]))
                .await?;
            Ok(Store {
                backend: Backend::Sqlite { writer, readers },
                changes: Changes::new(true),
                clock: Clock::default(),
                statements: Arc::new(statements),
                standbys: Arc::new([]),
                next_standby: Arc::default(),
            })
        }
    }

    /// Sends reads to the streaming standbys at `urls` whenever one has replayed every write
    /// the read must see (`Changes::read_position`), checked against the standby itself;
    /// otherwise, and for every write, to the primary. PostgreSQL only.
    pub async fn with_standbys(
        mut self,
        urls: &[String],
        max_connections: u32,
    ) -> anyhow::Result<Store> {
        if urls.is_empty() {
            return Ok(self);
        }
        anyhow::ensure!(
            matches!(self.backend, Backend::Postgres(_)),
            "--database-read-url needs a PostgreSQL DATABASE_URL"
        );
        let mut standbys = Vec::with_capacity(urls.len());
        for (i, url) in urls.iter().enumerate() {
            anyhow::ensure!(
                is_postgres_url(url),
                "--database-read-url {} is not a postgres:// URL",
                redact(url)
            );
            let target = tls::PgTarget::parse(url)
                .map_err(|e| anyhow::anyhow!("--database-read-url {}: {e:#}", redact(url)))?;
            let (client, connection) = changes::connect(&target, changes::CONNECT_TIMEOUT)
                .await
                .map_err(|e| {
                    anyhow::anyhow!("cannot connect to the standby at {}: {e:#}", redact(url))
                })?;
            tokio::spawn(connection);
            let standby: bool = client
                .query_one("SELECT pg_is_in_recovery()", &[])
                .await?
                .get(0);
            if !standby {
                tracing::warn!(
                    url = %redact(url),
                    "--database-read-url names a server that is not a standby: reads go to \
                     it only once it has the primary's writes"
                );
            }
            let statements = Arc::new(AtomicU64::new(0));
            let target = Arc::new(target);
            let pool = pg_pool(target.clone(), url, max_connections, statements.clone()).await?;
            standbys.push(Arc::new(Standby {
                name: Box::leak(format!("postgres_standby_{}", i + 1).into_boxed_str()),
                target: (*target).clone(),
                pool,
                statements,
                replayed: AtomicU64::new(0),
                check: tokio::sync::Mutex::new((Some(client), None)),
            }));
        }
        self.standbys = standbys.into();
        Ok(self)
    }

    /// Where a read transaction goes: a standby that has replayed what the read must see, or
    /// the primary (`with_standbys`).
    async fn read_pool<'a>(
        &'a self,
        primary: &'a Pool<AsyncPgConnection>,
    ) -> &'a Pool<AsyncPgConnection> {
        if self.standbys.is_empty() {
            return primary;
        }
        let wanted = crate::domain::consistency::requested();
        let Some(position) = self.changes.read_position(&wanted) else {
            return primary;
        };
        let n = self.standbys.len();
        let first = self.next_standby.fetch_add(1, Ordering::Relaxed) as usize;
        for i in 0..n {
            let standby = &self.standbys[(first + i) % n];
            if standby.has_replayed(position).await {
                return &standby.pool;
            }
        }
        primary
    }

    /// Runs the pending migrations of this backend, then the re-key of group names
    /// (`rekey`); running them again changes nothing.
    pub async fn migrate(&self) -> anyhow::Result<()> {
        match &self.backend {
            Backend::Postgres(pool) => {
                let conn = pool.get_owned().await.map_err(|e| anyhow::anyhow!("{e}"))?;
                let mut harness = AsyncMigrationHarness::new(conn);
                harness
                    .run_pending_migrations(PG_MIGRATIONS)
                    .map_err(|e| anyhow::anyhow!("migrations failed: {e}"))?;
            }
            Backend::Sqlite { writer, .. } => {
                let conn = writer
                    .get_owned()
                    .await
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
                let mut harness = AsyncMigrationHarness::new(conn);
                harness
                    .run_pending_migrations(SQLITE_MIGRATIONS)
                    .map_err(|e| anyhow::anyhow!("migrations failed: {e}"))?;
            }
        }
        self.rekey_names().await?;
        Ok(())
    }

    /// Runs `op` in one transaction, outside the domain (tests and tools look behind the
    /// service's back this way). Commits when `op` returns `Ok`.
    pub async fn read<R, F>(&self, op: F) -> Result<R>
    where
        R: Send + 'static,
        F: for<'t> Fn(&'t mut dyn Tx) -> TxFuture<'t, R> + Send + Sync,
    {
        self.run(Mode::Read, op).await
    }

    /// `read`, on the writer.
    pub async fn write<R, F>(&self, op: F) -> Result<R>
    where
        R: Send + 'static,
        F: for<'t> Fn(&'t mut dyn Tx) -> TxFuture<'t, R> + Send + Sync,
    {
        self.run(Mode::Write, op).await
    }

    async fn run<R, F>(&self, mode: Mode, op: F) -> Result<R>
    where
        R: Send + 'static,
        F: for<'t> Fn(&'t mut dyn Tx) -> TxFuture<'t, R> + Send + Sync,
    {
        let mut t = self.begin(mode).await?;
        let res = op(&mut *t).await;
        finish(self, t, mode, "", res).await
    }
}

#[async_trait]
impl Database for Store {
    async fn begin(&self, mode: Mode) -> Result<Box<dyn Transaction>> {
        match &self.backend {
            Backend::Postgres(primary) => {
                let pool = primary;
                // While the database is known not to answer, at once; and a call waiting for
                // a connection when that becomes known stops waiting.
                if !self.changes.available() {
                    return Err(Error::Unavailable(NOT_ANSWERING.into()));
                }
                // A pooled connection whose session ended while it was idle (the database
                // restarted) is known closed without a round trip: it is dropped here, and the
                // pool discards it, instead of failing the transaction's first statement.
                let mut pool = match mode {
                    Mode::Write => pool,
                    Mode::Read => self.read_pool(pool).await,
                };
                let mut conn = loop {
                    let mut conn = if std::ptr::eq(pool, primary) {
                        tokio::select! {
                            biased;
                            conn = pool.get_owned() => conn.map_err(pool_error)?,
                            () = self.changes.lost() => {
                                return Err(Error::Unavailable(NOT_ANSWERING.into()));
                            }
                        }
                    } else {
                        // A standby that does not hand a connection over at once leaves the
                        // read to the primary.
                        match tokio::time::timeout(STANDBY_PATIENCE, pool.get_owned()).await {
                            Ok(Ok(conn)) => conn,
                            _ => {
                                pool = primary;
                                continue;
                            }
                        }
                    };
                    if !conn.is_broken() {
                        break conn;
                    }
                };
                let open = mode == Mode::Write;
                if open {
                    PgTm::begin_transaction(&mut *conn).await?;
                }
                Ok(Box::new(PgTx {
                    conn,
                    open,
                    now: self.clock.now_micros(),
                    events: Vec::new(),
                    touched: Touched::default(),
                }))
            }
            Backend::Sqlite { writer, readers } => {
                let pool = match mode {
                    Mode::Read => readers,
                    Mode::Write => writer,
                };
                let mut conn = pool.get_owned().await.map_err(pool_error)?;
                SqliteTm::begin_transaction(&mut *conn).await?;
                Ok(Box::new(SqliteTx {
                    conn,
                    now: self.clock.now_micros(),
                    events: Vec::new(),
                    touched: Touched::default(),
                }))
            }
        }
    }

    fn revision(&self, tenants: &[TenantId]) -> Option<u64> {
        self.changes.revision(tenants)
    }

    fn group_revision(&self, tenant: TenantId, id: Option<crate::domain::model::GroupId>) -> u64 {
        self.changes.group_revision(tenant, id)
    }

    fn expiry_revision(&self) -> u64 {
        self.changes.expiry_revision()
    }

    fn token(&self) -> Token {
        self.changes.token()
    }

    async fn caught_up(&self, token: &Token, wait: Duration) -> bool {
        self.changes.caught_up(token, wait).await
    }

    fn clock(&self) -> &Clock {
        &self.clock
    }

    fn changed(&self, touched: &Touched) {
        match &self.backend {
            Backend::Postgres(_) => self.changes.wrote(touched),
            Backend::Sqlite { .. } => {
                self.changes.committed(touched);
            }
        }
    }

    fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changes.subscribe()
    }

    fn availability(&self) -> tokio::sync::watch::Receiver<bool> {
        self.changes.watch_available()
    }

    fn system(&self) -> &'static str {
        match &self.backend {
            Backend::Postgres(_) => "postgresql",
            Backend::Sqlite { .. } => "sqlite",
        }
    }

    fn pools(&self) -> Vec<PoolState> {
        fn state<M: bb8::ManageConnection>(
            name: &'static str,
            pool: &bb8::Pool<M>,
            statements: &AtomicU64,
        ) -> PoolState {
            let s = pool.state();
            PoolState {
                name,
                connections: s.connections,
                idle: s.idle_connections,
                statements: statements.load(Ordering::Relaxed),
            }
        }
        let [primary, readers_sent] = &*self.statements;
        match &self.backend {
            Backend::Postgres(pool) => std::iter::once(state("postgres", pool, primary))
                .chain(
                    self.standbys
                        .iter()
                        .map(|s| state(s.name, &s.pool, &s.statements)),
                )
                .collect(),
            Backend::Sqlite { writer, readers } => vec![
                state("sqlite_writer", writer, primary),
                state("sqlite_readers", readers, readers_sent),
            ],
        }
    }
}

const NOT_ANSWERING: &str = "the database does not answer";

/// A pool of connections to the PostgreSQL server at `target` (`url`, the same one), each
/// counting its statements into `counter`.
async fn pg_pool(
    target: Arc<PgTarget>,
    url: &str,
    max_connections: u32,
    counter: Arc<AtomicU64>,
) -> anyhow::Result<Pool<AsyncPgConnection>> {
    let mut config = ManagerConfig::default();
    // Every connection through `target`, with its TLS (the URL the manager is given is the
    // same one).
    config.custom_setup = Box::new(move |_url| {
        let counter = counter.clone();
        let target = target.clone();
        async move {
            let (client, connection) = target.connect().await.map_err(|e| {
                diesel::ConnectionError::BadConnection(format!("{:#}", anyhow::Error::from(e)))
            })?;
            let mut conn =
                AsyncPgConnection::try_from_client_and_connection(client, connection).await?;
            conn.set_instrumentation(Counted(counter));
            Ok(conn)
        }
        .boxed()
    });
    let manager = AsyncDieselConnectionManager::<AsyncPgConnection>::new_with_config(url, config);
    // No `SELECT 1` before each checkout (a round trip per operation): a connection that
    // closed while idle fails its first statement with `Error::Disconnected`, which the seam
    // answers by running a read again on a new connection.
    Ok(Pool::builder()
        .max_size(max_connections)
        .connection_timeout(changes::CONNECT_TIMEOUT)
        .test_on_check_out(false)
        .build(manager)
        .await?)
}

/// `url` with its password (in the authority or as a `password` parameter) replaced by `***`,
/// for messages.
pub fn redact(url: &str) -> String {
    let mut out = url.to_owned();
    if let Some(start) = out.find("://").map(|i| i + 3) {
        let authority_end = out[start..]
            .find(['/', '?'])
            .map_or(out.len(), |i| start + i);
        if let Some(at) = out[start..authority_end].rfind('@').map(|i| start + i)
            && let Some(colon) = out[start..at].find(':').map(|i| start + i)
        {
            out.replace_range(colon + 1..at, "***");
        }
    }
    if let Some(query) = out.find('?') {
        let mut parts: Vec<String> = Vec::new();
        for part in out[query + 1..].split('&') {
            match part.split_once('=') {
                Some((key, _)) if key.eq_ignore_ascii_case("password") => {
                    parts.push(format!("{key}=***"))
                }
                _ => parts.push(part.to_owned()),
            }
        }
        out = format!("{}?{}", &out[..query], parts.join("&"));
    }
    out
}

type PgTm = <AsyncPgConnection as AsyncConnection>::TransactionManager;
type SqliteTm = <SqliteConn as AsyncConnection>::TransactionManager;

#[async_trait]
impl Transaction for PgTx {
    /// Other processes are told after the commit (`Database::changed`), not from inside the
    /// transaction (`changes`).
    async fn announce(&mut self, actor: &str) -> Result<()> {
        self.write_events(actor).await
    }
    async fn commit(mut self: Box<Self>) -> Result<Touched> {
        if self.open {
            PgTm::commit_transaction(&mut *self.conn).await?;
        }
        Ok(std::mem::take(&mut self.touched))
    }
    async fn rollback(mut self: Box<Self>) -> Result<()> {
        if self.open {
            PgTm::rollback_transaction(&mut *self.conn).await?;
        }
        Ok(())
    }
}

#[async_trait]
impl Transaction for SqliteTx {
    /// One process owns an SQLite file: there is nobody to tell but this process, whose
    /// generation `finish` bumps.
    async fn announce(&mut self, actor: &str) -> Result<()> {
        self.write_events(actor).await
    }
    async fn commit(mut self: Box<Self>) -> Result<Touched> {
        SqliteTm::commit_transaction(&mut *self.conn).await?;
        Ok(std::mem::take(&mut self.touched))
    }
    async fn rollback(mut self: Box<Self>) -> Result<()> {
        Ok(SqliteTm::rollback_transaction(&mut *self.conn).await?)
    }
}

/// How PostgreSQL words the end of a session it ends itself.
const SHUTTING_DOWN: [&str; 4] = [
    "terminating connection due to",
    "the database system is shutting down",
    "the database system is starting up",
    "the database system is in recovery mode",
];

fn pool_error(e: RunError) -> Error {
    Error::Unavailable(e.to_string())
}

impl From<DieselError> for Error {
    fn from(e: DieselError) -> Self {
        match &e {
            DieselError::DatabaseError(DatabaseErrorKind::SerializationFailure, _) => {
                Error::Retry(e.to_string())
            }
            // A connection that closed or broke under the statement (diesel-async reports
            // tokio-postgres's closed-connection and I/O errors as "unable to send").
            DieselError::DatabaseError(
                DatabaseErrorKind::ClosedConnection | DatabaseErrorKind::UnableToSendCommand,
                _,
            ) => Error::Disconnected(e.to_string()),
            // The server ending the session: a stop or restart (SQLSTATE class 57P, whose
            // code diesel does not pass on), or a server not yet taking sessions.
            DieselError::DatabaseError(DatabaseErrorKind::Unknown, info)
                if SHUTTING_DOWN.iter().any(|m| info.message().starts_with(m)) =>
            {
                Error::Disconnected(e.to_string())
            }
            DieselError::BrokenTransactionManager => Error::Unavailable(e.to_string()),
            DieselError::DatabaseError(DatabaseErrorKind::Unknown, info)
                if info.message().contains("deadlock detected")
                    || info.message().contains("database is locked") =>
            {
                Error::Retry(e.to_string())
            }
            _ => Error::Internal(e.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn messages_never_carry_the_password() {
        assert_eq!(
            redact("postgres://app:s3cret@db:5432/groups"),
            "postgres://app:***@db:5432/groups"
        );
        assert_eq!(
            redact("postgresql://app@db/groups?sslmode=disable&password=s3cret"),
            "postgresql://app@db/groups?sslmode=disable&password=***"
        );
        assert_eq!(
            redact("postgres://app:p@ss:w0rd@db/groups"),
            "postgres://app:***@db/groups"
        );
        assert_eq!(redact("postgres://db/groups"), "postgres://db/groups");
    }
}
