//! Serving HTTP/1.1 on a bound listener, the same way on both ports: the
//! accept loop with its connection limit, the timeouts that cut off slow or
//! silent clients ([`clock`]), request bodies that cannot stall a handler or
//! bleed into the next request ([`body`]), request ids, and the graceful
//! drain on shutdown.

mod body;
mod client_addr;
mod clock;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderValue, Request, Response};
use hyper::body::Incoming;
use hyper::service::Service;
use hyper_util::rt::TokioIo;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use self::body::GuardedBody;
use self::body::ResponseEnd;
pub use self::client_addr::TrustedProxies;
use self::clock::{ConnClock, TimedIo};

/// How long clients may take, and how many may be connected, on one port.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// From a new connection, or the first byte of a request on a kept-alive
    /// one, until the request's headers are complete.
    pub header_timeout: Duration,
    /// Longest pause inside a request or response body (the client neither
    /// sends nor reads).
    pub body_idle_timeout: Duration,
    /// How long a kept-alive connection may wait for its next request.
    pub keep_alive_idle: Duration,
    /// Connections served at once; more are answered 503 and closed.
    pub max_connections: usize,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            header_timeout: Duration::from_secs(15),
            body_idle_timeout: Duration::from_secs(30),
            keep_alive_idle: Duration::from_secs(60),
            max_connections: 4096,
        }
    }
}

/// The client's address, in each request's extensions: the connection's,
/// or the one a trusted proxy forwarded (`client_addr`).
#[derive(Debug, Clone, Copy)]
pub struct PeerAddr(pub std::net::SocketAddr);

/// A fresh request id: 16 hex digits, like S3's.
pub fn new_request_id() -> String {
    format!("{:016X}", rand::random::<u64>())
}

/// Sent to a connection over the limit; cheap, and it tells a well-behaved
/// client to come back instead of leaving it waiting in the backlog.
const OVER_CAPACITY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nretry-after: 1\r\n\
content-type: text/plain\r\ncontent-length: 38\r\nconnection: close\r\n\r\n\
too many connections; try again later\n";

/// Accepts connections until `shutdown` resolves, then lets in-flight
/// requests finish for up to `drain` before returning.
pub async fn serve<S, B>(
    listener: TcpListener,
    service: S,
    shutdown: impl Future<Output = ()>,
    drain: Duration,
    limits: ConnectionLimits,
    proxies: TrustedProxies,
) where
    S: Service<Request<GuardedBody>, Response = Response<B>> + Clone + Send + Sync + 'static,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let mut builder = hyper::server::conn::http1::Builder::new();
    // Timeouts are kept by `TimedIo`, which can tell a kept-alive connection
    // waiting for its next request from one stuck in the middle of a head.
    builder.keep_alive(true).header_read_timeout(None);
    let builder = Arc::new(builder);
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let connections = TaskTracker::new();
    let stopping = CancellationToken::new();
    tokio::pin!(shutdown);
    loop {
        let (socket, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // Out of file descriptors and the like: back off, keep serving.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            metrics::counter!("cistern_connections_refused_total").increment(1);
            tokio::spawn(async move {
                let mut socket = socket;
                let _ = tokio::time::timeout(Duration::from_secs(1), async {
                    socket.write_all(OVER_CAPACITY).await?;
                    socket.shutdown().await
                })
                .await;
            });
            continue;
        };
        if let Err(e) = socket.set_nodelay(true) {
            tracing::debug!(error = %e, %peer, "could not set TCP_NODELAY");
        }
        let clock = Arc::new(ConnClock::new());
        let io = TokioIo::new(TimedIo::new(socket, clock.clone(), limits, slot));
        let per_connection = service.clone();
        let proxies = proxies.clone();
        let tagged = hyper::service::service_fn(move |request: Request<Incoming>| {
            let clock = clock.clone();
            clock.request_started();
            let continue_expected = expects_continue(&request);
            let answers_head = request.method() == http::Method::HEAD;
            let empty_expecting_continue =
                continue_expected && http_body::Body::is_end_stream(request.body());
            let body_clock = clock.clone();
            let mut request = request.map(|body| {
                GuardedBody::new(
                    body,
                    limits.body_idle_timeout,
                    continue_expected,
                    body_clock,
                )
            });
            let client = proxies.client(peer, request.headers());
            request.extensions_mut().insert(PeerAddr(client));
            let call = per_connection.call(request);
            async move {
                let mut response = call.await?;
                if response.status() == http::StatusCode::SWITCHING_PROTOCOLS {
                    clock.upgraded();
                }
                if empty_expecting_continue {
                    // hyper sends no `100 Continue` for an empty body, and
                    // the botocore that aws-cli bundles then misreads the
                    // next answer on this connection (a 60 s stall per
                    // connection in `aws s3 sync`). A fresh connection for
                    // its next request sidesteps that.
                    response
                        .headers_mut()
                        .insert(http::header::CONNECTION, HeaderValue::from_static("close"));
                }
                Ok::<_, S::Error>(response.map(|body| ResponseEnd::new(body, clock, answers_head)))
            }
        });
        let connection = builder.serve_connection(io, tagged).with_upgrades();
        let stopping = stopping.clone();
        connections.spawn(async move {
            tokio::pin!(connection);
            let result = tokio::select! {
                result = connection.as_mut() => result,
                () = stopping.cancelled() => {
                    connection.as_mut().graceful_shutdown();
                    connection.await
                }
            };
            if let Err(e) = result {
                tracing::debug!(error = %e, %peer, "connection ended with an error");
            }
        });
    }
    drop(listener);
    stopping.cancel();
    connections.close();
    if tokio::time::timeout(drain, connections.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            ?drain,
            "in-flight requests did not finish in time; closing them"
        );
    }
}

fn expects_continue<B>(request: &Request<B>) -> bool {
    request
        .headers()
        .get(http::header::EXPECT)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"))
}

/// The length a request or response announces in the first of `names`
/// that it carries; 0 when none.
pub fn declared_length(headers: &http::HeaderMap, names: &[&str]) -> u64 {
    names
        .iter()
        .find_map(|n| headers.get(*n))
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}
