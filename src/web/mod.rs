//! The web port: liveness and readiness probes, build version, Prometheus
//! metrics (for admins or a scrape token unless made public), and the JSON
//! API ([`api`]).

pub mod api;
mod console;
pub mod cookie;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use metrics_exporter_prometheus::PrometheusHandle;
use serde_json::json;

use crate::core::Store;

#[derive(Clone)]
pub struct WebState {
    pub store: Store,
    pub metrics: PrometheusHandle,
    pub audit: crate::core::audit::AuditLog,
    pub api: ApiSettings,
    /// Cancelled when the server stops, which ends open event streams.
    pub stopping: tokio_util::sync::CancellationToken,
}

/// Settings of the JSON API.
#[derive(Debug, Clone)]
pub struct ApiSettings {
    /// Whether anyone may create an account with `POST /api/v1/auth/signup`.
    pub allow_signup: bool,
    /// How long a login session lasts.
    pub session_ttl: std::time::Duration,
    /// The S3 port's URL as clients reach it, for share links.
    pub s3_public_url: String,
    /// The region share links are signed for.
    pub region: String,
    /// The web port's URL as people reach it, when set (console links).
    pub public_url: Option<String>,
    /// The largest object upload, in bytes (a body announced larger is
    /// refused before it is read).
    pub max_object_size: u64,
    /// Who may read `/metrics`.
    pub metrics_access: MetricsAccess,
}

/// Who may read `/metrics`: bucket names and sizes are not for everyone.
#[derive(Clone)]
pub enum MetricsAccess {
    /// Admins, with their own credentials.
    AdminsOnly,
    /// Admins, or a scraper with this bearer token.
    Token(String),
    /// Anyone.
    Public,
}

impl std::fmt::Debug for MetricsAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::AdminsOnly => "AdminsOnly",
            Self::Token(_) => "Token(<hidden>)",
            Self::Public => "Public",
        })
    }
}

pub fn router(state: WebState) -> Router {
    Router::new()
        .route("/health/live", get(live))
        .route("/health/ready", get(ready))
        .route("/version", get(version))
        .route("/metrics", get(metrics_text))
        .merge(api::router(state.clone()))
        .merge(console::router(state.clone()))
        .fallback(no_such_route)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
}

/// Unknown paths get the JSON API's error shape, not an empty 404.
async fn no_such_route(uri: axum::http::Uri) -> Response {
    api::error::ApiError::new(
        StatusCode::NOT_FOUND,
        "no_such_route",
        format!(
            "nothing is served at {}; the JSON API is under /api/v1 (its document: /api/v1/openapi.json)",
            uri.path()
        ),
    )
    .into_response()
}

/// A known path with the wrong method; axum adds the `Allow` header.
async fn method_not_allowed(method: axum::http::Method, uri: axum::http::Uri) -> Response {
    api::error::ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!(
            "{} does not accept {method}; the Allow header lists what it does accept",
            uri.path()
        ),
    )
    .into_response()
}

async fn live() -> impl IntoResponse {
    axum::Json(json!({"status": "ok"}))
}

/// How long readiness waits for each store: a probe must answer in time
/// even when the database has no free connection.
const PROBE_WAIT: std::time::Duration = std::time::Duration::from_millis(1500);

/// Ready when both the metadata store and the blob store answer.
async fn ready(State(state): State<WebState>) -> Response {
    let timed_out = || "no answer in time".to_owned();
    let (meta, blobs) = tokio::join!(
        tokio::time::timeout(PROBE_WAIT, state.store.check_metadata()),
        tokio::time::timeout(PROBE_WAIT, state.store.check_blobs()),
    );
    let meta = meta
        .map_err(|_| timed_out())
        .and_then(|r| r.map_err(|e| e.to_string()));
    let blobs = blobs
        .map_err(|_| timed_out())
        .and_then(|r| r.map_err(|e| e.to_string()));
    let verdict = |ok: bool| if ok { "ok" } else { "unavailable" };
    let body = json!({
        "status": verdict(meta.is_ok() && blobs.is_ok()),
        "metadata": verdict(meta.is_ok()),
        "blobs": verdict(blobs.is_ok()),
    });
    if let Err(e) = &meta {
        tracing::warn!(error = %e, "readiness: metadata store unavailable");
    }
    if let Err(e) = &blobs {
        tracing::warn!(error = %e, "readiness: blob store unavailable");
    }
    let status = if meta.is_ok() && blobs.is_ok() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, axum::Json(body)).into_response()
}

async fn version() -> impl IntoResponse {
    axum::Json(json!({
        "name": "cistern",
        "version": env!("CARGO_PKG_VERSION"),
        "commit": env!("CISTERN_GIT_COMMIT"),
    }))
}

async fn metrics_text(State(state): State<WebState>, request: axum::extract::Request) -> Response {
    let (mut parts, _) = request.into_parts();
    if let Err(refusal) = api::may_read_metrics(&mut parts, &state).await {
        return refusal.into_response();
    }
    match state.store.list_buckets().await {
        Ok(buckets) => {
            for bucket in buckets {
                let name = bucket.name;
                metrics::gauge!("cistern_bucket_objects", "bucket" => name.clone())
                    .set(bucket.object_count as f64);
                metrics::gauge!("cistern_bucket_bytes", "bucket" => name)
                    .set(bucket.bytes_stored as f64);
            }
        }
        Err(e) => tracing::warn!(error = %e, "could not read bucket figures for metrics"),
    }
    match state.store.stored_totals().await {
        Ok(totals) => {
            metrics::gauge!("cistern_objects_stored").set(totals.objects as f64);
            metrics::gauge!("cistern_bytes_stored").set(totals.bytes as f64);
        }
        Err(e) => tracing::warn!(error = %e, "could not read stored totals for metrics"),
    }
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
        .into_response()
}
