//! Starts the real server on 127.0.0.1:0 over a fresh database per test and hands out
//! generated clients with tokens.
//!
//! Backend: SQLite (a new file per test) unless `TEST_DATABASE_URL` names a PostgreSQL server;
//! then each test gets a database cloned from a migrated template, dropped afterwards. Outside
//! CI a PostgreSQL that does not answer skips the tests, said once per run on stderr; with
//! `CI=true` it fails them.

use std::sync::atomic::{AtomicU64, Ordering};

use group_service::auth::{Verifier, mint_hs256};
use group_service::domain::Service;
use group_service::grpc::pb;
use group_service::grpc::pb::directory_service_client::DirectoryServiceClient;
use group_service::grpc::pb::group_service_client::GroupServiceClient;
use group_service::grpc::pb::membership_service_client::MembershipServiceClient;
use group_service::store::{Backend, Store};
use sha2::{Digest, Sha256};
use tokio::net::TcpListener;
use tonic::metadata::MetadataValue;
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use tonic::{Code, Request, Status};
use tonic_types::StatusExt;

pub const SECRET: &[u8] = b"integration-test-secret-0123456789";

/// Every test server reads through a cache of this size: the whole suite checks that cached
/// answers are never stale.
pub const CACHE_BYTES: u64 = 8 << 20;

/// Adds a bearer token to every call.
#[derive(Clone)]
pub struct Bearer(pub Option<String>);

impl Bearer {
    /// For clients of a server the harness did not start (the reliability tests' processes).
    #[allow(dead_code)]
    pub fn new(token: &str) -> Self {
        Bearer(Some(token.to_owned()))
    }
}

impl Interceptor for Bearer {
    fn call(&mut self, mut req: Request<()>) -> Result<Request<()>, Status> {
        if let Some(token) = &self.0 {
            let value: MetadataValue<_> = format!("Bearer {token}").parse().expect("ascii token");
            req.metadata_mut().insert("authorization", value);
        }
        Ok(req)
    }
}

pub type Groups = GroupServiceClient<InterceptedService<Channel, Bearer>>;
pub type Directory = DirectoryServiceClient<InterceptedService<Channel, Bearer>>;
pub type Membership = MembershipServiceClient<InterceptedService<Channel, Bearer>>;
pub type Events = group_service::grpc::pb::event_service_client::EventServiceClient<
    InterceptedService<Channel, Bearer>,
>;

/// How a test server is set up beyond its database: `TestServer::start_setup`.
pub struct Setup {
    pub options: group_service::server::Options,
    pub verifier: Verifier,
    pub cache_bytes: u64,
    pub message_grace: std::time::Duration,
    /// How the harness's clients dial a server with `options.tls`: over TLS with this.
    pub client_tls: Option<tonic::transport::ClientTlsConfig>,
}

impl Default for Setup {
    fn default() -> Self {
        Setup {
            options: Default::default(),
            verifier: Verifier::hs256(SECRET),
            cache_bytes: CACHE_BYTES,
            message_grace: group_service::domain::grace::DEFAULT_MESSAGE_GRACE,
            client_tls: None,
        }
    }
}

pub struct TestServer {
    #[allow(dead_code)]
    pub addr: std::net::SocketAddr,
    pub channel: Channel,
    pub store: Store,
    /// The database: an SQLite file path or a PostgreSQL URL, for checks made behind the
    /// server's back.
    pub url: String,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
    _dir: Option<tempfile::TempDir>,
    pg_database: Option<(String, String)>,
}

pub fn is_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// Says once per run, on the process's stderr, that the PostgreSQL tests are being skipped.
/// Written to the stderr handle itself: libtest captures `eprintln!` of passing tests, and a
/// skip must never pass unseen.
fn warn_skipping(error: &str) {
    use std::io::Write;
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = writeln!(
            std::io::stderr(),
            "\nWARNING: the PostgreSQL at TEST_DATABASE_URL does not answer ({error}).\n\
             WARNING: every test of this run that needs a database returns at once and passes \
             WITHOUT RUNNING.\n\
             WARNING: start PostgreSQL, unset TEST_DATABASE_URL to test on SQLite, or set \
             CI=true to make this a failure.\n"
        );
    });
}

