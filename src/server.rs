//! The server as a function tests can start: `run(listener, service, verifier, shutdown)`.

use std::future::Future;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_stream::StreamExt;
use tonic::codec::CompressionEncoding;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;
use tonic_health::ServingStatus;

use crate::auth::Verifier;
use crate::domain::Service;
use crate::grpc::consistency::ConsistencyLayer;
use crate::grpc::pb::directory_service_server::DirectoryServiceServer;
use crate::grpc::pb::event_service_server::EventServiceServer;
use crate::grpc::pb::group_service_server::GroupServiceServer;
use crate::grpc::pb::membership_service_server::MembershipServiceServer;
use crate::grpc::web;
use crate::grpc::wire::WireLayer;
use crate::grpc::{DirectoryApi, EventApi, GroupApi, MembershipApi, pb};
use crate::guard::deadline::DeadlineLayer;
use crate::guard::drain::{Closing, CutLayer, Drain, InFlight};
use crate::guard::overload::{Concurrency, OverloadLayer};
use crate::guard::rate::{self, Rate, TenantLimiter};
use crate::metrics::{Metrics, MetricsLayer};

/// A generated service server that takes gzip-compressed requests and compresses its answers
/// for clients that accept gzip.
macro_rules! gzip {
    ($server:expr) => {
        $server
            .accept_compressed(CompressionEncoding::Gzip)
            .send_compressed(CompressionEncoding::Gzip)
    };
}

/// Service names whose health follows the database.
const HEALTH_NAMES: [&str; 5] = [
    "",
    "groups.v1.GroupService",
    "groups.v1.MembershipService",
    "groups.v1.DirectoryService",
    "groups.v1.EventService",
];

/// Reflection over every service served, the error details and both reflection versions, so
/// that grpcurl lists all of them and prints `google.rpc` details by name.
fn reflection() -> tonic_reflection::server::Builder<'static> {
    tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_types::pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET)
}

/// How the server runs beyond its service and verifier: what runs beside it and its limits.
pub struct Options {
    /// Prometheus metrics on `GET /metrics`.
    pub metrics_listener: Option<TcpListener>,
    /// The JetStream relay of the change feed (`relay`), when set.
    pub nats_url: Option<String>,
    /// Servers of the JetStream cluster each event is kept on (`relay::stream_config`).
    pub nats_stream_replicas: usize,
    /// How long events are kept (`feed::Service::prune_events`).
    pub event_retention: Duration,
    /// Largest request message, in bytes (`grpc::limits`).
    pub max_request_bytes: usize,
    /// Largest answer of a read, in bytes uncompressed (`grpc::limits`).
    pub max_response_bytes: usize,
    /// The longest a call may run, whatever its `grpc-timeout` (`guard::deadline`); `None`:
    /// as long as the caller allows.
    pub max_call: Option<Duration>,
    /// Shutdown: NOT_SERVING for `delay`, every connection closed by `deadline`.
    pub drain: Drain,
    /// The global concurrency limit and its queue (off by default here; on in `main`).
    pub concurrency: Concurrency,
    /// Calls per second per tenant, when limited.
    pub tenant_rate: Option<Rate>,
    /// HTTP/2 streams a client may reset before the server accepts them, per connection,
    /// before the connection is closed (the rapid-reset guard).
    pub http2_max_pending_reset_streams: usize,
    /// How often expired members are swept and due message purges run (`timers`).
    pub timers_every: Duration,
    /// Origins whose browser pages may call over gRPC-Web (`grpc::web`); none by default.
    pub cors_allowed_origins: Vec<String>,
    /// TLS on the port (`crate::tls::server_config`): every connection, gRPC, gRPC-Web and
    /// health, is a TLS session. None: plaintext.
    pub tls: Option<std::sync::Arc<rustls::ServerConfig>>,
}

