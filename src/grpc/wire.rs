//! The gRPC wire around the services: each request's framing checked as its body arrives,
//! and the statuses tonic and its services answer by themselves given this service's codes
//! and an `ErrorInfo` reason.
//!
//! Requests (`Framing`, wrapped around every request body). A body is a sequence of
//! length-prefixed messages (gRPC over HTTP/2: a flag byte, a 4-byte length, the message).
//! Before tonic sees anything wrong with it, the wrapper fails the body with the status the
//! client gets:
//! - a frame header cut short or a message shorter than its length prefix: INVALID_ARGUMENT
//!   `TRUNCATED_MESSAGE` (tonic: INTERNAL "Unexpected EOF");
//! - a flag other than 0 or 1: INVALID_ARGUMENT `INVALID_COMPRESSED_FLAG`;
//! - flag 1 without a `grpc-encoding` other than identity: INTERNAL
//!   `COMPRESSED_FLAG_WITHOUT_ENCODING`, the code gRPC's compression.md mandates;
//! - a method that takes one message (all but client-streaming ones) given none:
//!   INVALID_ARGUMENT `MISSING_MESSAGE` (tonic: INTERNAL), or more than one:
//!   INVALID_ARGUMENT `TOO_MANY_MESSAGES` (tonic: decodes both and answers the first).
//!
//! tonic's statuses fail the body, so tonic answers them as it would its own.
//!
//! Answers (`library_status`): a status without details was not made here (every status
//! this service makes carries an `ErrorInfo`): tonic's size refusals, a message that is not
//! valid for its `grpc-encoding`, an unsupported encoding, an unknown method. They get the
//! code and reason of `LIBRARY_STATUSES`, or keep their code with the code's name as the
//! reason, so that every error carries an `ErrorInfo`.

use std::collections::HashSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::OnceLock;
use std::task::{Context, Poll};

use http_body::Frame;
use prost::bytes::{Buf, Bytes};
use tonic::body::Body;
use tonic::codegen::http::{self, HeaderMap};
use tonic::{Code, Status};

use super::limits::AnswerLimit;
use super::status::{reason, with_reason};

/// A frame header: the compressed flag and the message's length.
const HEADER_SIZE: usize = 5;

/// Tower layer of `Wire`: `WireLayer::new(max_response_bytes)`.
#[derive(Clone, Copy)]
pub struct WireLayer {
    answer_limit: AnswerLimit,
}

impl WireLayer {
    /// The layer; handlers find `max_response_bytes` as an `AnswerLimit` in each request.
    pub fn new(max_response_bytes: usize) -> Self {
        WireLayer {
            answer_limit: AnswerLimit(max_response_bytes),
        }
    }
}

impl<S> tower::Layer<S> for WireLayer {
    type Service = Wire<S>;
    fn layer(&self, inner: S) -> Self::Service {
        Wire {
            inner,
            answer_limit: self.answer_limit,
        }
    }
}

#[derive(Clone)]
pub struct Wire<S> {
    inner: S,
    answer_limit: AnswerLimit,
}

impl<S> tower::Service<http::Request<Body>> for Wire<S>
where
    S: tower::Service<http::Request<Body>, Response = http::Response<Body>>,
    S::Future: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<Body>) -> Self::Future {
        let (mut parts, body) = req.into_parts();
        let encoded = parts
            .headers
            .get("grpc-encoding")
            .is_some_and(|e| e.as_bytes() != b"identity");
        let single = !client_streaming().contains(parts.uri.path());
        parts.extensions.insert(self.answer_limit);
        let body = Body::new(Framing::new(body, encoded, single));
        let fut = self.inner.call(http::Request::from_parts(parts, body));
        Box::pin(async move {
            let res = fut.await?;
            let (mut parts, body) = res.into_parts();
            rewrite(&mut parts.headers);
            Ok(http::Response::from_parts(parts, Body::new(Trailers(body))))
        })
    }
}

/// The paths of the client-streaming methods served (reflection's), read from the
/// descriptors: every other method takes exactly one request message.
fn client_streaming() -> &'static HashSet<String> {
    static PATHS: OnceLock<HashSet<String>> = OnceLock::new();
    PATHS.get_or_init(|| methods(|m| m.is_client_streaming()))
}

/// The paths of the server-streaming methods served (health's Watch, WatchEvents,
/// reflection's), read from the descriptors: the drain ends their answers (`guard::drain`).
pub fn server_streaming() -> &'static HashSet<String> {
    static PATHS: OnceLock<HashSet<String>> = OnceLock::new();
    PATHS.get_or_init(|| methods(|m| m.is_server_streaming()))
}

