//! The global concurrency limit: at most `max_concurrent` calls run at once, at most
//! `max_queued` more wait for a slot, each at most `queue_wait`; any other call is refused at
//! once with RESOURCE_EXHAUSTED (`OVERLOADED`, with `RetryInfo`), so that latency stays bounded
//! and the calls that run finish (goodput) instead of all of them slowing down.
//! Health and reflection are never limited.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::sync::Semaphore;
use tonic::codegen::http;

/// The limit's settings; `max_concurrent` 0 turns it off.
#[derive(Clone, Copy, Debug)]
pub struct Concurrency {
    pub max_concurrent: usize,
    pub max_queued: usize,
    pub queue_wait: Duration,
}

/// Tower layer: one limit shared by every connection.
#[derive(Clone)]
pub struct OverloadLayer {
    limit: Option<Arc<Limit>>,
}

struct Limit {
    slots: Arc<Semaphore>,
    waiting: AtomicUsize,
    settings: Concurrency,
    /// The refusal's headers, built once: every refusal is the same answer, and under
    /// overload refusals are most of the calls.
    refusal: http::HeaderMap,
}

impl OverloadLayer {
    pub fn new(settings: Concurrency) -> Self {
        let limit = (settings.max_concurrent > 0).then(|| {
            Arc::new(Limit {
                slots: Arc::new(Semaphore::new(settings.max_concurrent)),
                waiting: AtomicUsize::new(0),
                settings,
                refusal: refusal(settings).into_http::<()>().into_parts().0.headers,
            })
        });
        OverloadLayer { limit }
    }
}

impl<S> tower::Layer<S> for OverloadLayer {
    type Service = Overload<S>;
    fn layer(&self, inner: S) -> Self::Service {
        Overload {
            inner,
            limit: self.limit.clone(),
        }
    }
}

#[derive(Clone)]
pub struct Overload<S> {
    inner: S,
    limit: Option<Arc<Limit>>,
}

impl<S, B, RB> tower::Service<http::Request<B>> for Overload<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<RB>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
    RB: Default,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let limit = match &self.limit {
            Some(limit) if !super::is_exempt(req.uri().path()) => limit.clone(),
            _ => return Box::pin(self.inner.call(req)),
        };
        // The ready inner service goes with this call; a clone takes its place (tower's rule).
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        Box::pin(async move {
            let Some(_slot) = limit.admit().await else {
                let mut answer = http::Response::new(RB::default());
                *answer.headers_mut() = limit.refusal.clone();
                return Ok(answer);
            };
            inner.call(req).await
        })
    }
}

impl Limit {
    /// A slot at once, or after waiting in the bounded queue; `None` when refused.
    async fn admit(&self) -> Option<tokio::sync::OwnedSemaphorePermit> {
        if let Ok(slot) = self.slots.clone().try_acquire_owned() {
            return Some(slot);
        }
        if self.waiting.fetch_add(1, Ordering::AcqRel) >= self.settings.max_queued {
            self.waiting.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        let slot =
            tokio::time::timeout(self.settings.queue_wait, self.slots.clone().acquire_owned())
                .await;
        self.waiting.fetch_sub(1, Ordering::AcqRel);
        slot.ok().and_then(Result::ok)
    }
}

/// RESOURCE_EXHAUSTED `OVERLOADED`, retry after the queue's wait (at least 50 ms).
fn refusal(settings: Concurrency) -> tonic::Status {
    super::exhausted(
        "OVERLOADED",
        "the server is at its limit of concurrent calls; retry after the delay given".into(),
        settings.queue_wait.max(Duration::from_millis(50)),
        None,
    )
}
