//! Prometheus metrics, with the Prometheus project's own client (`prometheus-client`), served
//! on `GET /metrics` of a separate, optional listener (axum; every other path answers 404 and
//! adds nothing), in OpenMetrics or the classic text format as the scraper asks
//! (`exposition`).
//!
//! - Calls (`calls`): `grpc_server_started_total`, `grpc_server_handled_total` and the
//!   `grpc_server_handling_seconds` histogram by `grpc_type`, `grpc_service`, `grpc_method`
//!   (and `grpc_code`), the names and labels of go-grpc-prometheus; `grpc_server_in_flight`.
//!   Methods the server does not serve count under `unknown`, so a made-up path adds no series.
//! - Database: `group_service_db_operation_seconds` by `operation` (the domain's operation
//!   names, `domain::service`), and the pools' `group_service_db_pool_connections`,
//!   `group_service_db_pool_idle_connections` and `group_service_db_statements_total` by
//!   `pool`, read at each scrape.
//! - The relay's `group_service_relay_lag_seconds` (`relay`), present only where a relay runs.

mod calls;
mod exposition;

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::http::HeaderMap;
use axum::http::header::{ACCEPT, CONTENT_TYPE};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;
use tokio::net::TcpListener;

use crate::domain::Service;
use crate::domain::operation::Operation;
use crate::domain::service::Observer;
pub(crate) use calls::method_of;
use calls::{CallLabels, HandledLabels};
pub use calls::{CallTenant, MetricsLayer};
pub use exposition::Format;

/// Latency buckets, in seconds, of calls and of database operations.
const BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

fn histogram() -> Histogram {
    Histogram::new(BUCKETS)
}

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OperationLabels {
    operation: &'static str,
}

/// The metric families, shared by the server's layer, the domain's seam, the relay and the
/// endpoint.
#[derive(Clone)]
pub struct Metrics {
    registry: Arc<Registry>,
    started: Family<CallLabels, Counter>,
    handled: Family<HandledLabels, Counter>,
    handling: Histograms<HandledLabels>,
    in_flight: Family<CallLabels, Gauge>,
    operations: Histograms<OperationLabels>,
    cache_lookups: Family<CacheLabels, Counter>,
    consistency: Family<ConsistencyLabels, Counter>,
    /// The event relay's lag in seconds; registered only where a relay runs.
    relay_lag: Gauge<f64, AtomicU64>,
}

impl Metrics {
    /// The families of a server over `service`, with the relay's lag when `relaying`.
    pub fn new(service: &Service, relaying: bool) -> Metrics {
        let mut registry = Registry::default();
        // The registry ends each help text with a period; the collector's (`Pools`) are
        // written whole.
        let started = Family::<CallLabels, Counter>::default();
        registry.register(
            "grpc_server_started",
            "Calls started, by type, service and method",
            started.clone(),
        );
        let handled = Family::<HandledLabels, Counter>::default();
        registry.register(
            "grpc_server_handled",
            "Calls finished, by type, service, method and status code (a call the client \
             cancelled or whose deadline passed counts as Canceled or DeadlineExceeded)",
            handled.clone(),
        );
        let handling: Histograms<HandledLabels> = Family::new_with_constructor(histogram);
        registry.register(
            "grpc_server_handling_seconds",
            "Time from a call's start to its answer's last frame",
            handling.clone(),
        );
        let in_flight = Family::<CallLabels, Gauge>::default();
        registry.register(
            "grpc_server_in_flight",
            "Calls started and not yet finished",
            in_flight.clone(),
        );
        let operations: Histograms<OperationLabels> = Family::new_with_constructor(histogram);
        registry.register(
            "group_service_db_operation_seconds",
            "Time of each domain operation's transactions, retries included, by operation",
            operations.clone(),
        );
        let cache_lookups = Family::<CacheLabels, Counter>::default();
        registry.register(
            "group_service_cache_lookups",
            "Read cache lookups, by answer kind (caller, group, membership) and outcome (hit; \
             miss; stale: an entry of an older revision, dropped; shared: another call's read \
             of the same key answered it; bypassed: the call's consistency or unknown revisions)",
            cache_lookups.clone(),
        );
        let consistency = Family::<ConsistencyLabels, Counter>::default();
        registry.register(
            "group_service_consistency_reads",
            "Reads that asked for a consistency, by how it was met (caught_up, waited, \
             fell_through to the database, fully_consistent)",
            consistency.clone(),
        );
        registry.register_collector(Box::new(Pools(service.clone())));
        let relay_lag = Gauge::<f64, AtomicU64>::default();
        if relaying {
            registry.register(
                "group_service_relay_lag_seconds",
                "Age of the oldest unpublished event",
                relay_lag.clone(),
            );
        }
        Metrics {
            registry: Arc::new(registry),
            started,
            handled,
            handling,
            in_flight,
            operations,
            cache_lookups,
            consistency,
            relay_lag,
        }
    }