/// Says, on the stderr handle itself (libtest does not capture it), that `test` returns
/// without running on this backend and why: a test that does not run must say so.
pub fn only_on(backend: &str, test: &str, why: &str) -> bool {
    use std::io::Write;
    if self::backend() == backend {
        return true;
    }
    let _ = writeln!(std::io::stderr(), "{test}: {backend} only ({why})");
    false
}

/// Which backend the suite runs on.
pub fn backend() -> &'static str {
    if std::env::var("TEST_DATABASE_URL").is_ok_and(|u| !u.is_empty()) {
        "postgres"
    } else {
        "sqlite"
    }
}

impl TestServer {
    /// A server over a new database, or `None` when the configured PostgreSQL does not answer
    /// outside CI (said once per run on stderr).
    pub async fn start() -> Option<TestServer> {
        Self::start_with(|_| async {}).await.map(|(srv, ())| srv)
    }

    /// Like `start`, with the server's `Setup` (options, verifier, cache) changed by `change`.
    pub async fn start_setup(change: impl FnOnce(&mut Setup)) -> Option<TestServer> {
        let mut setup = Setup::default();
        change(&mut setup);
        Self::start_inner(|_| async {}, setup)
            .await
            .map(|(srv, ())| srv)
    }

    /// Takes every connection a read could use (8 per pool), for a `before` of `start_with`:
    /// calls that need one wait until the result is dropped.
    pub async fn hold_read_connections(store: Store) -> Vec<Box<dyn std::any::Any + Send>> {
        let mut held: Vec<Box<dyn std::any::Any + Send>> = Vec::new();
        match store.backend {
            Backend::Postgres(pool) => {
                for _ in 0..8 {
                    held.push(Box::new(pool.get_owned().await.expect("connection")));
                }
            }
            Backend::Sqlite { readers, .. } => {
                for _ in 0..8 {
                    held.push(Box::new(readers.get_owned().await.expect("connection")));
                }
            }
        }
        held
    }

    /// `start_setup` and `start_with` together.
    pub async fn start_setup_with<T, F, Fut>(setup: Setup, before: F) -> Option<(TestServer, T)>
    where
        F: FnOnce(Store) -> Fut,
        Fut: std::future::Future<Output = T>,
    {
        Self::start_inner(before, setup).await
    }

    /// Like `start`, but first runs `before` on the migrated store, before the server exists,
    /// and hands back what it returns (say, pooled connections to hold).
    pub async fn start_with<T, F, Fut>(before: F) -> Option<(TestServer, T)>
    where
        F: FnOnce(Store) -> Fut,
        Fut: std::future::Future<Output = T>,
    {
        Self::start_inner(before, Setup::default()).await
    }

    async fn start_inner<T, F, Fut>(before: F, setup: Setup) -> Option<(TestServer, T)>
    where
        F: FnOnce(Store) -> Fut,
        Fut: std::future::Future<Output = T>,
    {
        let (url, dir, pg_database) = match std::env::var("TEST_DATABASE_URL") {
            Ok(admin) if !admin.is_empty() => match pg::create_database(&admin).await {
                Ok((url, name)) => (url, None, Some((admin, name))),
                Err(e) if !is_ci() => {
                    warn_skipping(&e);
                    return None;
                }
                Err(e) => panic!("PostgreSQL at TEST_DATABASE_URL does not answer: {e}"),
            },
            _ => {
                let dir = tempfile::tempdir().expect("temp dir");
                let url = dir.path().join("test.db").to_string_lossy().into_owned();
                (url, Some(dir), None)
            }
        };
        let store = Store::connect(&url, 8).await.expect("connect");
        store.migrate().await.expect("migrate");
        let arranged = before(store.clone()).await;
        let mut srv = Self::serve(store, setup, dir, pg_database).await;
        srv.url = url;
        Some((srv, arranged))
    }

    /// A server over the database at `url` (made and dropped by the caller), migrated here.
    #[allow(dead_code)]
    pub async fn start_on(url: &str, setup: Setup) -> TestServer {
        let store = Store::connect(url, 8).await.expect("connect");
        store.migrate().await.expect("migrate");
        let mut srv = Self::serve(store, setup, None, None).await;
        srv.url = url.to_owned();
        srv
    }

    /// Another server over this one's store (one process, one cache generation), with a
    /// cache of `cache_bytes` (0: none).
    pub async fn sibling(&self, cache_bytes: u64) -> TestServer {
        let setup = Setup {
            cache_bytes,
            ..Setup::default()
        };
        let mut srv = Self::serve(self.store.clone(), setup, None, None).await;
        srv.url = self.url.clone();
        srv
    }

