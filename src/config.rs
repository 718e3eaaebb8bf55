//! Configuration from flags and environment, in one typed struct.

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::auth::{JwksSource, Verifier};

#[derive(Parser, Debug)]
#[command(
    name = "group-service",
    version,
    about = "gRPC service for workplace groups"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub config: Config,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Serve gRPC (the default).
    Serve,
    /// Run the database migrations and exit.
    Migrate,
    /// Print a bearer token signed with the configured HS256 secret.
    Token(TokenArgs),
    /// Ask a running server's grpc.health.v1 Check: exit 0 when SERVING, 1 otherwise.
    Health(HealthArgs),
}

#[derive(Args, Debug)]
pub struct HealthArgs {
    /// The server to ask; default: the `--listen` address (a wildcard one on the loopback).
    #[arg(long)]
    pub addr: Option<String>,
    /// The service whose health to ask for; default: the server as a whole.
    #[arg(long, default_value = "")]
    pub service: String,
    /// How long to wait for the answer, connecting included, in milliseconds.
    #[arg(long, default_value_t = 2000)]
    pub timeout_ms: u64,
    /// Dial with TLS, trusting the CA certificates of this PEM file.
    #[arg(long, env = "GROUP_SERVICE_HEALTH_CA")]
    pub ca: Option<PathBuf>,
    /// The name the server's certificate must carry; default: the host of the address.
    #[arg(long, env = "GROUP_SERVICE_HEALTH_SERVER_NAME", requires = "ca")]
    pub server_name: Option<String>,
    /// PEM client certificate for a server that requires one (mutual TLS), with `--key`.
    #[arg(long, env = "GROUP_SERVICE_HEALTH_CERT", requires_all = ["ca", "key"])]
    pub cert: Option<PathBuf>,
    /// PEM private key of `--cert`.
    #[arg(long, env = "GROUP_SERVICE_HEALTH_KEY", requires = "cert")]
    pub key: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct TokenArgs {
    /// The caller's tenant id.
    #[arg(long)]
    pub tenant: i64,
    /// The user id (or, with --service, the service's name).
    #[arg(long, default_value = "operator")]
    pub user: String,
    /// Claim admin rights (they hold only while the directory also says the user is an admin).
    #[arg(long)]
    pub admin: bool,
    /// A service caller (needed for DirectoryService).
    #[arg(long)]
    pub service: bool,
    /// Lifetime in seconds.
    #[arg(long, default_value_t = 3600)]
    pub ttl: u64,
}

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Args, Debug, Clone)]
pub struct Config {
    /// Address to serve gRPC on.
    #[arg(
        long,
        env = "GROUP_SERVICE_LISTEN",
        default_value = "127.0.0.1:50051",
        global = true
    )]
    pub listen: String,
    /// `postgres://...` for PostgreSQL; otherwise an SQLite file (default under the data dir).
    #[arg(long, env = "DATABASE_URL", global = true)]
    pub database_url: Option<String>,
    /// A streaming standby of the PostgreSQL primary that reads may go to (repeat the flag,
    /// or separate URLs with commas in the variable). A read goes to a standby only once the
    /// standby has replayed every write the read must see; otherwise to the primary.
    #[arg(
        long,
        env = "GROUP_SERVICE_DATABASE_READ_URLS",
        value_delimiter = ',',
        global = true
    )]
    pub database_read_url: Vec<String>,
    /// Where the SQLite file and the generated development secret live.
    #[arg(
        long,
        env = "GROUP_SERVICE_DATA_DIR",
        default_value = "data",
        global = true
    )]
    pub data_dir: PathBuf,
    /// Database connections (SQLite: readers; writes use one connection).
    #[arg(
        long,
        env = "GROUP_SERVICE_MAX_CONNECTIONS",
        default_value_t = 16,
        global = true
    )]
    pub max_connections: u32,
    /// Memory for the read cache of GetGroup and CheckMembership answers, in MiB; 0 turns
    /// the cache off. Coherent across replicas through PostgreSQL notifications.
    #[arg(
        long,
        env = "GROUP_SERVICE_CACHE_MB",
        default_value_t = 64,
        global = true
    )]
    pub cache_mb: u64,
    /// HS256 secret for bearer tokens. Without it and without a public key, a secret is
    /// generated once and kept in the data dir (development).
    #[arg(
        long,
        env = "GROUP_SERVICE_JWT_SECRET",
        hide_env_values = true,
        global = true
    )]
    pub jwt_secret: Option<String>,
    /// PEM public key (RSA for RS256, P-256 for ES256) that verifies bearer tokens (production).
    #[arg(long, env = "GROUP_SERVICE_JWT_PUBLIC_KEY", global = true)]
    pub jwt_public_key: Option<PathBuf>,
    /// JWKS of an identity provider: a file path or an `http(s)://` URL, reloaded every
    /// `--jwt-jwks-refresh-secs`; tokens pick their key by `kid`.
    #[arg(long, env = "GROUP_SERVICE_JWT_JWKS", global = true)]
    pub jwt_jwks: Option<String>,
    /// How often the JWKS is reloaded, in seconds (a token with an unknown `kid` brings a
    /// reload forward, at most one per `auth::EARLY_RELOAD_GAP`).
    #[arg(
        long,
        env = "GROUP_SERVICE_JWT_JWKS_REFRESH_SECS",
        default_value_t = 300,
        global = true
    )]
    pub jwt_jwks_refresh_secs: u64,
    /// Accepted token issuers (`iss`), comma-separated; none: `iss` is not checked.
    #[arg(
        long,
        env = "GROUP_SERVICE_JWT_ISSUER",
        value_delimiter = ',',
        global = true
    )]
    pub jwt_issuer: Vec<String>,
    /// Accepted token audiences (`aud`), comma-separated; none: `aud` is not checked.
    #[arg(
        long,
        env = "GROUP_SERVICE_JWT_AUDIENCE",
        value_delimiter = ',',
        global = true
    )]
    pub jwt_audience: Vec<String>,
    /// Clock skew allowed on `exp` and `nbf`, in seconds.
    #[arg(
        long,
        env = "GROUP_SERVICE_JWT_LEEWAY_SECS",
        default_value_t = 30,
        global = true
    )]
    pub jwt_leeway_secs: u64,
    /// Key that signs page tokens; defaults to one derived from the JWT secret, or a random
    /// one per process with a public key (page tokens then end with the process).
    #[arg(
        long,
        env = "GROUP_SERVICE_PAGE_TOKEN_KEY",
        hide_env_values = true,
        global = true
    )]
    pub page_token_key: Option<String>,
    /// NATS server whose JetStream receives the change feed (stream `GROUP_EVENTS`, subjects
    /// `groups.<tenant>.<kind>`); no relay without it. Give every server of one database the
    /// same setting: retention waits for the relay only where it is set.
    #[arg(long, env = "NATS_URL", global = true)]
    pub nats_url: Option<String>,
    /// How many servers of the JetStream cluster keep each event when the relay creates the
    /// stream (3 in production; 1 for a single server). An existing stream keeps its own.
    #[arg(
        long,
        env = "GROUP_SERVICE_NATS_STREAM_REPLICAS",
        default_value_t = 1,
        value_parser = clap::value_parser!(u8).range(1..=5),
        global = true
    )]
    pub nats_stream_replicas: u8,
    /// How long events are kept for WatchEvents and the audit log, in hours.
    #[arg(
        long,
        env = "GROUP_SERVICE_EVENT_RETENTION_HOURS",
        default_value_t = 168,
        global = true
    )]
    pub event_retention_hours: u64,
    /// How often expired members are deleted (with their events) and due message purges run,
    /// in seconds. Expired members count nowhere from their expire time on, swept or not.
    #[arg(
        long,
        env = "GROUP_SERVICE_TIMERS_INTERVAL_SECS",
        default_value_t = 30,
        global = true
    )]
    pub timers_interval_secs: u64,
    /// Days after message is turned off that a group's message-room data is purged; turning
    /// message back on before then keeps it.
    #[arg(
        long,
        env = "GROUP_SERVICE_MESSAGE_GRACE_DAYS",
        default_value_t = 30,
        global = true
    )]
    pub message_grace_days: u64,
    /// Largest request message accepted, in bytes; a larger one answers RESOURCE_EXHAUSTED.
    #[arg(
        long,
        env = "GROUP_SERVICE_MAX_REQUEST_BYTES",
        default_value_t = crate::grpc::limits::DEFAULT_MAX_REQUEST_BYTES,
        global = true
    )]
    pub max_request_bytes: usize,
    /// Largest answer message sent, in bytes; a larger one answers RESOURCE_EXHAUSTED.
    #[arg(
        long,
        env = "GROUP_SERVICE_MAX_RESPONSE_BYTES",
        default_value_t = crate::grpc::limits::DEFAULT_MAX_RESPONSE_BYTES,
        global = true
    )]
    pub max_response_bytes: usize,
    /// The longest a call may run, in milliseconds, whatever its `grpc-timeout`: past it the
    /// call answers DEADLINE_EXCEEDED and what it did is rolled back; 0 turns the cap off.
    #[arg(
        long,
        env = "GROUP_SERVICE_MAX_CALL_MS",
        default_value_t = crate::server::DEFAULT_MAX_CALL.as_millis() as u64,
        global = true
    )]
    pub max_call_ms: u64,
    /// Address for Prometheus metrics (`GET /metrics`); none by default.
    #[arg(long, env = "GROUP_SERVICE_METRICS_LISTEN", global = true)]
    pub metrics_listen: Option<String>,
    /// On SIGTERM: milliseconds of NOT_SERVING while still answering, before the drain.
    #[arg(
        long,
        env = "GROUP_SERVICE_SHUTDOWN_DELAY_MS",
        default_value_t = 2000,
        global = true
    )]
    pub shutdown_delay_ms: u64,
    /// On SIGTERM: seconds after which every connection still open is closed.
    #[arg(
        long,
        env = "GROUP_SERVICE_DRAIN_DEADLINE_SECS",
        default_value_t = 20,
        global = true
    )]
    pub drain_deadline_secs: u64,
    /// On SIGTERM: once no call is left, milliseconds connections may take to close on their
    /// own before they are closed (a client that never reads would hold them to the deadline).
    #[arg(
        long,
        env = "GROUP_SERVICE_DRAIN_IDLE_CLOSE_MS",
        default_value_t = crate::guard::drain::DEFAULT_IDLE_CLOSE.as_millis() as u64,
        global = true
    )]
    pub drain_idle_close_ms: u64,
    /// Calls served at once (health and reflection aside); 0 turns the limit off.
    #[arg(
        long,
        env = "GROUP_SERVICE_MAX_CONCURRENT_CALLS",
        default_value_t = 64,
        global = true
    )]
    pub max_concurrent_calls: usize,
    /// Calls that may wait for a slot beyond those; any more are refused at once.
    #[arg(
        long,
        env = "GROUP_SERVICE_MAX_QUEUED_CALLS",
        default_value_t = 64,
        global = true
    )]
    pub max_queued_calls: usize,
    /// How long a queued call waits for a slot, in milliseconds, before it is refused.
    #[arg(
        long,
        env = "GROUP_SERVICE_QUEUE_WAIT_MS",
        default_value_t = 20,
        global = true
    )]
    pub queue_wait_ms: u64,
    /// Calls per second per tenant; 0 (the default) sets no limit.
    #[arg(
        long,
        env = "GROUP_SERVICE_TENANT_RATE",
        default_value_t = 0.0,
        global = true
    )]
    pub tenant_rate: f64,
    /// Calls a tenant may make at once above its rate (the bucket's size).
    #[arg(
        long,
        env = "GROUP_SERVICE_TENANT_BURST",
        default_value_t = 100,
        global = true
    )]
    pub tenant_burst: u32,
    /// HTTP/2 streams a client may reset before they are accepted, per connection.
    #[arg(
        long,
        env = "GROUP_SERVICE_HTTP2_MAX_PENDING_RESET_STREAMS",
        default_value_t = 1024,
        global = true
    )]
    pub http2_max_pending_reset_streams: usize,
    /// Origins (`scheme://host[:port]`) whose browser pages may call over gRPC-Web,
    /// comma-separated; none (the default): no cross-origin page may. `*` is refused.
    #[arg(
        long,
        env = "GROUP_SERVICE_CORS_ALLOWED_ORIGINS",
        value_delimiter = ',',
        global = true
    )]
    pub cors_allowed_origins: Vec<String>,
    /// PEM certificate chain of the gRPC port: with `--tls-key`, the port speaks only TLS
    /// (gRPC, gRPC-Web and health alike).
    #[arg(
        long,
        env = "GROUP_SERVICE_TLS_CERT",
        requires = "tls_key",
        global = true
    )]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of `--tls-cert`.
    #[arg(
        long,
        env = "GROUP_SERVICE_TLS_KEY",
        requires = "tls_cert",
        global = true
    )]
    pub tls_key: Option<PathBuf>,
    /// PEM CA certificates: with it, every client must present a certificate they issued
    /// (mutual TLS); needs `--tls-cert`.
    #[arg(
        long,
        env = "GROUP_SERVICE_TLS_CLIENT_CA",
        requires = "tls_cert",
        global = true
    )]
    pub tls_client_ca: Option<PathBuf>,
    /// Log format.
    #[arg(
        long,
        env = "GROUP_SERVICE_LOG_FORMAT",
        value_enum,
        default_value = "text",
        global = true
    )]
    pub log_format: LogFormat,
}

