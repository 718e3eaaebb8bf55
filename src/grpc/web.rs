//! gRPC-Web on the gRPC port, for browser pages: tonic-web translates the calls, CORS lets
//! the configured origins make them, and every gRPC-Web answer ends with a trailer frame.
//!
//! Outside in (`server.rs` puts these outside the metrics layer, so every layer from metrics
//! inwards sees an ordinary gRPC call, counted and limited like any other):
//! - `cors`: preflights answered, and the CORS headers on answers, for the origins of
//!   `--cors-allowed-origins` only (none by default: no cross-origin page may call). Never
//!   `*`, and no credentials mode: the bearer token travels in `authorization`, which a
//!   page sends without cookies.
//! - `mark`: marks a gRPC-Web request (`content-type: application/grpc-web...`)
//!   before tonic-web rewrites it to `application/grpc`.
//! - `tonic_web::GrpcWebLayer`: the translation (HTTP/1.1 or HTTP/2, binary or base64 text).
//! - `TrailerFrameLayer`: tonic answers an error "trailers-only", with `grpc-status` in the
//!   headers and no body; for a marked call that status moves to a trailer frame, where a
//!   gRPC-Web client finds the status of every other answer. Native gRPC is left as it is.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use http_body::Frame;
use tonic::body::Body;
use tonic::codegen::http::{self, HeaderMap, HeaderName, HeaderValue, Method};
use tower_http::cors::{AllowOrigin, CorsLayer};

/// Request headers a gRPC-Web page sends.
const ALLOWED_HEADERS: [&str; 6] = [
    "authorization",
    "content-type",
    "x-grpc-web",
    "x-user-agent",
    "grpc-timeout",
    "x-request-id",
];
/// Answer headers a page may read: the status, and the request id of the access log.
const EXPOSED_HEADERS: [&str; 4] = [
    "grpc-status",
    "grpc-message",
    "grpc-status-details-bin",
    "x-request-id",
];
/// The status headers of a trailers-only answer.
const STATUS_HEADERS: [&str; 3] = ["grpc-status", "grpc-message", "grpc-status-details-bin"];
/// How long a browser may keep a preflight's answer (Chromium keeps at most 2 hours).
const PREFLIGHT_MAX_AGE: Duration = Duration::from_secs(2 * 3600);

/// The CORS layer for `origins` (`scheme://host[:port]` each), or `None` when there are none:
/// then no answer carries CORS headers and browsers refuse every cross-origin call.
pub fn cors(origins: &[String]) -> anyhow::Result<Option<CorsLayer>> {
    let origins: Vec<&str> = origins
        .iter()
        .map(|o| o.trim())
        .filter(|o| !o.is_empty())
        .collect();
    if origins.is_empty() {
        return Ok(None);
    }
    let mut allowed = Vec::new();
    for origin in origins {
        let (scheme, host) = origin.split_once("://").unwrap_or(("", ""));
        anyhow::ensure!(
            matches!(scheme, "http" | "https") && !host.is_empty() && !host.contains('/'),
            "--cors-allowed-origins: {origin:?} is not an origin (scheme://host[:port], no \
             path; `*` is not accepted)"
        );
        allowed.push(HeaderValue::from_str(origin)?);
    }
    let names = |names: &[&'static str]| -> Vec<HeaderName> {
        names.iter().map(|n| HeaderName::from_static(n)).collect()
    };
    Ok(Some(
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(allowed))
            .allow_methods([Method::POST])
            .allow_headers(names(&ALLOWED_HEADERS))
            .expose_headers(names(&EXPOSED_HEADERS))
            .max_age(PREFLIGHT_MAX_AGE),
    ))
}

/// Set on a gRPC-Web request by `mark`, read by `TrailerFrame`.
#[derive(Clone, Copy)]
struct WebCall;

fn is_grpc_web(headers: &HeaderMap) -> bool {
    headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("application/grpc-web"))
}

/// Marks a gRPC-Web request for `TrailerFrame` (`tower::util::MapRequestLayer::new(mark)`).
pub fn mark<B>(mut req: http::Request<B>) -> http::Request<B> {
    if is_grpc_web(req.headers()) {
        req.extensions_mut().insert(WebCall);
    }
    req
}

/// Tower layer of `TrailerFrame`.
#[derive(Clone, Copy, Default)]
pub struct TrailerFrameLayer;

impl<S> tower::Layer<S> for TrailerFrameLayer {
    type Service = TrailerFrame<S>;
    fn layer(&self, inner: S) -> Self::Service {
        TrailerFrame(inner)
    }
}

#[derive(Clone)]
pub struct TrailerFrame<S>(S);

impl<S, B, RB> tower::Service<http::Request<B>> for TrailerFrame<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<RB>>,
    S::Future: Send + 'static,
    RB: http_body::Body<Data = prost::bytes::Bytes> + Send + 'static,
    RB::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let web = req.extensions().get::<WebCall>().is_some();
        let fut = self.0.call(req);
        Box::pin(async move {
            let res = fut.await?.map(Body::new);
            if !web || !res.headers().contains_key("grpc-status") {
                return Ok(res);
            }
            let (mut parts, body) = res.into_parts();
            let mut trailers = HeaderMap::new();
            for name in STATUS_HEADERS {
                if let Some(value) = parts.headers.remove(name) {
                    trailers.insert(name, value);
                }
            }
            let body = Body::new(ThenTrailers {
                body,
                trailers: Some(trailers),
            });
            Ok(http::Response::from_parts(parts, body))
        })
    }
}

/// A body, then `trailers`.
struct ThenTrailers {
    body: Body,
    trailers: Option<HeaderMap>,
}

impl http_body::Body for ThenTrailers {
    type Data = prost::bytes::Bytes;
    type Error = tonic::Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        match Pin::new(&mut self.body).poll_frame(cx) {
            Poll::Ready(None) => Poll::Ready(self.trailers.take().map(|t| Ok(Frame::trailers(t)))),
            other => other,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.trailers.is_none() && self.body.is_end_stream()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::cors;

    #[test]
    fn origins_are_origins_and_never_a_wildcard() {
        assert!(cors(&[]).unwrap().is_none());
        assert!(cors(&[" ".into()]).unwrap().is_none());
        assert!(cors(&["https://admin.example".into()]).unwrap().is_some());
        assert!(cors(&["http://localhost:3000".into()]).unwrap().is_some());
        for bad in [
            "*",
            "admin.example",
            "https://admin.example/page",
            "ftp://x",
        ] {
            assert!(cors(&[bad.into()]).is_err(), "{bad} accepted");
        }
    }
}
