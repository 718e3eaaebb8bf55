//! Consistency on the wire (`domain::consistency`): metadata, so that grpcurl (`-H`, `-v`) and
//! every generated client read and send it without a change to any message.
//!
//! - Every write's answer carries `x-consistency-token: v1.<...>` (opaque).
//! - A read may send `x-consistency-token: <token>` (at least as fresh as that write), or
//!   `x-consistency: fully-consistent` (never from the cache), or `x-consistency: default`
//!   (the same as sending nothing). A value that is neither is INVALID_ARGUMENT naming the
//!   header. Health and reflection ignore both.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use tonic::Code;
use tonic::body::Body;
use tonic::codegen::http;

use super::status::{reason, with_reason};
use crate::domain::consistency::{Call, Consistency, Token, scope};

/// The response header of a write's token, and the request header that asks for one.
pub const TOKEN_HEADER: &str = "x-consistency-token";
/// The request header of the other choices.
pub const CONSISTENCY_HEADER: &str = "x-consistency";

/// The consistency a request asks for, or why it is refused.
pub fn requested(headers: &http::HeaderMap) -> Result<Consistency, String> {
    let token = headers.get(TOKEN_HEADER).map(|v| v.to_str().unwrap_or(""));
    let choice = headers
        .get(CONSISTENCY_HEADER)
        .map(|v| v.to_str().unwrap_or(""));
    match (choice, token) {
        (Some("fully-consistent"), None) => Ok(Consistency::Full),
        (Some("fully-consistent"), Some(_)) => Err(format!(
            "{CONSISTENCY_HEADER}: fully-consistent takes no {TOKEN_HEADER}"
        )),
        (None | Some("default"), None) => Ok(Consistency::Default),
        (None | Some("at-least-as-fresh"), Some(token)) => token
            .parse::<Token>()
            .map(Consistency::AtLeast)
            .map_err(|e| format!("{TOKEN_HEADER}: {e}")),
        (Some("at-least-as-fresh"), None) => Err(format!(
            "{CONSISTENCY_HEADER}: at-least-as-fresh needs {TOKEN_HEADER}"
        )),
        (Some(other), _) => Err(format!(
            "{CONSISTENCY_HEADER}: {other:?} is not one of default, at-least-as-fresh, \
             fully-consistent"
        )),
    }
}

/// Tower layer: runs each call in its consistency scope and puts the token of its write, if
/// it wrote, in the answer's headers.
#[derive(Clone, Copy, Default)]
pub struct ConsistencyLayer;

impl<S> tower::Layer<S> for ConsistencyLayer {
    type Service = WithConsistency<S>;
    fn layer(&self, inner: S) -> Self::Service {
        WithConsistency { inner }
    }
}

#[derive(Clone)]
pub struct WithConsistency<S> {
    inner: S,
}

impl<S, B> tower::Service<http::Request<B>> for WithConsistency<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<Body>>,
    S::Future: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        // Only the service's own calls: health and reflection take the headers a client sends
        // with every call (grpcurl's `-H`) and ignore them.
        if !req.uri().path().starts_with("/groups.v1.") {
            return Box::pin(self.inner.call(req));
        }
        let requested = match requested(req.headers()) {
            Ok(requested) => requested,
            Err(why) => {
                let refused = with_reason(Code::InvalidArgument, reason::INVALID_FIELD, why);
                return Box::pin(async move { Ok(refused.into_http()) });
            }
        };
        let call = Call::new(requested);
        let fut = scope(call.clone(), self.inner.call(req));
        Box::pin(async move {
            let mut answer = fut.await?;
            if let Some(token) = call.answered()
                && let Ok(value) = http::HeaderValue::from_str(&token.to_string())
            {
                answer.headers_mut().insert(TOKEN_HEADER, value);
            }
            Ok(answer)
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn with(pairs: &[(&'static str, &'static str)]) -> Result<Consistency, String> {
        let mut headers = http::HeaderMap::new();
        for (k, v) in pairs {
            headers.insert(*k, http::HeaderValue::from_static(v));
        }
        requested(&headers)
    }

    #[test]
    fn the_choices_and_their_refusals() {
        assert_eq!(with(&[]), Ok(Consistency::Default));
        assert_eq!(
            with(&[(CONSISTENCY_HEADER, "default")]),
            Ok(Consistency::Default)
        );
        assert_eq!(
            with(&[(CONSISTENCY_HEADER, "fully-consistent")]),
            Ok(Consistency::Full)
        );
        let token = Token {
            process: "ab-12".into(),
            writes: 7,
        };
        assert_eq!(
            with(&[(TOKEN_HEADER, "v1.ab-12.7")]),
            Ok(Consistency::AtLeast(token.clone()))
        );
        assert_eq!(
            with(&[
                (CONSISTENCY_HEADER, "at-least-as-fresh"),
                (TOKEN_HEADER, "v1.ab-12.7")
            ]),
            Ok(Consistency::AtLeast(token))
        );
        for bad in [
            vec![(CONSISTENCY_HEADER, "strong")],
            vec![(CONSISTENCY_HEADER, "at-least-as-fresh")],
            vec![(TOKEN_HEADER, "nonsense")],
            vec![
                (CONSISTENCY_HEADER, "fully-consistent"),
                (TOKEN_HEADER, "v1.ab-12.7"),
            ],
        ] {
            let refused = with(&bad).unwrap_err();
            assert!(refused.starts_with("x-consistency"), "{bad:?}: {refused}");
        }
    }
}
