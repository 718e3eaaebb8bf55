use clap::Parser;
use std::time::Duration;

use sha2::{Digest, Sha256};
use tokio::net::TcpListener;

use group_service::auth;
use group_service::config::{Cli, Command, Config};
use group_service::domain::Service;
use group_service::guard::drain::Drain;
use group_service::guard::overload::Concurrency;
use group_service::guard::rate::Rate;
use group_service::store::Store;
use group_service::{health, server, telemetry};

/// A failure is said in one line on stderr (with its causes, without a backtrace) and the exit
/// status is 1.
#[tokio::main]
async fn main() -> std::process::ExitCode {
    match run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("group-service: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run() -> anyhow::Result<()> {
    let mut cli = Cli::parse();
    cli.config
        .read_secret_files(|name| std::env::var_os(name))?;
    let telemetry = telemetry::init(cli.config.log_format)?;
    let res = command(cli).await;
    telemetry.shutdown().await;
    res
}

async fn command(cli: Cli) -> anyhow::Result<()> {
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(cli.config).await,
        Command::Migrate => {
            let store = Store::connect(&cli.config.database_url(), 2).await?;
            store.migrate().await?;
            println!("migrations applied");
            Ok(())
        }
        Command::Health(args) => {
            let tls = health::client_tls(&args)?;
            let addr = args
                .addr
                .unwrap_or_else(|| health::dial_address(&cli.config.listen));
            let timeout = Duration::from_millis(args.timeout_ms);
            health::check(&addr, &args.service, timeout, tls).await?;
            println!("{addr}: SERVING");
            Ok(())
        }
        Command::Token(args) => {
            let secret = cli
                .config
                .hs256_secret()?
                .ok_or_else(|| anyhow::anyhow!("tokens can be minted only with an HS256 secret"))?;
            // "operator" is the default service name; a user token needs a user id.
            if !args.service && args.user == "operator" {
                anyhow::bail!("--user is required for a user token (or pass --service)");
            }
            let sub = args.user;
            println!(
                "{}",
                auth::mint_hs256(
                    &secret,
                    args.tenant,
                    &sub,
                    args.admin,
                    args.service,
                    args.ttl
                )?
            );
            Ok(())
        }
    }
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let verifier = config.verifier().await?;
    let page_key = match (&config.page_token_key, config.hs256_secret()?) {
        (Some(key), _) => key.as_bytes().to_vec(),
        (None, Some(secret)) => {
            Sha256::digest([b"page-token:".as_slice(), &secret].concat()).to_vec()
        }
        (None, None) => rand::random::<[u8; 32]>().to_vec(),
    };
    let tls = config.tls()?;
    let store = Store::connect(&config.database_url(), config.max_connections).await?;
    store.migrate().await?;
    let store = store
        .with_standbys(&config.database_read_url, config.max_connections)
        .await?;
    let listener = bind(&config.listen, "--listen, GROUP_SERVICE_LISTEN").await?;
    let key_configured =
        config.jwt_secret.is_some() || config.jwt_public_key.is_some() || config.jwt_jwks.is_some();
    if auth::development_secret_exposed(listener.local_addr()?, key_configured) {
        tracing::warn!(
            listen = %config.listen,
            "NO TOKEN KEY CONFIGURED: tokens are checked with a development secret generated \
             into the data dir, and this server listens beyond localhost. Anyone who reads \
             that file can act as any user of any tenant. Set GROUP_SERVICE_JWT_JWKS, \
             GROUP_SERVICE_JWT_PUBLIC_KEY or GROUP_SERVICE_JWT_SECRET for production."
        );
    }
    let metrics_listener = match config.metrics_listen.as_deref().filter(|a| !a.is_empty()) {
        Some(addr) => Some(bind(addr, "--metrics-listen, GROUP_SERVICE_METRICS_LISTEN").await?),
        None => None,
    };
    let options = server::Options {
        metrics_listener,
        nats_url: config.nats_url.clone().filter(|u| !u.is_empty()),
        nats_stream_replicas: usize::from(config.nats_stream_replicas),
        event_retention: std::time::Duration::from_secs(config.event_retention_hours * 3600),
        timers_every: Duration::from_secs(config.timers_interval_secs.max(1)),
        max_request_bytes: config.max_request_bytes,
        max_response_bytes: config.max_response_bytes,
        max_call: (config.max_call_ms > 0).then(|| Duration::from_millis(config.max_call_ms)),
        drain: Drain {
            delay: Duration::from_millis(config.shutdown_delay_ms),
            deadline: Duration::from_secs(config.drain_deadline_secs),
            idle_close: Duration::from_millis(config.drain_idle_close_ms),
        },
        concurrency: Concurrency {
            max_concurrent: config.max_concurrent_calls,
            max_queued: config.max_queued_calls,
            queue_wait: Duration::from_millis(config.queue_wait_ms),
        },
        tenant_rate: Some(Rate {
            per_second: config.tenant_rate,
            burst: config.tenant_burst,
        }),
        http2_max_pending_reset_streams: config.http2_max_pending_reset_streams,
        cors_allowed_origins: config.cors_allowed_origins.clone(),
        tls,
    };
    server::run_with(
        listener,
        options,
        Service::new(store, &page_key)
            .with_cache(config.cache_mb << 20)
            .with_message_grace(Duration::from_secs(config.message_grace_days * 86_400)),
        verifier,
        shutdown_signal(),
    )
    .await
}

/// Listens on `addr`; a failure names the address and the setting that gave it.
async fn bind(addr: &str, setting: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr).await.map_err(|e| {
        // "localhost" or ":50051" alone: the OS error says only "invalid socket address".
        let hint = match e.kind() {
            std::io::ErrorKind::InvalidInput => " (expected HOST:PORT, e.g. 127.0.0.1:50051)",
            _ => "",
        };
        anyhow::anyhow!("cannot listen on {addr} ({setting}): {e}{hint}")
    })
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}
