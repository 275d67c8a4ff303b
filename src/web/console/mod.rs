//! The web console at `/ui`: pages rendered on the server from templates
//! checked at compile time, plain links and forms that work without
//! scripts, and small script modules that add upload progress, drag and
//! drop and copy buttons. It signs people in with the same server-side
//! sessions as the JSON API (carried in an `HttpOnly`, `SameSite=Strict`
//! cookie), checks a CSRF token on every form, and calls the same
//! service-layer functions under the same access rules; every request is
//! audited like an API call. Pages are sent with a strict
//! Content-Security-Policy (no inline script or style) and are never
//! cached, so the back button after signing out shows nothing private.

mod admin;
mod assets;
mod auth;
mod browser;
mod buckets;
mod gallery;
mod history;
mod keys;
mod notices;
mod pages;
mod plot;
mod pool_group;
mod pool_member;
mod pools;
mod session;
mod share;
mod usage;
mod words;

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};

use super::WebState;

/// The policy for every console page: scripts, styles, images and media
/// only from this site, no inline code, no framing.
const PAGE_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self' data: blob:; media-src 'self' blob:; connect-src 'self'; frame-src 'self'; \
     form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

pub fn router(state: WebState) -> Router<WebState> {
    let pages = Router::new()
        .route("/", get(|| async { Redirect::to("/ui/buckets") }))
        .route("/ui", get(|| async { Redirect::to("/ui/buckets") }))
        .route("/ui/", get(|| async { Redirect::to("/ui/buckets") }))
        .route("/ui/sign-in", get(auth::sign_in_page).post(auth::sign_in))
        .route("/ui/sign-up", get(auth::sign_up_page).post(auth::sign_up))
        .route("/ui/sign-out", post(auth::sign_out))
        .route("/ui/sign-out-everywhere", post(auth::sign_out_everywhere))
        .route("/ui/account", get(auth::account_page))
        .route("/ui/account/password", post(auth::change_password))
        .route("/ui/buckets", get(buckets::list).post(buckets::create))
        .route("/ui/buckets/{bucket}", get(browser::folder))
        .route("/ui/buckets/{bucket}/settings", get(buckets::settings))
        .route("/ui/buckets/{bucket}/public", post(buckets::set_public))
        .route("/ui/buckets/{bucket}/grants", post(buckets::grant))
        .route("/ui/buckets/{bucket}/grants/revoke", post(buckets::revoke))
        .route("/ui/buckets/{bucket}/delete", post(buckets::delete))
        .route(
            "/ui/buckets/{bucket}/delete-files",
            post(browser::delete_files),
        )
        .route("/ui/buckets/{bucket}/folders", post(browser::create_folder))
        .route("/ui/buckets/{bucket}/rename", post(browser::rename))
        .route("/ui/buckets/{bucket}/share", post(browser::share))
        .route(
            "/ui/buckets/{bucket}/upload",
            // Files stream into storage, which holds each to its own limit.
            post(browser::upload).layer(axum::extract::DefaultBodyLimit::disable()),
        )
        .route("/ui/buckets/{bucket}/objects/{*key}", get(browser::object))
        .route("/ui/buckets/{bucket}/object", get(browser::object_by_query))
        .route(
            "/ui/buckets/{bucket}/file",
            get(browser::file_by_query).head(browser::file_by_query),
        )
        .route("/ui/keys", get(keys::list).post(keys::create))
        .route("/ui/keys/revoke", post(keys::revoke))
        .route("/ui/history", get(history::own))
        .route("/ui/usage", get(usage::own))
        .route("/ui/events", get(notices::stream))
        .route("/ui/pools", get(pools::list))
        .route("/ui/pools/{pool}", get(pools::show))
        .route("/ui/pools/{pool}/groups", post(pools::group_action))
        .route("/ui/pools/{pool}/groups/{group}", get(pool_group::show))
        .route("/ui/pools/{pool}/members", post(pools::add_members))
        .route(
            "/ui/pools/{pool}/members/{member}",
            get(pool_member::as_owner).post(pools::member_action),
        )
        .route("/ui/member", get(pool_member::home))
        .route("/ui/member/sign-in", post(pool_member::sign_in))
        .route("/ui/member/sign-out", post(pool_member::sign_out))
        .route("/ui/member/result", get(pool_member::latest_result))
        .route("/ui/buckets/{bucket}/gallery", get(gallery::gallery))
        .route("/ui/buckets/{bucket}/photo", get(gallery::photo))
        .route("/ui/buckets/{bucket}/thumb", get(gallery::thumb))
        .route("/ui/buckets/{bucket}/preview", get(gallery::preview))
        .route("/ui/admin/usage", get(usage::everyone))
        .route(
            "/ui/admin",
            get(|| async { Redirect::to("/ui/admin/users") }),
        )
        .route(
            "/ui/admin/users",
            get(admin::users).post(admin::create_user),
        )
        .route("/ui/admin/users/{name}", get(admin::user))
        .route(
            "/ui/admin/users/{name}/password",
            post(admin::reset_password),
        )
        .route("/ui/admin/users/{name}/quota", post(admin::set_quota))
        .route("/ui/admin/users/{name}/delete", post(admin::delete_user))
        .route("/ui/admin/users/{name}/{action}", post(admin::set_disabled))
        .route("/ui/admin/audit", get(history::everyone))
        .route("/ui/{*rest}", get(no_such_page).post(no_such_page))
        .route("/share/{bucket}/{*key}", get(share::open).head(share::open))
        .route(
            "/share/{bucket}",
            get(share::open_by_query).head(share::open_by_query),
        )
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            super::api::with_request_id,
        ));
    Router::new()
        .route("/ui/assets/{name}", get(assets::serve))
        .merge(pages)
        .layer(axum::middleware::from_fn(with_page_headers))
}

