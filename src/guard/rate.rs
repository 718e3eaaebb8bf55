//! Per-tenant rate limits: a token bucket per tenant (`rate` calls per second, `burst` at
//! most at once), consulted with the tenant of the verified bearer token; over it a call gets
//! RESOURCE_EXHAUSTED (`RATE_LIMITED`) with `QuotaFailure` and `RetryInfo`. Buckets live in a
//! bounded cache and go when idle long enough to have refilled.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tonic::{Request, Status};

use crate::domain::caller::Caller;
use crate::domain::model::TenantId;

/// Tenants whose buckets are kept at once.
const MAX_TENANTS: u64 = 100_000;

/// A rate limit: `per_second` calls, `burst` at once.
#[derive(Clone, Copy, Debug)]
pub struct Rate {
    pub per_second: f64,
    pub burst: u32,
}

struct Bucket {
    tokens: f64,
    at: Instant,
}

/// Token buckets of every tenant. Cheap to clone.
#[derive(Clone)]
pub struct TenantLimiter {
    rate: Rate,
    buckets: moka::sync::Cache<i64, Arc<Mutex<Bucket>>>,
}

impl TenantLimiter {
    /// `None` for a rate of 0 (no limit).
    pub fn new(rate: Rate) -> Option<Self> {
        if rate.per_second <= 0.0 {
            return None;
        }
        let rate = Rate {
            burst: rate.burst.max(1),
            ..rate
        };
        // An idle bucket is full again after burst / rate; forgetting it then changes nothing.
        let refill = Duration::from_secs_f64(f64::from(rate.burst) / rate.per_second);
        let buckets = moka::sync::Cache::builder()
            .max_capacity(MAX_TENANTS)
            .time_to_idle(refill + Duration::from_secs(1))
            .build();
        Some(TenantLimiter { rate, buckets })
    }

    /// Takes a token of `tenant`'s bucket, or says how long until one is there.
    pub fn admit(&self, tenant: TenantId) -> Result<(), Status> {
        let burst = f64::from(self.rate.burst);
        let bucket = self.buckets.get_with(tenant.0, || {
            Arc::new(Mutex::new(Bucket {
                tokens: burst,
                at: Instant::now(),
            }))
        });
        let mut b = bucket.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        b.tokens =
            (b.tokens + now.duration_since(b.at).as_secs_f64() * self.rate.per_second).min(burst);
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            return Ok(());
        }
        let wait = Duration::from_secs_f64((1.0 - b.tokens) / self.rate.per_second);
        Err(super::exhausted(
            "RATE_LIMITED",
            format!(
                "tenant {} is over its rate of {} calls per second; retry after the delay given",
                tenant.0, self.rate.per_second
            ),
            wait,
            Some((
                format!("tenants/{}", tenant.0),
                format!(
                    "{} calls per second, bursts of {}",
                    self.rate.per_second, self.rate.burst
                ),
            )),
        ))
    }
}

/// The bearer-token interceptor `auth`, followed by the rate limit of the tenant it verified.
pub fn admitting<A>(
    auth: A,
    limiter: Option<TenantLimiter>,
) -> impl Fn(Request<()>) -> Result<Request<()>, Status> + Clone + Send + Sync + 'static
where
    A: Fn(Request<()>) -> Result<Request<()>, Status> + Clone + Send + Sync + 'static,
{
    move |req| {
        let req = auth(req)?;
        if let (Some(limiter), Some(caller)) = (&limiter, req.extensions().get::<Caller>()) {
            limiter.admit(caller.tenant)?;
        }
        Ok(req)
    }
}
