//! `/api/v1/auth/me`, `/api/v1/users` (admins) and `/api/v1/keys`.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};

use super::error::{ApiError, ApiResult};
use super::{Caller, JsonBody, QueryArgs, require_admin};
use crate::model::{AccountRecord, KeyRecord, Role};
use crate::web::WebState;

#[derive(Serialize, utoipa::ToSchema)]
pub struct UserView {
    pub name: String,
    #[schema(value_type = String, example = "user")]
    pub role: Role,
    pub created_ms: i64,
    pub disabled: bool,
}

impl From<AccountRecord> for UserView {
    fn from(a: AccountRecord) -> Self {
        Self {
            name: a.name,
            role: a.role,
            created_ms: a.created_ms,
            disabled: a.disabled_ms.is_some(),
        }
    }
}

#[utoipa::path(get, path = "/api/v1/auth/me", tag = "accounts", responses((status = 200, description = "The caller", body = UserView)))]
pub async fn me(State(state): State<WebState>, Caller(who): Caller) -> ApiResult<Json<UserView>> {
    Ok(Json(state.store.account(&who.name).await?.into()))
}

#[utoipa::path(get, path = "/api/v1/users", tag = "accounts", responses((status = 200, description = "Every user (admins only)", body = Vec<UserView>)))]
pub async fn list_users(
    State(state): State<WebState>,
    Caller(who): Caller,
) -> ApiResult<Json<Vec<UserView>>> {
    require_admin(&who)?;
    let users = state.store.accounts().await?;
    Ok(Json(users.into_iter().map(UserView::from).collect()))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    pub name: String,
    pub password: String,
    #[serde(default = "default_role")]
    pub role: String,
}

fn default_role() -> String {
    "user".to_owned()
}

#[utoipa::path(post, path = "/api/v1/users", tag = "accounts", request_body = NewUser, responses((status = 201, description = "Created (admins only)", body = UserView)))]
pub async fn create_user(
    State(state): State<WebState>,
    Caller(who): Caller,
    JsonBody(body): JsonBody<NewUser>,
) -> ApiResult<(StatusCode, Json<UserView>)> {
    require_admin(&who)?;
    let account = state
        .store
        .create_user(&body.name, &body.password, &body.role)
        .await?;
    Ok((StatusCode::CREATED, Json(account.into())))
}

#[derive(Deserialize, Default, utoipa::IntoParams)]
pub struct DeleteOptions {
    /// Delete the user's buckets and everything in them too.
    #[serde(default)]
    pub purge: bool,
}