/// The paths `/{service}/{method}` of the methods served that `pick` picks.
fn methods(pick: impl Fn(&prost_reflect::MethodDescriptor) -> bool) -> HashSet<String> {
    let sets = [
        super::pb::FILE_DESCRIPTOR_SET,
        tonic_health::pb::FILE_DESCRIPTOR_SET,
        tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET,
        tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET,
    ];
    let mut paths = HashSet::new();
    for set in sets {
        // Compiled in from the same protos as the services: they always decode.
        let Ok(pool) = prost_reflect::DescriptorPool::decode(set) else {
            continue;
        };
        for service in pool.services() {
            for method in service.methods().filter(|m| pick(m)) {
                paths.insert(format!("/{}/{}", service.full_name(), method.name()));
            }
        }
    }
    paths
}

/// A request body whose length-prefixed framing is checked as it passes (module doc).
struct Framing {
    body: Body,
    /// The request has a `grpc-encoding` other than identity: flag 1 is allowed.
    encoded: bool,
    /// The method takes exactly one message.
    single: bool,
    /// Bytes of the current frame header read so far (0 between messages).
    header: [u8; HEADER_SIZE],
    header_read: usize,
    /// Bytes of the current message still to come.
    remaining: u64,
    messages: u32,
}

impl Framing {
    fn new(body: Body, encoded: bool, single: bool) -> Self {
        Framing {
            body,
            encoded,
            single,
            header: [0; HEADER_SIZE],
            header_read: 0,
            remaining: 0,
            messages: 0,
        }
    }

    /// Follows the framing through `data`; the refusal when it breaks a rule.
    fn check(&mut self, mut data: &[u8]) -> Result<(), Status> {
        while !data.is_empty() {
            if self.remaining > 0 {
                let n = data
                    .len()
                    .min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
                data = &data[n..];
                self.remaining -= n as u64;
                continue;
            }
            if self.header_read == 0 && self.single && self.messages == 1 {
                return Err(invalid(
                    reason::TOO_MANY_MESSAGES,
                    "the method takes one request message; the request holds more".into(),
                ));
            }
            let n = (HEADER_SIZE - self.header_read).min(data.len());
            self.header[self.header_read..self.header_read + n].copy_from_slice(&data[..n]);
            self.header_read += n;
            data = &data[n..];
            if self.header_read < HEADER_SIZE {
                continue;
            }
            self.header_read = 0;
            self.messages += 1;
            let mut header = &self.header[..];
            match header.get_u8() {
                0 => {}
                1 if self.encoded => {}
                1 => {
                    return Err(with_reason(
                        Code::Internal,
                        reason::COMPRESSED_FLAG_WITHOUT_ENCODING,
                        "the message's compressed flag is set but the request has no \
                         grpc-encoding"
                            .into(),
                    ));
                }
                flag => {
                    return Err(invalid(
                        reason::INVALID_COMPRESSED_FLAG,
                        format!("the message's compressed flag is {flag}; it must be 0 or 1"),
                    ));
                }
            }
            self.remaining = u64::from(header.get_u32());
        }
        Ok(())
    }

    /// The refusal, if the body ends here.
    fn at_end(&self) -> Result<(), Status> {
        if self.header_read > 0 {
            return Err(invalid(
                reason::TRUNCATED_MESSAGE,
                format!(
                    "the body ends {} bytes into a {HEADER_SIZE}-byte message header",
                    self.header_read
                ),
            ));
        }
        if self.remaining > 0 {
            return Err(invalid(
                reason::TRUNCATED_MESSAGE,
                format!(
                    "the body ends {} bytes short of the length its message header gives",
                    self.remaining
                ),
            ));
        }
        if self.single && self.messages == 0 {
            return Err(invalid(
                reason::MISSING_MESSAGE,
                "the method takes one request message; the request holds none".into(),
            ));
        }
        Ok(())
    }
}

fn invalid(reason: &str, message: String) -> Status {
    with_reason(Code::InvalidArgument, reason, message)
}

