//! Service-layer errors as JSON API errors, in one exhaustive match:
//! `{"error": {"code", "message", "request_id"}}` with the fitting status.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::core::CoreError;
use crate::model::PoolError;

tokio::task_local! {
    /// The id of the request being served, for error bodies and logs.
    pub static REQUEST_ID: String;
}

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// Seconds for a `Retry-After` header (429).
    pub retry_after: Option<u64>,
    /// The quota a refused write would have exceeded, and its use.
    pub quota: Option<QuotaDetail>,
}

/// The body of every error answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// A stable, machine-readable code such as `no_such_bucket`.
    pub code: String,
    pub message: String,
    /// Also in the `x-request-id` header and the audit log.
    pub request_id: String,
    /// With `quota_exceeded`: `user` or `bucket`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// With `quota_exceeded`: the bytes allowed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quota: Option<i64>,
    /// With `quota_exceeded`: the bytes stored now.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub used: Option<i64>,
}

/// The quota a write would have exceeded (413 `quota_exceeded`).
#[derive(Debug, Clone)]
pub struct QuotaDetail {
    pub scope: &'static str,
    pub quota: i64,
    pub used: i64,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            retry_after: None,
            quota: None,
        }
    }

    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "authenticate with HTTP Basic (name and password) or a Bearer session token",
        )
    }

    pub fn bad_field(field: &str, why: impl std::fmt::Display) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "invalid_field",
            format!("{field}: {why}"),
        )
    }
}

