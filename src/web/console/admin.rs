//! Admin pages: every user with their storage and quota, creating users,
//! and one user's page (disable or enable, reset the password, set the
//! quota, delete with or without their buckets). Every bucket and file is
//! reachable from the buckets page, where admins see all.

use askama::Template;
use axum::extract::{Path, State};
use axum::response::Response;

use super::pages::{Chrome, render};
use super::session::{ConsoleError, CsrfForm, Visitor, done, failed, refused};
use super::words;
use crate::core::CoreError;
use crate::web::WebState;

/// Refuses visitors who are not admins (the same rule as the JSON API).
pub fn require_admin(visitor: &Visitor) -> Result<(), ConsoleError> {
    if visitor.principal.is_admin() {
        Ok(())
    } else {
        Err(CoreError::AccessDenied.into())
    }
}

pub struct UserRow {
    name: String,
    role: String,
    disabled: bool,
    objects: i64,
    stored: String,
    quota: String,
    created: String,
}

#[derive(Template)]
#[template(path = "console/admin_users.html")]
struct UsersPage {
    chrome: Chrome,
    users: Vec<UserRow>,
}

fn quota_words(quota: Option<i64>) -> String {
    quota.map_or_else(|| "none".to_owned(), words::size)
}

/// `GET /ui/admin/users`.
pub async fn users(
    State(state): State<WebState>,
    visitor: Visitor,
) -> Result<Response, ConsoleError> {
    require_admin(&visitor)?;
    let quotas = state.store.user_quotas().await?;
    let buckets = state.store.list_buckets().await?;
    let users = state
        .store
        .accounts()
        .await?
        .into_iter()
        .map(|a| {
            let owned = buckets.iter().filter(|b| b.owner_id == a.id);
            UserRow {
                objects: owned.clone().map(|b| b.object_count).sum(),
                stored: words::size(owned.map(|b| b.bytes_stored).sum()),
                quota: quota_words(quotas.get(&a.id).copied()),
                role: a.role.to_string(),
                disabled: a.disabled_ms.is_some(),
                created: words::time(a.created_ms),
                name: a.name,
            }
        })
        .collect();
    Ok(render(UsersPage {
        chrome: Chrome::for_visitor(&visitor, "Users", "admin"),
        users,
    }))
}

/// `POST /ui/admin/users`.
pub async fn create_user(
    State(state): State<WebState>,
    visitor: Visitor,
    CsrfForm(fields): CsrfForm,
) -> Result<Response, ConsoleError> {
    require_admin(&visitor)?;
    let name = fields.text("name");
    match state
        .store
        .create_user(name, fields.raw("password"), fields.text("role"))
        .await
    {
        Ok(_) => Ok(done(
            &user_url(name),
            format!("The user {name} is created."),
        )),
        Err(e) => Ok(refused("/ui/admin/users", e)),
    }
}

fn user_url(name: &str) -> String {
    format!("/ui/admin/users/{name}")
}

#[derive(Template)]
#[template(path = "console/admin_user.html")]
struct UserPage {
    chrome: Chrome,
    name: String,
    role: String,
    disabled: bool,
    created: String,
    objects: i64,
    stored: String,
    quota: String,
    quota_gib: String,
    buckets: Vec<(String, String)>,
}

/// `GET /ui/admin/users/{name}`.
pub async fn user(
    State(state): State<WebState>,
    visitor: Visitor,
    Path(name): Path<String>,
) -> Result<Response, ConsoleError> {
    require_admin(&visitor)?;
    let account = state.store.account(&name).await?;
    let quota = state.store.user_quotas().await?.get(&account.id).copied();
    let owned: Vec<_> = state
        .store
        .list_buckets()
        .await?
        .into_iter()
        .filter(|b| b.owner_id == account.id)
        .collect();
    Ok(render(UserPage {
        chrome: Chrome::for_visitor(&visitor, format!("User {name}"), "admin"),
        role: account.role.to_string(),
        disabled: account.disabled_ms.is_some(),
        created: words::time(account.created_ms),
        objects: owned.iter().map(|b| b.object_count).sum(),
        stored: words::size(owned.iter().map(|b| b.bytes_stored).sum()),
        quota: quota_words(quota),
        quota_gib: quota.map_or_else(String::new, |q| {
            format!("{}", q as f64 / (1u64 << 30) as f64)
        }),
        buckets: owned
            .into_iter()
            .map(|b| (b.name, words::size(b.bytes_stored)))
            .collect(),
        name,
    }))
}