    /// Another server over this one's database through a store of its own, as a second
    /// process would be: it learns of this server's writes only through the database.
    pub async fn replica(&self) -> TestServer {
        self.replica_via(&self.url).await
    }

    /// Another server over this one's database reached at `url` (the same database through
    /// another route, say a proxy the test controls), with a store of its own.
    pub async fn replica_via(&self, url: &str) -> TestServer {
        let store = Store::connect(url, 8).await.expect("connect replica");
        let mut srv = Self::serve(store, Setup::default(), None, None).await;
        srv.url = url.to_owned();
        srv
    }

    async fn serve(
        store: Store,
        setup: Setup,
        dir: Option<tempfile::TempDir>,
        pg_database: Option<(String, String)>,
    ) -> TestServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let Setup {
            options,
            verifier,
            cache_bytes,
            message_grace,
            client_tls,
        } = setup;
        let service = Service::new(store.clone(), b"page-token-test-key")
            .with_cache(cache_bytes)
            .with_message_grace(message_grace);
        let task = tokio::spawn(async move {
            group_service::server::run_with(listener, options, service, verifier, async {
                let _ = rx.await;
            })
            .await
            .expect("server");
        });
        let channel = match client_tls {
            None => Channel::from_shared(format!("http://{addr}"))
                .expect("uri")
                .connect_lazy(),
            Some(tls) => Channel::from_shared(format!("https://{addr}"))
                .expect("uri")
                .tls_config(tls)
                .expect("client TLS")
                .connect_lazy(),
        };
        TestServer {
            addr,
            channel,
            store,
            url: String::new(),
            shutdown: Some(tx),
            task: Some(task),
            _dir: dir,
            pg_database,
        }
    }

    /// The clock the server decides expiry and grace periods by; tests move it forward.
    #[allow(dead_code)]
    pub fn clock(&self) -> group_service::domain::clock::Clock {
        self.store.clock()
    }

    /// Runs once, now, the work the server's timers run every `--timers-interval-secs`, as
    /// this server's process would.
    #[allow(dead_code)]
    pub async fn run_timers(&self) {
        let service = Service::new(self.store.clone(), b"page-token-test-key");
        service.run_timers().await.expect("timers");
    }

    pub fn token(&self, tenant: i64, sub: &str, admin: bool, service: bool) -> String {
        mint_hs256(SECRET, tenant, sub, admin, service, 600).expect("mint")
    }

    pub fn groups_as(&self, token: Option<String>) -> Groups {
        GroupServiceClient::with_interceptor(self.channel.clone(), Bearer(token))
    }

    pub fn directory_as(&self, token: Option<String>) -> Directory {
        DirectoryServiceClient::with_interceptor(self.channel.clone(), Bearer(token))
    }

    /// GroupService as a user of `tenant` (admin claim included when `admin`).
    pub fn groups(&self, tenant: i64, user: i64, admin: bool) -> Groups {
        self.groups_as(Some(self.token(tenant, &user.to_string(), admin, false)))
    }

    /// MembershipService as a user of `tenant` (admin claim included when `admin`).
    pub fn membership(&self, tenant: i64, user: i64, admin: bool) -> Membership {
        MembershipServiceClient::with_interceptor(
            self.channel.clone(),
            Bearer(Some(self.token(tenant, &user.to_string(), admin, false))),
        )
    }

    /// EventService as a service of `tenant` (the feed's readers).
    pub fn events(&self, tenant: i64) -> Events {
        self.events_as(Some(self.token(tenant, "search-indexer", false, true)))
    }

    pub fn events_as(&self, token: Option<String>) -> Events {
        group_service::grpc::pb::event_service_client::EventServiceClient::with_interceptor(
            self.channel.clone(),
            Bearer(token),
        )
    }

    /// DirectoryService as the directory system of `tenant`.
    pub fn directory(&self, tenant: i64) -> Directory {
        self.directory_as(Some(self.token(tenant, "directory", false, true)))
    }

    /// Creates a tenant.
    pub async fn tenant(&self, id: i64, plan: pb::Plan, creation: pb::GroupCreation) -> pb::Tenant {
        self.directory(id)
            .upsert_tenant(pb::UpsertTenantRequest {
                tenant: Some(pb::Tenant {
                    id,
                    display_name: format!("Tenant {id}"),
                    plan: plan as i32,
                    group_creation: creation as i32,
                    core_enabled: true,
                    masters_may_manage_settings: true,
                    storage_quota_bytes: 1 << 30,
                    ..Default::default()
                }),
            })
            .await
            .expect("upsert tenant")
            .into_inner()
    }

    /// Creates a user.
    pub async fn user(&self, tenant: i64, id: i64, admin: bool) -> pb::User {
        self.upsert_user(pb::User {
            is_admin: admin,
            ..user_spec(tenant, id)
        })
        .await
    }

    /// Creates or replaces a user as the directory system of its tenant.
    pub async fn upsert_user(&self, user: pb::User) -> pb::User {
        self.directory(user.tenant_id)
            .upsert_user(pb::UpsertUserRequest { user: Some(user) })
            .await
            .expect("upsert user")
            .into_inner()
    }

    /// GroupService as the directory system (a service caller) of `tenant`.
    pub fn groups_service(&self, tenant: i64) -> Groups {
        self.groups_as(Some(self.token(tenant, "directory", false, true)))
    }

    /// The tenant as DirectoryService reports it.
    pub async fn get_tenant(&self, tenant: i64) -> pb::Tenant {
        self.directory(tenant)
            .get_tenant(pb::GetTenantRequest { tenant_id: tenant })
            .await
            .expect("get tenant")
            .into_inner()
    }

    /// Groups the tenant owns, as counted against its plan's limit (R03).
    pub async fn group_count(&self, tenant: i64) -> i64 {
        self.get_tenant(tenant).await.group_count
    }

    /// Creates a team with the given user members.
    pub async fn team(&self, tenant: i64, id: i64, members: &[i64]) -> pb::Team {
        self.directory(tenant)
            .upsert_team(pb::UpsertTeamRequest {
                team: Some(team_spec(tenant, id, members)),
            })
            .await
            .expect("upsert team")
            .into_inner()
    }

    /// A tenant (FREE, ADMINS_ONLY) with admin user 1 and plain users 2..=n.
    pub async fn company(&self, tenant: i64, users: i64) {
        self.tenant(tenant, pb::Plan::Free, pb::GroupCreation::AdminsOnly)
            .await;
        self.user(tenant, 1, true).await;
        for id in 2..=users {
            self.user(tenant, id, false).await;
        }
    }

    /// Stops the server, draining calls in flight.
    pub async fn stop(mut self) {
        self.shutdown().await;
    }

    /// Signals the server to shut down without waiting for it (`shutdown` then waits).
    #[allow(dead_code)]
    pub fn signal_shutdown(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }

    /// Stops the server, draining calls in flight, and keeps the database (and `store`) until
    /// the `TestServer` drops.
    pub async fn shutdown(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.abort();
        }
        if let Some((admin, name)) = self.pg_database.take() {
            // Dropped on a thread of its own: Drop cannot await.
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("runtime");
                rt.block_on(pg::drop_database(&admin, &name));
            })
            .join();
        }
    }
}