impl From<CoreError> for ApiError {
    fn from(e: CoreError) -> Self {
        use StatusCode as S;
        let message = match &e {
            CoreError::InvalidArgument(m) | CoreError::InvalidRequest(m) => m.clone(),
            other => other.to_string(),
        };
        let (status, code) = match e {
            CoreError::NoSuchBucket => (S::NOT_FOUND, "no_such_bucket"),
            CoreError::NoSuchKey => (S::NOT_FOUND, "no_such_key"),
            CoreError::NoSuchUpload => (S::NOT_FOUND, "no_such_upload"),
            CoreError::NoSuchUser => (S::NOT_FOUND, "no_such_user"),
            CoreError::NoSuchAccessKey => (S::NOT_FOUND, "no_such_access_key"),
            CoreError::BucketNotEmpty => (S::CONFLICT, "bucket_not_empty"),
            CoreError::BucketAlreadyOwnedByYou | CoreError::BucketAlreadyExists => {
                (S::CONFLICT, "bucket_exists")
            }
            CoreError::UserExists => (S::CONFLICT, "user_exists"),
            CoreError::UserOwnsBuckets => (S::CONFLICT, "user_owns_buckets"),
            CoreError::InvalidBucketName(_) => (S::BAD_REQUEST, "invalid_bucket_name"),
            CoreError::KeyTooLong => (S::BAD_REQUEST, "key_too_long"),
            CoreError::InvalidArgument(_) | CoreError::InvalidRequest(_) => {
                (S::BAD_REQUEST, "invalid_request")
            }
            CoreError::InvalidPart(_)
            | CoreError::InvalidPartOrder
            | CoreError::EntityTooSmall(_) => (S::BAD_REQUEST, "invalid_part"),
            CoreError::BadDigest(_) | CoreError::InvalidDigest(_) => (S::BAD_REQUEST, "bad_digest"),
            CoreError::IncompleteBody | CoreError::BodyRead(_) => {
                (S::BAD_REQUEST, "incomplete_body")
            }
            CoreError::PreconditionFailed => (S::PRECONDITION_FAILED, "precondition_failed"),
            CoreError::NotModified => (S::NOT_MODIFIED, "not_modified"),
            CoreError::InvalidRange => (S::RANGE_NOT_SATISFIABLE, "invalid_range"),
            CoreError::EntityTooLarge => (S::PAYLOAD_TOO_LARGE, "too_large"),
            CoreError::AccessDenied => (S::FORBIDDEN, "access_denied"),
            CoreError::AccountDisabled(_) => (S::FORBIDDEN, "account_disabled"),
            CoreError::BadLogin => (S::UNAUTHORIZED, "bad_login"),
            CoreError::BadSession => (S::UNAUTHORIZED, "bad_session"),
            CoreError::SignupDisabled => (S::FORBIDDEN, "signup_disabled"),
            CoreError::Pool(e) => match e {
                PoolError::NoSuchPool => (S::NOT_FOUND, "no_such_pool"),
                PoolError::NoSuchMember => (S::NOT_FOUND, "no_such_member"),
                PoolError::NoSuchGroup => (S::NOT_FOUND, "no_such_group"),
                PoolError::NoSuchContribution | PoolError::NoResultYet => {
                    (S::NOT_FOUND, "not_found")
                }
                PoolError::PoolExists(_)
                | PoolError::MemberExists(_)
                | PoolError::GroupNotOpen(_)
                | PoolError::GroupNotSealed(_)
                | PoolError::GroupNotFailed(_)
                | PoolError::LeaseNotHeld
                | PoolError::WebhookTaken => (S::CONFLICT, "conflict"),
            },
            CoreError::QuotaExceeded { scope, quota, used } => {
                let mut error = Self::new(S::PAYLOAD_TOO_LARGE, "quota_exceeded", message);
                error.quota = Some(QuotaDetail { scope, quota, used });
                return error;
            }
            CoreError::TooManyAttempts(secs) => {
                let mut error = Self::new(S::TOO_MANY_REQUESTS, "too_many_attempts", message);
                error.retry_after = Some(secs);
                return error;
            }
            CoreError::Busy(why) => {
                tracing::warn!(reason = why, "busy: refusing a request");
                let mut error = Self::new(S::SERVICE_UNAVAILABLE, "busy", message);
                error.retry_after = Some(1);
                return error;
            }
            CoreError::Unavailable(m) => {
                tracing::warn!(error = %m, "storage unavailable");
                return Self::new(
                    S::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "storage is unavailable; retry later",
                );
            }
            CoreError::Internal(m) => {
                tracing::error!(error = %m, "internal error");
                return Self::new(S::INTERNAL_SERVER_ERROR, "internal", "internal error");
            }
        };
        Self::new(status, code, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let request_id = REQUEST_ID.try_with(Clone::clone).unwrap_or_default();
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code.to_owned(),
                message: self.message,
                request_id,
                scope: self.quota.as_ref().map(|q| q.scope.to_owned()),
                quota: self.quota.as_ref().map(|q| q.quota),
                used: self.quota.as_ref().map(|q| q.used),
            },
        };
        let mut response = (self.status, Json(body)).into_response();
        if let Some(secs) = self.retry_after
            && let Ok(value) = axum::http::HeaderValue::from_str(&secs.to_string())
        {
            response.headers_mut().insert("retry-after", value);
        }
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                "www-authenticate",
                axum::http::HeaderValue::from_static("Basic realm=\"cistern\""),
            );
        }
        response
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn busy_is_a_503_to_retry_at_once() {
        let error = ApiError::from(CoreError::Busy("no free database connection"));
        assert_eq!(error.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(error.code, "busy");
        assert_eq!(error.retry_after, Some(1));
    }

    #[test]
    fn pool_errors_keep_their_status_code_and_text() {
        use crate::model::GroupState;
        let cases = [
            (PoolError::NoSuchPool, 404, "no_such_pool", "no such pool"),
            (
                PoolError::NoSuchMember,
                404,
                "no_such_member",
                "no such member",
            ),
            (
                PoolError::NoSuchGroup,
                404,
                "no_such_group",
                "no such group",
            ),
            (
                PoolError::NoSuchContribution,
                404,
                "not_found",
                "no such contribution",
            ),
            (PoolError::NoResultYet, 404, "not_found", "no such result"),
            (
                PoolError::MemberExists("cam".into()),
                409,
                "conflict",
                "a member named \"cam\" exists",
            ),
            (
                PoolError::GroupNotSealed(GroupState::Open),
                409,
                "conflict",
                "only a sealed group can be claimed; this one is open",
            ),
        ];
        for (pool_error, status, code, message) in cases {
            let error = ApiError::from(CoreError::from(pool_error));
            assert_eq!(error.status.as_u16(), status, "{code}");
            assert_eq!(error.code, code);
            assert_eq!(error.message, message);
        }
    }
}