/// The settings that may carry a secret, with their variable and flag: each can also come
/// from the file that `<variable>_FILE` names, as container platforms mount secrets.
const SECRET_SETTINGS: [(&str, &str); 4] = [
    ("DATABASE_URL", "--database-url"),
    ("GROUP_SERVICE_JWT_SECRET", "--jwt-secret"),
    ("GROUP_SERVICE_PAGE_TOKEN_KEY", "--page-token-key"),
    ("NATS_URL", "--nats-url"),
];

impl Config {
    /// Fills each secret-bearing setting (`SECRET_SETTINGS`) from the file its `_FILE`
    /// variable names, read through `env`, without its trailing line breaks. Refuses a
    /// setting given both ways, and a file that cannot be read or is empty, naming the
    /// variable and the path.
    pub fn read_secret_files(
        &mut self,
        env: impl Fn(&str) -> Option<std::ffi::OsString>,
    ) -> anyhow::Result<()> {
        let values = [
            &mut self.database_url,
            &mut self.jwt_secret,
            &mut self.page_token_key,
            &mut self.nats_url,
        ];
        for ((variable, flag), value) in SECRET_SETTINGS.into_iter().zip(values) {
            let file_variable = format!("{variable}_FILE");
            let Some(path) = env(&file_variable).filter(|p| !p.is_empty()) else {
                continue;
            };
            let path = PathBuf::from(path);
            anyhow::ensure!(
                value.as_deref().is_none_or(str::is_empty),
                "{variable} (or {flag}) and {file_variable} are both set: give one of them"
            );
            let text = std::fs::read_to_string(&path).map_err(|e| {
                anyhow::anyhow!("cannot read {file_variable} {}: {e}", path.display())
            })?;
            let secret = text.trim_end_matches(['\n', '\r']);
            anyhow::ensure!(
                !secret.is_empty(),
                "{file_variable} {} is empty",
                path.display()
            );
            *value = Some(secret.to_owned());
        }
        Ok(())
    }

