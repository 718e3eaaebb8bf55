//! Domain errors to gRPC statuses with google.rpc error details, as `From<Error> for Status`
//! so that handlers and conversions use `?`. The match is exhaustive with no `_` arm.
//! Internal causes are logged, never sent. Every status carries an `ErrorInfo` (domain
//! `groups.v1`) with a stable reason (AIP-193): the domain's `Reason`s, the token's
//! `Rejection`s, the admission refusals of `guard`, and the edge's own in `reason` below.

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::domain::error::{Error, Reason};

const DOMAIN: &str = "groups.v1";

/// The delay a DATABASE_UNAVAILABLE answer suggests in its `RetryInfo`: about the time the
/// store takes to notice the database answering again.
pub const DATABASE_RETRY_AFTER: std::time::Duration = std::time::Duration::from_secs(1);

/// The reasons of the statuses the edge makes beside the domain's (`domain::error::Reason`),
/// the token's (`auth::Rejection`) and admission's (`guard`).
pub mod reason {
    /// Fields of the request break the API's rules; `BadRequest` names them.
    pub const INVALID_FIELD: &str = "INVALID_FIELD";
    /// The request message is not a valid message of its type.
    pub const MALFORMED_MESSAGE: &str = "MALFORMED_MESSAGE";
    /// The body ends inside a message's frame header or before the length it announces.
    pub const TRUNCATED_MESSAGE: &str = "TRUNCATED_MESSAGE";
    /// A message's compressed flag is neither 0 nor 1.
    pub const INVALID_COMPRESSED_FLAG: &str = "INVALID_COMPRESSED_FLAG";
    /// A message's compressed flag is set but the request names no encoding.
    pub const COMPRESSED_FLAG_WITHOUT_ENCODING: &str = "COMPRESSED_FLAG_WITHOUT_ENCODING";
    /// A method that takes one request message got none.
    pub const MISSING_MESSAGE: &str = "MISSING_MESSAGE";
    /// A method that takes one request message got more.
    pub const TOO_MANY_MESSAGES: &str = "TOO_MANY_MESSAGES";
    /// A message does not decompress with the request's `grpc-encoding`.
    pub const BAD_COMPRESSION: &str = "BAD_COMPRESSION";
    /// The request's `grpc-encoding` is not one the server accepts.
    pub const UNSUPPORTED_ENCODING: &str = "UNSUPPORTED_ENCODING";
    /// The request message is longer than `--max-request-bytes`.
    pub const REQUEST_TOO_LARGE: &str = "REQUEST_TOO_LARGE";
    /// A read's answer is longer than `--max-response-bytes`.
    pub const RESPONSE_TOO_LARGE: &str = "RESPONSE_TOO_LARGE";
    /// The path names no method served.
    pub const UNKNOWN_METHOD: &str = "UNKNOWN_METHOD";
    /// Health was asked about a service it does not know.
    pub const UNKNOWN_SERVICE: &str = "UNKNOWN_SERVICE";
    /// The caller's deadline passed first.
    pub const DEADLINE_EXCEEDED: &str = "DEADLINE_EXCEEDED";
    /// The server shut down before the call finished.
    pub const SHUTTING_DOWN: &str = "SHUTTING_DOWN";
    /// The transaction kept losing races with concurrent changes.
    pub const CONFLICT: &str = "CONFLICT";
    /// The database does not answer.
    pub const DATABASE_UNAVAILABLE: &str = "DATABASE_UNAVAILABLE";
    /// A bug or an unexpected storage answer (logged, never described).
    pub const INTERNAL_ERROR: &str = "INTERNAL_ERROR";
}

/// The code in an answer's headers or trailers (`grpc-status`), when they hold one.
pub fn status_of(headers: &tonic::codegen::http::HeaderMap) -> Option<i32> {
    headers
        .get(Status::GRPC_STATUS)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
}

