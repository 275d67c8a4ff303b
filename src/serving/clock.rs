//! The timeouts of one connection, kept at the socket: a connection that
//! sends no head, sends half a head, sits idle between requests, or stops
//! reading an answer is closed when its phase's time runs out. A phase
//! change comes from the request side (`request_started`), the end of an
//! answer (`response_finished`), or an upgrade, which ends the read
//! deadlines (a WebSocket may stay quiet for as long as it likes); a write
//! the client does not take is cut off in every phase.

use std::io;
use std::pin::Pin;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Waker, ready};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

use super::ConnectionLimits;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Between requests on a kept-alive connection: no byte of the next
    /// head has arrived yet.
    Idle,
    /// Receiving a head (a new connection starts here).
    Head,
    /// A request is being served; its body has its own timeout.
    Busy,
    /// Handed over to another protocol.
    Upgraded,
}

/// Where a connection is in its life, shared by its socket and its requests.
pub struct ConnClock {
    state: Mutex<(Phase, Instant)>,
    /// A read waiting with no deadline (while a request is served), woken
    /// when the phase changes so that it takes up the new deadline.
    untimed_reader: Mutex<Option<Waker>>,
    /// The unread rest of a refused request body is being read and thrown
    /// away: its bytes start no new head, and the idle time starts after.
    draining: AtomicBool,
}

impl ConnClock {
    pub fn new() -> Self {
        Self {
            state: Mutex::new((Phase::Head, Instant::now())),
            untimed_reader: Mutex::new(None),
            draining: AtomicBool::new(false),
        }
    }

    fn set(&self, phase: Phase) {
        if let Ok(mut state) = self.state.lock()
            && state.0 != Phase::Upgraded
        {
            *state = (phase, Instant::now());
        }
        if let Some(reader) = self.untimed_reader.lock().ok().and_then(|mut w| w.take()) {
            reader.wake();
        }
    }

    fn wake_on_change(&self, waker: &Waker) {
        if let Ok(mut slot) = self.untimed_reader.lock() {
            *slot = Some(waker.clone());
        }
    }

    pub fn request_started(&self) {
        self.set(Phase::Busy);
    }

    pub fn response_finished(&self) {
        self.set(Phase::Idle);
    }

    pub fn upgraded(&self) {
        self.set(Phase::Upgraded);
    }

    pub fn drain_started(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }

    pub fn drain_finished(&self) {
        self.draining.store(false, Ordering::SeqCst);
        let idle = self.state.lock().is_ok_and(|s| s.0 == Phase::Idle);
        if idle {
            // The idle time counts from the end of the drain.
            self.set(Phase::Idle);
        }
    }

    /// Bytes arrived: on an idle connection they start the next head.
    fn bytes_arrived(&self) {
        if self.draining.load(Ordering::SeqCst) {
            return;
        }
        if let Ok(mut state) = self.state.lock()
            && state.0 == Phase::Idle
        {
            *state = (Phase::Head, Instant::now());
        }
    }

    /// When a read still waiting must give up, if ever.
    fn read_deadline(&self, limits: &ConnectionLimits) -> Option<Instant> {
        if self.draining.load(Ordering::SeqCst) {
            return None;
        }
        let (phase, since) = *self.state.lock().ok()?;
        match phase {
            Phase::Idle => Some(since + limits.keep_alive_idle),
            Phase::Head => Some(since + limits.header_timeout),
            Phase::Busy | Phase::Upgraded => None,
        }
    }
}

/// A socket that gives up on clients that take too long.
pub struct TimedIo<T> {
    inner: T,
    clock: std::sync::Arc<ConnClock>,
    limits: ConnectionLimits,
    read_timer: Pin<Box<Sleep>>,
    /// Set while a write waits for the client to read.
    write_timer: Option<Pin<Box<Sleep>>>,
    /// This connection's place under the connection limit, held as long
    /// as the socket lives (also after an upgrade to a WebSocket).
    _slot: tokio::sync::OwnedSemaphorePermit,
}

impl<T> TimedIo<T> {
    pub fn new(
        inner: T,
        clock: std::sync::Arc<ConnClock>,
        limits: ConnectionLimits,
        slot: tokio::sync::OwnedSemaphorePermit,
    ) -> Self {
        Self {
            inner,
            clock,
            limits,
            read_timer: Box::pin(tokio::time::sleep(Duration::ZERO)),
            write_timer: None,
            _slot: slot,
        }
    }
}

fn timed_out(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, what.to_owned())
}

impl<T: AsyncRead + Unpin> AsyncRead for TimedIo<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(result) => {
                if buf.filled().len() > before {
                    this.clock.bytes_arrived();
                }
                Poll::Ready(result)
            }
            Poll::Pending => {
                let Some(deadline) = this.clock.read_deadline(&this.limits) else {
                    this.clock.wake_on_change(cx.waker());
                    // The phase may have changed before the waker was left.
                    if this.clock.read_deadline(&this.limits).is_some() {
                        cx.waker().wake_by_ref();
                    }
                    return Poll::Pending;
                };
                if this.read_timer.deadline() != deadline {
                    this.read_timer.as_mut().reset(deadline);
                }
                ready!(this.read_timer.as_mut().poll(cx));
                // Time is up: the connection ends as if the client had
                // closed it, which hyper handles between requests without
                // noise.
                tracing::debug!("closing a connection that sent nothing in time");
                metrics::counter!("cistern_connections_timed_out_total").increment(1);
                Poll::Ready(Ok(()))
            }
        }
    }
}

impl<T: AsyncWrite + Unpin> TimedIo<T> {
    /// Runs one write step, failing it once the client has read nothing
    /// for the body idle time.
    fn poll_timed<R>(
        &mut self,
        cx: &mut Context<'_>,
        step: impl FnOnce(Pin<&mut T>, &mut Context<'_>) -> Poll<io::Result<R>>,
    ) -> Poll<io::Result<R>> {
        match step(Pin::new(&mut self.inner), cx) {
            Poll::Ready(result) => {
                self.write_timer = None;
                Poll::Ready(result)
            }
            Poll::Pending => {
                let idle = self.limits.body_idle_timeout;
                let timer = self
                    .write_timer
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(idle)));
                ready!(timer.as_mut().poll(cx));
                metrics::counter!("cistern_connections_timed_out_total").increment(1);
                Poll::Ready(Err(timed_out("the client stopped reading the answer")))
            }
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for TimedIo<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_timed(cx, |inner, cx| inner.poll_write(cx, buf))
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.poll_timed(cx, |inner, cx| inner.poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_timed(cx, |inner, cx| inner.poll_flush(cx))
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
