//! The access keys page: a person's keys (what each may do, and where),
//! revoking one, and creating one, whose secret is shown once with
//! settings ready to paste into aws-cli and rclone.

use askama::Template;
use axum::extract::State;
use axum::response::Response;

use super::pages::{Chrome, render};
use super::session::{ConsoleError, CsrfForm, Visitor, done, refused};
use super::words;
use crate::web::WebState;

pub struct KeyRow {
    access_key: String,
    read_only: bool,
    for_share_links: bool,
    buckets: String,
    created: String,
}

pub struct CreatedKey {
    access_key: String,
    secret: String,
    aws_snippet: String,
    rclone_snippet: String,
}

#[derive(Template)]
#[template(path = "console/keys.html")]
struct KeysPage {
    chrome: Chrome,
    keys: Vec<KeyRow>,
    buckets: Vec<String>,
    created: Option<CreatedKey>,
}

async fn keys_page(
    state: &WebState,
    visitor: &Visitor,
    created: Option<CreatedKey>,
) -> Result<Response, ConsoleError> {
    let who = &visitor.principal;
    let keys = state
        .store
        .keys_of(&who.user_id)
        .await?
        .into_iter()
        .map(|k| KeyRow {
            buckets: k
                .buckets
                .map_or_else(|| "all yours".to_owned(), |b| b.join(", ")),
            created: words::time(k.created_ms),
            read_only: k.read_only,
            for_share_links: k.for_share_links,
            access_key: k.access_key,
        })
        .collect();
    let buckets = state
        .store
        .visible_buckets(who)
        .await?
        .into_iter()
        .map(|b| b.name)
        .collect();
    Ok(render(KeysPage {
        chrome: Chrome::for_visitor(visitor, "Access keys", "keys"),
        keys,
        buckets,
        created,
    }))
}

/// `GET /ui/keys`.
pub async fn list(
    State(state): State<WebState>,
    visitor: Visitor,
) -> Result<Response, ConsoleError> {
    keys_page(&state, &visitor, None).await
}

/// `POST /ui/keys`: answered with the page itself (not a redirect), as the
/// secret must not travel in a URL or a cookie.
pub async fn create(
    State(state): State<WebState>,
    visitor: Visitor,
    CsrfForm(fields): CsrfForm,
) -> Result<Response, ConsoleError> {
    let read_only = fields.text("read_only") == "yes";
    let chosen: Vec<String> = fields
        .all("bucket")
        .into_iter()
        .map(str::to_owned)
        .collect();
    let buckets = (!chosen.is_empty()).then_some(chosen);
    let (key, secret) = match state
        .store
        .create_key(&visitor.principal.user_id, read_only, buckets)
        .await
    {
        Ok(made) => made,
        Err(e) => return Ok(refused("/ui/keys", e)),
    };
    let endpoint = &state.api.s3_public_url;
    let region = &state.api.region;
    let created = CreatedKey {
        aws_snippet: format!(
            "export AWS_ACCESS_KEY_ID={}\nexport AWS_SECRET_ACCESS_KEY={secret}\nexport AWS_DEFAULT_REGION={region}\nexport AWS_ENDPOINT_URL={endpoint}\naws s3 ls",
            key.access_key
        ),
        rclone_snippet: format!(
            "[cistern]\ntype = s3\nprovider = Other\naccess_key_id = {}\nsecret_access_key = {secret}\nendpoint = {endpoint}\nregion = {region}",
            key.access_key
        ),
        access_key: key.access_key,
        secret,
    };
    keys_page(&state, &visitor, Some(created)).await
}

/// `POST /ui/keys/revoke`.
pub async fn revoke(
    State(state): State<WebState>,
    visitor: Visitor,
    CsrfForm(fields): CsrfForm,
) -> Result<Response, ConsoleError> {
    let key = fields.text("key");
    match state
        .store
        .revoke_key(&visitor.principal.user_id, key)
        .await
    {
        Ok(()) => Ok(done("/ui/keys", format!("The key {key} is revoked."))),
        Err(e) => Ok(refused("/ui/keys", e)),
    }
}
