//! Message size limits, both ways, answered RESOURCE_EXHAUSTED (as gRPC specifies for a
//! message over the limit) with an `ErrorInfo` reason.
//!
//! Requests: tonic checks a request's length from its frame header before reading the body,
//! which keeps an oversized request from being buffered, and a compressed one's size as it
//! is decompressed; `grpc::wire` gives those refusals their code and reason
//! (`REQUEST_TOO_LARGE`).
//!
//! Answers are counted uncompressed, here, not by tonic (which counts the bytes it sends,
//! compressed when the client accepts gzip): an answer's size does not depend on how it
//! travels. Only calls that committed no write are refused (`RESPONSE_TOO_LARGE`): a write's
//! answer is the resource it wrote, and refusing it after the commit would tell the client
//! that a committed write failed, so a write answers what it committed whatever its size.
//! Whether a call committed a write is the seam's to say (`domain::consistency`), not the
//! method's name.

use prost::Message;
use tonic::{Code, Status};

/// Requests are at most 1 MiB unless configured otherwise: the largest valid request (a
/// batch of 100 members, a group with its mailing list) is a few KiB.
pub const DEFAULT_MAX_REQUEST_BYTES: usize = 1 << 20;
/// Answers are at most 4 MiB unless configured otherwise: a page of 100 groups with long
/// descriptions is well under 1 MiB.
pub const DEFAULT_MAX_RESPONSE_BYTES: usize = 4 << 20;

/// The largest answer of a read, in bytes uncompressed: put in every request's extensions
/// by `grpc::wire`.
#[derive(Clone, Copy, Debug)]
pub struct AnswerLimit(pub usize);

/// RESOURCE_EXHAUSTED `RESPONSE_TOO_LARGE` when `answer` is longer than `limit` (none: no
/// limit), counted as encoded before any compression.
pub fn check_answer<M: Message>(limit: Option<&AnswerLimit>, answer: &M) -> Result<(), Status> {
    let Some(&AnswerLimit(limit)) = limit else {
        return Ok(());
    };
    let len = answer.encoded_len();
    if len <= limit {
        return Ok(());
    }
    Err(super::status::with_reason(
        Code::ResourceExhausted,
        super::status::reason::RESPONSE_TOO_LARGE,
        format!(
            "answer message length too large: found {len} bytes, the limit is: {limit} bytes; \
             ask for a smaller page"
        ),
    ))
}