/// A server over a new database, or `None` when the configured PostgreSQL does not answer
/// outside CI (said once per run on stderr): `let Some(srv) = server().await else { return };`.
pub async fn server() -> Option<TestServer> {
    TestServer::start().await
}

/// A plain user of `tenant` who may message other companies: `user{id}@t{tenant}.example`.
pub fn user_spec(tenant: i64, id: i64) -> pb::User {
    pb::User {
        tenant_id: tenant,
        id,
        email: format!("user{id}@t{tenant}.example"),
        display_name: format!("User {id}"),
        is_admin: false,
        external_messaging_allowed: true,
        kind: pb::UserKind::Works as i32,
    }
}

/// A team of `tenant` with the given user members: `team{id}@t{tenant}.example`.
pub fn team_spec(tenant: i64, id: i64, members: &[i64]) -> pb::Team {
    pb::Team {
        tenant_id: tenant,
        id,
        display_name: format!("Team {id}"),
        email: format!("team{id}@t{tenant}.example"),
        member_user_ids: members.to_vec(),
    }
}

/// A group spec with just a name.
pub fn group_named(name: &str) -> pb::Group {
    pb::Group {
        display_name: name.to_owned(),
        ..Default::default()
    }
}

/// A create request for `tenant` with the given masters and no other members.
pub fn create_req(tenant: i64, name: &str, masters: &[i64]) -> pb::CreateGroupRequest {
    pb::CreateGroupRequest {
        parent: format!("tenants/{tenant}"),
        group: Some(group_named(name)),
        master_user_ids: masters.to_vec(),
        ..Default::default()
    }
}

