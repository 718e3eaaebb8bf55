//! `bare-health`: a tonic server with nothing but `grpc.health.v1.Health` (always SERVING),
//! built like group-service's server (same tonic, TCP_NODELAY). Driven by the same load tool,
//! it is the ceiling a gRPC call can reach on this machine: the benchmark reports each of the
//! service's calls against it.
//!
//! `bare-health [--listen 127.0.0.1:50061] [--max-seconds 1800]`: loopback only; stops by
//! itself after `--max-seconds`, or on SIGTERM / Ctrl-C.

use std::time::Duration;

use clap::Parser;
use tokio::net::TcpListener;
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;

#[derive(Parser)]
struct Args {
    #[arg(long, default_value = "127.0.0.1:50061")]
    listen: String,
    #[arg(long, default_value_t = 1800)]
    max_seconds: u64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let listener = TcpListener::bind(&args.listen).await?;
    let addr = listener.local_addr()?;
    anyhow::ensure!(addr.ip().is_loopback(), "listen on a loopback address");
    let (reporter, health) = tonic_health::server::health_reporter();
    reporter
        .set_service_status("", tonic_health::ServingStatus::Serving)
        .await;
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
        .add_service(health)
        .serve_with_incoming_shutdown(TcpIncoming::from(listener).with_nodelay(Some(true)), stop)
        .await?;
    Ok(())
}
