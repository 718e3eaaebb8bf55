//! Message size limits, both ways, answered RESOURCE_EXHAUSTED (as gRPC specifies for a
//! message over the limit) rather than tonic's OUT_OF_RANGE.
//!
//! tonic checks a request's length from its frame header before reading the body, which is
//! what keeps an oversized request from being buffered, and checks an answer after encoding
//! it; both fail with OUT_OF_RANGE and a fixed message. `SizeLimitLayer` wraps the services
//! and gives exactly those statuses (in the headers of a trailers-only answer, or in the
//! trailers of a streamed one) the code RESOURCE_EXHAUSTED. The service's own OUT_OF_RANGE
//! (an expired feed cursor) has another message and passes unchanged.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http_body::Frame;
use tonic::body::Body;
use tonic::codegen::http::{self, HeaderMap};
use tonic::{Code, Status};

/// Requests are at most 1 MiB unless configured otherwise: the largest valid request (a
/// batch of 100 members, a group with its mailing list) is a few KiB.
pub const DEFAULT_MAX_REQUEST_BYTES: usize = 1 << 20;
/// Answers are at most 4 MiB unless configured otherwise: a page of 100 groups with long
/// descriptions is well under 1 MiB.
pub const DEFAULT_MAX_RESPONSE_BYTES: usize = 4 << 20;

/// The messages tonic gives its size errors (`tonic::codec::{decode, encode}`); a test of
/// each direction fails if a tonic upgrade changes them.
const TONIC_SIZE_MESSAGES: [&str; 2] = [
    "Error, decoded message length too large",
    "Error, encoded message length too large",
];

/// The status that replaces tonic's size error in `headers`, if they hold one. Every answer
/// passes here, so the code is read first: parsing a whole status decodes its message and
/// details and copies its metadata.
fn size_error(headers: &HeaderMap) -> Option<Status> {
    if super::status::status_of(headers)? != Code::OutOfRange as i32 {
        return None;
    }
    let status = Status::from_header_map(headers)?;
    let tonic_size_error = status.code() == Code::OutOfRange
        && TONIC_SIZE_MESSAGES
            .iter()
            .any(|m| status.message().starts_with(m));
    tonic_size_error.then(|| {
        let message = status
            .message()
            .trim_start_matches("Error, ")
            .replace("decoded", "request")
            .replace("encoded", "answer");
        Status::resource_exhausted(message)
    })
}

fn rewrite(headers: &mut HeaderMap) {
    if let Some(status) = size_error(headers)
        && let Err(e) = status.add_header(headers)
    {
        tracing::warn!(error = %e, "size-limit status not rewritten");
    }
}

/// Tower layer of `SizeLimits`.
#[derive(Clone, Copy, Default)]
pub struct SizeLimitLayer;

impl<S> tower::Layer<S> for SizeLimitLayer {
    type Service = SizeLimits<S>;
    fn layer(&self, inner: S) -> Self::Service {
        SizeLimits(inner)
    }
}

#[derive(Clone)]
pub struct SizeLimits<S>(S);

impl<S, B> tower::Service<http::Request<B>> for SizeLimits<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<Body>>,
    S::Future: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let fut = self.0.call(req);
        Box::pin(async move {
            let res = fut.await?;
            let (mut parts, body) = res.into_parts();
            rewrite(&mut parts.headers);
            Ok(http::Response::from_parts(parts, Body::new(Trailers(body))))
        })
    }
}

/// An answer body whose trailers get the same rewrite.
struct Trailers(Body);

impl http_body::Body for Trailers {
    type Data = prost::bytes::Bytes;
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

    #[test]
    fn only_tonics_size_errors_change_code() {
        let mut headers = HeaderMap::new();
        Status::out_of_range(
            "Error, decoded message length too large: found 9 bytes, the limit is: 4 bytes",
        )
        .add_header(&mut headers)
        .unwrap();
        rewrite(&mut headers);
        let status = Status::from_header_map(&headers).unwrap();
        assert_eq!(status.code(), Code::ResourceExhausted);
        assert!(
            status
                .message()
                .starts_with("request message length too large")
        );

        let mut headers = HeaderMap::new();
        Status::out_of_range("cursor 3 is older than the events kept")
            .add_header(&mut headers)
            .unwrap();
        rewrite(&mut headers);
        let status = Status::from_header_map(&headers).unwrap();
        assert_eq!(status.code(), Code::OutOfRange);
    }
}
