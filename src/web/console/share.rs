//! Share links made in the console: `/share/{bucket}/{key}?by=&expires=&sig=`
//! on the web port, signed with the owner's share-link key for the bucket
//! (read-only, that bucket only; revoking it ends its links). Anyone may
//! open one without an account; an expired or altered link gets a page
//! that says so instead of an XML error.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::pages::{Chrome, render};
use crate::core::accounts::Access;
use crate::core::presign::{share_signature, share_signature_matches};
use crate::core::{CoreResult, Principal};
use crate::web::WebState;

pub struct Link {
    pub url: String,
    pub expires_ms: i64,
}

/// A link to `bucket/key` that works for `lifetime_secs`.
pub async fn make_link(
    state: &WebState,
    who: &Principal,
    bucket: &str,
    key: &str,
    lifetime_secs: u64,
    base: &str,
) -> CoreResult<Link> {
    state
        .store
        .authorize(Some(who), bucket, Access::Read)
        .await?;
    state.store.head_object(bucket, key).await?;
    let (access_key, secret) = state.store.share_key(who, bucket).await?;
    let expires = crate::core::now_ms() / 1000 + lifetime_secs as i64;
    let signature = share_signature(&secret, bucket, key, expires);
    Ok(Link {
        url: if super::browser::needs_query(key) {
            let key = super::browser::in_query(key);
            format!(
                "{base}/share/{bucket}?key={key}&by={access_key}&expires={expires}&sig={signature}"
            )
        } else {
            format!(
                "{base}/share/{bucket}/{}?by={access_key}&expires={expires}&sig={signature}",
                super::browser::key_in_path(key)
            )
        },
        expires_ms: expires * 1000,
    })
}

#[derive(Deserialize)]
pub struct LinkQuery {
    /// The key, for keys that cannot be in a path (`/share/{bucket}?key=`).
    key: Option<String>,
    #[serde(default)]
    by: String,
    #[serde(default)]
    expires: i64,
    #[serde(default)]
    sig: String,
}

#[derive(Template)]
#[template(path = "console/share_refused.html")]
struct RefusedPage {
    chrome: Chrome,
    heading: &'static str,
    message: &'static str,
}

fn refused(status: StatusCode, heading: &'static str, message: &'static str) -> Response {
    let mut response = render(RefusedPage {
        chrome: Chrome::anonymous(heading, None),
        heading,
        message,
    });
    *response.status_mut() = status;
    response
}

fn not_valid() -> Response {
    refused(
        StatusCode::FORBIDDEN,
        "This link is not valid",
        "The link is incomplete or has been changed. Ask the person who sent it for a new one.",
    )
}

/// `GET /share/{bucket}/{*key}`: the file, or a page saying why not.
pub async fn open(
    State(state): State<WebState>,
    Path((bucket, key)): Path<(String, String)>,
    Query(link): Query<LinkQuery>,
    method: Method,
    headers: HeaderMap,
) -> Response {
    serve_link(&state, bucket, key, link, &method, &headers).await
}

/// `GET /share/{bucket}?key=`: the same, for keys that cannot be in a path.
pub async fn open_by_query(
    State(state): State<WebState>,
    Path(bucket): Path<String>,
    Query(mut link): Query<LinkQuery>,
    method: Method,
    headers: HeaderMap,
) -> Response {
    let Some(key) = link.key.take() else {
        return not_valid();
    };
    serve_link(&state, bucket, key, link, &method, &headers).await
}

async fn serve_link(
    state: &WebState,
    bucket: String,
    key: String,
    link: LinkQuery,
    method: &Method,
    headers: &HeaderMap,
) -> Response {
    let (principal, secret) = match state.store.credentials(&link.by).await {
        Ok(Some(found)) => found,
        Ok(None) => return not_valid(),
        Err(_) => {
            return refused(
                StatusCode::SERVICE_UNAVAILABLE,
                "This link cannot be checked right now",
                "The service is briefly unavailable. Try the link again in a minute.",
            );
        }
    };
    if !share_signature_matches(&secret, &bucket, &key, link.expires, &link.sig) {
        return not_valid();
    }
    if link.expires * 1000 < crate::core::now_ms() {
        return refused(
            StatusCode::GONE,
            "This link has expired",
            "Share links work for a limited time. Ask the person who sent it for a new one.",
        );
    }
    if state
        .store
        .authorize(Some(&principal), &bucket, Access::Read)
        .await
        .is_err()
    {
        return not_valid();
    }
    match crate::web::api::objects::serve_object(state, &bucket, &key, method, headers).await {
        Ok(response) => response,
        Err(e) if e.status == StatusCode::NOT_FOUND => refused(
            StatusCode::NOT_FOUND,
            "This file is gone",
            "The file was deleted or renamed after the link was made.",
        ),
        Err(e) => e.into_response(),
    }
}