/// The visitor is looked up only so the page keeps their navigation.
async fn no_such_page(_visitor: session::MaybeVisitor) -> Response {
    session::ConsoleError::not_found(
        "There is no such page. Check the address, or start again from your buckets.",
    )
    .into_response()
}

/// The security headers of every console response; pages are not cached;
/// a notice shown once is then cleared; an error page gets the visitor's
/// navigation back.
async fn with_page_headers(mut request: Request, next: Next) -> Response {
    if !matches!(request.method(), &Method::GET | &Method::HEAD)
        && !from_this_site(request.headers())
    {
        let mut refused = session::ConsoleError::csrf().into_response();
        refused.headers_mut().insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(PAGE_POLICY),
        );
        return refused;
    }
    let had_flash = super::cookie::cookie(request.headers(), session::FLASH_COOKIE).is_some();
    let slot = session::VisitorSlot::default();
    request.extensions_mut().insert(slot.clone());
    let mut response = next.run(request).await;
    let seen = slot.0.lock().ok().and_then(|s| s.clone());
    if let (Some(marker), Some(seen)) = (
        response.extensions().get::<session::ErrorMarker>().cloned(),
        seen,
    ) {
        let mut page = pages::error_page(marker.status, &marker.message, Some(&seen));
        *page.status_mut() = marker.status;
        *page.headers_mut() = std::mem::take(response.headers_mut());
        page.headers_mut().remove(header::CONTENT_LENGTH);
        response = page;
    }
    let shown = !response.status().is_redirection();
    // Pages and redirects get the page policy; a shared file keeps its own
    // headers (a PDF must stay viewable).
    let is_page = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_none_or(|t| t.as_bytes().starts_with(b"text/html"));
    let headers = response.headers_mut();
    let set = |headers: &mut HeaderMap, name: header::HeaderName, value: &'static str| {
        headers
            .entry(name)
            .or_insert(HeaderValue::from_static(value));
    };
    if is_page {
        set(headers, header::CONTENT_SECURITY_POLICY, PAGE_POLICY);
        set(headers, header::X_FRAME_OPTIONS, "DENY");
    }
    set(headers, header::REFERRER_POLICY, "same-origin");
    set(headers, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(headers, header::CACHE_CONTROL, "no-store");
    if had_flash && shown {
        headers.append(
            header::SET_COOKIE,
            super::cookie::set_cookie(session::FLASH_COOKIE, "", 0, false),
        );
    }
    response
}

/// Whether a form came from a page of this site. Browsers say where a
/// request comes from (`Sec-Fetch-Site`, `Origin`); a form posted from
/// another site, or from a file served on the S3 port of the same host,
/// is refused, sign-in included (so nobody is signed in to an account
/// that is not theirs). Clients that send neither are not browsers.
fn from_this_site(headers: &HeaderMap) -> bool {
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        return site == "same-origin" || site == "none";
    }
    match (
        headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()),
        headers.get(header::HOST).and_then(|v| v.to_str().ok()),
    ) {
        (Some(origin), Some(host)) => origin
            .split_once("://")
            .is_some_and(|(_, rest)| rest == host),
        (Some(_), None) => false,
        (None, _) => true,
    }
}

/// `https://host` as people reach the web port: the configured public URL,
/// or the address the browser used.
pub fn public_base(state: &WebState, headers: &HeaderMap) -> String {
    if let Some(url) = &state.api.public_url {
        return url.clone();
    }
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("127.0.0.1");
    let scheme = if super::cookie::wants_secure(headers, None) {
        "https"
    } else {
        "http"
    };
    format!("{scheme}://{host}")
}
