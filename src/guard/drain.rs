//! Shutdown with a deadline. On the signal the server reports NOT_SERVING and keeps answering
//! for `delay` (pollers and load balancers see it). Then the drain starts: new calls are
//! refused (HTTP/2 GOAWAY, the listener closed), open server streams (health's Watch,
//! WatchEvents, reflection) end at once with UNAVAILABLE `SHUTTING_DOWN`, and calls in flight
//! may finish. Once none is left, connections still open get `idle_close` to close on their
//! own (a client that never reads would hold hyper's graceful close forever: it waits for the
//! acknowledgement of its last PING); then every one is closed (`Closing`). At `deadline` after
//! the signal every connection is closed whatever it was doing, and calls still running are
//! cut (`Cut`).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use prost::bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::watch;
use tonic::body::Body;
use tonic::codegen::http;
use tonic::transport::server::Connected;

/// When a shutting-down server stops answering and when it closes every connection, both
/// counted from the signal; and how long connections may linger once no call is left.
#[derive(Clone, Copy, Debug)]
pub struct Drain {
    pub delay: Duration,
    pub deadline: Duration,
    pub idle_close: Duration,
}

/// How long connections may linger once no call is left, unless configured otherwise.
pub const DEFAULT_IDLE_CLOSE: Duration = Duration::from_millis(500);

/// Calls in flight, from their request to the end of their answer's body (a server stream
/// included), counted across the server.
#[derive(Clone, Debug, Default)]
pub struct InFlight(std::sync::Arc<InFlightState>);

#[derive(Debug, Default)]
struct InFlightState {
    count: std::sync::atomic::AtomicUsize,
    idle: tokio::sync::Notify,
}

impl InFlight {
    fn enter(&self) -> Entered {
        self.0
            .count
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Entered(self.clone())
    }

    /// Resolves once no call is in flight.
    pub async fn idle(&self) {
        loop {
            let notified = self.0.idle.notified();
            if self.0.count.load(std::sync::atomic::Ordering::SeqCst) == 0 {
                return;
            }
            notified.await;
        }
    }
}

/// One call in flight; counted until dropped.
struct Entered(InFlight);

impl Drop for Entered {
    fn drop(&mut self) {
        let state = &(self.0).0;
        if state
            .count
            .fetch_sub(1, std::sync::atomic::Ordering::SeqCst)
            == 1
        {
            state.idle.notify_waiters();
        }
    }
}

/// A connection that fails every read and write once `closed` says so, which ends hyper's
/// connection task (and drops the socket) whatever it was waiting for.
pub struct Closing<IO> {
    io: IO,
    closed: Pin<Box<dyn Future<Output = ()> + Send>>,
    done: bool,
}

impl<IO> Closing<IO> {
    pub fn new(io: IO, mut closed: watch::Receiver<bool>) -> Self {
        Closing {
            io,
            closed: Box::pin(async move {
                let _ = closed.wait_for(|c| *c).await;
            }),
            done: false,
        }
    }

    /// Whether the deadline has passed; registers the task to be woken when it does.
    fn is_closed(&mut self, cx: &mut Context<'_>) -> bool {
        if !self.done && self.closed.as_mut().poll(cx).is_ready() {
            self.done = true;
        }
        self.done
    }
}

fn aborted() -> io::Error {
    io::Error::new(
        io::ErrorKind::ConnectionAborted,
        "closed at the drain deadline",
    )
}

impl<IO: AsyncRead + Unpin> AsyncRead for Closing<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.is_closed(cx) {
            return Poll::Ready(Err(aborted()));
        }
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Closing<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.is_closed(cx) {
            return Poll::Ready(Err(aborted()));
        }
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.is_closed(cx) {
            return Poll::Ready(Err(aborted()));
        }
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

impl<IO: Connected> Connected for Closing<IO> {
    type ConnectInfo = IO::ConnectInfo;
    fn connect_info(&self) -> Self::ConnectInfo {
        self.io.connect_info()
    }
}

