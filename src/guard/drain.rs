//! Shutdown with a deadline. On the signal the server reports NOT_SERVING and keeps answering
//! for `delay` (pollers and load balancers see it), then refuses new calls (HTTP/2 GOAWAY, the
//! listener closed) and lets calls in flight finish; at `deadline` after the signal every
//! connection still open is closed (`Closing`): an open stream, an idle HTTP/2 connection, a
//! TCP connection that never spoke.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::watch;
use tonic::transport::server::Connected;

/// When a shutting-down server stops answering and when it closes every connection, both
/// counted from the signal.
#[derive(Clone, Copy, Debug)]
pub struct Drain {
    pub delay: Duration,
    pub deadline: Duration,
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

/// Tower layer that drops a call still running when the deadline passes (its transaction
/// rolls back) and answers UNAVAILABLE: hyper runs each call as a task of its own, which the
/// connection's end alone would not stop.
#[derive(Clone)]
pub struct CutLayer {
    closed: watch::Receiver<bool>,
}

impl CutLayer {
    pub fn new(closed: watch::Receiver<bool>) -> Self {
        CutLayer { closed }
    }
}

impl<S> tower::Layer<S> for CutLayer {
    type Service = Cut<S>;
    fn layer(&self, inner: S) -> Self::Service {
        Cut {
            inner,
            closed: self.closed.clone(),
        }
    }
}

#[derive(Clone)]
pub struct Cut<S> {
    inner: S,
    closed: watch::Receiver<bool>,
}

impl<S, B, RB> tower::Service<tonic::codegen::http::Request<B>> for Cut<S>
where
    S: tower::Service<
            tonic::codegen::http::Request<B>,
            Response = tonic::codegen::http::Response<RB>,
        >,
    S::Future: Send + 'static,
    RB: Default,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: tonic::codegen::http::Request<B>) -> Self::Future {
        let fut = self.inner.call(req);
        let mut closed = self.closed.clone();
        Box::pin(async move {
            tokio::select! {
                answer = fut => answer,
                _ = closed.wait_for(|c| *c) => Ok(crate::grpc::status::with_reason(
                    tonic::Code::Unavailable,
                    crate::grpc::status::reason::SHUTTING_DOWN,
                    "the server shut down before the call finished; nothing it did was kept"
                        .into(),
                )
                .into_http()),
            }
        })
    }
}