pub fn get_req(name: &str) -> pb::GetGroupRequest {
    pb::GetGroupRequest {
        name: name.to_owned(),
    }
}

pub fn delete_req(name: &str, etag: &str) -> pb::DeleteGroupRequest {
    pb::DeleteGroupRequest {
        name: name.to_owned(),
        etag: etag.to_owned(),
    }
}

pub fn team_member(id: i64) -> pb::MemberRef {
    pb::MemberRef {
        r#type: pb::MemberType::Team as i32,
        id,
        tenant_id: 0,
        ..Default::default()
    }
}

pub fn user_member(id: i64) -> pb::MemberRef {
    pb::MemberRef {
        r#type: pb::MemberType::User as i32,
        id,
        tenant_id: 0,
        ..Default::default()
    }
}

/// Asserts the code and the `ErrorInfo.reason`.
#[track_caller]
pub fn assert_reason(status: &Status, code: Code, reason: &str) {
    assert_eq!(status.code(), code, "unexpected status: {status:?}");
    let info = status
        .get_details_error_info()
        .unwrap_or_else(|| panic!("no ErrorInfo in {status:?}"));
    assert_eq!(info.reason, reason, "unexpected reason in {status:?}");
    assert_eq!(info.domain, "groups.v1");
}

/// Asserts INVALID_ARGUMENT with a BadRequest naming `field`.
#[track_caller]
pub fn assert_bad_field(status: &Status, field: &str) {
    assert_eq!(
        status.code(),
        Code::InvalidArgument,
        "unexpected status: {status:?}"
    );
    let bad = status
        .get_details_bad_request()
        .unwrap_or_else(|| panic!("no BadRequest in {status:?}"));
    let fields: Vec<&str> = bad
        .field_violations
        .iter()
        .map(|v| v.field.as_str())
        .collect();
    assert!(fields.contains(&field), "{field} not named in {fields:?}");
}

/// Code, message and details of a status, to compare two answers byte for byte.
pub fn fingerprint(status: &Status) -> (Code, String, Vec<u8>) {
    (
        status.code(),
        status.message().to_owned(),
        status.details().to_vec(),
    )
}

/// The server binary on a free loopback port over a new SQLite database and data dir, without
/// NATS, a metrics listener or a JWT secret from the environment; stdin and stdout closed,
/// stderr piped for the caller. `configure` adds the test's own flags and environment. Killed on
/// drop.
pub struct ServerProcess {
    pub child: std::process::Child,
    pub addr: std::net::SocketAddr,
    _dir: tempfile::TempDir,
}

impl ServerProcess {
    pub fn start(configure: impl FnOnce(&mut std::process::Command)) -> ServerProcess {
        let addr = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port");
        ServerProcess::start_listening(&addr.to_string(), configure)
    }

    /// `start` with `--listen listen`; `addr` is that address, or `0.0.0.0:0` when it is
    /// not a socket address.
    pub fn start_listening(
        listen: &str,
        configure: impl FnOnce(&mut std::process::Command),
    ) -> ServerProcess {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_group-service"));
        command
            .args(["--listen", listen])
            .env("DATABASE_URL", dir.path().join("server.db"))
            .env("GROUP_SERVICE_DATA_DIR", dir.path())
            .env_remove("NATS_URL")
            .env_remove("GROUP_SERVICE_METRICS_LISTEN")
            .env_remove("GROUP_SERVICE_JWT_SECRET")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped());
        configure(&mut command);
        ServerProcess {
            child: command.spawn().expect("start the server binary"),
            addr: listen.parse().unwrap_or_else(|_| ([0, 0, 0, 0], 0).into()),
            _dir: dir,
        }
    }
}