/// Events are kept a week unless configured otherwise.
pub const DEFAULT_EVENT_RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);
/// Cancelled calls are client resets too: hyper's default of 20 closed connections (and
/// failed their other calls) under a burst of deadlines.
pub const DEFAULT_HTTP2_MAX_PENDING_RESET_STREAMS: usize = 1024;
/// The largest header block of a call (HTTP/2 `SETTINGS_MAX_HEADER_LIST_SIZE`: names and
/// values plus 32 bytes per field): 1 MiB for a token, as for a message, and 16 KiB for the
/// rest. Up to it, headers reach the service, where a token over `auth::MAX_TOKEN_BYTES` is
/// UNAUTHENTICATED `TOKEN_TOO_LARGE`. Beyond it, h2 answers that call alone with HTTP 431 (and
/// resets its stream) up to about 1.25 times this size (its cap on CONTINUATION frames), and
/// further beyond closes the connection (GOAWAY `ENHANCE_YOUR_CALM`, its abuse guard).
/// hyper's default (16 KiB) answered 431 from 16 KiB and closed the connection from 64 KiB.
pub const MAX_HEADER_LIST_BYTES: u32 = (1 << 20) + (16 << 10);
/// How long a client may take over its TLS handshake, and how many handshakes run at once
/// (more connections wait to be accepted meanwhile).
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
const TLS_HANDSHAKES: usize = 1024;
/// The longest a call runs unless configured otherwise (`--max-call-ms`).
pub const DEFAULT_MAX_CALL: Duration = Duration::from_secs(30);
/// How often retention runs.
const PRUNE_EVERY: Duration = Duration::from_secs(60);
/// How often the timers run unless configured otherwise.
pub const DEFAULT_TIMERS_EVERY: Duration = Duration::from_secs(30);

impl Default for Options {
    fn default() -> Self {
        Options {
            metrics_listener: None,
            nats_url: None,
            nats_stream_replicas: 1,
            event_retention: DEFAULT_EVENT_RETENTION,
            max_request_bytes: crate::grpc::limits::DEFAULT_MAX_REQUEST_BYTES,
            max_response_bytes: crate::grpc::limits::DEFAULT_MAX_RESPONSE_BYTES,
            max_call: Some(DEFAULT_MAX_CALL),
            drain: Drain {
                delay: Duration::ZERO,
                deadline: Duration::from_secs(10),
                idle_close: crate::guard::drain::DEFAULT_IDLE_CLOSE,
            },
            concurrency: Concurrency {
                max_concurrent: 0,
                max_queued: 0,
                queue_wait: Duration::ZERO,
            },
            tenant_rate: None,
            http2_max_pending_reset_streams: DEFAULT_HTTP2_MAX_PENDING_RESET_STREAMS,
            timers_every: DEFAULT_TIMERS_EVERY,
            cors_allowed_origins: Vec::new(),
            tls: None,
        }
    }
}

/// Serves until `shutdown` resolves, then stops taking calls and drains the ones in flight.
pub async fn run(
    listener: TcpListener,
    service: Service,
    verifier: Verifier,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    run_with(listener, Options::default(), service, verifier, shutdown).await
}

