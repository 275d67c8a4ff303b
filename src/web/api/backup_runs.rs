//! `/api/v1/backup-runs`: the action log of the backup commands. A run
//! reports its start and its end (`POST`); each report becomes an audit
//! record of the `backup.*` family (`backup.run`, `backup.restore`,
//! `backup.forget`, `backup.mirror`) carrying the run's figures, so runs
//! show in the person's history beside everything else they did. `GET`
//! lists the caller's runs, newest first, one entry per run. These two
//! routes, and no other, also take an S3 access key and secret as HTTP
//! Basic: that pair is all the backup commands hold.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};

use super::error::{ApiError, ApiResult};
use super::{ApiActor, JsonBody, KeyCaller, QueryArgs};
use crate::model::BackupRunReport as RunReport;
use crate::web::WebState;

#[derive(Serialize, utoipa::ToSchema)]
pub struct RunList {
    pub runs: Vec<serde_json::Value>,
}

#[derive(Deserialize, Default, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct RunQuery {
    /// At most this many runs, 1 to 1000 (default 50).
    pub limit: Option<usize>,
}

fn action_of(kind: &str) -> Option<&'static str> {
    Some(match kind {
        "backup" => "backup.run",
        "restore" => "backup.restore",
        "forget" => "backup.forget",
        "mirror" => "backup.mirror",
        _ => return None,
    })
}

fn checked(report: &RunReport) -> ApiResult<&'static str> {
    let action = action_of(&report.kind)
        .ok_or_else(|| ApiError::bad_field("kind", "must be backup, restore, forget or mirror"))?;
    if !matches!(report.phase.as_str(), "started" | "finished") {
        return Err(ApiError::bad_field("phase", "must be started or finished"));
    }
    let id_ok = (1..=64).contains(&report.run.len())
        && report
            .run
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-');
    if !id_ok {
        return Err(ApiError::bad_field(
            "run",
            "must be 1 to 64 letters, digits or dashes",
        ));
    }
    if let Some(status) = &report.status
        && !matches!(status.as_str(), "complete" | "partial" | "failed")
    {
        return Err(ApiError::bad_field(
            "status",
            "must be complete, partial or failed",
        ));
    }
    let fields = [
        ("host", report.host.as_str(), 255),
        ("source", &report.source, 4096),
        ("destination", &report.destination, 4096),
        ("started_at", &report.started_at, 64),
        (
            "ended_at",
            report.ended_at.as_deref().unwrap_or_default(),
            64,
        ),
        (
            "snapshot",
            report.snapshot.as_deref().unwrap_or_default(),
            64,
        ),
    ];
    for (name, value, most) in fields {
        if value.len() > most {
            return Err(ApiError::bad_field(
                name,
                format!("may be at most {most} bytes"),
            ));
        }
    }
    if report.error_lines.len() > 20 || report.error_lines.iter().any(|l| l.len() > 2000) {
        return Err(ApiError::bad_field(
            "error_lines",
            "at most 20 lines of at most 2000 bytes",
        ));
    }
    Ok(action)
}

#[utoipa::path(post, path = "/api/v1/backup-runs", tag = "backup", request_body = RunReport, responses((status = 204, description = "Recorded in the audit log as backup.run, backup.restore, backup.forget or backup.mirror")))]
pub async fn report(
    KeyCaller(_who): KeyCaller,
    actor: Option<axum::Extension<ApiActor>>,
    JsonBody(report): JsonBody<RunReport>,
) -> ApiResult<StatusCode> {
    let action = checked(&report)?;
    // The record names no bucket: where the run went is the client's word,
    // kept in the detail, not a bucket whose usage it may count against.
    if let Some(axum::Extension(actor)) = actor {
        actor.report(
            action.to_owned(),
            format!("backup:{}", report.run),
            serde_json::to_string(&report).unwrap_or_default(),
        );
    }
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/api/v1/backup-runs", tag = "backup", params(RunQuery), responses((status = 200, description = "The caller's runs, newest first; each the latest report of its run", body = RunList)))]
pub async fn list(
    State(state): State<WebState>,
    KeyCaller(who): KeyCaller,
    QueryArgs(query): QueryArgs<RunQuery>,
) -> ApiResult<Json<RunList>> {
    let limit = query.limit.unwrap_or(50);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::bad_field("limit", "must be 1 to 1000"));
    }
    let records = state.store.backup_runs(&who, limit).await?;
    let runs = records
        .into_iter()
        .filter_map(|r| r.detail.and_then(|d| serde_json::from_str(&d).ok()))
        .collect();
    Ok(Json(RunList { runs }))
}