    pub fn database_url(&self) -> String {
        // An empty DATABASE_URL means "not set", not SQLite's private temporary database.
        self.database_url
            .clone()
            .filter(|u| !u.trim().is_empty())
            .unwrap_or_else(|| {
                self.data_dir
                    .join("group-service.db")
                    .to_string_lossy()
                    .into_owned()
            })
    }

    /// The gRPC port's TLS, when `--tls-cert` and `--tls-key` are set; the files are read now.
    pub fn tls(&self) -> anyhow::Result<Option<std::sync::Arc<rustls::ServerConfig>>> {
        match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => Ok(Some(crate::tls::server_config(
                cert,
                key,
                self.tls_client_ca.as_deref(),
            )?)),
            _ => Ok(None),
        }
    }

    /// The HS256 secret: configured, or generated once under the data dir.
    pub fn hs256_secret(&self) -> anyhow::Result<Option<Vec<u8>>> {
        if let Some(s) = &self.jwt_secret {
            anyhow::ensure!(
                s.len() >= 16,
                "GROUP_SERVICE_JWT_SECRET must be at least 16 bytes"
            );
            return Ok(Some(s.as_bytes().to_vec()));
        }
        if self.jwt_public_key.is_some() || self.jwt_jwks.is_some() {
            return Ok(None);
        }
        Ok(Some(dev_secret(&self.data_dir)?))
    }

    /// The token verifier the flags describe: a JWKS (file or URL, reloaded every
    /// `--jwt-jwks-refresh-secs`), else a PEM public key, else the HS256 secret; with the
    /// accepted issuers, audiences and clock leeway.
    pub async fn verifier(&self) -> anyhow::Result<Verifier> {
        let verifier = match (&self.jwt_jwks, &self.jwt_public_key, self.hs256_secret()?) {
            (Some(jwks), _, _) => {
                let refresh = Duration::from_secs(self.jwt_jwks_refresh_secs.max(1));
                Verifier::jwks(JwksSource::parse(jwks), refresh).await?
            }
            (None, Some(path), _) => Verifier::from_public_key_pem(&std::fs::read(path)?)?,
            (None, None, Some(secret)) => Verifier::hs256(&secret),
            (None, None, None) => anyhow::bail!("no token verification key configured"),
        };
        Ok(verifier
            .with_issuers(&self.jwt_issuer)
            .with_audiences(&self.jwt_audience)
            .with_leeway(Duration::from_secs(self.jwt_leeway_secs)))
    }
}

