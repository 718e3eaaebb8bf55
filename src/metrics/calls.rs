//! The call layer, outermost of the server's own layers: counts and times every call, keeps
//! the in-flight gauge, writes one access log line per call and gives each call a request id.
//!
//! - A call ends with its answer's last frame: the code is the `grpc-status` of its headers
//!   (errors are trailers-only answers) or of its trailers (OK, and a stream's end). A call
//!   whose future or body is dropped before that (the client went away, or its `grpc-timeout`
//!   passed) is counted by a drop guard, as DeadlineExceeded when its deadline had passed
//!   (within `DEADLINE_SLACK`) and Canceled otherwise. So a stream is in flight until it ends,
//!   and its handling time is its whole life.
//! - Labels: the served methods and their `grpc_type` (`unary`, `client_stream`,
//!   `server_stream`, `bidi_stream`), read once from the descriptor sets; any other path
//!   counts under `unknown` (all three labels), so no path a client makes up adds a series.
//! - Request id: `x-request-id` of the request when it is 1 to `MAX_REQUEST_ID` printable
//!   ASCII characters, else a new random one; returned as `x-request-id` in the answer's
//!   headers (which, for an error, are its trailers too) and recorded on the call's span.
//! - Access log: one INFO event per call, target `group_service::access`, with `method`,
//!   `tenant` (set by the auth interceptor through `CallTenant`), `code`, `latency_ms` and
//!   `request_id`.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use prometheus_client::encoding::EncodeLabelSet;
use tonic::codegen::http;

use super::Metrics;
use crate::domain::model::TenantId;
use crate::grpc::status::status_of;

/// The longest `x-request-id` taken from a request.
pub const MAX_REQUEST_ID: usize = 128;
/// The label of every method the server does not serve.
const UNKNOWN: &str = "unknown";
/// A call dropped this close to its `grpc-timeout` was dropped for it: the client's own timer
/// started about a one-way trip before this layer's clock, and its reset arrives about a
/// one-way trip after it fired, so a client that gives up at its deadline is seen here within
/// jitter of the deadline (tonic's server timer, started just before this layer's, fires at
/// it at the latest).
const DEADLINE_SLACK: Duration = Duration::from_millis(5);
/// The longest path written to the access log.
const MAX_LOGGED_PATH: usize = 256;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct CallLabels {
    grpc_type: &'static str,
    grpc_service: &'static str,
    grpc_method: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct HandledLabels {
    grpc_type: &'static str,
    grpc_service: &'static str,
    grpc_method: &'static str,
    grpc_code: &'static str,
}

/// `/package.Service/Method` of every method served, to its service and method names.
fn served() -> &'static HashMap<String, CallLabels> {
    static SERVED: OnceLock<HashMap<String, CallLabels>> = OnceLock::new();
    SERVED.get_or_init(|| {
        let sets = [
            crate::grpc::pb::FILE_DESCRIPTOR_SET,
            tonic_health::pb::FILE_DESCRIPTOR_SET,
            tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET,
            tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET,
        ];
        let mut served = HashMap::new();
        for set in sets {
            // The sets are compiled in; one that does not decode serves nothing to label.
            let Ok(pool) = prost_reflect::DescriptorPool::decode(set) else {
                continue;
            };
            for service in pool.services() {
                // Built once per process: the names live as long as it does.
                let service_name: &'static str = service.full_name().to_owned().leak();
                for method in service.methods() {
                    let method_name: &'static str = method.name().to_owned().leak();
                    served.insert(
                        format!("/{service_name}/{method_name}"),
                        CallLabels {
                            grpc_type: grpc_type(
                                method.is_client_streaming(),
                                method.is_server_streaming(),
                            ),
                            grpc_service: service_name,
                            grpc_method: method_name,
                        },
                    );
                }
            }
        }
        served
    })
}

/// A method's `grpc_type` as go-grpc-prometheus writes it.
fn grpc_type(client_streaming: bool, server_streaming: bool) -> &'static str {
    match (client_streaming, server_streaming) {
        (false, false) => "unary",
        (true, false) => "client_stream",
        (false, true) => "server_stream",
        (true, true) => "bidi_stream",
    }
}