/// Tower layer of the drain around each call: counts it in flight until its answer's body
/// ends (`InFlight`), ends a server stream's body at the start of the drain (`stopping`) with
/// UNAVAILABLE `SHUTTING_DOWN`, and drops a call still running when the deadline passes
/// (`closed`; its transaction rolls back) answering the same: hyper runs each call as a task
/// of its own, which the connection's end alone would not stop.
#[derive(Clone)]
pub struct CutLayer {
    stopping: watch::Receiver<bool>,
    closed: watch::Receiver<bool>,
    in_flight: InFlight,
}

impl CutLayer {
    pub fn new(
        stopping: watch::Receiver<bool>,
        closed: watch::Receiver<bool>,
        in_flight: InFlight,
    ) -> Self {
        CutLayer {
            stopping,
            closed,
            in_flight,
        }
    }
}

impl<S> tower::Layer<S> for CutLayer {
    type Service = Cut<S>;
    fn layer(&self, inner: S) -> Self::Service {
        Cut {
            inner,
            layer: self.clone(),
        }
    }
}

#[derive(Clone)]
pub struct Cut<S> {
    inner: S,
    layer: CutLayer,
}

fn shutting_down(what: &str) -> tonic::Status {
    crate::grpc::status::with_reason(
        tonic::Code::Unavailable,
        crate::grpc::status::reason::SHUTTING_DOWN,
        format!("the server shut down {what}; reconnect to another"),
    )
}

impl<S, B> tower::Service<http::Request<B>> for Cut<S>
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
        let entered = self.layer.in_flight.enter();
        let stream = crate::grpc::wire::server_streaming().contains(req.uri().path());
        let fut = self.inner.call(req);
        let mut closed = self.layer.closed.clone();
        let stopping = self.layer.stopping.clone();
        Box::pin(async move {
            let answer = tokio::select! {
                answer = fut => answer?,
                _ = closed.wait_for(|c| *c) => shutting_down(
                    "before the call finished; nothing it did was kept",
                )
                .into_http(),
            };
            let (parts, body) = answer.into_parts();
            let body = Ending {
                body,
                stopping: stream.then(|| until_true(stopping)),
                entered: Some(entered),
            };
            Ok(http::Response::from_parts(parts, Body::new(body)))
        })
    }
}

/// Resolves once `flag` is true (never, if its sender is gone first).
fn until_true(mut flag: watch::Receiver<bool>) -> Pin<Box<dyn Future<Output = ()> + Send>> {
    Box::pin(async move {
        if flag.wait_for(|f| *f).await.is_err() {
            std::future::pending::<()>().await;
        }
    })
}

/// An answer's body, counted in flight until it ends or is dropped; a server stream's ends
/// with UNAVAILABLE `SHUTTING_DOWN` trailers once `stopping` resolves.
struct Ending {
    body: Body,
    stopping: Option<Pin<Box<dyn Future<Output = ()> + Send>>>,
    entered: Option<Entered>,
}

impl http_body::Body for Ending {
    type Data = Bytes;
    type Error = tonic::Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, tonic::Status>>> {
        if self.entered.is_none() {
            return Poll::Ready(None);
        }
        if let Some(stopping) = self.stopping.as_mut()
            && stopping.as_mut().poll(cx).is_ready()
        {
            self.entered = None;
            let mut trailers = http::HeaderMap::new();
            let status = shutting_down("and ended the stream");
            return Poll::Ready(Some(match status.add_header(&mut trailers) {
                Ok(()) => Ok(http_body::Frame::trailers(trailers)),
                Err(e) => Err(e),
            }));
        }
        let polled = Pin::new(&mut self.body).poll_frame(cx);
        if let Poll::Ready(None) = polled {
            self.entered = None;
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.entered.is_none() || (self.stopping.is_none() && self.body.is_end_stream())
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}