impl ServerProcess {
    /// Waits (up to 20 s) until the server answers on its port, or until it exits: then its
    /// status and what it wrote to stderr.
    pub async fn serving(&mut self) -> Result<(), (std::process::ExitStatus, String)> {
        for _ in 0..400 {
            if let Some(exited) = self.exited() {
                return Err(exited);
            }
            if tokio::net::TcpStream::connect(self.addr).await.is_ok() {
                return Ok(());
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("the server neither listened nor exited within 20 s");
    }

    /// The exit status and stderr of a server that must refuse to start: panics unless it
    /// exits within `limit`.
    pub async fn refused_within(
        &mut self,
        limit: std::time::Duration,
    ) -> (std::process::ExitStatus, String) {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            if let Some(exited) = self.exited() {
                return exited;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the server still runs after {limit:?}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    /// Its exit status and all it wrote to stderr, once it has exited.
    fn exited(&mut self) -> Option<(std::process::ExitStatus, String)> {
        use std::io::Read;
        let status = self.child.try_wait().expect("the server's status")?;
        let mut stderr = String::new();
        if let Some(mut pipe) = self.child.stderr.take() {
            pipe.read_to_string(&mut stderr)
                .expect("the server's stderr");
        }
        Some((status, stderr))
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn unique() -> u64 {
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

pub mod pg {
    //! Per-test PostgreSQL databases cloned from a migrated template.

    use super::*;
    use tokio_postgres::NoTls;

    async fn admin_client(admin: &str) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
        let (client, conn) = tokio_postgres::connect(admin, NoTls).await?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(client)
    }

    /// `admin` with its database replaced by `name`.
    fn with_database(admin: &str, name: &str) -> String {
        let (url, query) = match admin.split_once('?') {
            Some((u, q)) => (u, format!("?{q}")),
            None => (admin, String::new()),
        };
        let after_scheme = url.find("://").map_or(0, |i| i + 3);
        let base = match url[after_scheme..].find('/') {
            Some(i) => &url[..after_scheme + i],
            None => url,
        };
        format!("{base}/{name}{query}")
    }

    /// The template's name changes with the migrations, so an edited migration gets a new one.
    fn template_name() -> String {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations/postgres");
        let mut files: Vec<_> = walk(&dir);
        files.sort();
        let mut h = Sha256::new();
        for f in files {
            h.update(f.to_string_lossy().as_bytes());
            h.update(std::fs::read(&f).expect("read migration"));
        }
        let digest = h.finalize();
        format!(
            "gs_template_{}",
            digest[..6]
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        )
    }

    fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(dir).expect("migrations dir").flatten() {
            let p = entry.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
        out
    }

    /// Creates a database for one test; returns its URL and name.
    pub async fn create_database(admin: &str) -> Result<(String, String), String> {
        let client = admin_client(admin).await.map_err(|e| e.to_string())?;
        let template = template_name();
        // One process builds the template; the others wait on the advisory lock.
        client
            .execute("SELECT pg_advisory_lock(727274)", &[])
            .await
            .map_err(|e| e.to_string())?;
        let exists = client
            .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&template])
            .await
            .map_err(|e| e.to_string())?
            .is_some();
        if !exists {
            let building = format!("{template}_building");
            client
                .execute(
                    &format!("DROP DATABASE IF EXISTS {building} WITH (FORCE)"),
                    &[],
                )
                .await
                .map_err(|e| e.to_string())?;
            client
                .execute(&format!("CREATE DATABASE {building}"), &[])
                .await
                .map_err(|e| e.to_string())?;
            {
                let store = Store::connect(&with_database(admin, &building), 1)
                    .await
                    .map_err(|e| e.to_string())?;
                store.migrate().await.map_err(|e| e.to_string())?;
            }
            client
                .execute(
                    &format!("ALTER DATABASE {building} RENAME TO {template}"),
                    &[],
                )
                .await
                .map_err(|e| e.to_string())?;
        }
        client
            .execute("SELECT pg_advisory_unlock(727274)", &[])
            .await
            .map_err(|e| e.to_string())?;
        let name = format!(
            "gs_test_{}_{}_{}",
            std::process::id(),
            unique(),
            rand_suffix()
        );
        let mut last = String::new();
        for _ in 0..20 {
            match client
                .execute(&format!("CREATE DATABASE {name} TEMPLATE {template}"), &[])
                .await
            {
                Ok(_) => return Ok((with_database(admin, &name), name)),
                // Another test is copying the same template at this instant.
                Err(e) => {
                    last = e.to_string();
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            }
        }
        Err(last)
    }

    fn rand_suffix() -> u32 {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        t % 100_000
    }

    pub async fn drop_database(admin: &str, name: &str) {
        if let Ok(client) = admin_client(admin).await {
            let _ = client
                .execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"), &[])
                .await;
        }
    }
}
