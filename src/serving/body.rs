//! Request and response bodies as the accept loop hands them over. A
//! request body fails when the client pauses longer than the body idle
//! time, so a stalled upload frees its handler; one that its handler left
//! unread (a refused PUT) is read to its end in the background when little
//! is left, so the connection can serve the next request, and otherwise
//! dropped, which makes hyper close the connection rather than parse the
//! leftover bytes as a request. A response body tells the connection's
//! clock when the answer is complete.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use tokio::time::Sleep;

use super::clock::ConnClock;

/// The most of an unread request body that is read and thrown away to keep
/// its connection open.
const DRAIN_LIMIT: u64 = 64 * 1024;

/// A request body with an idle timeout.
pub struct GuardedBody {
    /// `None` once handed to the background drain.
    inner: Option<Incoming>,
    idle: Duration,
    /// Running while the body waits for the client.
    waiting: Option<Pin<Box<Sleep>>>,
    /// The client sent `Expect: 100-continue`, and nothing has asked for
    /// the body yet (the first poll is what sends `100 Continue`).
    awaiting_continue: bool,
    finished: bool,
    clock: Arc<ConnClock>,
}

impl GuardedBody {
    pub fn new(
        inner: Incoming,
        idle: Duration,
        expects_continue: bool,
        clock: Arc<ConnClock>,
    ) -> Self {
        let finished = inner.is_end_stream();
        Self {
            inner: Some(inner),
            idle,
            waiting: None,
            awaiting_continue: expects_continue,
            finished,
            clock,
        }
    }
}

/// Why a request body ended early.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error("the client sent no part of the body for {0:?}")]
    Idle(Duration),
    #[error(transparent)]
    Connection(#[from] hyper::Error),
}

impl Body for GuardedBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = &mut *self;
        this.awaiting_continue = false;
        let Some(inner) = this.inner.as_mut() else {
            return Poll::Ready(None);
        };
        match Pin::new(inner).poll_frame(cx) {
            Poll::Ready(frame) => {
                this.waiting = None;
                if frame.is_none() {
                    this.finished = true;
                }
                Poll::Ready(frame.map(|f| f.map_err(BodyError::from)))
            }
            Poll::Pending => {
                let idle = this.idle;
                let timer = this
                    .waiting
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(idle)));
                ready!(timer.as_mut().poll(cx));
                metrics::counter!("cistern_request_bodies_timed_out_total").increment(1);
                // Dropping the rest makes hyper close the connection.
                this.inner = None;
                this.finished = true;
                Poll::Ready(Some(Err(BodyError::Idle(idle))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.finished || self.inner.as_ref().is_none_or(|b| b.is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        self.inner
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), |b| b.size_hint())
    }
}

impl Drop for GuardedBody {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        let Some(inner) = self.inner.take() else {
            return;
        };
        // A client that sent `Expect: 100-continue` and was answered before
        // its body was asked for will not send it: reading now would send a
        // `100 Continue` after the final answer. hyper closes instead.
        let small = inner.size_hint().upper().is_some_and(|n| n <= DRAIN_LIMIT);
        if self.awaiting_continue || !small {
            return;
        }
        let idle = self.idle;
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            self.clock.drain_started();
            runtime.spawn(drain(inner, idle, self.clock.clone()));
        }
    }
}

/// Reads and discards what is left of a small request body.
async fn drain(mut body: Incoming, idle: Duration, clock: Arc<ConnClock>) {
    use http_body_util::BodyExt;
    // The whole rest gets one idle time: a client trickling bytes cannot
    // hold the connection without a deadline.
    let _ = tokio::time::timeout(idle, async {
        while let Some(Ok(_)) = body.frame().await {}
    })
    .await;
    drop(body);
    clock.drain_finished();
}

/// A response body that tells its connection's clock when it is done.
pub struct ResponseEnd<B> {
    /// `None` for the answer to a `HEAD`, which has no body: hyper would
    /// otherwise keep it, unpolled, until the connection ends.
    inner: Option<Pin<Box<B>>>,
    clock: Option<Arc<ConnClock>>,
}

impl<B: Body> ResponseEnd<B> {
    pub fn new(inner: B, clock: Arc<ConnClock>, answers_head: bool) -> Self {
        let mut this = Self {
            inner: (!answers_head).then(|| Box::pin(inner)),
            clock: Some(clock),
        };
        if this.is_end_stream() {
            this.finish();
        }
        this
    }

    fn finish(&mut self) {
        if let Some(clock) = self.clock.take() {
            clock.response_finished();
        }
    }
}

impl<B> Drop for ResponseEnd<B> {
    fn drop(&mut self) {
        if let Some(clock) = self.clock.take() {
            clock.response_finished();
        }
    }
}

impl<B: Body> Body for ResponseEnd<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        let Some(inner) = self.inner.as_mut() else {
            return Poll::Ready(None);
        };
        let frame = ready!(inner.as_mut().poll_frame(cx));
        if frame.is_none() || self.is_end_stream() {
            self.finish();
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.as_ref().is_none_or(|b| b.is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        self.inner
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), |b| b.size_hint())
    }
}