    /// The age of the oldest event the relay has yet to publish.
    pub fn set_relay_lag(&self, micros: i64) {
        self.relay_lag.set(micros as f64 / 1e6);
    }

    /// The exposition of every family in `format`.
    pub fn render(&self, format: Format) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail, and every family encodes what it holds.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        match format {
            Format::OpenMetrics => out,
            Format::Classic => exposition::classic(&out),
        }
    }

    /// Serves `GET /metrics` until `shutdown` resolves, in the format the scraper's `Accept`
    /// asks for (`exposition`); any other path is 404.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) {
        let app = axum::Router::new().route(
            "/metrics",
            axum::routing::get(move |headers: HeaderMap| {
                let metrics = self.clone();
                async move {
                    let accept = headers.get(ACCEPT).and_then(|a| a.to_str().ok());
                    let format = Format::negotiate(accept);
                    (
                        [(CONTENT_TYPE, format.content_type())],
                        metrics.render(format),
                    )
                }
            }),
        );
        if let Err(e) = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await
        {
            tracing::warn!(error = %e, "metrics listener stopped");
        }
    }
}

impl Observer for Metrics {
    fn operation(&self, op: Operation, elapsed: Duration) {
        self.operations
            .get_or_create(&OperationLabels {
                operation: op.label(),
            })
            .observe(elapsed.as_secs_f64());
    }

    fn cache(&self, answer: &'static str, outcome: &'static str) {
        self.cache_lookups
            .get_or_create(&CacheLabels { answer, outcome })
            .inc();
    }

    fn consistency(&self, met: &'static str) {
        self.consistency
            .get_or_create(&ConsistencyLabels { met })
            .inc();
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CacheLabels {
    answer: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ConsistencyLabels {
    met: &'static str,
}

/// The pool gauges, read from the pools at each scrape.
struct Pools(Service);

impl fmt::Debug for Pools {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Pools")
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PoolLabels {
    pool: &'static str,
}

impl Collector for Pools {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        let pools = self.0.pools();
        let gauge = |v: u32| ConstGauge::new(i64::from(v));
        per_pool(
            &mut encoder,
            "group_service_db_pool_connections",
            "Database connections open (idle or in use), by pool.",
            MetricType::Gauge,
            pools.iter().map(|p| (p.name, gauge(p.connections))),
        )?;
        per_pool(
            &mut encoder,
            "group_service_db_pool_idle_connections",
            "Database connections open and idle, by pool.",
            MetricType::Gauge,
            pools.iter().map(|p| (p.name, gauge(p.idle))),
        )?;
        per_pool(
            &mut encoder,
            "group_service_db_statements",
            "Statements sent to the database (round trips, BEGIN and COMMIT included), by pool.",
            MetricType::Counter,
            pools
                .iter()
                .map(|p| (p.name, ConstCounter::new(p.statements))),
        )
    }
}

/// One metric family with a value per pool.
fn per_pool<M: EncodeMetric>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    kind: MetricType,
    values: impl Iterator<Item = (&'static str, M)>,
) -> Result<(), fmt::Error> {
    let mut family = encoder.encode_descriptor(name, help, None, kind)?;
    for (pool, metric) in values {
        let labels = PoolLabels { pool };
        metric.encode(family.encode_family(&labels)?)?;
    }
    Ok(())
}
