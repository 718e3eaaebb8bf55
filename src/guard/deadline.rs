//! The caller's deadline (`grpc-timeout`): when it passes first, the call answers
//! DEADLINE_EXCEEDED and the handler's future is dropped, which rolls its transaction back.
//!
//! tonic's transport enforces the same header outside every layer and answers CANCELLED
//! ("Timeout expired"), unseen by metrics. This layer's deadline is taken before tonic's
//! (tonic starts its timer after the inner `call` returns) and its future is polled first, so
//! it always answers first. It answers a little early (`EARLY`, at most a tenth of the
//! budget): the caller's own timer started before the request was sent, and a tonic client
//! reports its own expiry as CANCELLED "Timeout expired"; the answer must reach it first.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tonic::codegen::http;

/// How much earlier than the caller's budget the answer goes, at most.
const EARLY: Duration = Duration::from_millis(25);

/// Tower layer: `Deadline` around each call, with the server's cap (`--max-call-ms`): a call
/// without a `grpc-timeout`, or with a longer one, gets the cap as its deadline. Server
/// streams are bounded only until their answer's headers: their messages flow after.
#[derive(Clone, Copy, Default)]
pub struct DeadlineLayer {
    pub max: Option<Duration>,
}

impl<S> tower::Layer<S> for DeadlineLayer {
    type Service = Deadline<S>;
    fn layer(&self, inner: S) -> Self::Service {
        Deadline {
            inner,
            max: self.max,
        }
    }
}

#[derive(Clone)]
pub struct Deadline<S> {
    inner: S,
    max: Option<Duration>,
}

impl<S, B, RB> tower::Service<http::Request<B>> for Deadline<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<RB>>,
    S::Future: Send + 'static,
    RB: Default,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        // Taken now, before tonic's own timer starts: see the module's doc.
        let now = tokio::time::Instant::now();
        let deadline = match (grpc_timeout(req.headers()), self.max) {
            (Some(d), max) if max.is_none_or(|max| d <= max) => Some(now + d - (d / 10).min(EARLY)),
            (_, max) => max.map(|max| now + max),
        };
        // A budget under the timer's tick cannot be enforced (tokio's timers tick in
        // milliseconds, and a timeout polls the call before its timer): such a call is
        // answered at once, without running.
        if deadline.is_some_and(|d| d <= now + TIMER_TICK) {
            return Box::pin(async { Ok(expired()) });
        }
        let fut = self.inner.call(req);
        Box::pin(async move {
            let Some(deadline) = deadline else {
                return fut.await;
            };
            match tokio::time::timeout_at(deadline, fut).await {
                Ok(answer) => answer,
                Err(_) => Ok(expired()),
            }
        })
    }
}

/// The smallest budget a call is run with.
const TIMER_TICK: Duration = Duration::from_millis(1);

/// DEADLINE_EXCEEDED, for a call that ran out of time (or never had enough to start).
fn expired<RB: Default>() -> http::Response<RB> {
    crate::grpc::status::with_reason(
        tonic::Code::DeadlineExceeded,
        crate::grpc::status::reason::DEADLINE_EXCEEDED,
        "the deadline passed before the call finished; nothing it did was kept".into(),
    )
    .into_http()
}

/// The `grpc-timeout` header (gRPC over HTTP/2: at most 8 digits and a unit), if valid.
pub fn grpc_timeout(headers: &http::HeaderMap) -> Option<Duration> {
    let s = headers.get("grpc-timeout")?.to_str().ok()?;
    if s.len() < 2 || s.len() > 9 {
        return None;
    }
    let (digits, unit) = s.split_at(s.len() - 1);
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n * 3600),
        "M" => Duration::from_secs(n * 60),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}
