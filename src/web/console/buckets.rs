//! The buckets page (list with file counts and sizes, create) and a
//! bucket's settings (public read, sharing with other users, delete).
//! Every action is the service-layer call the JSON API makes, under the
//! same access rules.

use askama::Template;
use axum::extract::{Path, State};
use axum::response::Response;

use super::pages::{Chrome, render};
use super::session::{ConsoleError, CsrfForm, Visitor, done, failed, refused};
use super::words;
use crate::core::accounts::Access;
use crate::core::names::BucketName;
use crate::model::GrantLevel;
use crate::web::WebState;

pub struct BucketRow {
    name: String,
    objects: i64,
    size: String,
    public: bool,
    created: String,
    own: bool,
    /// How the visitor comes to see it, when it is not theirs.
    relation: &'static str,
}

#[derive(Template)]
#[template(path = "console/buckets.html")]
struct BucketsPage {
    chrome: Chrome,
    buckets: Vec<BucketRow>,
}

/// `GET /ui/buckets`.
pub async fn list(
    State(state): State<WebState>,
    visitor: Visitor,
) -> Result<Response, ConsoleError> {
    let who = &visitor.principal;
    let buckets = state
        .store
        .visible_buckets(who)
        .await?
        .into_iter()
        .map(|b| BucketRow {
            own: b.owner_id == who.user_id,
            relation: if who.is_admin() {
                "another user's"
            } else {
                "shared with you"
            },
            objects: b.object_count,
            size: words::size(b.bytes_stored),
            public: b.public_read,
            created: words::time(b.created_ms),
            name: b.name,
        })
        .collect();
    Ok(render(BucketsPage {
        chrome: Chrome::for_visitor(&visitor, "Buckets", "buckets"),
        buckets,
    }))
}

/// `POST /ui/buckets`.
pub async fn create(
    State(state): State<WebState>,
    visitor: Visitor,
    CsrfForm(fields): CsrfForm,
) -> Result<Response, ConsoleError> {
    let name = match BucketName::parse(fields.text("name")) {
        Ok(name) => name,
        Err(why) => {
            return Ok(failed(
                "/ui/buckets",
                words::for_error(&crate::core::CoreError::InvalidBucketName(why.to_string())),
            ));
        }
    };
    visitor.audit_object(name.as_str(), None);
    match state.store.create_bucket(&visitor.principal, &name).await {
        Ok(()) => Ok(done(
            &format!("/ui/buckets/{}", name.as_str()),
            format!(
                "The bucket {} is ready. Upload files to it below.",
                name.as_str()
            ),
        )),
        Err(e) => Ok(refused("/ui/buckets", e)),
    }
}

pub struct GrantRow {
    user: String,
    level: &'static str,
}

#[derive(Template)]
#[template(path = "console/bucket_settings.html")]
struct SettingsPage {
    chrome: Chrome,
    bucket: String,
    objects: i64,
    size: String,
    created: String,
    public: bool,
    grants: Vec<GrantRow>,
}

/// `GET /ui/buckets/{bucket}/settings`: for those who may manage it.
pub async fn settings(
    State(state): State<WebState>,
    visitor: Visitor,
    Path(bucket): Path<String>,
) -> Result<Response, ConsoleError> {
    let (record, grants) = state
        .store
        .bucket_details(Some(&visitor.principal), &bucket)
        .await?;
    // Only those who may manage the bucket see its grants, and its settings.
    let grants = grants.ok_or(crate::core::CoreError::AccessDenied)?;
    Ok(render(SettingsPage {
        chrome: Chrome::for_visitor(&visitor, format!("Settings of {bucket}"), "buckets"),
        objects: record.object_count,
        size: words::size(record.bytes_stored),
        created: words::time(record.created_ms),
        public: record.public_read,
        grants: grants
            .into_iter()
            .map(|(user, level)| GrantRow {
                user,
                level: match level {
                    GrantLevel::Read => "read",
                    GrantLevel::ReadWrite => "read and write",
                },
            })
            .collect(),
        bucket,
    }))
}

fn settings_url(bucket: &str) -> String {
    format!("/ui/buckets/{bucket}/settings")
}

/// `POST /ui/buckets/{bucket}/public`.
pub async fn set_public(
    State(state): State<WebState>,
    visitor: Visitor,
    Path(bucket): Path<String>,
    CsrfForm(fields): CsrfForm,
) -> Result<Response, ConsoleError> {
    let public = fields.text("public") == "on";
    state
        .store
        .set_public_read(&visitor.principal, &bucket, public)
        .await?;
    let message = if public {
        format!("{bucket} is now public: anyone can read it.")
    } else {
        format!("{bucket} is now private.")
    };
    Ok(done(&settings_url(&bucket), message))
}

/// `POST /ui/buckets/{bucket}/grants`: share with a user.
pub async fn grant(
    State(state): State<WebState>,
    visitor: Visitor,
    Path(bucket): Path<String>,
    CsrfForm(fields): CsrfForm,
) -> Result<Response, ConsoleError> {
    let back = settings_url(&bucket);
    let Some(level) = GrantLevel::parse(fields.text("level")) else {
        return Ok(failed(&back, "Choose read, or read and write."));
    };
    let user = fields.text("user");
    match state
        .store
        .set_grant(&visitor.principal, &bucket, user, Some(level))
        .await
    {
        Ok(()) => Ok(done(&back, format!("{bucket} is shared with {user}."))),
        Err(e) => Ok(refused(&back, e)),
    }
}

/// `POST /ui/buckets/{bucket}/grants/revoke`.
pub async fn revoke(
    State(state): State<WebState>,
    visitor: Visitor,
    Path(bucket): Path<String>,
    CsrfForm(fields): CsrfForm,
) -> Result<Response, ConsoleError> {
    let back = settings_url(&bucket);
    let user = fields.text("user");
    match state
        .store
        .set_grant(&visitor.principal, &bucket, user, None)
        .await
    {
        Ok(()) => Ok(done(
            &back,
            format!("{bucket} is no longer shared with {user}."),
        )),
        Err(e) => Ok(refused(&back, e)),
    }
}

/// `POST /ui/buckets/{bucket}/delete`: only an empty bucket goes.
pub async fn delete(
    State(state): State<WebState>,
    visitor: Visitor,
    Path(bucket): Path<String>,
    CsrfForm(_): CsrfForm,
) -> Result<Response, ConsoleError> {
    state
        .store
        .authorize(Some(&visitor.principal), &bucket, Access::Manage)
        .await?;
    match state.store.delete_bucket(&bucket).await {
        Ok(()) => Ok(done(
            "/ui/buckets",
            format!("The bucket {bucket} is deleted."),
        )),
        Err(e) => Ok(refused(&settings_url(&bucket), e)),
    }
}
