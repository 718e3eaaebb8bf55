//! `bare-health`: a tonic server with nothing but `grpc.health.v1.Health` (always SERVING),
//! built like group-service's server (same tonic, TCP_NODELAY). Driven by the same load tool,
//! it is the ceiling a gRPC call can reach on this machine: the benchmark reports each of the
//! service's calls against it.
//!
//! With `--pg-url`, each Check first makes pgbench -S's one read (`SELECT abalance FROM
//! pgbench_accounts WHERE aid = $1`, a random account, prepared) on one of `--pg-connections`
//! PostgreSQL connections, taken in turn: the ceiling of a gRPC call that needs one
//! primary-key read, which the service's uncached reads are measured against.
//!
//! `bare-health [--listen 127.0.0.1:50061] [--max-seconds 1800] [--pg-url URL]
//! [--pg-connections 16]`: loopback only; stops by itself after `--max-seconds`, or on
//! SIGTERM / Ctrl-C.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use clap::Parser;
use tokio::net::TcpListener;
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;
use tonic::{Request, Response, Status};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_server::{Health, HealthServer};
use tonic_health::pb::{HealthCheckRequest, HealthCheckResponse};

#[derive(Parser)]
struct Args {
    #[arg(long, default_value = "127.0.0.1:50061")]
    listen: String,
    #[arg(long, default_value_t = 1800)]
    max_seconds: u64,
    /// A pgbench database (`pgbench -i`): each Check reads one account first.
    #[arg(long)]
    pg_url: Option<String>,
    #[arg(long, default_value_t = 16)]
    pg_connections: usize,
}

/// PostgreSQL connections with pgbench -S's statement prepared on each, used in turn.
struct Accounts {
    connections: Vec<(tokio_postgres::Client, tokio_postgres::Statement)>,
    next: AtomicUsize,
    accounts: i32,
}

impl Accounts {
    async fn connect(url: &str, n: usize) -> anyhow::Result<Accounts> {
        let mut connections = Vec::with_capacity(n);
        for _ in 0..n.max(1) {
            let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
            tokio::spawn(conn);
            let select = client
                .prepare("SELECT abalance FROM pgbench_accounts WHERE aid = $1")
                .await?;
            connections.push((client, select));
        }
        let (client, _) = &connections[0];
        let rows: i64 = client
            .query_one("SELECT count(*) FROM pgbench_accounts", &[])
            .await?
            .get(0);
        Ok(Accounts {
            connections,
            next: AtomicUsize::new(0),
            accounts: i32::try_from(rows)?.max(1),
        })
    }

    async fn read_one(&self) -> Result<(), Status> {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.connections.len();
        let (client, select) = &self.connections[i];
        let aid = rand::random_range(1..=self.accounts);
        client
            .query_opt(select, &[&aid])
            .await
            .map_err(|e| Status::unavailable(e.to_string()))?;
        Ok(())
    }
}

/// Health that answers SERVING, after one account read when it has `accounts`.
struct Bare {
    accounts: Option<Arc<Accounts>>,
}

#[tonic::async_trait]
impl Health for Bare {
    async fn check(
        &self,
        _: Request<HealthCheckRequest>,
    ) -> Result<Response<HealthCheckResponse>, Status> {
        if let Some(accounts) = &self.accounts {
            accounts.read_one().await?;
        }
        Ok(Response::new(HealthCheckResponse {
            status: ServingStatus::Serving as i32,
        }))
    }

    type WatchStream = tokio_stream::Empty<Result<HealthCheckResponse, Status>>;

    async fn watch(
        &self,
        _: Request<HealthCheckRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        Err(Status::unimplemented("watch"))
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let listener = TcpListener::bind(&args.listen).await?;
    let addr = listener.local_addr()?;
    anyhow::ensure!(addr.ip().is_loopback(), "listen on a loopback address");
    let accounts = match &args.pg_url {
        Some(url) => Some(Arc::new(Accounts::connect(url, args.pg_connections).await?)),
        None => None,
    };
    eprintln!("bare-health serving on {addr}");
    let stop = async move {
        let term = async {
            #[cfg(unix)]
            if let Ok(mut s) =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            {
                s.recv().await;
                return;
            }
            std::future::pending::<()>().await
        };
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(args.max_seconds)) => {}
            _ = tokio::signal::ctrl_c() => {}
            _ = term => {}
        }
    };
    Server::builder()
        .add_service(HealthServer::new(Bare { accounts }))
        .serve_with_incoming_shutdown(TcpIncoming::from(listener).with_nodelay(Some(true)), stop)
        .await?;
    Ok(())
}
