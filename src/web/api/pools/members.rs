//! `/api/v1/pools/{pool}/members`: the owner adds members (one, or many
//! with a name prefix, answered as JSON or CSV with their tokens), lists
//! them with their contribution counts, disables, enables, re-keys and
//! removes them.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::PoolCaller;
use crate::core::pool_access::PoolIntent;
use crate::web::WebState;
use crate::web::api::error::{ApiError, ApiResult};
use crate::web::api::{JsonBody, QueryArgs};

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewMembers {
    /// One member by name; or give `count` and `prefix` instead.
    pub name: Option<String>,
    /// `contributor`, `listener` or `processor`.
    pub role: String,
    /// Members `<prefix>1` to `<prefix><count>` (at most 10000).
    pub count: Option<usize>,
    pub prefix: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct MemberToken {
    pub name: String,
    pub role: String,
    /// Shown only in this answer; send as `Authorization: Bearer <token>`.
    pub token: String,
}

#[derive(Deserialize, Default, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct TokenFormat {
    /// `json` (default) or `csv` (name,role,token).
    pub format: Option<String>,
}

#[utoipa::path(post, path = "/api/v1/pools/{pool}/members", tag = "pools", params(("pool" = String, Path, description = "Pool name", example = "sky"), TokenFormat), request_body = NewMembers, responses((status = 201, description = "The new members with their tokens", body = Vec<MemberToken>)))]
pub async fn add_members(
    State(state): State<WebState>,
    caller: PoolCaller,
    Path(pool): Path<String>,
    QueryArgs(format): QueryArgs<TokenFormat>,
    JsonBody(body): JsonBody<NewMembers>,
) -> ApiResult<Response> {
    let pool = caller.pool(&state, &pool, PoolIntent::Manage).await?;
    let names: Vec<String> = match (body.name, body.count, body.prefix) {
        (Some(name), None, None) => vec![name],
        (None, Some(count), Some(prefix)) => {
            if !(1..=10_000).contains(&count) {
                return Err(ApiError::bad_field("count", "1 to 10000"));
            }
            let width = count.to_string().len();
            (1..=count)
                .map(|i| format!("{prefix}{i:0width$}"))
                .collect()
        }
        _ => {
            return Err(ApiError::bad_field(
                "name",
                "give either a name, or a count and a prefix",
            ));
        }
    };
    let created = state
        .store
        .add_members(
            &pool,
            names.into_iter().map(|n| (n, body.role.clone())).collect(),
        )
        .await?;
    let tokens: Vec<MemberToken> = created
        .into_iter()
        .map(|(m, token)| MemberToken {
            name: m.name,
            role: m.role.to_string(),
            token,
        })
        .collect();
    match format.format.as_deref() {
        None | Some("json") => Ok((StatusCode::CREATED, Json(tokens)).into_response()),
        Some("csv") => {
            let mut csv = String::from("name,role,token\n");
            for t in &tokens {
                csv.push_str(&format!("{},{},{}\n", t.name, t.role, t.token));
            }
            Ok((
                StatusCode::CREATED,
                [(header::CONTENT_TYPE, "text/csv; charset=utf-8")],
                csv,
            )
                .into_response())
        }
        Some(other) => Err(ApiError::bad_field(
            "format",
            format!("'json' or 'csv', not {other:?}"),
        )),
    }
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct MemberView {
    pub name: String,
    pub role: String,
    pub created_ms: i64,
    pub disabled: bool,
    pub contributions: i64,
}

#[utoipa::path(get, path = "/api/v1/pools/{pool}/members", tag = "pools", params(("pool" = String, Path, description = "Pool name", example = "sky")), responses((status = 200, description = "Members with their contribution counts (owner)", body = Vec<MemberView>)))]
pub async fn members(
    State(state): State<WebState>,
    caller: PoolCaller,
    Path(pool): Path<String>,
) -> ApiResult<Json<Vec<MemberView>>> {
    let pool = caller.pool(&state, &pool, PoolIntent::Manage).await?;
    let members = state.store.members_with_counts(&pool).await?;
    Ok(Json(
        members
            .into_iter()
            .map(|(m, contributions)| MemberView {
                contributions,
                name: m.name,
                role: m.role.to_string(),
                created_ms: m.created_ms,
                disabled: m.disabled_ms.is_some(),
            })
            .collect(),
    ))
}

/// `disable`, `enable`, `rekey` on one member.
#[utoipa::path(post, path = "/api/v1/pools/{pool}/members/{member}/{action}", tag = "pools", params(("pool" = String, Path, description = "Pool name", example = "sky"), ("member" = String, Path, description = "Member name", example = "cam-1"), ("action" = String, Path, description = "disable, enable or rekey")), responses((status = 200, description = "rekey: the new token (the old one stops working)", body = MemberToken), (status = 204, description = "disable, enable: done")))]
pub async fn member_action(
    State(state): State<WebState>,
    caller: PoolCaller,
    Path((pool, member, action)): Path<(String, String, String)>,
) -> ApiResult<Response> {
    let pool = caller.pool(&state, &pool, PoolIntent::Manage).await?;
    match action.as_str() {
        "disable" | "enable" => {
            state
                .store
                .set_member_disabled(&pool, &member, action == "disable")
                .await?;
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        "rekey" => {
            let token = state.store.rekey_member(&pool, &member).await?;
            let role = state
                .store
                .pool_member(&token)
                .await
                .map(|(m, _)| m.role.to_string())
                .unwrap_or_default();
            Ok(Json(MemberToken {
                name: member,
                role,
                token,
            })
            .into_response())
        }
        other => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no member action {other:?} (disable, enable, rekey)"),
        )),
    }
}

#[utoipa::path(delete, path = "/api/v1/pools/{pool}/members/{member}", tag = "pools", params(("pool" = String, Path, description = "Pool name", example = "sky"), ("member" = String, Path, description = "Member name", example = "cam-1")), responses((status = 204, description = "Removed; its contributions stay")))]
pub async fn remove_member(
    State(state): State<WebState>,
    caller: PoolCaller,
    Path((pool, member)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let pool = caller.pool(&state, &pool, PoolIntent::Manage).await?;
    state.store.remove_member(&pool, &member).await?;
    Ok(StatusCode::NO_CONTENT)
}