#[utoipa::path(delete, path = "/api/v1/users/{name}", tag = "accounts", params(("name" = String, Path, description = "User name", example = "alice"), DeleteOptions), responses((status = 204, description = "Deleted")))]
/// Refuses (409) a user who still owns buckets unless `?purge=true`.
pub async fn delete_user(
    State(state): State<WebState>,
    Caller(who): Caller,
    Path(name): Path<String>,
    QueryArgs(options): QueryArgs<DeleteOptions>,
) -> ApiResult<StatusCode> {
    require_admin(&who)?;
    state.store.remove_user(&name, options.purge).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/api/v1/users/{name}/disable", tag = "accounts", params(("name" = String, Path, description = "User name", example = "alice")), responses((status = 204, description = "Disabled; the user's keys and sessions stop working")))]
pub async fn disable_user(
    State(state): State<WebState>,
    Caller(who): Caller,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    require_admin(&who)?;
    state.store.set_disabled(&name, true).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/api/v1/users/{name}/enable", tag = "accounts", params(("name" = String, Path, description = "User name", example = "alice")), responses((status = 204, description = "Enabled")))]
pub async fn enable_user(
    State(state): State<WebState>,
    Caller(who): Caller,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    require_admin(&who)?;
    state.store.set_disabled(&name, false).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewPassword {
    pub password: String,
}

#[utoipa::path(put, path = "/api/v1/users/{name}/password", tag = "accounts", params(("name" = String, Path, description = "User name", example = "alice")), request_body = NewPassword, responses((status = 204, description = "Changed; the user's other sessions end")))]
/// Users change their own password; admins anyone's.
pub async fn set_password(
    State(state): State<WebState>,
    Caller(who): Caller,
    Path(name): Path<String>,
    JsonBody(body): JsonBody<NewPassword>,
) -> ApiResult<StatusCode> {
    if who.name != name {
        require_admin(&who)?;
    }
    state.store.set_password(&name, &body.password).await?;
    // Every other session of that user ends; the caller's own stays.
    let account = state.store.account(&name).await?;
    state
        .store
        .revoke_other_sessions(&account.id, who.session.as_deref())
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct KeyView {
    pub access_key: String,
    pub created_ms: i64,
    pub read_only: bool,
    pub buckets: Option<Vec<String>>,
    /// Made by the server to sign share links of its bucket; revoking it
    /// ends every link it signed.
    pub for_share_links: bool,
    /// Present only in the answer that creates the key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret_key: Option<String>,
}

impl KeyView {
    fn new(key: KeyRecord, secret_key: Option<String>) -> Self {
        Self {
            access_key: key.access_key,
            created_ms: key.created_ms,
            read_only: key.read_only,
            buckets: key.buckets,
            for_share_links: key.for_share_links,
            secret_key,
        }
    }
}

#[derive(Deserialize, utoipa::IntoParams)]
pub struct KeyOwner {
    /// Admins may manage another user's keys.
    pub user: Option<String>,
}

async fn key_owner_id(
    state: &WebState,
    who: &crate::core::Principal,
    user: Option<&str>,
) -> ApiResult<String> {
    match user {
        Some(name) if name != who.name => {
            require_admin(who)?;
            Ok(state.store.account(name).await?.id)
        }
        _ => Ok(who.user_id.clone()),
    }
}

#[utoipa::path(get, path = "/api/v1/keys", tag = "keys", params(KeyOwner), responses((status = 200, description = "Access keys (no secrets)", body = Vec<KeyView>)))]
pub async fn list_keys(
    State(state): State<WebState>,
    Caller(who): Caller,
    QueryArgs(owner): QueryArgs<KeyOwner>,
) -> ApiResult<Json<Vec<KeyView>>> {
    let user_id = key_owner_id(&state, &who, owner.user.as_deref()).await?;
    let keys = state.store.keys_of(&user_id).await?;
    Ok(Json(
        keys.into_iter().map(|k| KeyView::new(k, None)).collect(),
    ))
}

#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewKey {
    #[serde(default)]
    pub read_only: bool,
    pub buckets: Option<Vec<String>>,
    pub user: Option<String>,
}

#[utoipa::path(post, path = "/api/v1/keys", tag = "keys", request_body = NewKey, responses((status = 201, description = "The key, with its secret shown this once", body = KeyView)))]
pub async fn create_key(
    State(state): State<WebState>,
    Caller(who): Caller,
    JsonBody(body): JsonBody<NewKey>,
) -> ApiResult<(StatusCode, Json<KeyView>)> {
    let user_id = key_owner_id(&state, &who, body.user.as_deref()).await?;
    if let Some(buckets) = &body.buckets
        && buckets.is_empty()
    {
        return Err(ApiError::bad_field(
            "buckets",
            "list at least one bucket, or leave it out",
        ));
    }
    let (key, secret) = state
        .store
        .create_key(&user_id, body.read_only, body.buckets)
        .await?;
    Ok((StatusCode::CREATED, Json(KeyView::new(key, Some(secret)))))
}

#[utoipa::path(delete, path = "/api/v1/keys/{key}", tag = "keys", params(("key" = String, Path, description = "Access key id"), KeyOwner), responses((status = 204, description = "Revoked")))]
pub async fn revoke_key(
    State(state): State<WebState>,
    Caller(who): Caller,
    Path(key): Path<String>,
    QueryArgs(owner): QueryArgs<KeyOwner>,
) -> ApiResult<StatusCode> {
    let user_id = key_owner_id(&state, &who, owner.user.as_deref()).await?;
    state.store.revoke_key(&user_id, &key).await?;
    Ok(StatusCode::NO_CONTENT)
}
