//! gRPC-Web on the gRPC port, for browser pages: tonic-web translates the calls, CORS lets
//! the configured origins make them, and every gRPC-Web answer ends with a trailer frame.
//!
//! `Web` (`server.rs` puts it outside the metrics layer, so every layer from metrics inwards
//! sees an ordinary gRPC call, counted and limited like any other) sends a native gRPC call
//! straight on, untouched, and a browser's request (a gRPC-Web call or a CORS preflight)
//! through:
//! - `cors`: preflights answered, and the CORS headers on answers, for the origins of
//!   `--cors-allowed-origins` only (none by default: no cross-origin page may call). Never
//!   `*`, and no credentials mode: the bearer token travels in `authorization`, which a
//!   page sends without cookies.
//! - `tonic_web::GrpcWebLayer`: the translation (HTTP/1.1 or HTTP/2, binary or base64 text).
//! - `with_trailer_frame`: tonic answers an error "trailers-only", with `grpc-status` in the
//!   headers and no body; for gRPC-Web that status moves to a trailer frame, where a client
//!   finds the status of every other answer.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::{TryFutureExt, future};
use http_body::Frame;
use http_body_util::Either;
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

/// Whether a request is a browser's: a gRPC-Web call or a CORS preflight.
fn from_browser<B>(req: &http::Request<B>) -> bool {
    let headers = req.headers();
    let grpc_web = headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("application/grpc-web"));
    let preflight = req.method() == Method::OPTIONS
        && headers.contains_key(http::header::ACCESS_CONTROL_REQUEST_METHOD);
    grpc_web || preflight
}

/// Tower layer of `Web`: `layer(cors(origins)?)`.
#[derive(Clone)]
pub struct WebLayer(Option<CorsLayer>);

/// The layer, with the CORS layer of `cors` (none: no cross-origin page may call).
pub fn layer(cors: Option<CorsLayer>) -> WebLayer {
    WebLayer(cors)
}

impl<S> tower::Layer<S> for WebLayer {
    type Service = Web<S>;
    fn layer(&self, inner: S) -> Self::Service {
        Web {
            inner,
            cors: self.0.clone(),
        }
    }
}

/// Browsers' requests through CORS, tonic-web and `with_trailer_frame` to the inner service;
/// native gRPC calls straight to it, untouched.
#[derive(Clone)]
pub struct Web<S> {
    inner: S,
    cors: Option<CorsLayer>,
}

type Answer<RB> = http::Response<Either<RB, Body>>;
type WebFuture<RB, E> = Pin<Box<dyn Future<Output = Result<Answer<RB>, E>> + Send>>;

fn native<RB>(res: http::Response<RB>) -> Answer<RB> {
    res.map(Either::Left)
}

impl<S, RB> tower::Service<http::Request<Body>> for Web<S>
where
    S: tower::Service<http::Request<Body>, Response = http::Response<RB>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    RB: http_body::Body<Data = prost::bytes::Bytes> + Send + 'static,
    RB::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Response = Answer<RB>;
    type Error = S::Error;
    type Future = future::Either<
        future::MapOk<S::Future, fn(http::Response<RB>) -> Answer<RB>>,
        WebFuture<RB, S::Error>,
    >;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<Body>) -> Self::Future {
        if !from_browser(&req) {
            let to_answer: fn(http::Response<RB>) -> Answer<RB> = native;
            return future::Either::Left(self.inner.call(req).map_ok(to_answer));
        }
        // The service polled ready is the one called (the wrappers around it keep no state
        // and need no readiness of their own); a clone takes its place.
        let clone = self.inner.clone();
        let ready = std::mem::replace(&mut self.inner, clone);
        let mut web = tower::ServiceBuilder::new()
            .option_layer(self.cors.clone())
            .layer(tonic_web::GrpcWebLayer::new())
            .map_response(with_trailer_frame::<RB>)
            .service(ready);
        future::Either::Right(Box::pin(async move {
            let res = web.call(req).await?;
            Ok(res.map(Either::Right))
        }))
    }
}

/// A gRPC-Web answer with its status in a trailer frame: tonic answers an error
/// trailers-only, with the status in the headers, which move to the trailers here.
fn with_trailer_frame<RB>(res: http::Response<RB>) -> http::Response<Body>
where
    RB: http_body::Body<Data = prost::bytes::Bytes> + Send + 'static,
    RB::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let (mut parts, body) = res.into_parts();
    let body = Body::new(body);
    if !parts.headers.contains_key("grpc-status") {
        return http::Response::from_parts(parts, body);
    }
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
    http::Response::from_parts(parts, body)
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
