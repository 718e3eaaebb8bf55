//! Logs and traces: the `tracing` subscriber of the binary, and, when an OTLP endpoint is
//! configured, the export of spans to an OpenTelemetry collector.
//!
//! - Logs: `tracing-subscriber`'s fmt layer on stderr, text or JSON, filtered by `RUST_LOG`
//!   (default `info`).
//! - Traces, only when `OTEL_EXPORTER_OTLP_ENDPOINT` or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` is
//!   set (and `OTEL_SDK_DISABLED` is not `true`): the server's spans (one per call, `server`;
//!   a child per domain operation, `domain::service`) go through `tracing-opentelemetry` to the
//!   OpenTelemetry SDK's batch processor and an OTLP exporter. The protocol is
//!   `OTEL_EXPORTER_OTLP_TRACES_PROTOCOL` or `OTEL_EXPORTER_OTLP_PROTOCOL`: `http/protobuf`
//!   (the default, the specification's) or `grpc`; over plain `http://` only. The SDK reads
//!   the other standard variables itself: `OTEL_SERVICE_NAME` and `OTEL_RESOURCE_ATTRIBUTES`
//!   (the service name is `group-service` unless they name one), `OTEL_TRACES_SAMPLER` and
//!   `OTEL_TRACES_SAMPLER_ARG`, `OTEL_BSP_*`, `OTEL_EXPORTER_OTLP_HEADERS` and the timeouts.
//! - A call's span continues the caller's trace: its W3C `traceparent` (and `tracestate`) is
//!   taken as the span's parent (`follow_caller`).
//! - `Telemetry::shutdown` exports the spans still buffered before the process exits.

use std::sync::OnceLock;
use std::time::Duration;

use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use prost::bytes::Bytes;
use tonic::codegen::http;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::Layer;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::config::LogFormat;

/// The service name spans carry unless `OTEL_SERVICE_NAME` or `OTEL_RESOURCE_ATTRIBUTES`
/// names another.
const SERVICE_NAME: &str = "group-service";
/// How long one export over HTTP may take (the OTLP exporters' default).
const HTTP_EXPORT_TIMEOUT: Duration = Duration::from_secs(10);

/// Whether spans are exported: set once, by `init`.
static EXPORTING: OnceLock<bool> = OnceLock::new();

/// The installed subscriber's tracer provider, when spans are exported.
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

/// A set, non-empty environment variable.
fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// Installs the global subscriber: logs in `format`, and spans to OTLP when configured.
/// Called once, inside the Tokio runtime (the exporters send from it).
pub fn init(format: LogFormat) -> anyhow::Result<Telemetry> {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let logs = match format {
        LogFormat::Json => logs.json().with_filter(filter).boxed(),
        LogFormat::Text => logs.with_filter(filter).boxed(),
    };
    let provider = exporting().then(provider).transpose()?;
    let traces = provider.as_ref().map(|p| {
        tracing_opentelemetry::layer()
            .with_tracer(p.tracer(SERVICE_NAME))
            // The server's own spans; no events, and none of its libraries' spans.
            .with_filter(tracing_subscriber::filter::filter_fn(|m| {
                m.is_span() && m.target().starts_with("group_service")
            }))
    });
    tracing_subscriber::registry()
        .with(logs)
        .with(traces)
        .try_init()?;
    let _ = EXPORTING.set(provider.is_some());
    Ok(Telemetry { provider })
}

/// Whether the environment asks for spans to be exported.
fn exporting() -> bool {
    let disabled = env("OTEL_SDK_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true"));
    let endpoint = env("OTEL_EXPORTER_OTLP_ENDPOINT")
        .or_else(|| env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))
        .is_some();
    endpoint && !disabled
}

/// The tracer provider: the OTLP exporter of the configured protocol behind the SDK's batch
/// processor.
fn provider() -> anyhow::Result<SdkTracerProvider> {
    let protocol = env("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
        .or_else(|| env("OTEL_EXPORTER_OTLP_PROTOCOL"))
        .unwrap_or_else(|| "http/protobuf".to_owned());
    let builder = opentelemetry_otlp::SpanExporter::builder();
    let exporter = match protocol.as_str() {
        "http/protobuf" => builder
            .with_http()
            .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
            .with_http_client(OnRuntime::new())
            .build()?,
        "grpc" => builder
            .with_tonic()
            .with_protocol(opentelemetry_otlp::Protocol::Grpc)
            .build()?,
        other => anyhow::bail!(
            "OTLP protocol {other:?} is not supported here: use http/protobuf or grpc"
        ),
    };
    let mut resource = opentelemetry_sdk::Resource::builder();
    let named = env("OTEL_SERVICE_NAME").is_some()
        || env("OTEL_RESOURCE_ATTRIBUTES").is_some_and(|a| a.contains("service.name="));
    if !named {
        resource = resource.with_service_name(SERVICE_NAME);
    }
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource.build())
        .build())
}

impl Telemetry {
    /// Exports the spans still buffered, waiting for the exporter (off the runtime's
    /// workers: the exporter sends from the runtime).
    pub async fn shutdown(self) {
        let Some(provider) = self.provider else {
            return;
        };
        match tokio::task::spawn_blocking(move || provider.shutdown()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!("group-service: exporting the last spans failed: {e}"),
            Err(e) => eprintln!("group-service: exporting the last spans failed: {e}"),
        }
    }
}

/// Makes `span` (a call's) a child of the caller's span named by the request's W3C
/// `traceparent`, when there is one and spans are exported.
pub fn follow_caller(span: &tracing::Span, headers: &http::HeaderMap) {
    if !EXPORTING.get().copied().unwrap_or(false) || !headers.contains_key("traceparent") {
        return;
    }
    let parent = TraceContextPropagator::new().extract(&Headers(headers));
    // Only a span just made and not disabled is passed here: it takes the parent.
    let _ = span.set_parent(parent);
}

/// A request's headers, as the propagator reads them.
struct Headers<'a>(&'a http::HeaderMap);

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}

/// The OTLP/HTTP exporter's client: hyper's, driven on the server's runtime. The SDK's batch
/// processor exports from a thread of its own, where hyper finds no runtime; each request is
/// sent from a task of the runtime `init` ran in.
#[derive(Debug)]
struct OnRuntime {
    client: opentelemetry_http::hyper::HyperClient,
    runtime: tokio::runtime::Handle,
}

impl OnRuntime {
    fn new() -> OnRuntime {
        OnRuntime {
            client: opentelemetry_http::hyper::HyperClient::with_default_connector(
                HTTP_EXPORT_TIMEOUT,
                None,
            ),
            runtime: tokio::runtime::Handle::current(),
        }
    }
}

#[async_trait::async_trait]
impl opentelemetry_http::HttpClient for OnRuntime {
    async fn send_bytes(
        &self,
        request: http::Request<Bytes>,
    ) -> Result<http::Response<Bytes>, opentelemetry_http::HttpError> {
        let client = self.client.clone();
        self.runtime
            .spawn(async move { client.send_bytes(request).await })
            .await?
    }
}