/// `run`, with `Options`.
pub async fn run_with(
    listener: TcpListener,
    options: Options,
    service: Service,
    verifier: Verifier,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let metrics_listener = options.metrics_listener;
    let cors = web::cors(&options.cors_allowed_origins)?;
    let (reporter, health) = tonic_health::server::health_reporter();
    let reflection_v1 = reflection().build_v1()?;
    let reflection_v1alpha = reflection().build_v1alpha()?;

    // Health: SERVING only while the database answers; NOT_SERVING until it first has.
    for name in HEALTH_NAMES {
        reporter
            .set_service_status(name, ServingStatus::NotServing)
            .await;
    }
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let metrics = Metrics::new(&service, options.nats_url.is_some());
    let service = service.observed(std::sync::Arc::new(metrics.clone()));
    if let Some(ml) = metrics_listener {
        tracing::info!(addr = %ml.local_addr()?, "serving metrics");
        let mut stop = stop_rx.clone();
        tokio::spawn(metrics.clone().serve(ml, async move {
            let _ = stop.changed().await;
        }));
    }
    let relaying = options.nats_url.is_some();
    if let Some(url) = options.nats_url {
        let holder = format!("{}-{:016x}", std::process::id(), rand::random::<u64>());
        let relay = crate::relay::run(
            service.clone(),
            crate::relay::Nats {
                url,
                replicas: options.nats_stream_replicas,
            },
            holder,
            metrics.clone(),
            stop_rx.clone(),
        );
        tokio::spawn(relay);
    }
    tokio::spawn(prune(
        service.clone(),
        options.event_retention,
        relaying,
        stop_rx.clone(),
    ));
    tokio::spawn(timers(
        service.clone(),
        options.timers_every,
        stop_rx.clone(),
    ));
    let health_task = tokio::spawn(follow_database(
        service.clone(),
        reporter.clone(),
        stop_rx.clone(),
    ));
    let auth = rate::admitting(
        verifier.interceptor(),
        options.tenant_rate.and_then(TenantLimiter::new),
    );
    // Each service with gzip, the request size limit and the auth interceptor. Answers are
    // limited by the handlers, uncompressed and for reads only (`grpc::limits`); tonic's own
    // limit would count compressed bytes and refuse a write after its commit.
    macro_rules! serve {
        ($server:ident, $api:expr) => {
            InterceptedService::new(
                gzip!($server::new($api))
                    .max_decoding_message_size(options.max_request_bytes)
                    .max_encoding_message_size(usize::MAX),
                auth.clone(),
            )
        };
    }
    let groups = serve!(GroupServiceServer, GroupApi::new(service.clone()));
    let membership = serve!(MembershipServiceServer, MembershipApi::new(service.clone()));
    let events = serve!(
        EventServiceServer,
        EventApi::new(service.clone(), stop_rx.clone())
    );
    let directory = serve!(DirectoryServiceServer, DirectoryApi::new(service));

    let addr = listener.local_addr()?;
    let (close_tx, close_rx) = tokio::sync::watch::channel(false);
    let close_tx = std::sync::Arc::new(close_tx);
    let cut_rx = close_rx.clone();
    let in_flight = InFlight::default();
    let draining = in_flight.clone();
    let stopping = stop_rx.clone();
    // Without TCP_NODELAY an answer that spans segments waits out the client's delayed ACK
    // (about 40 ms on Linux).
    let incoming = TcpIncoming::from(listener)
        .with_nodelay(Some(true))
        .map(move |conn| conn.map(|io| Closing::new(io, close_rx.clone())));
    tracing::info!(%addr, "serving");
    let shutdown_reporter = reporter.clone();
    let health_follower = health_task.abort_handle();
    let drain = options.drain;
    let on_shutdown = async move {
        shutdown.await;
        tracing::info!(
            ?drain,
            "shutting down: NOT_SERVING, then draining calls in flight"
        );
        health_follower.abort();
        for name in HEALTH_NAMES {
            shutdown_reporter
                .set_service_status(name, ServingStatus::NotServing)
                .await;
        }
        let at_deadline = close_tx.clone();
        tokio::spawn(async move {
            tokio::time::sleep(drain.deadline).await;
            tracing::info!("drain deadline: closing every connection left");
            at_deadline.send_replace(true);
        });
        tokio::time::sleep(drain.delay).await;
        let _ = stop_tx.send(true);
        // Streams end now (`CutLayer`); once the calls left have answered, connections get
        // `idle_close` to close on their own, then are closed.
        tokio::spawn(async move {
            draining.idle().await;
            tokio::time::sleep(drain.idle_close).await;
            if !close_tx.send_replace(true) {
                tracing::info!("drain: no call left; closing the connections still open");
            }
        });
    };
    let router = Server::builder()
        .trace_fn(move |req| {
            // OpenTelemetry's names for a gRPC server span (exported when configured:
            // `telemetry`); the status code is recorded when the call ends (`metrics`).
            let (service, method) = crate::metrics::method_of(req.uri().path());
            let span = tracing::info_span!(
                "rpc",
                otel.name = %format_args!("{service}/{method}"),
                otel.kind = "server",
                otel.status_code = tracing::field::Empty,
                rpc.system = "grpc",
                rpc.service = service,
                rpc.method = method,
                rpc.grpc.status_code = tracing::field::Empty,
                server.address = %addr.ip(),
                server.port = i64::from(addr.port()),
                method = %req.uri().path(),
                tenant = tracing::field::Empty,
                request_id = tracing::field::Empty
            );
            crate::telemetry::follow_caller(&span, req.headers());
            span
        })
        .http2_max_pending_accept_reset_streams(Some(options.http2_max_pending_reset_streams))
        .http2_max_header_list_size(MAX_HEADER_LIST_BYTES)
        // gRPC-Web (browsers) over HTTP/1.1 as well as HTTP/2, translated before the metrics
        // layer so that every layer from there in sees an ordinary gRPC call; native calls
        // pass `web` untouched.
        .accept_http1(true)
        .layer(web::layer(cors))
        .layer(MetricsLayer(metrics))
        .layer(WireLayer::new(options.max_response_bytes))
        .layer(DeadlineLayer {
            max: options.max_call,
        })
        .layer(CutLayer::new(stopping, cut_rx, in_flight))
        .layer(OverloadLayer::new(options.concurrency))
        .layer(ConsistencyLayer)
        .add_service(gzip!(health))
        .add_service(gzip!(reflection_v1))
        .add_service(gzip!(reflection_v1alpha))
        .add_service(groups)
        .add_service(membership)
        .add_service(directory)
        .add_service(events);
    match options.tls {
        None => {
            router
                .serve_with_incoming_shutdown(incoming, on_shutdown)
                .await?
        }
        Some(tls) => {
            // Handshakes run side by side: a slow client holds up only its own connection.
            let acceptor = tokio_rustls::TlsAcceptor::from(tls);
            let handshakes = incoming.map(move |conn| {
                let acceptor = acceptor.clone();
                async move {
                    let io = match conn {
                        Ok(io) => io,
                        Err(e) => return Some(Err(e)),
                    };
                    match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(io)).await {
                        Ok(Ok(tls)) => Some(Ok(tls)),
                        Ok(Err(e)) => {
                            tracing::debug!(error = %e, "TLS handshake failed");
                            None
                        }
                        Err(_) => {
                            tracing::debug!("TLS handshake timed out");
                            None
                        }
                    }
                }
            });
            let sessions = futures_util::StreamExt::filter_map(
                futures_util::StreamExt::buffer_unordered(handshakes, TLS_HANDSHAKES),
                std::future::ready,
            );
            router
                .serve_with_incoming_shutdown(sessions, on_shutdown)
                .await?
        }
    }
    health_task.abort();
    Ok(())
}

