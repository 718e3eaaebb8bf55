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
//! travels. Only reads are refused (`RESPONSE_TOO_LARGE`): a write's answer is the resource
//! it wrote, and refusing it after the commit would tell the client that a committed write
//! failed, so a write answers what it committed whatever its size.

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

/// Whether the method named `method` (snake case) only reads: its verb is one of the
/// reading verbs of the API (AIP-131, AIP-132 and this API's Search, Check, BatchCheck and
/// Autocomplete). Any other method writes, so that a new write is never refused after its
/// commit.
pub const fn is_read(method: &str) -> bool {
    const READS: [&str; 6] = [
        "get_",
        "list_",
        "search_",
        "check_",
        "batch_check_",
        "autocomplete_",
    ];
    let mut i = 0;
    while i < READS.len() {
        if starts_with(method.as_bytes(), READS[i].as_bytes()) {
            return true;
        }
        i += 1;
    }
    false
}

const fn starts_with(s: &[u8], prefix: &[u8]) -> bool {
    if s.len() < prefix.len() {
        return false;
    }
    let mut i = 0;
    while i < prefix.len() {
        if s[i] != prefix[i] {
            return false;
        }
        i += 1;
    }
    true
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_are_named_by_their_verb() {
        for read in ["get_group", "list_members", "batch_check_membership"] {
            assert!(is_read(read), "{read}");
        }
        for write in [
            "create_group",
            "upsert_user",
            "leave",
            "add_members",
            "getaway",
        ] {
            assert!(!is_read(write), "{write}");
        }
    }
}