/// The service and method of a call to `path`, as the metrics label it (`unknown` for a
/// method not served): the call's span names it so too.
pub(crate) fn method_of(path: &str) -> (&'static str, &'static str) {
    let labels = labels_of(path);
    (labels.grpc_service, labels.grpc_method)
}

fn labels_of(path: &str) -> CallLabels {
    served().get(path).cloned().unwrap_or(CallLabels {
        grpc_type: UNKNOWN,
        grpc_service: UNKNOWN,
        grpc_method: UNKNOWN,
    })
}

/// Status code names as go-grpc-prometheus writes them.
fn code_name(code: i32) -> &'static str {
    match tonic::Code::from_i32(code) {
        tonic::Code::Ok => "OK",
        tonic::Code::Cancelled => "Canceled",
        tonic::Code::Unknown => "Unknown",
        tonic::Code::InvalidArgument => "InvalidArgument",
        tonic::Code::DeadlineExceeded => "DeadlineExceeded",
        tonic::Code::NotFound => "NotFound",
        tonic::Code::AlreadyExists => "AlreadyExists",
        tonic::Code::PermissionDenied => "PermissionDenied",
        tonic::Code::ResourceExhausted => "ResourceExhausted",
        tonic::Code::FailedPrecondition => "FailedPrecondition",
        tonic::Code::Aborted => "Aborted",
        tonic::Code::OutOfRange => "OutOfRange",
        tonic::Code::Unimplemented => "Unimplemented",
        tonic::Code::Internal => "Internal",
        tonic::Code::Unavailable => "Unavailable",
        tonic::Code::DataLoss => "DataLoss",
        tonic::Code::Unauthenticated => "Unauthenticated",
    }
}

/// Whether a server's span for a call answered `code` has an error status (OpenTelemetry's
/// gRPC conventions): the codes that say the server failed, not the request.
fn server_error(code: i32) -> bool {
    matches!(
        tonic::Code::from_i32(code),
        tonic::Code::Unknown
            | tonic::Code::DeadlineExceeded
            | tonic::Code::Unimplemented
            | tonic::Code::Internal
            | tonic::Code::Unavailable
            | tonic::Code::DataLoss
    )
}

/// The request's `x-request-id` when it is fit to log and return, else a new one.
fn request_id(headers: &http::HeaderMap) -> String {
    headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|id| {
            (1..=MAX_REQUEST_ID).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_graphic())
        })
        .map(str::to_owned)
        .unwrap_or_else(|| format!("{:032x}", rand::random::<u128>()))
}

/// The verified caller's tenant, for the access log: the layer puts one in each request's
/// extensions, the auth interceptor fills it in.
#[derive(Clone, Default)]
pub struct CallTenant(Arc<AtomicI64>);

impl CallTenant {
    pub fn set(&self, tenant: TenantId) {
        self.0.store(tenant.0, Ordering::Relaxed);
    }

    /// Tenants are positive (R24); 0 is "no verified caller".
    fn get(&self) -> Option<i64> {
        Some(self.0.load(Ordering::Relaxed)).filter(|t| *t > 0)
    }
}

/// One call from its start until it answers or is dropped: counts it exactly once.
struct Call {
    metrics: Metrics,
    labels: CallLabels,
    path: String,
    request_id: String,
    deadline: Option<Duration>,
    tenant: CallTenant,
    started: Instant,
    /// The call's span (the server's `trace_fn`): held until the call ends, so that it ends
    /// then, with the call's status code.
    span: tracing::Span,
    done: bool,
}

impl Call {
    fn start<B>(metrics: Metrics, req: &mut http::Request<B>) -> Call {
        let path = req.uri().path();
        let labels = labels_of(path);
        let mut logged = path.to_owned();
        if logged.len() > MAX_LOGGED_PATH {
            let mut cut = MAX_LOGGED_PATH;
            while !logged.is_char_boundary(cut) {
                cut -= 1;
            }
            logged.truncate(cut);
        }
        let tenant = CallTenant::default();
        req.extensions_mut().insert(tenant.clone());
        metrics.started.get_or_create(&labels).inc();
        metrics.in_flight.get_or_create(&labels).inc();
        Call {
            request_id: request_id(req.headers()),
            deadline: crate::guard::deadline::grpc_timeout(req.headers()),
            metrics,
            labels,
            path: logged,
            tenant,
            started: Instant::now(),
            span: tracing::Span::none(),
            done: false,
        }
    }