/// Health follows the database (`Service::availability`): SERVING while it answers,
/// NOT_SERVING while it does not, changed as soon as the store sees it change.
async fn follow_database(
    service: Service,
    reporter: tonic_health::server::HealthReporter,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut available = service.availability();
    loop {
        let status = if *available.borrow_and_update() {
            ServingStatus::Serving
        } else {
            tracing::warn!("database not answering: health NOT_SERVING");
            ServingStatus::NotServing
        };
        for name in HEALTH_NAMES {
            reporter.set_service_status(name, status).await;
        }
        tokio::select! {
            changed = available.changed() => if changed.is_err() { break },
            _ = stop.changed() => break,
        }
    }
}

/// The work the clock brings, every `every` until `stop`: expired members deleted with their
/// events (they count nowhere already, see `domain::expiry`).
async fn timers(service: Service, every: Duration, mut stop: tokio::sync::watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        if let Err(e) = service.run_timers().await {
            tracing::warn!(error = %e, "timers failed; they run again later");
        }
    }
}

/// Retention, every `PRUNE_EVERY` until `stop`: never past an event the relay has yet to
/// publish, when this server relays (without a relay nothing is waiting to be published).
async fn prune(
    service: Service,
    keep: Duration,
    relaying: bool,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(PRUNE_EVERY) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        if let Err(e) = service.prune_events(keep, relaying).await {
            tracing::warn!(error = %e, "event retention failed; it runs again later");
        }
    }
}