impl http_body::Body for Framing {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let polled = std::task::ready!(Pin::new(&mut self.body).poll_frame(cx));
        Poll::Ready(match polled {
            Some(Ok(frame)) => match frame.data_ref().map(|data| self.check(data)) {
                Some(Err(status)) => Some(Err(status)),
                _ => Some(Ok(frame)),
            },
            Some(Err(e)) => Some(Err(e)),
            None => self.at_end().err().map(Err),
        })
    }

    fn is_end_stream(&self) -> bool {
        // The end is where `at_end` looks: it must be polled to, not skipped.
        false
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

/// Statuses tonic or a library service answers by themselves, recognised by code and the
/// start of their message, and the code and reason they are answered with here
/// (`None`: the same code). A test fails if a tonic upgrade changes one of the messages.
const LIBRARY_STATUSES: [(Code, &str, Option<Code>, &str); 6] = [
    (
        Code::OutOfRange,
        "Error, decoded message length too large",
        Some(Code::ResourceExhausted),
        reason::REQUEST_TOO_LARGE,
    ),
    (
        Code::ResourceExhausted,
        "Error decompressing: size limit",
        None,
        reason::REQUEST_TOO_LARGE,
    ),
    (
        Code::Internal,
        "Error decompressing",
        Some(Code::InvalidArgument),
        reason::BAD_COMPRESSION,
    ),
    (
        Code::Unimplemented,
        "Content is compressed with",
        None,
        reason::UNSUPPORTED_ENCODING,
    ),
    (Code::Unimplemented, "", None, reason::UNKNOWN_METHOD),
    (
        Code::NotFound,
        "service not registered",
        None,
        reason::UNKNOWN_SERVICE,
    ),
];

/// The status that replaces a library's status in `headers`, if they hold one. Every answer
/// passes here: the code and the details' presence are read first, and only a status without
/// details is parsed.
fn library_status(headers: &HeaderMap) -> Option<Status> {
    let code = super::status::status_of(headers)?;
    if code == Code::Ok as i32 || headers.contains_key(Status::GRPC_STATUS_DETAILS) {
        return None;
    }
    let status = Status::from_header_map(headers)?;
    let known = LIBRARY_STATUSES
        .iter()
        .find(|(c, start, ..)| *c == status.code() && status.message().starts_with(start));
    Some(match known {
        Some((_, _, code, reason)) => with_reason(
            code.unwrap_or(status.code()),
            reason,
            library_message(&status),
        ),
        None => {
            tracing::debug!(?status, "a library status without a reason of its own");
            with_reason(
                status.code(),
                &code_name(status.code()),
                library_message(&status),
            )
        }
    })
}

/// The message a library status is answered with: tonic's, its size errors reworded.
fn library_message(status: &Status) -> String {
    let message = status.message();
    if status.code() == Code::OutOfRange {
        return message
            .trim_start_matches("Error, ")
            .replace("decoded", "request");
    }
    if status.code() == Code::Internal {
        return "the message is not valid for the request's grpc-encoding".into();
    }
    if message.is_empty() && status.code() == Code::Unimplemented {
        return "no such method".into();
    }
    message.to_owned()
}

/// `DEADLINE_EXCEEDED` for `Code::DeadlineExceeded`.
fn code_name(code: Code) -> String {
    let mut name = String::new();
    for (i, c) in format!("{code:?}").chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            name.push('_');
        }
        name.push(c.to_ascii_uppercase());
    }
    name
}

fn rewrite(headers: &mut HeaderMap) {
    if let Some(status) = library_status(headers)
        && let Err(e) = status.add_header(headers)
    {
        tracing::warn!(error = %e, "library status not rewritten");
    }
}

/// An answer body whose trailers get the same rewrite.
struct Trailers(Body);

impl http_body::Body for Trailers {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let polled = Pin::new(&mut self.0).poll_frame(cx);
        if let Poll::Ready(Some(Ok(mut frame))) = polled {
            if let Some(trailers) = frame.trailers_mut() {
                rewrite(trailers);
            }
            return Poll::Ready(Some(Ok(frame)));
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.0.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.0.size_hint()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use tonic_types::StatusExt;

    fn rewritten(status: Status) -> Status {
        let mut headers = HeaderMap::new();
        status.add_header(&mut headers).unwrap();
        rewrite(&mut headers);
        Status::from_header_map(&headers).unwrap()
    }

    #[test]
    fn library_statuses_get_a_code_and_a_reason() {
        let status = rewritten(Status::out_of_range(
            "Error, decoded message length too large: found 9 bytes, the limit is: 4 bytes",
        ));
        assert_eq!(status.code(), Code::ResourceExhausted);
        assert!(
            status
                .message()
                .starts_with("request message length too large")
        );
        let info = status.get_details_error_info().unwrap();
        assert_eq!(info.reason, reason::REQUEST_TOO_LARGE);

        let status = rewritten(Status::data_loss("x"));
        assert_eq!(status.code(), Code::DataLoss);
        assert_eq!(status.get_details_error_info().unwrap().reason, "DATA_LOSS");
    }

    #[test]
    fn statuses_made_here_pass_unchanged() {
        let ours = with_reason(Code::OutOfRange, "CURSOR_EXPIRED", "cursor 3".into());
        let status = rewritten(ours);
        assert_eq!(status.code(), Code::OutOfRange);
        assert_eq!(
            status.get_details_error_info().unwrap().reason,
            "CURSOR_EXPIRED"
        );
    }

    #[test]
    fn framing_is_followed_across_chunks() {
        let mut f = Framing::new(Body::empty(), false, true);
        f.check(&[0, 0, 0]).unwrap();
        assert!(f.at_end().is_err());
        f.check(&[0, 2, 7]).unwrap();
        assert_eq!(
            f.at_end()
                .unwrap_err()
                .get_details_error_info()
                .unwrap()
                .reason,
            reason::TRUNCATED_MESSAGE
        );
        f.check(&[8]).unwrap();
        f.at_end().unwrap();
        let err = f.check(&[0]).unwrap_err();
        assert_eq!(
            err.get_details_error_info().unwrap().reason,
            reason::TOO_MANY_MESSAGES
        );
    }
}