/// `POST /ui/admin/users/{name}/disable` and `.../enable`.
pub async fn set_disabled(
    State(state): State<WebState>,
    visitor: Visitor,
    Path((name, action)): Path<(String, String)>,
    CsrfForm(_): CsrfForm,
) -> Result<Response, ConsoleError> {
    require_admin(&visitor)?;
    let disable = match action.as_str() {
        "disable" => true,
        "enable" => false,
        _ => return Err(ConsoleError::not_found("There is no such action.")),
    };
    if disable && name == visitor.principal.name {
        return Ok(failed(&user_url(&name), "You cannot disable yourself."));
    }
    match state.store.set_disabled(&name, disable).await {
        Ok(()) => Ok(done(
            &user_url(&name),
            format!(
                "{name} is {}.",
                if disable { "disabled" } else { "enabled" }
            ),
        )),
        Err(e) => Ok(refused(&user_url(&name), e)),
    }
}

/// `POST /ui/admin/users/{name}/password`: their other sessions end.
pub async fn reset_password(
    State(state): State<WebState>,
    visitor: Visitor,
    Path(name): Path<String>,
    CsrfForm(fields): CsrfForm,
) -> Result<Response, ConsoleError> {
    require_admin(&visitor)?;
    let back = user_url(&name);
    if let Err(e) = state
        .store
        .set_password(&name, fields.raw("password"))
        .await
    {
        return Ok(refused(&back, e));
    }
    let account = state.store.account(&name).await?;
    let keep = (account.id == visitor.principal.user_id)
        .then_some(visitor.principal.session.as_deref())
        .flatten();
    state.store.revoke_other_sessions(&account.id, keep).await?;
    Ok(done(
        &back,
        format!("The password of {name} is reset; their sessions are ended."),
    ))
}

/// `POST /ui/admin/users/{name}/quota`: in GiB; empty clears it.
pub async fn set_quota(
    State(state): State<WebState>,
    visitor: Visitor,
    Path(name): Path<String>,
    CsrfForm(fields): CsrfForm,
) -> Result<Response, ConsoleError> {
    require_admin(&visitor)?;
    let back = user_url(&name);
    let text = fields.text("gib");
    let bytes = if text.is_empty() {
        None
    } else {
        match text.parse::<f64>() {
            Ok(gib) if gib.is_finite() && gib >= 0.0 => Some((gib * (1u64 << 30) as f64) as i64),
            _ => {
                return Ok(failed(
                    &back,
                    "Give the quota as a number of GiB, such as 10 or 0.5.",
                ));
            }
        }
    };
    match state.store.set_user_quota(&name, bytes).await {
        Ok(()) => Ok(done(
            &back,
            format!("The quota of {name} is {}.", quota_words(bytes)),
        )),
        Err(e) => Ok(refused(&back, e)),
    }
}

/// `POST /ui/admin/users/{name}/delete`: with `purge`, their buckets too.
pub async fn delete_user(
    State(state): State<WebState>,
    visitor: Visitor,
    Path(name): Path<String>,
    CsrfForm(fields): CsrfForm,
) -> Result<Response, ConsoleError> {
    require_admin(&visitor)?;
    if name == visitor.principal.name {
        return Ok(failed(&user_url(&name), "You cannot delete yourself."));
    }
    match state
        .store
        .remove_user(&name, fields.text("purge") == "yes")
        .await
    {
        Ok(()) => Ok(done(
            "/ui/admin/users",
            format!("The user {name} is deleted."),
        )),
        Err(e) => Ok(refused(&user_url(&name), e)),
    }
}
