//! Admission and lifetime of calls, outside the services and inside the metrics layer (so
//! that metrics count the codes these answer): deadlines (`deadline`), the global concurrency
//! limit with its bounded queue (`overload`), per-tenant rate limits (`rate`) and the
//! shutdown drain that closes every connection by a deadline (`drain`).

pub mod deadline;
pub mod drain;
pub mod overload;
pub mod rate;

use std::collections::HashMap;
use std::time::Duration;

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

/// The `ErrorInfo.domain` of the refusals below, as `grpc/status.rs` uses.
const DOMAIN: &str = "groups.v1";

/// Health and reflection bypass admission: they must answer while the server sheds load.
pub fn is_exempt(path: &str) -> bool {
    path.starts_with("/grpc.health.") || path.starts_with("/grpc.reflection.")
}

/// RESOURCE_EXHAUSTED with an `ErrorInfo` reason, a `RetryInfo` delay and, when `quota` is
/// set, a `QuotaFailure` violation `(subject, description)`.
fn exhausted(
    reason: &str,
    message: String,
    retry_after: Duration,
    quota: Option<(String, String)>,
) -> Status {
    let mut details = ErrorDetails::with_error_info(reason, DOMAIN, HashMap::new());
    details.set_retry_info(Some(retry_after));
    if let Some((subject, description)) = quota {
        details.add_quota_failure_violation(subject, description);
    }
    Status::with_error_details(Code::ResourceExhausted, message, details)
}
