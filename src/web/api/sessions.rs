//! `/api/v1/auth/login`, `/logout` and `/signup`.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::{Deserialize, Serialize};

use super::accounts::UserView;
use super::error::ApiResult;
use super::{ApiActor, Caller, JsonBody, peer_ip};
use crate::core::CoreError;
use crate::web::WebState;

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Credentials {
    pub name: String,
    pub password: String,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct SessionView {
    /// Send as `Authorization: Bearer <token>`.
    pub token: String,
    pub expires_ms: i64,
}

#[utoipa::path(post, path = "/api/v1/auth/login", tag = "sessions", request_body = Credentials, responses((status = 200, description = "A session", body = SessionView)))]
pub async fn login(
    State(state): State<WebState>,
    parts: Parts,
    JsonBody(body): JsonBody<Credentials>,
) -> ApiResult<Json<SessionView>> {
    ApiActor::set(&parts, None, Some(&body.name));
    let who = state
        .store
        .login_from(&body.name, &body.password, peer_ip(&parts))
        .await?;
    ApiActor::set(&parts, Some(&who), None);
    let session = state
        .store
        .open_session(&who, state.api.session_ttl)
        .await?;
    Ok(Json(SessionView {
        token: session.token,
        expires_ms: session.expires_ms,
    }))
}

#[utoipa::path(post, path = "/api/v1/auth/logout", tag = "sessions", responses((status = 204, description = "The session token is revoked")))]
pub async fn logout(State(state): State<WebState>, Caller(who): Caller) -> ApiResult<StatusCode> {
    state.store.close_session(&who).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/api/v1/auth/signup", tag = "sessions", request_body = Credentials, responses((status = 201, description = "Created, when the server allows sign-up", body = UserView)))]
pub async fn signup(
    State(state): State<WebState>,
    JsonBody(body): JsonBody<Credentials>,
) -> ApiResult<(StatusCode, Json<UserView>)> {
    if !state.api.allow_signup {
        return Err(CoreError::SignupDisabled.into());
    }
    let account = state
        .store
        .create_user(&body.name, &body.password, "user")
        .await?;
    Ok((StatusCode::CREATED, Json(account.into())))
}
