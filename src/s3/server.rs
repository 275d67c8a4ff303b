//! The wrapper around the S3 service that gives every request an id
//! (`x-amz-request-id` and the log span), refuses bodies declared larger
//! than the port accepts before reading them, and records metrics and the
//! audit record.

use std::convert::Infallible;
use std::future::Future;
use std::time::Instant;

use http::{HeaderValue, Request, Response};
use hyper::service::Service;
use tracing::Instrument;

use super::auth::RequestFacts;
use crate::core::audit::AuditLog;
use crate::model::AuditRecord;
use crate::serving::{GuardedBody, PeerAddr, declared_length, new_request_id};

/// The largest body of a request that is not an upload (XML documents
/// such as a multipart completion of 10,000 parts or a 1,000-key delete).
const NON_UPLOAD_BODY_LIMIT: u64 = 16 << 20;

/// The S3 service with request ids, a log span, metrics and the audit
/// record around it.
#[derive(Clone)]
pub struct S3Front {
    pub inner: s3s::service::S3Service,
    pub audit: AuditLog,
    /// The largest object or part, in bytes.
    pub max_object_size: u64,
    /// The region credential scopes must name.
    pub region: String,
}

/// A body announced larger than this request may carry, refused before
/// any of it is read.
fn oversized_body<B>(req: &Request<B>, max_object_size: u64) -> Option<Response<s3s::Body>> {
    let declared = declared_length(
        req.headers(),
        &["x-amz-decoded-content-length", "content-length"],
    );
    let limit = if req.method() == http::Method::PUT {
        max_object_size
    } else {
        NON_UPLOAD_BODY_LIMIT
    };
    if declared <= limit {
        return None;
    }
    let message = format!(
        "Your proposed upload of {declared} bytes exceeds the maximum allowed size of {limit} bytes."
    );
    let mut response = super::error::error_response(
        http::StatusCode::PAYLOAD_TOO_LARGE,
        &[("Code", "EntityTooLarge"), ("Message", &message)],
    );
    // The body that follows is not read, so this connection cannot carry
    // another request.
    response
        .headers_mut()
        .insert(http::header::CONNECTION, HeaderValue::from_static("close"));
    Some(response)
}

/// The access key a request claims (SigV4 header or presigned query), even
/// when its signature turns out wrong: failed attempts are audited too.
fn claimed_access_key<B>(req: &Request<B>) -> Option<String> {
    let from_header = req
        .headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split("Credential=").nth(1));
    // SigV4 presigned URLs carry `X-Amz-Credential`, SigV2 ones the bare
    // `AWSAccessKeyId`.
    let from_query = req.uri().query().and_then(|q| {
        q.split('&').find_map(|pair| {
            pair.strip_prefix("X-Amz-Credential=")
                .or_else(|| pair.strip_prefix("AWSAccessKeyId="))
        })
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

impl Service<Request<GuardedBody>> for S3Front {
    type Response = Response<s3s::Body>;
    type Error = Infallible;
    type Future =
        std::pin::Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn call(&self, mut req: Request<GuardedBody>) -> Self::Future {
        let inner = self.inner.clone();
        let audit = self.audit.clone();
        let max_object_size = self.max_object_size;
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
                let answer = match (wrong_region, oversized_body(&req, max_object_size)) {
                    (Some(refusal), _) | (None, Some(refusal)) => Ok(refusal),
                    (None, None) => inner.call(req.map(s3s::Body::http_body)).await,
                };
                let mut response = match answer {
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
                    target: None,
                    detail: None,
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
