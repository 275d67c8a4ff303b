//! The web port: liveness and readiness probes, build version, Prometheus
//! metrics, and the JSON API ([`api`]).

pub mod api;

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
}

pub fn router(state: WebState) -> Router {
    Router::new()
        .route("/health/live", get(live))
        .route("/health/ready", get(ready))
        .route("/version", get(version))
        .route("/metrics", get(metrics_text))
        .merge(api::router(state.clone()))
        .with_state(state)
}

async fn live() -> impl IntoResponse {
    axum::Json(json!({"status": "ok"}))
}

/// Ready when both the metadata store and the blob store answer.
async fn ready(State(state): State<WebState>) -> Response {
    let meta = state.store.meta().ping().await;
    let blobs = state.store.blobs().check().await;
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

async fn metrics_text(State(state): State<WebState>) -> Response {
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
    match state.store.meta().stored_totals().await {
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