fn dev_secret(dir: &Path) -> anyhow::Result<Vec<u8>> {
    let path = dir.join("jwt-secret");
    if let Ok(s) = std::fs::read_to_string(&path) {
        let s = s.trim();
        if s.len() >= 16 {
            return Ok(s.as_bytes().to_vec());
        }
    }
    // Names the path and the setting: the OS error alone ("Permission denied") says neither.
    let failed = |e: &dyn std::fmt::Display| {
        anyhow::anyhow!(
            "cannot write the development token secret {} (--data-dir, GROUP_SERVICE_DATA_DIR): {e}",
            path.display()
        )
    };
    std::fs::create_dir_all(dir).map_err(|e| failed(&e))?;
    let secret: String = (0..48)
        .map(|_| {
            let i = rand::random_range(0..62u8);
            (match i {
                0..=9 => b'0' + i,
                10..=35 => b'a' + i - 10,
                _ => b'A' + i - 36,
            }) as char
        })
        .collect();
    write_private(&path, &secret).map_err(|e| failed(&e))?;
    tracing::info!(path = %path.display(), "generated a development token secret");
    Ok(secret.into_bytes())
}

#[cfg(unix)]
fn write_private(path: &Path, content: &str) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(content.as_bytes())?;
    Ok(())
}

#[cfg(not(unix))]
fn write_private(path: &Path, content: &str) -> anyhow::Result<()> {
    std::fs::write(path, content)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::collections::HashMap;
    use std::ffi::OsString;

    /// The defaults, with no secret set (whatever this process' environment holds).
    fn config() -> Config {
        let mut c = Cli::try_parse_from(["group-service"]).unwrap().config;
        (c.database_url, c.jwt_secret, c.page_token_key, c.nats_url) = (None, None, None, None);
        c
    }

    fn env(vars: &[(&str, &Path)]) -> impl Fn(&str) -> Option<OsString> {
        let vars: HashMap<String, OsString> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.as_os_str().to_owned()))
            .collect();
        move |name| vars.get(name).cloned()
    }

    #[test]
    fn every_secret_setting_reads_its_file_without_the_trailing_newline() {
        let dir = tempfile::tempdir().unwrap();
        let file = |name: &str, text: &str| {
            let path = dir.path().join(name);
            std::fs::write(&path, text).unwrap();
            path
        };
        let (db, jwt, page, nats) = (
            file("db", "postgres://u:p@db/groups\n"),
            file("jwt", "a secret of sixteen bytes or more\r\n"),
            file("page", "page key"),
            file("nats", "nats://u:p@nats:4222\n"),
        );
        let mut c = config();
        c.read_secret_files(env(&[
            ("DATABASE_URL_FILE", &db),
            ("GROUP_SERVICE_JWT_SECRET_FILE", &jwt),
            ("GROUP_SERVICE_PAGE_TOKEN_KEY_FILE", &page),
            ("NATS_URL_FILE", &nats),
        ]))
        .unwrap();
        assert_eq!(c.database_url.as_deref(), Some("postgres://u:p@db/groups"));
        assert_eq!(
            c.jwt_secret.as_deref(),
            Some("a secret of sixteen bytes or more")
        );
        assert_eq!(c.page_token_key.as_deref(), Some("page key"));
        assert_eq!(c.nats_url.as_deref(), Some("nats://u:p@nats:4222"));
    }

    #[test]
    fn a_secret_given_twice_or_from_an_empty_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let page = dir.path().join("page");
        std::fs::write(&page, "page key\n").unwrap();
        let mut c = config();
        c.page_token_key = Some("inline".into());
        let e = c
            .read_secret_files(env(&[("GROUP_SERVICE_PAGE_TOKEN_KEY_FILE", &page)]))
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "GROUP_SERVICE_PAGE_TOKEN_KEY (or --page-token-key) and \
             GROUP_SERVICE_PAGE_TOKEN_KEY_FILE are both set: give one of them"
        );

        let empty = dir.path().join("empty");
        std::fs::write(&empty, "\n").unwrap();
        let e = config()
            .read_secret_files(env(&[("NATS_URL_FILE", &empty)]))
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("NATS_URL_FILE {} is empty", empty.display())
        );
    }
}