impl From<Error> for Status {
    fn from(err: Error) -> Status {
        match err {
            Error::InvalidArgument(violations) => {
                let mut details = ErrorDetails::new();
                for v in &violations {
                    details.add_bad_request_violation(v.field.clone(), v.description.clone());
                }
                let message = violations
                    .iter()
                    .map(|v| format!("{}: {}", v.field, v.description))
                    .collect::<Vec<_>>()
                    .join("; ");
                details.set_error_info(reason::INVALID_FIELD, DOMAIN, no_metadata());
                Status::with_error_details(Code::InvalidArgument, message, details)
            }
            Error::InvalidArgumentReason {
                reason,
                field,
                description,
            } => {
                let mut details = ErrorDetails::new();
                details.add_bad_request_violation(field, description.clone());
                details.set_error_info(reason.as_str(), DOMAIN, no_metadata());
                Status::with_error_details(
                    Code::InvalidArgument,
                    format!("{field}: {description}"),
                    details,
                )
            }
            Error::NotFound(what) => {
                let details = ErrorDetails::with_error_info("NOT_FOUND", DOMAIN, no_metadata());
                Status::with_error_details(Code::NotFound, format!("{what} not found"), details)
            }
            Error::AlreadyExists { reason, message } => {
                with_reason(Code::AlreadyExists, reason.as_str(), message)
            }
            Error::PermissionDenied { reason, message } => {
                with_reason(Code::PermissionDenied, reason.as_str(), message)
            }
            Error::FailedPrecondition { reason, message } => {
                let mut details =
                    ErrorDetails::with_error_info(reason.as_str(), DOMAIN, no_metadata());
                details.add_precondition_failure_violation(reason.as_str(), "", message.clone());
                Status::with_error_details(Code::FailedPrecondition, message, details)
            }
            Error::QuotaExceeded {
                reason,
                subject,
                description,
            } => {
                let mut details =
                    ErrorDetails::with_error_info(reason.as_str(), DOMAIN, no_metadata());
                details.add_quota_failure_violation(subject, description.clone());
                Status::with_error_details(Code::ResourceExhausted, description, details)
            }
            Error::Aborted { reason, message } => {
                with_reason(Code::Aborted, reason.as_str(), message)
            }
            Error::CursorExpired { cursor, earliest } => {
                let metadata: std::collections::HashMap<String, String> =
                    [("earliest_cursor".to_owned(), earliest.to_string())].into();
                let details =
                    ErrorDetails::with_error_info(Reason::CursorExpired.as_str(), DOMAIN, metadata);
                Status::with_error_details(
                    Code::OutOfRange,
                    format!(
                        "cursor {cursor} is older than the events kept; resume from \
                         {earliest} (GetEarliestCursor)"
                    ),
                    details,
                )
            }
            Error::CursorAhead { cursor, last } => {
                let metadata: std::collections::HashMap<String, String> =
                    [("last_cursor".to_owned(), last.to_string())].into();
                let mut details =
                    ErrorDetails::with_error_info(Reason::CursorAhead.as_str(), DOMAIN, metadata);
                let description = format!(
                    "{cursor} is past the tenant's last cursor {last}: it is not a cursor of this \
                     tenant's feed"
                );
                details.add_bad_request_violation("after_cursor", description.clone());
                Status::with_error_details(
                    Code::OutOfRange,
                    format!("after_cursor: {description}"),
                    details,
                )
            }
            Error::Retry(cause) => {
                tracing::warn!(%cause, "transaction conflict reached the edge");
                with_reason(
                    Code::Aborted,
                    reason::CONFLICT,
                    "the request conflicted with a concurrent change; retry it".into(),
                )
            }
            Error::Unavailable(cause) | Error::Disconnected(cause) => {
                tracing::error!(%cause, "storage unavailable");
                let mut details = ErrorDetails::with_error_info(
                    reason::DATABASE_UNAVAILABLE,
                    DOMAIN,
                    no_metadata(),
                );
                details.set_retry_info(Some(DATABASE_RETRY_AFTER));
                Status::with_error_details(
                    Code::Unavailable,
                    "the database is unavailable; retry later",
                    details,
                )
            }
            Error::Internal(cause) => {
                tracing::error!(%cause, "internal error");
                with_reason(
                    Code::Internal,
                    reason::INTERNAL_ERROR,
                    "internal error".into(),
                )
            }
        }
    }
}

/// A refused token: UNAUTHENTICATED with the rejection's reason.
impl From<crate::auth::Rejection> for Status {
    fn from(r: crate::auth::Rejection) -> Status {
        with_reason(Code::Unauthenticated, r.reason(), r.message().to_owned())
    }
}

/// `code` with `message` and an `ErrorInfo` of `reason`.
pub(crate) fn with_reason(code: Code, reason: &str, message: String) -> Status {
    let details = ErrorDetails::with_error_info(reason, DOMAIN, no_metadata());
    Status::with_error_details(code, message, details)
}

fn no_metadata() -> std::collections::HashMap<String, String> {
    std::collections::HashMap::new()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::domain::error::Reason;

    #[test]
    fn reasons_and_violations_reach_the_details() {
        let status = Status::from(Error::invalid("name", "must be tenants/{tenant}"));
        assert_eq!(status.code(), Code::InvalidArgument);
        assert_eq!(status.message(), "name: must be tenants/{tenant}");
        let violations = status.get_error_details().bad_request().unwrap().clone();
        assert_eq!(violations.field_violations[0].field, "name");

        let status = Status::from(Error::precondition(Reason::LastMaster, "keep one"));
        assert_eq!(status.code(), Code::FailedPrecondition);
        let info = status.get_error_details().error_info().unwrap().clone();
        assert_eq!(
            (info.reason.as_str(), info.domain.as_str()),
            ("LAST_MASTER", DOMAIN)
        );
    }

    #[test]
    fn internal_causes_stay_in_the_log() {
        let status = Status::from(Error::Internal("secret detail".into()));
        assert_eq!(
            (status.code(), status.message()),
            (Code::Internal, "internal error")
        );
        let status = Status::from(Error::Unavailable("pool timed out".into()));
        assert_eq!(status.code(), Code::Unavailable);
        assert!(!status.message().contains("pool"));
    }
}