    fn end(&mut self, code: i32) {
        if std::mem::replace(&mut self.done, true) {
            return;
        }
        let elapsed = self.started.elapsed();
        let grpc_code = code_name(code);
        let handled = HandledLabels {
            grpc_type: self.labels.grpc_type,
            grpc_service: self.labels.grpc_service,
            grpc_method: self.labels.grpc_method,
            grpc_code,
        };
        let m = &self.metrics;
        m.handled.get_or_create(&handled).inc();
        m.handling
            .get_or_create(&handled)
            .observe(elapsed.as_secs_f64());
        m.in_flight.get_or_create(&self.labels).dec();
        self.span.record("rpc.grpc.status_code", code);
        if server_error(code) {
            self.span.record("otel.status_code", "ERROR");
        }
        tracing::info!(
            target: "group_service::access",
            method = %self.path,
            tenant = self.tenant.get(),
            code = grpc_code,
            latency_ms = elapsed.as_secs_f64() * 1e3,
            request_id = %self.request_id,
            "call"
        );
    }
}

impl Drop for Call {
    /// Not answered: the client cancelled, or the deadline passed.
    fn drop(&mut self) {
        let code = match self.deadline {
            Some(d) if self.started.elapsed() + DEADLINE_SLACK >= d => {
                tonic::Code::DeadlineExceeded
            }
            _ => tonic::Code::Cancelled,
        };
        self.end(code as i32);
    }
}

/// An answer's body that ends its call at the trailers (or when dropped before them).
pub struct ObservedBody<B> {
    inner: B,
    call: Call,
}

impl<B> http_body::Body for ObservedBody<B>
where
    B: http_body::Body + Unpin,
{
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        let this = &mut *self;
        let frame = std::task::ready!(Pin::new(&mut this.inner).poll_frame(cx));
        match &frame {
            Some(Ok(f)) => {
                if let Some(trailers) = f.trailers_ref() {
                    this.call
                        .end(status_of(trailers).unwrap_or(tonic::Code::Unknown as i32));
                }
            }
            Some(Err(_)) => this.call.end(tonic::Code::Unknown as i32),
            // Ended without a status: nothing told the client how the call went.
            None => this.call.end(tonic::Code::Unknown as i32),
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// Tower layer that observes every call (module docs).
#[derive(Clone)]
pub struct MetricsLayer(pub Metrics);

impl<S> tower::Layer<S> for MetricsLayer {
    type Service = MetricsService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        MetricsService {
            inner,
            metrics: self.0.clone(),
        }
    }
}

#[derive(Clone)]
pub struct MetricsService<S> {
    inner: S,
    metrics: Metrics,
}

impl<S, B, RB> tower::Service<http::Request<B>> for MetricsService<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<RB>>,
    S::Future: Send + 'static,
{
    type Response = http::Response<ObservedBody<RB>>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: http::Request<B>) -> Self::Future {
        let mut call = Call::start(self.metrics.clone(), &mut req);
        let fut = self.inner.call(req);
        Box::pin(async move {
            // Polled inside the call's span (the server's `trace_fn`).
            call.span = tracing::Span::current();
            call.span.record("request_id", call.request_id.as_str());
            let res = fut.await;
            match res {
                Ok(mut answer) => {
                    if let Ok(mut id) = http::HeaderValue::from_str(&call.request_id) {
                        // Unique per call: HPACK's "never indexed", so that it does not push
                        // the headers every answer repeats out of the connection's table.
                        id.set_sensitive(true);
                        answer.headers_mut().insert("x-request-id", id);
                    }
                    if let Some(code) = status_of(answer.headers()) {
                        call.end(code);
                    }
                    Ok(answer.map(|inner| ObservedBody { inner, call }))
                }
                Err(e) => {
                    call.end(tonic::Code::Unknown as i32);
                    Err(e)
                }
            }
        })
    }
}
