//! Prometheus metrics: calls and latency per gRPC method and status code, served as text on
//! `GET /metrics` of a separate, optional listener.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Instant;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tonic::codegen::http;

/// Latency buckets, in seconds.
const BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

#[derive(Default)]
struct Series {
    count: u64,
    sum: f64,
    /// Cumulative counts per bucket of `BUCKETS`.
    buckets: [u64; BUCKETS.len()],
}

/// Counters shared by the server's layer and the metrics endpoint.
#[derive(Clone, Default)]
pub struct Metrics {
    series: Arc<Mutex<BTreeMap<(String, String), Series>>>,
    /// The event relay's lag in microseconds (`relay`); absent while no relay runs here.
    relay_lag: Arc<Mutex<Option<i64>>>,
}

impl Metrics {
    fn record(&self, method: &str, code: &str, seconds: f64) {
        let mut series = self.series.lock().unwrap_or_else(|e| e.into_inner());
        let s = series
            .entry((method.to_owned(), code.to_owned()))
            .or_default();
        s.count += 1;
        s.sum += seconds;
        for (i, le) in BUCKETS.iter().enumerate() {
            if seconds <= *le {
                s.buckets[i] += 1;
            }
        }
    }

    /// The age of the oldest event the relay has yet to publish.
    pub fn set_relay_lag(&self, micros: i64) {
        *self.relay_lag.lock().unwrap_or_else(|e| e.into_inner()) = Some(micros);
    }

    /// The Prometheus text exposition of every series.
    pub fn render(&self) -> String {
        let mut out = self.render_rpcs();
        if let Some(lag) = *self.relay_lag.lock().unwrap_or_else(|e| e.into_inner()) {
            out.push_str(&format!(
                "# HELP group_service_relay_lag_seconds Age of the oldest unpublished event.\n\
                 # TYPE group_service_relay_lag_seconds gauge\n\
                 group_service_relay_lag_seconds {}\n",
                lag as f64 / 1e6
            ));
        }
        out
    }

    fn render_rpcs(&self) -> String {
        let series = self.series.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = String::from(
            "# HELP group_service_rpc_requests_total gRPC calls by method and status code.\n\
             # TYPE group_service_rpc_requests_total counter\n",
        );
        for ((method, code), s) in series.iter() {
            out.push_str(&format!(
                "group_service_rpc_requests_total{{method=\"{method}\",code=\"{code}\"}} {}\n",
                s.count
            ));
        }
        out.push_str(
            "# HELP group_service_rpc_duration_seconds Time to the answer's headers.\n\
             # TYPE group_service_rpc_duration_seconds histogram\n",
        );
        for ((method, code), s) in series.iter() {
            let labels = format!("method=\"{method}\",code=\"{code}\"");
            for (le, n) in BUCKETS.iter().zip(s.buckets) {
                out.push_str(&format!(
                    "group_service_rpc_duration_seconds_bucket{{{labels},le=\"{le}\"}} {n}\n"
                ));
            }
            out.push_str(&format!(
                "group_service_rpc_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {}\n\
                 group_service_rpc_duration_seconds_sum{{{labels}}} {}\n\
                 group_service_rpc_duration_seconds_count{{{labels}}} {}\n",
                s.count, s.sum, s.count
            ));
        }
        out
    }

    /// Serves `GET /metrics` until `shutdown` resolves.
    pub async fn serve(self, listener: TcpListener, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        loop {
            let (mut stream, _) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::warn!(error = %e, "metrics accept failed");
                        continue;
                    }
                },
                _ = &mut shutdown => return,
            };
            let metrics = self.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let mut read = 0;
                // The request line is all that matters; a slow client gets 5 seconds.
                let got = tokio::time::timeout(std::time::Duration::from_secs(5), async {
                    while read < buf.len() {
                        match stream.read(&mut buf[read..]).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => read += n,
                        }
                        if buf[..read].windows(4).any(|w| w == b"\r\n\r\n") {
                            break;
                        }
                    }
                })
                .await;
                let request = String::from_utf8_lossy(&buf[..read]);
                let response = if got.is_ok() && request.starts_with("GET /metrics ") {
                    let body = metrics.render();
                    format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: text/plain; version=0.0.4\r\n\
                         content-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    )
                } else {
                    "HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                        .to_owned()
                };
                let _ = stream.write_all(response.as_bytes()).await;
                let _ = stream.shutdown().await;
            });
        }
    }
}

/// Tower layer that records every call in `Metrics`.
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
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let method = req.uri().path().to_owned();
        let metrics = self.metrics.clone();
        let start = Instant::now();
        let fut = self.inner.call(req);
        Box::pin(async move {
            let res = fut.await;
            // Errors come as trailers-only answers with `grpc-status` in the headers; an answer
            // without it in the headers carries OK in its trailers.
            let code = match &res {
                Ok(r) => r
                    .headers()
                    .get("grpc-status")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("0")
                    .to_owned(),
                Err(_) => "transport".to_owned(),
            };
            metrics.record(&method, &code, start.elapsed().as_secs_f64());
            res
        })
    }
}
