//! Serving HTTP on a bound listener: the accept loop shared by both ports
//! (TCP_NODELAY, HTTP/1.1 keep-alive, graceful drain on shutdown) and the
//! wrapper around the S3 service that gives every request an id
//! (`x-amz-request-id` and the log span) and records metrics.

use std::convert::Infallible;
use std::future::Future;
use std::time::{Duration, Instant};

use http::{HeaderValue, Request, Response};
use hyper::body::Incoming;
use hyper::service::Service;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnBuilder;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tracing::Instrument;

use super::auth::RequestFacts;
use crate::core::audit::AuditLog;
use crate::meta::AuditRecord;

/// Accepts connections until `shutdown` resolves, then lets in-flight
/// requests finish for up to `drain` before returning.
pub async fn serve<S, B>(
    listener: TcpListener,
    service: S,
    shutdown: impl Future<Output = ()>,
    drain: Duration,
) where
    S: Service<Request<Incoming>, Response = Response<B>> + Clone + Send + Sync + 'static,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let builder = ConnBuilder::new(TokioExecutor::new());
    let graceful = GracefulShutdown::new();
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
        if let Err(e) = socket.set_nodelay(true) {
            tracing::debug!(error = %e, %peer, "could not set TCP_NODELAY");
        }
        let per_connection = service.clone();
        let tagged = hyper::service::service_fn(move |mut request: Request<Incoming>| {
            request.extensions_mut().insert(PeerAddr(peer));
            per_connection.call(request)
        });
        // Upgrades carry the event stream's WebSockets on the web port.
        let connection = builder.serve_connection_with_upgrades(TokioIo::new(socket), tagged);
        let connection = graceful.watch(connection.into_owned());
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, %peer, "connection ended with an error");
            }
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(drain) => {
            tracing::warn!(?drain, "in-flight requests did not finish in time; closing them");
        }
    }
}

/// The client address of a connection, in each request's extensions.
#[derive(Debug, Clone, Copy)]
pub struct PeerAddr(pub std::net::SocketAddr);

/// A fresh request id: 16 hex digits, like S3's.
pub fn new_request_id() -> String {
    format!("{:016X}", rand::random::<u64>())
}

fn declared_length(headers: &http::HeaderMap, names: &[&str]) -> u64 {
    names
        .iter()
        .find_map(|n| headers.get(*n))
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// The S3 service with request ids, a log span, metrics and the audit
/// record around it.
#[derive(Clone)]
pub struct S3Front {
    pub inner: s3s::service::S3Service,
    pub audit: AuditLog,
    /// The region credential scopes must name.
    pub region: String,
}

/// The access key a request claims (SigV4 header or presigned query), even
/// when its signature turns out wrong: failed attempts are audited too.
fn claimed_access_key<B>(req: &Request<B>) -> Option<String> {
    let from_header = req
        .headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split("Credential=").nth(1));
    let from_query = req.uri().query().and_then(|q| {
        q.split('&')
            .find_map(|pair| pair.strip_prefix("X-Amz-Credential="))
    });
    let credential = from_header.or(from_query)?;
    let decoded = percent_encoding::percent_decode_str(credential)
        .decode_utf8()
        .ok()?;
    decoded.split('/').next().map(str::to_owned)
}

fn header_text<B>(req: &Request<B>, name: &str) -> Option<String> {
    req.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

impl Service<Request<Incoming>> for S3Front {
    type Response = Response<s3s::Body>;
    type Error = Infallible;
    type Future =
        std::pin::Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn call(&self, mut req: Request<Incoming>) -> Self::Future {
        let inner = self.inner.clone();
        let audit = self.audit.clone();
        let wrong_region = super::region::refusal(&req, &self.region);
        let request_id = new_request_id();
        let facts = RequestFacts::default();
        req.extensions_mut().insert(facts.clone());
        let claimed_key = claimed_access_key(&req);
        let user_agent = header_text(&req, "user-agent");
        let source = req
            .extensions()
            .get::<PeerAddr>()
            .map(|p| p.0.ip().to_string());
        let bytes_in = declared_length(
            req.headers(),
            &["x-amz-decoded-content-length", "content-length"],
        );
        let method = req.method().clone();
        let path = req.uri().path().to_owned();
        let span = tracing::info_span!("s3", request_id = %request_id);
        Box::pin(
            async move {
                let started = Instant::now();
                let response = match wrong_region {
                    Some(refusal) => Ok(refusal),
                    None => inner.call(req.map(s3s::Body::from)).await,
                };
                let mut response = match response {
                    Ok(response) => super::error::with_message(response),
                    Err(e) => {
                        tracing::error!(error = ?e, "s3 service failed");
                        let mut response = Response::new(s3s::Body::empty());
                        *response.status_mut() = http::StatusCode::INTERNAL_SERVER_ERROR;
                        response
                    }
                };
                if let Ok(value) = HeaderValue::from_str(&request_id) {
                    response.headers_mut().insert("x-amz-request-id", value.clone());
                    response.headers_mut().insert("x-amz-id-2", value);
                }
                let status = response.status().as_u16();
                let facts = facts.0.lock().map(|mut f| std::mem::take(&mut *f)).unwrap_or_default();
                let op = facts.operation.clone().unwrap_or_else(|| "Unknown".to_owned());
                // A HEAD answer announces a length but sends no body.
                let bytes_out = if method == http::Method::HEAD {
                    0
                } else {
                    declared_length(response.headers(), &["content-length"])
                };
                let elapsed = started.elapsed();
                metrics::counter!("cistern_s3_requests_total", "operation" => op.clone(), "status" => status.to_string())
                    .increment(1);
                metrics::histogram!("cistern_s3_request_duration_seconds", "operation" => op.clone())
                    .record(elapsed.as_secs_f64());
                metrics::counter!("cistern_s3_bytes_received_total").increment(bytes_in);
                metrics::counter!("cistern_s3_bytes_sent_total").increment(bytes_out);
                // Traffic counts only when the request succeeded.
                let ok = (200..300).contains(&status);
                audit.record(AuditRecord {
                    id: 0,
                    time_ms: crate::core::now_ms(),
                    request_id: request_id.clone(),
                    actor_id: facts.principal.as_ref().map(|p| p.user_id.clone()),
                    actor: match (&facts.principal, &claimed_key) {
                        (Some(p), _) => p.name.clone(),
                        (None, Some(_)) => "unauthenticated".to_owned(),
                        (None, None) => "anonymous".to_owned(),
                    },
                    access_key: claimed_key,
                    source,
                    action: format!("s3:{op}"),
                    bucket: facts.bucket,
                    key: facts.key,
                    status,
                    bytes_in: if ok { bytes_in } else { 0 },
                    bytes_out: if ok { bytes_out } else { 0 },
                    user_agent,
                });
                if status >= 500 {
                    tracing::warn!(%method, %path, operation = %op, status, ?elapsed, "request failed");
                } else {
                    tracing::debug!(%method, %path, operation = %op, status, ?elapsed, "request");
                }
                Ok(response)
            }
            .instrument(span),
        )
    }
}
